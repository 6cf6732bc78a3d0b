// matmul against the float64 reference: 2-D and batched (numpy broadcasting, b 2-D), transposed
// b, fused bias + activation, every float dtype and device, awkward sizes (1, 7, 33, 129).

import { describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { check, expectThrows, FLOAT_DTYPES, forDevices, input, testCase, tolFor } from '../helpers';
import { matmul } from '../reference/matmul';
import type { ActivationName } from '../reference/activation';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/matmul.test.ts';

interface MatmulCase {
  a: number[];
  b: number[]; // as passed (with transposeB: [..., N, K])
  transposeB?: boolean;
  bias?: boolean;
  activation?: ActivationName;
}

const cases: MatmulCase[] = [
  { a: [1, 1], b: [1, 1] },
  { a: [1, 7], b: [7, 33] }, // GEMV
  { a: [7, 33], b: [33, 1] },
  { a: [33, 129], b: [129, 7] },
  { a: [129, 64], b: [64, 129] },
  { a: [16, 16], b: [16, 16] },
  { a: [65, 17], b: [17, 31] },
  { a: [3, 1000], b: [1000, 5] }, // long reduction
  { a: [80, 600], b: [2100, 600], transposeB: true }, // two row blocks, two N blocks (A packed once for both)
  { a: [150, 1100], b: [1100, 70] }, // 12- and 6-row tiles over 32- and 16-column ones, K past a block (1024)
  { a: [1, 7], b: [33, 7], transposeB: true },
  { a: [33, 129], b: [7, 129], transposeB: true },
  { a: [129, 64], b: [129, 64], transposeB: true },
  // batch 1, transposed: 8 row streams an eighth of the rows apart and the rows left, on each
  // thread's share of the columns (K not a multiple of 8, nor of a line)
  { a: [1, 300], b: [1030, 300], transposeB: true },
  { a: [1, 2, 300], b: [1, 1023, 300], transposeB: true },
  // transposed with M > 8 and an even K: bf16 through vdpbf16ps where the CPU has AVX512_BF16
  // (6-row tiles and a remainder, 32-column chunks and a part, K of one pair)
  { a: [13, 2], b: [33, 2], transposeB: true },
  { a: [9, 130], b: [100, 130], transposeB: true, bias: true, activation: 'gelu' },
  { a: [40, 1026], b: [64, 1026], transposeB: true, bias: true },
  // batched
  { a: [2, 7, 33], b: [33, 9] }, // b 2-D broadcast over the batch
  { a: [3, 5, 17], b: [3, 17, 6] },
  { a: [2, 1, 5, 8], b: [3, 8, 4] }, // -> [2, 3, 5, 4]
  { a: [1, 9, 16], b: [4, 16, 3] }, // a's batch 1 broadcast
  { a: [2, 33, 40], b: [2, 7, 40], transposeB: true },
  { a: [4, 1, 65], b: [65, 33] }, // batched GEMV
  // fused epilogue
  { a: [7, 33], b: [33, 17], bias: true },
  { a: [9, 40], b: [40, 33], bias: true, activation: 'gelu' },
  { a: [1, 64], b: [129, 64], transposeB: true, bias: true, activation: 'silu' },
  { a: [33, 20], b: [20, 65], activation: 'relu' },
  { a: [2, 5, 31], b: [31, 7], bias: true, activation: 'relu' },
  { a: [3, 8, 24], b: [3, 24, 16], activation: 'gelu' },
  { a: [4, 128], b: [96, 128], transposeB: true, activation: 'silu' },
  // every activation the addon has, fused, on the GEMM (M > 8) and GEMV (M <= 8) paths
  ...ignis.ACTIVATIONS.flatMap((activation): MatmulCase[] => [
    { a: [17, 48], b: [48, 33], bias: true, activation },
    { a: [3, 40], b: [29, 40], transposeB: true, activation },
  ]),
];

forDevices((dev) => {
  for (const dtype of FLOAT_DTYPES) {
    describe(dtype, () => {
      for (const mc of cases) {
        const opts = [mc.transposeB && 'transposeB', mc.bias && 'bias', mc.activation].filter(Boolean).join(' ');
        const name = `matmul ${shapeStr(mc.a)} x ${shapeStr(mc.b)} ${opts} ${dtype} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          const N = mc.transposeB ? mc.b[mc.b.length - 2] : mc.b[mc.b.length - 1];
          const K = mc.a[mc.a.length - 1];
          const a = await input(c, mc.a, dtype, dev);
          const b = await input(c, mc.b, dtype, dev);
          const bias = mc.bias ? await input(c, [N], dtype, dev) : undefined;
          const out = ignis.matmul(a.t, b.t, {
            transposeB: mc.transposeB,
            bias: bias?.t,
            activation: mc.activation,
          });
          const ref = matmul(a.x, mc.a, b.x, mc.b, { transposeB: mc.transposeB, bias: bias?.x, activation: mc.activation });
          await check(out, ref, tolFor(dtype, K >= 512), c.ctx, { dtype, device: dev });
        });
      }

      it(`matmul inputs disposed right after the call still compute ${dtype} ${dev}`, async () => {
        const name = `matmul dispose-after-enqueue ${dtype} ${dev}`;
        const c = testCase(FILE, name);
        const a = await input(c, [33, 40], dtype, dev);
        const b = await input(c, [40, 17], dtype, dev);
        const out = ignis.matmul(a.t, b.t);
        a.t.dispose();
        b.t.dispose();
        await check(out, matmul(a.x, [33, 40], b.x, [40, 17]), tolFor(dtype), c.ctx, { dtype, device: dev });
      });
    });
  }
});

// f32 activations with a 16-bit weight: out (and bias) f32, the weight's values as stored. f16
// products are f32's; bf16 weights on AMX take the f32 input as two bf16 terms (16 significant
// bits), hence the looser bound. CUDA has no kernel for it yet and says so.
forDevices((dev) => {
  for (const wdtype of ['f16', 'bf16'] as const) {
    describe(`f32 x ${wdtype}`, () => {
      for (const mc of cases) {
        const opts = [mc.transposeB && 'transposeB', mc.bias && 'bias', mc.activation].filter(Boolean).join(' ');
        const name = `matmul ${shapeStr(mc.a)} f32 x ${shapeStr(mc.b)} ${wdtype} ${opts} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          const N = mc.transposeB ? mc.b[mc.b.length - 2] : mc.b[mc.b.length - 1];
          const K = mc.a[mc.a.length - 1];
          const a = await input(c, mc.a, 'f32', dev);
          const b = await input(c, mc.b, wdtype, dev);
          const bias = mc.bias ? await input(c, [N], 'f32', dev) : undefined;
          const call = () => ignis.matmul(a.t, b.t, { transposeB: mc.transposeB, bias: bias?.t, activation: mc.activation });
          if (dev === 'cuda') {
            expectThrows(call, 'IgnisError', 'E_DEVICE', name);
            return;
          }
          const out = call();
          expect(out.dtype).toBe('f32');
          const ref = matmul(a.x, mc.a, b.x, mc.b, { transposeB: mc.transposeB, bias: bias?.x, activation: mc.activation });
          await check(out, ref, wdtype === 'bf16' ? 1e-4 : tolFor('f32', K >= 512), c.ctx, { dtype: 'f32', device: dev });
        });
      }
    });
  }
  it(`matmul refuses an f16/bf16 a with an f32 b, and f16 with bf16, naming both ${dev}`, async () => {
    const a16 = ignis.randn([3, 4], { dtype: 'bf16', device: dev }), b32 = ignis.randn([4, 2], { device: dev });
    const h = ignis.randn([4, 2], { dtype: 'f16', device: dev });
    expectThrows(() => ignis.matmul(a16, b32), 'IgnisError', 'E_DTYPE', 'bf16 x f32');
    expectThrows(() => ignis.matmul(a16, h), 'IgnisError', 'E_DTYPE', 'bf16 x f16');
    for (const t of [a16, b32, h]) t.dispose();
  });
});
