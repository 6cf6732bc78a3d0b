// Float64 references of the symmetric int8 weight quantization: quantize w [N, K] by groups
// of groupSize along K (scale = max|w| / 127, or 1 for an all-zero group; q = round half to
// even of w / scale, clamped to [-127, 127], both computed in f32 as the kernel does), the
// dequantization q * scale, and the int8 weight matmul x @ dequantize(q)^T.

import type { ActivationName } from './activation';
import { linear } from './matmul';
import { f16Bits, f16BitsToNumber, roundHalfEven } from './round';
import type { Ref, Shape } from './shape';

export interface QuantRef {
  q: Int32Array; // [N, K], values in [-127, 127]
  scales: Float64Array; // [N, K / groupSize], f32-exact
  /** 1 where w / scale lies within 1e-4 of a .5 boundary: there q may be off by one. */
  nearTie: Uint8Array;
}

/** The least f16 value >= x (x > 0): Infinity past f16's largest. */
export function f16Up(x: number): number {
  let h = f16Bits(x);
  if (f16BitsToNumber(h) < x) h++;
  return f16BitsToNumber(h);
}

/** w must already be rounded to the weight's dtype. scales 'f16': each group's f32 scale rounded
 * up onto f16's grid, q taken against that. */
export function quantize(w: ArrayLike<number>, N: number, K: number, groupSize: number, scaleDtype: 'f32' | 'f16' = 'f32'): QuantRef {
  if (K % groupSize !== 0) throw new Error('quantize reference: groupSize must divide K');
  const G = K / groupSize;
  const q = new Int32Array(N * K);
  const scales = new Float64Array(N * G);
  const nearTie = new Uint8Array(N * K);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < G; g++) {
      const base = n * K + g * groupSize;
      let maxAbs = 0;
      for (let k = 0; k < groupSize; k++) maxAbs = Math.max(maxAbs, Math.abs(w[base + k]));
      const s32 = maxAbs === 0 ? 1 : Math.fround(maxAbs / 127);
      const scale = scaleDtype === 'f16' ? f16Up(s32) : s32;
      scales[n * G + g] = scale;
      for (let k = 0; k < groupSize; k++) {
        const exact = w[base + k] / scale; // float64
        const t = Math.fround(exact); // the f32 quotient
        const r = Math.max(-127, Math.min(127, roundHalfEven(t)));
        q[base + k] = r;
        const frac = Math.abs(exact - Math.trunc(exact));
        if (Math.abs(frac - 0.5) < 1e-4) nearTie[base + k] = 1;
      }
    }
  }
  return { q, scales, nearTie };
}

/** q * scale per element, [N, K]; exact f32 products. */
export function dequantize(
  q: ArrayLike<number>,
  scales: ArrayLike<number>,
  N: number,
  K: number,
  groupSize: number,
): Float64Array {
  const G = K / groupSize;
  const out = new Float64Array(N * K);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) out[n * K + k] = Math.fround(q[n * K + k] * scales[n * G + Math.floor(k / groupSize)]);
  return out;
}

/** x [..., K] @ dequantize(q, scales)^T (+ bias) (-> activation) -> [..., N]. */
export function qmatmul(
  x: ArrayLike<number>,
  xShape: Shape,
  q: ArrayLike<number>,
  scales: ArrayLike<number>,
  N: number,
  K: number,
  groupSize: number,
  opts: { bias?: ArrayLike<number>; activation?: ActivationName } = {},
): Ref {
  const w = dequantize(q, scales, N, K, groupSize);
  return linear(x, xShape, w, N, K, opts);
}
