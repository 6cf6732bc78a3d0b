// matmul(x, QuantizedTensor), the matmul_q op, against the float64 references: every group size,
// every float weight and activation dtype, M in {1, 3, 8, 9, 33} (the GEMV decode path and the
// GEMM prefill path), bias and activation, batched x.

import { describe, it } from 'vitest';
import * as ignis from '../../lib/index';
import { check, FLOAT_DTYPES, forDevices, input, quantized, testCase, tolFor } from '../helpers';
import { linear } from '../reference/matmul';
import { qmatmul } from '../reference/quant';
import { type FloatDType } from '../reference/round';
import type { ActivationName } from '../reference/activation';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/matmul_q.test.ts';

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
});
