// ignis.sample against lib/models/sampling.ts's drawToken (the JS sampler, itself checked against
// sorting and against its probabilities in test/models/sampling.test.ts): the same token for the
// same logits, seed, counter and row, at awkward widths, every float dtype, with and without
// topK / topP, many ties; then the errors.

import { describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { drawToken } from '../../lib/models/sampling';
import { expectThrows, FLOAT_DTYPES, input, testCase, type Tensor } from '../helpers';

const FILE = 'test/ops/sample.test.ts';

const settings = [
  { temperature: 1, topK: 0, topP: 1 },
  { temperature: 0.7, topK: 5, topP: 1 },
  { temperature: 1.3, topK: 0, topP: 0.8 },
  { temperature: 0.9, topK: 40, topP: 0.6 },
];

describe('sample (cpu)', () => {
  for (const dtype of FLOAT_DTYPES)
    for (const [rows, n] of [[1, 1], [3, 7], [2, 33], [4, 129], [1, 5000], [2, 17]] as const)
      it(`sample [${rows}, ${n}] ${dtype}: the JS sampler's token for every setting and counter`, async () => {
        const c = testCase(FILE, `sample ${rows}x${n} ${dtype}`);
        const ties = n === 17;
        const x = ties
          ? { t: ignis.tensor(Float32Array.from({ length: rows * n }, () => Math.floor(c.rng.next() * 4)), { shape: [rows, n], dtype }), x: new Float64Array(0) }
          : await input(c, [rows, n], dtype, 'cpu', { std: 3 });
        const logits = Float32Array.from(ties ? await x.t.data() : x.x);
        for (const s of settings)
          for (const counter of [0, 1, 7, 123456]) {
            const seed = Math.floor(c.rng.next() * 2 ** 40);
            const got = (await ignis.sample(x.t, { ...s, topK: s.topK || undefined, seed, counter }).data()) as Int32Array;
            const want = Array.from({ length: rows }, (_, r) => drawToken(logits, r * n, n, { ...s, seed }, counter, r));
            expect(Array.from(got), `${c.ctx}: ${JSON.stringify(s)} seed ${seed} counter ${counter}`).toEqual(want);
          }
      });

  it('sample [2, 3, 9] gives [2, 3]; a rank-1 row gives a scalar', async () => {
    const t = ignis.sample(ignis.randn([2, 3, 9], { seed: 4 }), { seed: 1 });
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('i32');
    const s = ignis.sample(ignis.tensor(new Float32Array([0, 50, 0]), { shape: [3] }), { temperature: 0.1 });
    expect(s.shape).toEqual([]);
    expect(Array.from(await s.data())).toEqual([1]);
  });

  it('errors: bad temperature, topK, topP, seed, counter; empty last axis; i32 logits; disposed', () => {
    const l = ignis.randn([2, 5], { seed: 2 });
    expectThrows(() => ignis.sample(l, { temperature: 0 }), 'RangeError', 'E_RANGE', 'temperature 0');
    expectThrows(() => ignis.sample(l, { temperature: Infinity }), 'RangeError', 'E_RANGE', 'temperature inf');
    expectThrows(() => ignis.sample(l, { topK: 0 }), 'RangeError', 'E_RANGE', 'topK 0');
    expectThrows(() => ignis.sample(l, { topP: 0 }), 'RangeError', 'E_RANGE', 'topP 0');
    expectThrows(() => ignis.sample(l, { topP: 1.5 }), 'RangeError', 'E_RANGE', 'topP 1.5');
    expectThrows(() => ignis.sample(l, { seed: -1 }), 'RangeError', 'E_RANGE', 'seed -1');
    expectThrows(() => ignis.sample(l, { counter: 0.5 }), 'RangeError', 'E_RANGE', 'counter 0.5');
    expectThrows(() => ignis.sample(l, { other: 1 } as never), 'TypeError', 'E_TYPE', 'unknown option');
    expectThrows(() => ignis.sample(ignis.zeros([2, 0])), 'IgnisError', 'E_SHAPE', 'empty last axis');
    expectThrows(() => ignis.sample(ignis.tensor(new Int32Array([1, 2]), { shape: [2] })), 'IgnisError', 'E_DTYPE', 'i32 logits');
    const gone = ignis.zeros([2, 3]);
    gone.dispose();
    expectThrows(() => ignis.sample(gone), 'IgnisError', 'E_DISPOSED', 'disposed');
    expectThrows(() => ignis.sample(3 as unknown as Tensor), 'TypeError', 'E_TYPE', 'a number');
  });
});
