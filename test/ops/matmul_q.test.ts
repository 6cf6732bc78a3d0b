// matmul(x, QuantizedTensor), the matmul_q op, against the float64 references: every group size,
// every float weight and activation dtype, M in {1, 3, 8, 9, 33} (the GEMV decode path and the
// GEMM prefill path), bias and activation, batched x; with int8Activations, the integer path
// (x quantized per group, exact integer sums) against a float64 reference of that arithmetic.

import { describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { check, FLOAT_DTYPES, forDevices, input, quantized, testCase, tolFor } from '../helpers';
import { linear } from '../reference/matmul';
import { qmatmul, quantize } from '../reference/quant';
import { type FloatDType } from '../reference/round';
import type { ActivationName } from '../reference/activation';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/matmul_q.test.ts';

/** x's rows quantized as the weights are, then sum_g fround(s_w s_x) * sum_k q_w q_x, float64. */
function w8a8(x: ArrayLike<number>, M: number, q: ArrayLike<number>, scales: ArrayLike<number>, N: number, K: number, g: number): Float64Array {
  const xq = quantize(x, M, K, g);
  const G = K / g;
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let tot = 0;
      for (let gi = 0; gi < G; gi++) {
        let is = 0;
        for (let k = gi * g; k < (gi + 1) * g; k++) is += q[n * K + k] * xq.q[m * K + k];
        tot += is * Math.fround(scales[n * G + gi] * xq.scales[m * G + gi]);
      }
      out[m * N + n] = tot;
    }
  return out;
}

forDevices((dev) => {
  describe('matmul with an int8 weight', () => {
    const K = 256;
    const N = 129;
    for (const dtype of FLOAT_DTYPES) {
      for (const M of [1, 3, 8, 9, 33]) {
        for (const g of [32, 64, 128, K]) {
          const name = `qmatmul x [${M}, ${K}] w [${N}, ${K}] groupSize ${g} ${dtype} ${dev}`;
          it(name, async () => {
            const c = testCase(FILE, name);
            const { qt, q, scales } = await quantized(c, N, K, g, 'f32', dev);
            const x = await input(c, [M, K], dtype, dev);
            const out = ignis.matmul(x.t, qt);
            const ref = qmatmul(x.x, [M, K], q, scales, N, K, g);
            await check(out, ref, tolFor(dtype), c.ctx, { dtype, device: dev });
          });
        }
      }
    }

    const extra: { x: number[]; N: number; g: number; w: FloatDType; bias?: boolean; activation?: ActivationName }[] = [
      { x: [2, 9, 256], N: 33, g: 64, w: 'f32' }, // batched x
      { x: [3, 1, 128], N: 65, g: 128, w: 'f32', bias: true }, // batched GEMV
      { x: [5, 96], N: 7, g: 96, w: 'bf16', bias: true, activation: 'gelu' },
      { x: [1, 160], N: 129, g: 32, w: 'f16', bias: true, activation: 'silu' },
      { x: [33, 128], N: 17, g: 32, w: 'f32', activation: 'relu' },
      // every activation the addon has, fused, on the GEMM and GEMV paths
      ...ignis.ACTIVATIONS.flatMap((activation) => [
        { x: [12, 64], N: 9, g: 32, w: 'f32' as FloatDType, bias: true, activation },
        { x: [2, 64], N: 33, g: 64, w: 'bf16' as FloatDType, activation },
      ]),
      { x: [9, 1024], N: 33, g: 128, w: 'f32' }, // long K
      { x: [17, 36], N: 40, g: 36, w: 'f32' }, // GEMM: a group of 36 (runs of 8 cross it), two full panels and a part
      { x: [12, 600], N: 48, g: 600, w: 'f32' }, // GEMM, per channel: the K blocks from 256 and 512 start inside the group
      { x: [80, 300], N: 520, g: 300, w: 'f32' }, // GEMM, two row blocks, three N blocks of 256 (A packed once), K tail of 44
      { x: [1, 1024], N: 257, g: 1024, w: 'f32' },
      // batch 1 on AVX-512 (K and the group multiples of 16): groups of 3 steps, four streams and
      // the rows left; else (K = 100) the AVX2 GEMV
      { x: [1, 48], N: 70, g: 48, w: 'f32', bias: true },
      { x: [1, 100], N: 20, g: 100, w: 'f32' },
    ];
    for (const dtype of FLOAT_DTYPES) {
      for (const e of extra) {
        const Kx = e.x[e.x.length - 1];
        const name = `qmatmul x ${shapeStr(e.x)} w [${e.N}, ${Kx}] ${e.w} groupSize ${e.g}${e.bias ? ' bias' : ''}${e.activation ? ' ' + e.activation : ''} ${dtype} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          const { qt, q, scales } = await quantized(c, e.N, Kx, e.g, e.w, dev);
          const x = await input(c, e.x, dtype, dev);
          const bias = e.bias ? await input(c, [e.N], dtype, dev) : undefined;
          const out = ignis.matmul(x.t, qt, { bias: bias?.t, activation: e.activation });
          const ref = qmatmul(x.x, e.x, q, scales, e.N, Kx, e.g, { bias: bias?.x, activation: e.activation });
          await check(out, ref, tolFor(dtype, Kx >= 512), c.ctx, { dtype, device: dev });
        });
      }
    }

    it(`qmatmul approximates the float matmul within int8 quantization error ${dev}`, async () => {
      const name = `qmatmul vs float weight ${dev}`;
      const c = testCase(FILE, name);
      const N = 64;
      const Kw = 512;
      const { w, qt } = await quantized(c, N, Kw, 32, 'f32', dev);
      const x = await input(c, [8, Kw], 'f32', dev);
      const out = ignis.matmul(x.t, qt);
      await check(out, linear(x.x, [8, Kw], w.x, N, Kw), 3e-2, c.ctx, { shape: [8, N], dtype: 'f32', device: dev });
    });
  });

  describe('int8 activations (integer dot products)', () => {
    const cases: [number, number, number, number][] = [
      // [M, K, N, groupSize]: every decode row count, every group size, groups whose width is not
      // a multiple of 32 (per channel: a tail summed one by one), more rows than a tile takes
      ...[1, 2, 3, 4, 5, 8].map((M) => [M, 256, 37, 32] as [number, number, number, number]),
      [1, 256, 64, 64], [2, 256, 33, 128], [1, 256, 9, 256], [3, 100, 17, 100], [1, 36, 129, 36], [1, 1024, 70, 128], [7, 4096, 11, 128],
      // prefill rows (the integer GEMM where the CPU has AVX-512 VNNI: row tiles of 6 and a
      // remainder, chunks of 32 columns and a part, groups of 32 to 128 and per channel; AMX past
      // 16 rows: blocks of 32 rows and a part, groups taken in pairs and an odd one left;
      // elsewhere, and for a group not a multiple of 32, the decode kernels over every row)
      [9, 256, 37, 32], [33, 128, 64, 64], [129, 512, 33, 128], [17, 1024, 100, 1024], [13, 96, 7, 32], [11, 100, 17, 100], [40, 36, 129, 36],
      [70, 352, 65, 32], [64, 320, 96, 64],
      // 2-16 rows on AMX with the weight as the A operand: blocks of 32 weight rows and a
      // zero-padded last one, groups in pairs and an odd one left, steps of 32 and 64 bytes
      [16, 320, 45, 32], [12, 224, 33, 32], [2, 512, 70, 64], [15, 384, 32, 128],
    ];
    for (const dtype of FLOAT_DTYPES) {
      for (const [M, K, N, g] of cases) {
        const name = `qmatmul int8Activations x [${M}, ${K}] w [${N}, ${K}] groupSize ${g} ${dtype} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          const { qt, q, scales } = await quantized(c, N, K, g, 'f32', dev);
          const x = await input(c, [M, K], dtype, dev);
          if (dev !== 'cpu') {
            expect(() => ignis.matmul(x.t, qt, { int8Activations: true })).toThrow(expect.objectContaining({ code: 'E_DEVICE', message: expect.stringContaining('int8Activations') }));
            return;
          }
          const out = ignis.matmul(x.t, qt, { int8Activations: true });
          await check(out, { data: w8a8(x.x, M, q, scales, N, K, g), shape: [M, N] }, tolFor(dtype, K >= 512), c.ctx, { dtype, device: dev });
        });
      }
    }
    it(`int8Activations: its error against f32 activations ${dev}`, async () => {
      if (dev !== 'cpu') return;
      const c = testCase(FILE, `int8Activations accuracy ${dev}`);
      const [N, K, g] = [64, 512, 32];
      const { qt, q, scales } = await quantized(c, N, K, g, 'f32', dev);
      // decode and prefill rows: within int8 rounding of the f32-activation result (about 0.5% relative)
      for (const M of [1, 9, 64]) {
        const x = await input(c, [M, K], 'f32', dev);
        const exact = qmatmul(x.x, [M, K], q, scales, N, K, g);
        await check(ignis.matmul(x.t, qt, { int8Activations: true }), exact, 2e-2, c.ctx, { dtype: 'f32', device: dev });
      }
      const x1 = await input(c, [1, K], 'f32', dev);
      expect(() => ignis.matmul(x1.t, x1.t, { int8Activations: true })).toThrow(TypeError);
    });
  });
  describe('f16 scales', () => {
    // every path that reads the scales: the GEMVs (1-8 rows; batch 1 on 512-bit VNNI reads them
    // as stored, with its four row streams and the tail rows), the f32-activation GEMM (9+ rows),
    // the integer GEMMs (2-16 rows with the weight as AMX's A operand, 17+ packed chunks); the
    // reference takes the kernel's own f16 scales
    const cases: [number, number, number, number][] = [
      [1, 256, 37, 32], [1, 256, 130, 64], [1, 320, 9, 320], [1, 128, 200, 128], [3, 256, 37, 32], [8, 192, 33, 64],
      [9, 256, 37, 32], [16, 320, 45, 32], [17, 256, 70, 64], [40, 128, 33, 32], [33, 100, 17, 100],
      // the f32-activation GEMM's K blocks, whose scales are converted a block's groups at a time
      // (several blocks; per channel, the group inside every block)
      [20, 1152, 40, 128], [12, 600, 48, 600],
    ];
    for (const int8Activations of [false, true]) {
      for (const [M, K, N, g] of cases) {
        const name = `qmatmul f16 scales${int8Activations ? ' int8Activations' : ''} x [${M}, ${K}] w [${N}, ${K}] groupSize ${g} ${dev}`;
        it(name, async () => {
          if (dev !== 'cpu') return; // f16 scales are CPU-only (quantize refuses them elsewhere: quantize.test.ts)
          const c = testCase(FILE, name);
          const { qt, q, scales } = await quantized(c, N, K, g, 'f32', dev, false, 'f16');
          const x = await input(c, [M, K], 'f32', dev);
          const out = ignis.matmul(x.t, qt, { int8Activations });
          const ref = int8Activations ? { data: w8a8(x.x, M, q, scales, N, K, g), shape: [M, N] } : qmatmul(x.x, [M, K], q, scales, N, K, g);
          await check(out, ref, tolFor('f32'), c.ctx, { dtype: 'f32', device: dev });
        });
      }
    }
  });
});
