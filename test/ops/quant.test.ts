// quantize / dequantize / matmul(x, QuantizedTensor) against the float64 references: every
// group size (32, 64, 128, K), every float weight and activation dtype, M in {1, 3, 8, 9, 33}
// (the GEMV decode path and the GEMM prefill path), bias and activation, batched x.

import { describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { check, FLOAT_DTYPES, forDevices, input, testCase, tolFor, type Case, type Device } from '../helpers';
import { linear } from '../reference/matmul';
import { dequantize, qmatmul, quantize } from '../reference/quant';
import { roundTo, type FloatDType } from '../reference/round';
import type { ActivationName } from '../reference/activation';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/quant.test.ts';

/** Quantizes a fresh random w [N, K] on dev; returns the tensor, its values and the kernel's q and scales. */
async function quantized(c: Case, N: number, K: number, groupSize: number, wDtype: FloatDType, dev: Device, zeroGroup = false) {
  const values = c.rng.normals(N * K, 0.5);
  if (zeroGroup) for (let k = 0; k < groupSize; k++) values[Math.min(1, N - 1) * K + k] = 0; // one all-zero group
  const w = await input(c, [N, K], wDtype, dev, { values });
  const qt = ignis.quantize(w.t, { groupSize });
  const q = await qt.q.data();
  const scales = await qt.scales.data();
  return { w, qt, q, scales };
}

forDevices((dev) => {
  describe('quantize', () => {
    const shapes: [number, number, number][] = [
      [33, 256, 32],
      [33, 256, 64],
      [7, 256, 128],
      [129, 256, 256],
      [1, 96, 32],
      [5, 96, 96],
      [17, 160, 32],
      [3, 160, 160],
      [9, 384, 128],
    ];
    for (const wDtype of FLOAT_DTYPES) {
      for (const [N, K, g] of shapes) {
        const name = `quantize [${N}, ${K}] groupSize ${g} ${wDtype} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          const { w, qt, q, scales } = await quantized(c, N, K, g, wDtype, dev, true);
          expect(qt.groupSize, c.ctx).toBe(g);
          expect([...qt.shape], c.ctx).toEqual([N, K]);
          expect(qt.q.shape, c.ctx).toEqual([N, K]);
          expect(qt.q.dtype, c.ctx).toBe('i8');
          expect(qt.scales.shape, c.ctx).toEqual([N, K / g]);
          expect(qt.scales.dtype, c.ctx).toBe('f32');
          expect(qt.q.device, c.ctx).toBe(dev === 'cuda' ? 'cuda:0' : 'cpu');
          expect(q).toBeInstanceOf(Int8Array);

          const ref = quantize(w.x, N, K, g);
          // scales: max|w| / 127 in f32 (allow 1 ulp for a kernel that multiplies by 1/127)
          for (let i = 0; i < ref.scales.length; i++) {
            const rel = Math.abs(scales[i] - ref.scales[i]) / ref.scales[i];
            if (!(rel <= 2 ** -23)) expect.fail(`${c.ctx}: scales[${i}] = ${scales[i]}, ref ${ref.scales[i]}`);
          }
          // q: exact except within 1 where w / scale sits on a .5 boundary
          let offByOne = 0;
          for (let i = 0; i < ref.q.length; i++) {
            const d = Math.abs(q[i] - ref.q[i]);
            if (d === 0) continue;
            if (d === 1 && ref.nearTie[i]) {
              offByOne++;
              continue;
            }
            expect.fail(`${c.ctx}: q[${i}] (row ${Math.floor(i / K)}, col ${i % K}) = ${q[i]}, ref ${ref.q[i]} (w ${w.x[i]}, w/scale ${w.x[i] / ref.scales[Math.floor(i / K) * (K / g) + Math.floor((i % K) / g)]})`);
          }
          expect(offByOne, c.ctx).toBeLessThanOrEqual(Math.max(2, ref.q.length / 1000));
          // the all-zero group
          const zg = Math.min(1, N - 1) * (K / g);
          expect(scales[zg], `${c.ctx}: all-zero group's scale`).toBe(1);
          qt.dispose();
        });
      }
    }
  });

  describe('dequantize', () => {
    for (const dtype of FLOAT_DTYPES) {
      for (const [N, K, g] of [
        [33, 256, 32],
        [7, 128, 128],
        [5, 96, 96],
        [1, 192, 64],
      ] as [number, number, number][]) {
        const name = `dequantize [${N}, ${K}] groupSize ${g} -> ${dtype} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          const { qt, q, scales } = await quantized(c, N, K, g, 'f32', dev);
          const out = ignis.dequantize(qt, { dtype });
          // q * scale is exact in f32; the output is that product rounded to dtype
          const ref = roundTo(dequantize(q, scales, N, K, g), dtype);
          await check(out, ref, 0, c.ctx, { shape: [N, K], dtype, device: dev });
        });
      }
    }
    it(`dequantize defaults to f32 ${dev}`, async () => {
      const name = `dequantize default dtype ${dev}`;
      const c = testCase(FILE, name);
      const { w, qt } = await quantized(c, 9, 64, 32, 'bf16', dev);
      const out = ignis.dequantize(qt);
      expect(out.dtype).toBe('f32');
      // round trip error of symmetric int8: at most half a step, scale / 2 = max|group| / 254,
      // per element; a sharp bound (random data reach ~0.98 of it), + 1e-6 for f32 rounding
      await check(out, w.x, 1 / 254 + 1e-6, c.ctx, { shape: [9, 64], device: dev });
    });
  });

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
