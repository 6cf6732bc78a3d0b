// Float64 reference of rotary position embedding, rotate-half (GPT-NeoX / Llama) form, on
// x [B, S, H, D]: token s has position p = position + s; for i < D/2, f = theta^(-2i/D):
//   out[i]       = x[i] cos(p f) - x[i + D/2] sin(p f)
//   out[i + D/2] = x[i + D/2] cos(p f) + x[i] sin(p f)

import type { Ref, Shape } from './shape';

/** With invFreq, f_i = invFreq[i] in place of theta's, and cos, sin are multiplied by scale. */
export function rope(x: ArrayLike<number>, shape: Shape, position = 0, theta = 10000, invFreq?: ArrayLike<number>, scale = 1): Ref {
  const [B, S, H, D] = shape;
  if (shape.length !== 4 || D % 2 !== 0) throw new Error('rope reference: x must be [B, S, H, D] with D even');
  const half = D / 2;
  const out = new Float64Array(B * S * H * D);
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < S; s++) {
      const p = position + s;
      for (let h = 0; h < H; h++) {
        const o = ((b * S + s) * H + h) * D;
        for (let i = 0; i < half; i++) {
          const f = invFreq ? invFreq[i] : Math.pow(theta, (-2 * i) / D);
          const c = scale * Math.cos(p * f);
          const sn = scale * Math.sin(p * f);
          const x0 = x[o + i];
          const x1 = x[o + i + half];
          out[o + i] = x0 * c - x1 * sn;
          out[o + i + half] = x1 * c + x0 * sn;
        }
      }
    }
  }
  return { data: out, shape: [...shape] };
}
