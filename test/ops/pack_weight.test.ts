// packWeight + matmul(x, packed) against the float64 reference: both weight layouts, every
// float dtype, awkward shapes that cross the GEMM's tile (16 columns), K-block (256/512) and
// N-block (2048) edges, the small-M and decode (M <= 8) paths, batched x, fused bias/activation.

import { describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { check, expectThrows, FLOAT_DTYPES, forDevices, input, testCase, tolFor } from '../helpers';
import { matmul } from '../reference/matmul';
import type { ActivationName } from '../reference/activation';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/pack_weight.test.ts';

interface PackCase {
  x: number[];
  b: number[]; // as passed to packWeight (with transposeB: [N, K])
  transposeB?: boolean;
  bias?: boolean;
  activation?: ActivationName;
}

const cases: PackCase[] = [
  { x: [1, 1], b: [1, 1] },
  { x: [1, 7], b: [7, 33] },
  { x: [7, 33], b: [33, 1] },
  { x: [33, 129], b: [129, 7] },
  { x: [8, 300], b: [17, 300], transposeB: true }, // decode batch
  { x: [7, 1100], b: [1100, 300] }, // small M, K past two K blocks: panels read straight from the packing
  { x: [33, 2100], b: [129, 2100], transposeB: true }, // one row block: 12-row tiles, then 6 and 3 rows, K blocks of 1024 and 52
  { x: [129, 513], b: [513, 65] }, // K one past a K block
  { x: [70, 40], b: [2100, 40], transposeB: true }, // N past the 2048 N block
  { x: [2, 5, 31], b: [31, 47], bias: true, activation: 'relu' }, // batched x
  { x: [65, 64], b: [33, 64], transposeB: true, bias: true, activation: 'gelu' },
  { x: [3, 256], b: [256, 129], bias: true, activation: 'silu' },
  { x: [4, 0], b: [0, 5], bias: true }, // empty sum: act(bias)
];

forDevices((dev) => {
  if (dev === 'cuda') {
    // The packed layout is the CPU GEMM's: on CUDA the weight itself goes to matmul.
    it('packWeight on cuda is E_DEVICE, naming what to do instead', () => {
      expectThrows(() => ignis.packWeight(ignis.randn([4, 3], { device: 'cuda' })), 'IgnisError', 'E_DEVICE', 'packWeight cuda');
    });
    return;
  }
  for (const dtype of FLOAT_DTYPES) {
    describe(dtype, () => {
      for (const pc of cases) {
        const opts = [pc.transposeB && 'transposeB', pc.bias && 'bias', pc.activation].filter(Boolean).join(' ');
        const name = `packWeight ${shapeStr(pc.x)} x ${shapeStr(pc.b)} ${opts} ${dtype} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          const N = pc.transposeB ? pc.b[0] : pc.b[1];
          const K = pc.x[pc.x.length - 1];
          const x = await input(c, pc.x, dtype, dev);
          const b = await input(c, pc.b, dtype, dev);
          const bias = pc.bias ? await input(c, [N], dtype, dev) : undefined;
          const packed = ignis.packWeight(b.t, { transposeB: pc.transposeB });
          expect(packed.shape).toEqual([K, N]);
          b.t.dispose(); // the packed copy stands alone
          const out = ignis.matmul(x.t, packed, { bias: bias?.t, activation: pc.activation });
          expect(out.shape).toEqual([...pc.x.slice(0, -1), N]);
          const ref = matmul(x.x, pc.x, b.x, pc.b, { transposeB: pc.transposeB, bias: bias?.x, activation: pc.activation });
          await check(out, ref, tolFor(dtype, K >= 512), c.ctx, { dtype, device: dev });
          // a second product reuses the packing
          const again = ignis.matmul(x.t, packed, { bias: bias?.t, activation: pc.activation });
          await check(again, ref, tolFor(dtype, K >= 512), c.ctx, { dtype, device: dev });
          packed.dispose();
        });
      }

      it(`packWeight rejects misuse ${dtype} ${dev}`, async () => {
        const c = testCase(FILE, `packWeight misuse ${dtype} ${dev}`);
        const x = await input(c, [3, 8], dtype, dev);
        const b = await input(c, [9, 5], dtype, dev);
        const packed = ignis.packWeight(b.t);
        expectThrows(() => ignis.matmul(x.t, packed), 'IgnisError', 'E_SHAPE', 'K mismatch', [[3, 8]]);
        expectThrows(() => ignis.matmul(x.t, packed, { transposeB: true }), 'TypeError', 'E_TYPE', 'transposeB');
        expectThrows(() => ignis.packWeight(x.t.reshape([3, 2, 4])), 'IgnisError', 'E_SHAPE', '3-D weight');
        expectThrows(() => ignis.packWeight(x.t, { transposeB: 1 as unknown as boolean }), 'TypeError', 'E_TYPE', 'transposeB type');
        packed.dispose();
        expectThrows(() => ignis.matmul(x.t, packed), 'IgnisError', 'E_DISPOSED', 'disposed packed weight');
      });
    });
  }
});
