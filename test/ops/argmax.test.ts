// argmax along the last axis against a float64 reference: widths 1 / 7 / 33 / 129 / 4096 and
// long rows that the CPU splits across threads (50000, 131072), many ties (the first index must
// win, also across the split), NaN (above every number: the first NaN wins) and all -Infinity
// rows, every float dtype and device; then the errors.

import { describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { expectThrows, FLOAT_DTYPES, forDevices, input, testCase, type Tensor } from '../helpers';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/argmax.test.ts';

/** Float64 reference: per row of x [rows, n], the first index of the maximum; NaN beats numbers. */
function argmaxRef(x: ArrayLike<number>, n: number): Int32Array {
  const rows = n > 0 ? x.length / n : 0;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let i = 1; i < n; i++) {
      const v = x[r * n + i], b = x[r * n + best];
      if (Number.isNaN(b)) break;
      if (Number.isNaN(v) || v > b) best = i;
    }
    out[r] = best;
  }
  return out;
}

/** argmax of x, its output's buffer first filled with -7 (a freed, same-sized i32 tensor) so an unwritten row fails. */
async function run(x: Tensor, outShape: number[], dev: string): Promise<Int32Array> {
  const poison = ignis.full(outShape, -7, { dtype: 'i32', device: dev });
  await poison.ready();
  poison.dispose();
  const out = ignis.argmax(x);
  expect(out.shape).toEqual(outShape);
  expect(out.dtype).toBe('i32');
  return (await out.data()) as Int32Array;
}

function expectSame(got: Int32Array, want: Int32Array, ctx: string): void {
  expect(got.length, ctx).toBe(want.length);
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) expect.fail(`${ctx}: row ${i}: got ${got[i]}, want ${want[i]}`);
}

const shapes: number[][] = [[1], [7], [3, 33], [2, 129], [5, 4096], [2, 3, 65], [1, 50000], [2, 1, 131072], [0, 5]];

forDevices((dev) => {
  for (const dtype of FLOAT_DTYPES) {
    describe(`argmax ${dtype} ${dev}`, () => {
      for (const shape of shapes) {
        const name = `argmax ${shapeStr(shape)} ${dtype} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          const x = await input(c, shape, dtype, dev);
          const n = shape[shape.length - 1];
          expectSame(await run(x.t, shape.slice(0, -1), dev), argmaxRef(x.x, n), c.ctx);
        });
      }

      // Values exactly representable in every dtype: small integers (many ties), NaN, -Infinity.
      const special = (name: string, n: number, rows: number, fill: (c: ReturnType<typeof testCase>, r: number, i: number) => number) =>
        it(`argmax ${name} ${dtype} ${dev}`, async () => {
          const c = testCase(FILE, `argmax ${name} ${dtype} ${dev}`);
          const v = new Float32Array(rows * n);
          for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) v[r * n + i] = fill(c, r, i);
          const x = ignis.tensor(v, { shape: [rows, n], dtype, device: dev });
          expectSame(await run(x, [rows], dev), argmaxRef(v, n), c.ctx);
        });
      special('ties: values in 0..3', 129, 9, (c) => Math.floor(c.rng.next() * 4));
      // One long row is split into a chunk per thread (CPU): a tie across chunks goes to the first.
      special('ties across a split row: the max in its first half, again in its second', 60000, 1, (_c, _r, i) => (i === 10000 || i === 45000 ? 5 : i % 3));
      special('one equal row', 50000, 1, () => 2);
      special('all -Infinity', 33, 3, () => -Infinity);
      special('-Infinity and one number', 70000, 1, (_c, _r, i) => (i === 69999 ? -3 : -Infinity));
      special('NaN beats a larger number, the first NaN wins', 40, 4, (_c, r, i) => (i === 5 + r || i === 30 ? NaN : i === 2 ? 100 : i % 7));
      special('NaN late in a split row, after the max', 70000, 1, (_c, _r, i) => (i === 100 ? 50 : i === 65000 ? NaN : i % 5));
      special('NaN in the first half of a split row, a larger value later', 70000, 1, (_c, _r, i) => (i === 7 ? NaN : i === 60000 ? 50 : i % 5));
    });
  }
});

describe('argmax errors', () => {
  it('an empty last axis and a rank-0 x are E_SHAPE; an i32 x is E_DTYPE; a disposed x is E_DISPOSED', () => {
    expectThrows(() => ignis.argmax(ignis.zeros([3, 0])), 'IgnisError', 'E_SHAPE', 'empty last axis', [[3, 0]]);
    expectThrows(() => ignis.argmax(ignis.zeros([])), 'IgnisError', 'E_SHAPE', 'rank 0');
    expectThrows(() => ignis.argmax(ignis.tensor(new Int32Array([1, 2]), { shape: [2] })), 'IgnisError', 'E_DTYPE', 'i32 x');
    const gone = ignis.zeros([2, 3]);
    gone.dispose();
    expectThrows(() => ignis.argmax(gone), 'IgnisError', 'E_DISPOSED', 'disposed x');
    expectThrows(() => ignis.argmax(3 as unknown as Tensor), 'TypeError', 'E_TYPE', 'a number');
  });
  it('rows of one element give 0; a rank-1 x gives a rank-0 result', async () => {
    expect(Array.from(await ignis.argmax(ignis.randn([4, 1], { seed: 2 })).data())).toEqual([0, 0, 0, 0]);
    const s = ignis.argmax(ignis.tensor(new Float32Array([1, 9, 3]), { shape: [3] }));
    expect(s.shape).toEqual([]);
    expect(Array.from(await s.data())).toEqual([1]);
  });
});
