// RoPE as transformers reads it from config.json, 4.x and 5.x forms alike: transformers 5 writes
// `rope_parameters: { rope_type, rope_theta, ... }`, 4.x a top-level `rope_theta` and an optional
// `rope_scaling`. Each rope type becomes what the rope op takes: the base theta, or the
// inverse frequencies (transformers' inv_freq, formed here in float64) and the factor cos and sin
// are scaled by (its attention_factor). Types whose frequencies change with the sequence length
// (dynamic NTK; longrope's long factors) are computed where they are fixed, and `limit` holds
// maxSeq there. Anything else is E_FORMAT naming the key: a wrong rotation gives wrong logits and
// no error.
import { IgnisError } from '../errors';

export interface Rope {
  theta: number;
  /** headDim/2 inverse frequencies, in place of theta^(-2i/headDim) */
  freqs?: Float64Array;
  /** cos and sin are multiplied by it */
  scale: number;
  /** the longest sequence the rotation is computed for (dynamic types) */
  limit?: number;
}

const TYPES = ['default', 'linear', 'dynamic', 'yarn', 'longrope', 'llama3'] as const;
type RopeType = (typeof TYPES)[number];
/** The keys each rope type reads (besides rope_type / type, rope_theta, partial_rotary_factor). */
const KEYS: Record<RopeType, readonly string[]> = {
  default: [],
  linear: ['factor'],
  dynamic: ['factor', 'original_max_position_embeddings'],
  yarn: ['factor', 'original_max_position_embeddings', 'attention_factor', 'beta_fast', 'beta_slow', 'mscale', 'mscale_all_dim', 'truncate'],
  longrope: ['factor', 'original_max_position_embeddings', 'attention_factor', 'long_factor', 'short_factor'],
  llama3: ['factor', 'original_max_position_embeddings', 'low_freq_factor', 'high_freq_factor'],
};
const COMMON = ['rope_type', 'type', 'rope_theta', 'partial_rotary_factor'];
const ALL_KEYS = new Set([...COMMON, ...Object.values(KEYS).flat()]);

const bad = (key: string, value: unknown, want: string) => new IgnisError('E_FORMAT', `loadModel: config.json: ${key} ${JSON.stringify(value)} ${want}`);

/** The rotation of a llama-family config whose heads are headDim wide. */
export function ropeOf(cfg: Record<string, unknown>, headDim: number): Rope {
  const sources: [string, Record<string, unknown>][] = [];
  for (const key of ['rope_scaling', 'rope_parameters']) {
    const o = cfg[key];
    if (o == null) continue;
    if (typeof o !== 'object' || Array.isArray(o)) throw bad(key, o, 'is not an object');
    sources.push([key, o as Record<string, unknown>]);
  }
  // 4.x's rope_scaling and 5.x's rope_parameters say the same thing where both are written: they
  // may not disagree on a key
  const p: Record<string, unknown> = {};
  const from: Record<string, string> = {};
  for (const [key, o] of sources) {
    for (const [k0, value] of Object.entries(o)) {
      const k = k0 === 'type' ? 'rope_type' : k0;
      if (!ALL_KEYS.has(k0)) throw bad(`${key}.${k0}`, value, 'is not a RoPE key ignis knows (a key it does not implement is never ignored)');
      if (value == null) continue;
      if (k in p && JSON.stringify(p[k]) !== JSON.stringify(value))
        throw new IgnisError('E_FORMAT', `loadModel: config.json: ${from[k]} ${JSON.stringify(p[k])} and ${key}.${k0} ${JSON.stringify(value)} disagree`);
      p[k] = value;
      from[k] = `${key}.${k0}`;
    }
  }
  // where a key is (or would be) written, for messages
  const at = (k: string) => from[k] ?? `${sources.length ? sources[sources.length - 1][0] : 'rope_parameters'}.${k}`;
  const type = (p.rope_type ?? 'default') as RopeType;
  if (!TYPES.includes(type)) throw bad(from.rope_type, type, `is not supported (${TYPES.join(', ')})`);
  for (const k of Object.keys(p))
    if (!COMMON.includes(k) && !KEYS[type].includes(k) && !(type === 'default' && k === 'factor' && p[k] === 1))
      throw bad(from[k], p[k], `is not read by rope type '${type}': the config contradicts itself`);
  for (const [k, where] of [['partial_rotary_factor', cfg.partial_rotary_factor], ['partial_rotary_factor', p.partial_rotary_factor]] as const)
    if (where != null && where !== 1) throw bad(from[k] ?? k, where, 'is not supported (1: every dimension rotates)');

  // the base: rope_parameters' and the top-level rope_theta must agree where both are given
  let theta = 10000;
  if (cfg.rope_theta != null) theta = positive('rope_theta', cfg.rope_theta);
  if (p.rope_theta != null) {
    const t = positive(from.rope_theta, p.rope_theta);
    if (cfg.rope_theta != null && t !== theta)
      throw new IgnisError('E_FORMAT', `loadModel: config.json: rope_theta ${JSON.stringify(cfg.rope_theta)} and ${from.rope_theta} ${t} disagree`);
    theta = t;
  }
  const maxPos = cfg.max_position_embeddings ?? 2048;
  const D = headDim, half = D / 2;
  const base = (i: number) => Math.pow(theta, (-2 * i) / D);
  const factor = (min: number) => {
    const f = p.factor;
    if (typeof f !== 'number' || !Number.isFinite(f) || !(f >= min)) throw bad(at('factor'), f, `must be a number >= ${min}`);
    return f;
  };
  // the pretrained context: the rope params' original_max_position_embeddings, else the config's
  // (Phi-3 writes it at the top level), else max_position_embeddings
  const original = (): number => {
    const [key, o] = p.original_max_position_embeddings != null
      ? [from.original_max_position_embeddings, p.original_max_position_embeddings]
      : cfg.original_max_position_embeddings != null ? ['original_max_position_embeddings', cfg.original_max_position_embeddings] : ['max_position_embeddings', maxPos];
    if (!Number.isSafeInteger(o) || (o as number) < 1) throw bad(key, o, 'must be a whole number >= 1');
    return o as number;
  };

  switch (type) {
    case 'default':
      return { theta, scale: 1 };
    case 'dynamic':
      // NTK: theta grows only once a sequence passes the original context; up to there it is
      // the default rotation, which is all ignis computes
      factor(1);
      return { theta, scale: 1, limit: Math.min(original(), maxPos as number) };
    case 'linear': {
      const f = factor(Number.MIN_VALUE);
      return { theta, scale: 1, freqs: Float64Array.from({ length: half }, (_, i) => base(i) / f) };
    }
    case 'llama3': {
      const f = factor(Number.MIN_VALUE);
      const lo = positive(at('low_freq_factor'), p.low_freq_factor);
      const hi = positive(at('high_freq_factor'), p.high_freq_factor);
      if (!(hi > lo)) throw bad(from.high_freq_factor, hi, `must be greater than low_freq_factor ${lo}`);
      if (p.original_max_position_embeddings == null) throw bad(at('original_max_position_embeddings'), undefined, 'is required by rope type llama3');
      const old = original();
      // wavelengths longer than old/lo are divided by the factor, shorter than old/hi kept, and
      // the band between blended by how many turns they make in the old context
      return {
        theta, scale: 1,
        freqs: Float64Array.from({ length: half }, (_, i) => {
          const inv = base(i), wavelen = (2 * Math.PI) / inv;
          if (wavelen < old / hi) return inv;
          if (wavelen > old / lo) return inv / f;
          const smooth = (old / wavelen - lo) / (hi - lo);
          return (1 - smooth) * (inv / f) + smooth * inv;
        }),
      };
    }
    case 'yarn': {
      const f = factor(Number.MIN_VALUE);
      const old = original();
      const mscale = optionalNumber(from.mscale, p.mscale), mscaleAll = optionalNumber(from.mscale_all_dim, p.mscale_all_dim);
      const m = (s: number, k = 1) => (s <= 1 ? 1 : 0.1 * k * Math.log(s) + 1);
      const attn = p.attention_factor != null
        ? positive(from.attention_factor, p.attention_factor)
        : mscale && mscaleAll ? m(f, mscale) / m(f, mscaleAll) : m(f);
      const betaFast = optionalNumber(from.beta_fast, p.beta_fast) || 32, betaSlow = optionalNumber(from.beta_slow, p.beta_slow) || 1;
      if (p.truncate != null && typeof p.truncate !== 'boolean') throw bad(from.truncate, p.truncate, 'must be true or false');
      const truncate = p.truncate !== false;
      // the dimension whose wavelength makes `turns` rotations over the original context
      const dimFor = (turns: number) => (D * Math.log(old / (turns * 2 * Math.PI))) / (2 * Math.log(theta));
      let low = dimFor(betaFast), high = dimFor(betaSlow);
      if (truncate) [low, high] = [Math.floor(low), Math.ceil(high)];
      low = Math.max(low, 0);
      high = Math.min(high, D - 1);
      if (low === high) high += 0.001;
      return {
        theta, scale: attn,
        freqs: Float64Array.from({ length: half }, (_, i) => {
          const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
          const extrapolate = 1 - ramp; // share of the unscaled frequency
          return (base(i) / f) * ramp + base(i) * extrapolate;
        }),
      };
    }
    case 'longrope': {
      const old = original();
      // Phi-3: the factor is the ratio of the context to the pretrained one where both are given
      const f = cfg.original_max_position_embeddings != null || p.original_max_position_embeddings != null
        ? (maxPos as number) / old
        : p.factor != null ? factor(Number.MIN_VALUE) : 1;
      const attn = p.attention_factor != null
        ? positive(from.attention_factor, p.attention_factor)
        : f <= 1 ? 1 : Math.sqrt(1 + Math.log(f) / Math.log(old));
      const list = (k: 'short_factor' | 'long_factor') => {
        const l = p[k];
        if (!Array.isArray(l) || l.length !== half || l.some((x) => typeof x !== 'number' || !(x > 0) || !Number.isFinite(x)))
          throw bad(at(k), l, `must be ${half} positive numbers (headDim/2)`);
        return l as number[];
      };
      list('long_factor');
      const short = list('short_factor');
      // transformers rotates with the short factors until a sequence passes the original
      // context, then switches every position to the long ones: maxSeq is held to `old`
      return { theta, scale: attn, limit: old, freqs: Float64Array.from({ length: half }, (_, i) => base(i) / short[i]) };
    }
  }
}

function positive(key: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0)) throw bad(key, v, 'must be a positive number');
  return v;
}

function optionalNumber(key: string, v: unknown): number | undefined {
  if (v == null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(key, v, 'must be a number');
  return v;
}
