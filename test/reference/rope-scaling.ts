// Float64 reference of transformers' RoPE initializers (modeling_rope_utils: one function per
// rope_type, each returning inv_freq [dim/2] and the attention factor cos and sin are scaled by),
// written from their formulas, step for step, with every float32 tensor op done in float64:
// - default:  inv_freq_i = 1 / base^(2i/dim)
// - linear:   inv_freq / factor
// - llama3:   wavelen = 2 pi / inv_freq; > old/low_freq_factor: / factor; < old/high_freq_factor:
//             kept; between: (1 - s) inv/factor + s inv, s = (old/wavelen - low) / (high - low)
// - yarn:     low/high correction dims for beta_fast/beta_slow over the original context
//             (floored/ceiled unless truncate is false, clamped to [0, dim-1]), ramp r_i =
//             clamp((i - low) / (high - low)), inv = inv/factor * r + inv * (1 - r); attention
//             factor attention_factor, else mscale(factor, mscale) / mscale(factor, mscale_all_dim)
//             when both are given, else mscale(factor) = 0.1 ln(factor) + 1 (1 for factor <= 1)
// - longrope: inv = 1 / (short_factor_i base^(2i/dim)) up to the original context; factor =
//             max_position_embeddings / original_max_position_embeddings when that is given;
//             attention factor sqrt(1 + ln(factor) / ln(original)) (1 for factor <= 1)
// - dynamic:  the default up to the original context

export interface RopeConfig {
  rope_theta?: number;
  max_position_embeddings: number;
  original_max_position_embeddings?: number;
  rope_parameters?: Record<string, unknown>;
  rope_scaling?: Record<string, unknown> | null;
}

export interface RopeInit {
  invFreq: Float64Array;
  attentionFactor: number;
  /** positions past this are not modelled (the rotation changes with the length) */
  limit: number;
}

export function ropeInit(cfg: RopeConfig, dim: number): RopeInit {
  const rp: Record<string, unknown> = { ...(cfg.rope_scaling ?? {}), ...(cfg.rope_parameters ?? {}) };
  const type = (rp.rope_type ?? rp.type ?? 'default') as string;
  const base = (rp.rope_theta ?? cfg.rope_theta ?? 10000) as number;
  const num = (k: string) => rp[k] as number;
  const idx = Array.from({ length: dim / 2 }, (_, i) => 2 * i);
  const defaultInv = Float64Array.from(idx, (j) => 1 / Math.pow(base, j / dim));
  const original = (num('original_max_position_embeddings') ?? cfg.original_max_position_embeddings ?? cfg.max_position_embeddings) as number;
  switch (type) {
    case 'default':
      return { invFreq: defaultInv, attentionFactor: 1, limit: Infinity };
    case 'dynamic':
      return { invFreq: defaultInv, attentionFactor: 1, limit: Math.min(original, cfg.max_position_embeddings) };
    case 'linear':
      return { invFreq: defaultInv.map((f) => f / num('factor')), attentionFactor: 1, limit: Infinity };
    case 'llama3': {
      const factor = num('factor'), lowF = num('low_freq_factor'), highF = num('high_freq_factor');
      const old = num('original_max_position_embeddings');
      const lowWave = old / lowF, highWave = old / highF;
      const wave = defaultInv.map((f) => (2 * Math.PI) / f);
      const llama = defaultInv.map((f, i) => (wave[i] > lowWave ? f / factor : f));
      const out = llama.map((f, i) => {
        const medium = !(wave[i] < highWave) && !(wave[i] > lowWave);
        if (!medium) return f;
        const smooth = (old / wave[i] - lowF) / (highF - lowF);
        return ((1 - smooth) * f) / factor + smooth * f;
      });
      return { invFreq: out, attentionFactor: 1, limit: Infinity };
    }
    case 'yarn': {
      const factor = num('factor');
      const mscaleOf = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
      let attention = rp.attention_factor as number | undefined;
      if (attention == null)
        attention = rp.mscale && rp.mscale_all_dim ? mscaleOf(factor, num('mscale')) / mscaleOf(factor, num('mscale_all_dim')) : mscaleOf(factor);
      const betaFast = num('beta_fast') || 32, betaSlow = num('beta_slow') || 1;
      const corrDim = (rot: number) => (dim * Math.log(original / (rot * 2 * Math.PI))) / (2 * Math.log(base));
      let low = corrDim(betaFast), high = corrDim(betaSlow);
      if (rp.truncate !== false) {
        low = Math.floor(low);
        high = Math.ceil(high);
      }
      low = Math.max(low, 0);
      high = Math.min(high, dim - 1);
      if (low === high) high += 0.001;
      const posFreqs = idx.map((j) => Math.pow(base, j / dim));
      const inv = posFreqs.map((pf, i) => {
        const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
        const extrapolationFactor = 1 - ramp;
        return (1 / (factor * pf)) * (1 - extrapolationFactor) + (1 / pf) * extrapolationFactor;
      });
      return { invFreq: Float64Array.from(inv), attentionFactor: attention, limit: Infinity };
    }
    case 'longrope': {
      const hasOriginal = rp.original_max_position_embeddings != null || cfg.original_max_position_embeddings != null;
      const factor = hasOriginal ? cfg.max_position_embeddings / original : ((rp.factor as number | undefined) ?? 1);
      let attention = rp.attention_factor as number | undefined;
      if (attention == null) attention = factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(original));
      const ext = rp.short_factor as number[];
      return { invFreq: Float64Array.from(idx, (j, i) => 1 / (ext[i] * Math.pow(base, j / dim))), attentionFactor: attention, limit: original };
    }
    default:
      throw new Error(`rope reference: rope_type ${type}`);
  }
}
