// loadModel's RoPE reading (lib/models/rope.ts) against the float64 reference of transformers'
// initializers (test/reference/rope-scaling.ts): the frequencies, the cos/sin factor and the
// length limit of every rope type, in the 4.x (rope_scaling) and 5.x (rope_parameters) forms,
// at real models' settings; and the reference itself against figures published for those models.
import { describe, expect, it } from 'vitest';
import { ropeOf } from '../../lib/models/rope';
import { ropeInit, type RopeConfig } from '../reference/rope-scaling';

const llama31 = { type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
// Phi-3-mini-128k's shape: 48 factors, the pretrained context 4096 at the top level
const short = Array.from({ length: 48 }, (_, i) => 1 + i / 16);
const long = Array.from({ length: 48 }, (_, i) => 1 + i);

const CASES: [string, RopeConfig & Record<string, unknown>, number][] = [
  ['default, 4.x', { rope_theta: 500000, max_position_embeddings: 8192 }, 128],
  ['default, 5.x', { rope_parameters: { rope_type: 'default', rope_theta: 1e6 }, max_position_embeddings: 32768 }, 128],
  ['linear', { rope_theta: 10000, rope_scaling: { type: 'linear', factor: 4 }, max_position_embeddings: 16384 }, 64],
  ['dynamic', { rope_theta: 10000, rope_scaling: { type: 'dynamic', factor: 2 }, max_position_embeddings: 4096 }, 64],
  ['llama3 (Llama 3.1), 4.x', { rope_theta: 500000, rope_scaling: { ...llama31, type: undefined, rope_type: 'llama3' }, max_position_embeddings: 131072 }, 128],
  ['llama3 (Llama 3.2), 5.x', { rope_parameters: { ...llama31, type: undefined, rope_type: 'llama3', factor: 32, rope_theta: 500000 }, max_position_embeddings: 131072 }, 64],
  ['yarn (Qwen3 long context)', { rope_theta: 1e6, rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 }, max_position_embeddings: 40960 }, 128],
  ['yarn (DeepSeek mscale)', { rope_theta: 10000, rope_scaling: { type: 'yarn', factor: 40, mscale: 1, mscale_all_dim: 0.707, beta_fast: 32, beta_slow: 1, original_max_position_embeddings: 4096 }, max_position_embeddings: 163840 }, 64],
  ['yarn untruncated', { rope_theta: 150000, rope_parameters: { rope_type: 'yarn', rope_theta: 150000, factor: 32, truncate: false, original_max_position_embeddings: 4096 }, max_position_embeddings: 131072 }, 64],
  ['longrope (Phi-3 128k)', { rope_theta: 10000, original_max_position_embeddings: 4096, rope_scaling: { type: 'longrope', short_factor: short, long_factor: long }, max_position_embeddings: 131072 }, 96],
];

describe('RoPE config', () => {
  for (const [name, cfg, D] of CASES) {
    it(`${name}: frequencies, factor and limit as transformers computes them`, () => {
      const clean = JSON.parse(JSON.stringify(cfg)) as RopeConfig & Record<string, unknown>;
      const got = ropeOf(clean, D);
      const want = ropeInit(clean, D);
      const freqs = got.freqs ?? Float64Array.from({ length: D / 2 }, (_, i) => Math.pow(got.theta, (-2 * i) / D));
      expect(freqs.length).toBe(D / 2);
      for (let i = 0; i < D / 2; i++) expect(Math.abs(freqs[i] - want.invFreq[i]) / want.invFreq[i], `${name}: freq ${i}`).toBeLessThan(1e-12);
      expect(Math.abs(got.scale - want.attentionFactor), `${name}: factor`).toBeLessThan(1e-14);
      expect(got.limit ?? Infinity, `${name}: limit`).toBe(want.limit);
    });
  }
});

describe('RoPE reference', () => {
  it('llama3: short wavelengths kept, long ones divided by the factor, the band between blended', () => {
    const r = ropeInit({ rope_theta: 500000, rope_scaling: { ...llama31, rope_type: 'llama3' }, max_position_embeddings: 131072 }, 128);
    const base = (i: number) => Math.pow(500000, (-2 * i) / 128);
    expect(r.invFreq[0]).toBe(1);
    const wave = (i: number) => (2 * Math.PI) / base(i);
    let kept = 0, divided = 0, blended = 0;
    for (let i = 0; i < 64; i++) {
      const ratio = r.invFreq[i] / base(i);
      if (wave(i) < 8192 / 4) (expect(ratio).toBeCloseTo(1, 14), kept++);
      else if (wave(i) > 8192) (expect(ratio).toBeCloseTo(1 / 8, 14), divided++);
      else (expect(ratio).toBeLessThan(1), expect(ratio).toBeGreaterThan(1 / 8), blended++);
    }
    expect(kept).toBeGreaterThan(0);
    expect(divided).toBeGreaterThan(0);
    expect(blended).toBeGreaterThan(0);
  });
  it("yarn's attention factor is 0.1 ln(factor) + 1; longrope's for Phi-3 128k is 1.1902", () => {
    expect(ropeInit({ rope_theta: 1e6, rope_scaling: { rope_type: 'yarn', factor: 4 }, max_position_embeddings: 40960 }, 128).attentionFactor).toBeCloseTo(1.1386294361, 9);
    // DeepSeek-V3: mscale 1, mscale_all_dim 1 cancel
    expect(ropeInit({ rope_theta: 1e4, rope_scaling: { rope_type: 'yarn', factor: 40, mscale: 1, mscale_all_dim: 1 }, max_position_embeddings: 163840 }, 64).attentionFactor).toBe(1);
    const phi = ropeInit({ rope_theta: 10000, original_max_position_embeddings: 4096, rope_scaling: { type: 'longrope', short_factor: short, long_factor: long }, max_position_embeddings: 131072 }, 96);
    expect(phi.attentionFactor).toBeCloseTo(1.1902380714, 9);
    expect(phi.limit).toBe(4096);
  });
  it('yarn: dimensions below the correction range unscaled, above it divided by the factor', () => {
    const r = ropeInit({ rope_theta: 10000, rope_scaling: { rope_type: 'yarn', factor: 16, original_max_position_embeddings: 4096 }, max_position_embeddings: 65536 }, 128);
    const base = (i: number) => Math.pow(10000, (-2 * i) / 128);
    // low = floor(128 ln(4096 / (32 2 pi)) / (2 ln 10000)) = 20, high = ceil(... 1 ...) = 46
    for (let i = 0; i <= 20; i++) expect(r.invFreq[i] / base(i)).toBeCloseTo(1, 14);
    for (let i = 46; i < 64; i++) expect(r.invFreq[i] / (base(i) / 16)).toBeCloseTo(1, 12);
    expect(r.invFreq[33] / base(33)).toBeGreaterThan(1 / 16);
    expect(r.invFreq[33] / base(33)).toBeLessThan(1);
  });
});
