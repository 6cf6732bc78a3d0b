// quantize and dequantize against the float64 references: every group size (32, 64, 128, K),
// every float weight dtype, an all-zero group, and the round trip's error bound.

import { describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { check, FLOAT_DTYPES, forDevices, quantized, testCase } from '../helpers';
import { dequantize, f16Up, quantize } from '../reference/quant';
import { roundTo } from '../reference/round';

const FILE = 'test/ops/quantize.test.ts';

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
      [5, 100, 100], // a group that is not a multiple of the 8 lanes
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

  it(`quantize rounds ties to even, ignores NaN in the scale and stores it as 0, in the vector lanes and the tail ${dev}`, async () => {
    // scale = 127 / 127 = 1, so q = rint(w)
    const row = [127, 0.5, 1.5, 2.5, -0.5, -1.5, NaN, 126.5, -127, 3.5, 4.5, -2.5, 0.49999997, 5.5, -126.5, 6.5, 0.5, 1.5, NaN, -3.5];
    const want = [127, 0, 2, 2, 0, -2, 0, 126, -127, 4, 4, -2, 0, 6, -126, 6, 0, 2, 0, -4];
    const w = ignis.tensor(Float32Array.from(row), { shape: [1, 20], device: dev });
    const qt = ignis.quantize(w, { groupSize: 20 });
    try {
      expect([...(await qt.scales.data())]).toEqual([1]);
      expect([...(await qt.q.data())]).toEqual(want);
    } finally {
      w.dispose();
      qt.dispose();
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

  describe('f16 scales', () => {
    const shapes: [number, number, number][] = [
      [33, 256, 32],
      [7, 256, 128],
      [129, 192, 192],
      [5, 100, 100],
    ];
    for (const wDtype of ['f32', 'bf16'] as const) {
      for (const [N, K, g] of shapes) {
        const name = `quantize scales f16 [${N}, ${K}] groupSize ${g} ${wDtype} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          if (dev !== 'cpu') {
            const w = ignis.randn([N, K], { device: dev });
            expect(() => ignis.quantize(w, { groupSize: g, scales: 'f16' })).toThrow(expect.objectContaining({ code: 'E_DEVICE', message: expect.stringContaining('f16 scales') }));
            w.dispose();
            return;
          }
          const { w, qt, q, scales } = await quantized(c, N, K, g, wDtype, dev, true, 'f16');
          expect(qt.scales.dtype, c.ctx).toBe('f16');
          expect(String(qt), c.ctx).toContain('f16 scales');
          const ref = quantize(w.x, N, K, g, 'f16');
          const ref32 = quantize(w.x, N, K, g);
          for (let i = 0; i < ref.scales.length; i++) {
            // the f32 scale rounded up onto f16's grid, exactly; at most 2^-10 relative above it
            if (scales[i] !== ref.scales[i]) expect.fail(`${c.ctx}: scales[${i}] = ${scales[i]}, ref ${ref.scales[i]} (f32 ${ref32.scales[i]})`);
            if (!(scales[i] >= ref32.scales[i] && scales[i] <= ref32.scales[i] * (1 + 2 ** -10))) expect.fail(`${c.ctx}: scales[${i}] = ${scales[i]} against f32's ${ref32.scales[i]}`);
          }
          let offByOne = 0;
          for (let i = 0; i < ref.q.length; i++) {
            const d = Math.abs(q[i] - ref.q[i]);
            if (d === 1 && ref.nearTie[i]) offByOne++;
            else if (d !== 0) expect.fail(`${c.ctx}: q[${i}] = ${q[i]}, ref ${ref.q[i]}`);
          }
          expect(offByOne, c.ctx).toBeLessThanOrEqual(Math.max(2, ref.q.length / 1000));
          // every weight within half a step of its group's stored scale (+ f32 rounding)
          const back = await ignis.dequantize(qt).data();
          const G = K / g;
          for (let i = 0; i < back.length; i++) {
            const s = scales[Math.floor(i / K) * G + Math.floor((i % K) / g)];
            if (!(Math.abs(back[i] - w.x[i]) <= s / 2 + 1e-6 * Math.abs(w.x[i]))) expect.fail(`${c.ctx}: element ${i}: ${back[i]} for ${w.x[i]} (scale ${s})`);
          }
          expect(scales[Math.min(1, N - 1) * G], `${c.ctx}: all-zero group's scale`).toBe(1);
          qt.dispose();
        });
      }
    }

    it(`f16 scales below f16's normal range, and past its largest value ${dev}`, async () => {
      if (dev !== 'cpu') return;
      const c = testCase(FILE, `f16 scales range ${dev}`);
      // groups of 32 with largest magnitudes from 1e-9 to 1e6: scales from far below f16's normal
      // range (6.1e-5) to near its top
      const amax = [1e-9, 1e-7, 3e-6, 1e-4, 7e-3, 0.3, 40, 1e6];
      const K = 32 * amax.length;
      const values = c.rng.normals(K, 1);
      for (let k = 0; k < K; k++) values[k] = Math.fround(Math.max(-1, Math.min(1, values[k] / 3)) * amax[Math.floor(k / 32)]);
      const w = ignis.tensor(Float32Array.from(values), { shape: [1, K] });
      const qt = ignis.quantize(w, { groupSize: 32, scales: 'f16' });
      const scales = await qt.scales.data(), q = await qt.q.data(), back = await ignis.dequantize(qt).data();
      for (let gi = 0; gi < amax.length; gi++) {
        let m = 0;
        for (let k = gi * 32; k < gi * 32 + 32; k++) m = Math.max(m, Math.abs(values[k]));
        expect(scales[gi], `group ${gi}`).toBe(f16Up(Math.fround(m / 127)));
        for (let k = gi * 32; k < gi * 32 + 32; k++) {
          expect(Math.abs(q[k]), `q[${k}]`).toBeLessThanOrEqual(127);
          // half a step of the stored scale: with f32 scales m / 254, here at most 2^-25 more
          expect(Math.abs(back[k] - values[k]), `element ${k}`).toBeLessThanOrEqual(scales[gi] / 2 + 1e-6 * Math.abs(values[k]));
          expect(Math.abs(back[k] - values[k]), `element ${k}`).toBeLessThanOrEqual((m / 254) * (1 + 2 ** -10) + 2 ** -25 + 1e-6 * Math.abs(values[k]));
        }
      }
      w.dispose();
      qt.dispose();
      // past 127 * 65504 (and an infinite weight): E_RANGE naming the row and group
      for (const big of [9e6, Infinity]) {
        const b = ignis.tensor(Float32Array.from({ length: 64 }, (_, i) => (i === 40 ? big : 1)), { shape: [2, 32] });
        const bq = ignis.quantize(b, { groupSize: 32, scales: 'f16' });
        await expect(bq.scales.data()).rejects.toThrow(expect.objectContaining({ code: 'E_RANGE', message: expect.stringContaining('row 1, group 0') }));
        b.dispose();
        bq.dispose();
      }
      const x = ignis.randn([4, 4]);
      expect(() => ignis.quantize(x, { scales: 'bf16' as 'f16' })).toThrow(expect.objectContaining({ code: 'E_RANGE', message: expect.stringContaining("unknown scales 'bf16'") }));
      x.dispose();
    });
  });
});
