// Float64 reference of scaled dot-product attention in the [batch, seq, heads, headDim]
// layout, with GQA/MQA (q head h reads kv head floor(h / (Hq / Hk))) and a causal mask with
// an offset: query row i sees key rows j <= i + offset. Without a cache the offset is
// Skv - Sq (bottom-right aligned); with a cache it is the write position.

import type { Ref } from './shape';

export interface AttentionOptions {
  causal?: boolean;
  scale?: number;
  /** causal offset: query i sees keys j <= i + offset; default Skv - Sq. */
  offset?: number;
  /** attend over key rows [0, kvLen) only; default Skv. */
  kvLen?: number;
  /** causal: query i (at position i + offset) sees keys j > i + offset - window only
   * (transformers' sliding_window: kv_idx > q_idx - sliding_window) */
  window?: number;
  /** each score s = scale q.k becomes softcap tanh(s / softcap) (Gemma 2) */
  softcap?: number;
}

/**
 * q [B, Sq, Hq, D], k and v [B, Skv, Hk, D] -> [B, Sq, Hq, D]. A query row that sees no key
 * gets zeros (the tests avoid that case).
 */
export function attention(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  B: number,
  Sq: number,
  Skv: number,
  Hq: number,
  Hk: number,
  D: number,
  opts: AttentionOptions = {},
): Ref {
  if (Hq % Hk !== 0) throw new Error('attention reference: Hq must be a multiple of Hk');
  const group = Hq / Hk;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const kvLen = opts.kvLen ?? Skv;
  const offset = opts.offset ?? kvLen - Sq;
  const out = new Float64Array(B * Sq * Hq * D);
  const s = new Float64Array(kvLen);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / group);
      for (let i = 0; i < Sq; i++) {
        const qo = ((b * Sq + i) * Hq + h) * D;
        const last = opts.causal ? Math.min(kvLen - 1, i + offset) : kvLen - 1;
        if (last < 0) continue;
        const first = opts.window ? Math.max(0, i + offset - opts.window + 1) : 0;
        let mx = -Infinity;
        for (let j = first; j <= last; j++) {
          const ko = ((b * Skv + j) * Hk + hk) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qo + d] * k[ko + d];
          s[j] = dot * scale; // S = scale * Q K^T
          if (opts.softcap) s[j] = opts.softcap * Math.tanh(s[j] / opts.softcap);
          if (s[j] > mx) mx = s[j];
        }
        let sum = 0;
        for (let j = first; j <= last; j++) {
          s[j] = Math.exp(s[j] - mx);
          sum += s[j];
        }
        for (let j = first; j <= last; j++) {
          const p = s[j] / sum; // P = softmax(S)
          const vo = ((b * Skv + j) * Hk + hk) * D;
          for (let d = 0; d < D; d++) out[qo + d] += p * v[vo + d]; // O += P V
        }
      }
    }
  }
  return { data: out, shape: [B, Sq, Hq, D] };
}
