// Tests of the float64 model references (models.ts) and the random checkpoints
// (checkpoints.ts): hand calculations on 2-dim models, and properties a wrong wiring breaks
// (causality, batch independence, q|k|v order, GQA head mapping, RoPE relativity, tying).

import { describe, expect, it } from 'vitest';
import { randomGpt2, randomLlama, roundWeights, tinyGpt2Config, tinyLlamaConfig } from './checkpoints';
import {
  argmax,
  forwardReference,
  gpt2Forward,
  greedyReference,
  llamaDims,
  llamaForward,
  type Gpt2Config,
  type LlamaConfig,
  type ModelConfig,
  type Weights,
} from './models';
import { Rng } from './rng';
import { rope } from './rope';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}
/** max |a - b| / max |b| */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return maxAbsDiff(a, b) / Math.max(1e-300, maxAbs(b));
}
function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  expect(relDiff(a, b), what).toBeLessThanOrEqual(tol);
}
function differ(a: ArrayLike<number>, b: ArrayLike<number>, what: string, atLeast = 1e-6): void {
  expect(relDiff(a, b), what).toBeGreaterThan(atLeast);
}
/** rows [s0, s1) of batch row b of logits [B, S, V] */
function rows(logits: Float64Array, S: number, V: number, b: number, s0: number, s1: number): Float64Array {
  return logits.slice((b * S + s0) * V, (b * S + s1) * V);
}
function copyWeights(w: Weights): Weights {
  const out: Weights = new Map();
  for (const [k, t] of w) out.set(k, { shape: [...t.shape], data: Float64Array.from(t.data) });
  return out;
}
function t(shape: number[], values: number[]): { shape: number[]; data: Float64Array } {
  return { shape, data: Float64Array.from(values) };
}
const gelu = (z: number) => 0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z * z * z)));
const silu = (z: number) => z / (1 + Math.exp(-z));

interface ModelCase {
  name: string;
  cfg: ModelConfig;
  w: Weights;
}
function models(): ModelCase[] {
  const g = tinyGpt2Config();
  const l = tinyLlamaConfig();
  return [
    { name: 'gpt2', cfg: g, w: randomGpt2(g, 11) },
    { name: 'llama', cfg: l, w: randomLlama(l, 12) },
  ];
}
function randomIds(rng: Rng, n: number, V: number): number[] {
  return Array.from(rng.ints(n, 0, V - 1));
}

// --- hand calculations --------------------------------------------------------------------------

describe('gpt2Forward: hand calculation', () => {
  // n_embd 2, one head, one layer, eps 1: a 2-vector's layernorm is [r, -r] * w + b with
  // d = (x0 - x1) / 2, r = d / sqrt(d^2 + eps).
  const cfg1: Gpt2Config = {
    model_type: 'gpt2',
    vocab_size: 3,
    n_positions: 4,
    n_embd: 2,
    n_layer: 1,
    n_head: 1,
    n_inner: 2,
    layer_norm_epsilon: 1,
    activation_function: 'gelu_new',
  };
  const cfg2: Gpt2Config = { ...cfg1, n_head: 2 }; // two heads of head_dim 1
  const cfg = cfg1;
  const wte = [[1, -1], [0, 2], [3, 1]];
  const wpe = [[0, 0], [1, 0], [0, -1], [0.5, 0.5]];
  const c0 = 1.5; // q = [c0, c1] at every position, k = ln_1(x), v = ln_1(x) + [0.1, 0.2]
  const c1 = -0.7;
  const w: Weights = new Map([
    ['wte.weight', t([3, 2], wte.flat())],
    ['wpe.weight', t([4, 2], wpe.flat())],
    ['h.0.ln_1.weight', t([2], [1, 2])],
    ['h.0.ln_1.bias', t([2], [0.1, 0])],
    // Conv1D [in, out]: columns q0 q1 | k0 k1 | v0 v1
    ['h.0.attn.c_attn.weight', t([2, 6], [0, 0, 1, 0, 1, 0, /* row 1 */ 0, 0, 0, 1, 0, 1])],
    ['h.0.attn.c_attn.bias', t([6], [c0, c1, 0, 0, 0.1, 0.2])],
    ['h.0.attn.c_proj.weight', t([2, 2], [1, 0.5, 0, 2])], // y = [x0, 0.5 x0 + 2 x1]
    ['h.0.attn.c_proj.bias', t([2], [0, 0.5])],
    ['h.0.ln_2.weight', t([2], [1.5, 1])],
    ['h.0.ln_2.bias', t([2], [0, 0.1])],
    ['h.0.mlp.c_fc.weight', t([2, 2], [1, 0, 0, -1])], // y = [x0, -x1]
    ['h.0.mlp.c_fc.bias', t([2], [0.2, 0])],
    ['h.0.mlp.c_proj.weight', t([2, 2], [0.5, 0, 1, 1])], // y = [0.5 x0 + x1, x1]
    ['h.0.mlp.c_proj.bias', t([2], [0, -0.3])],
    ['ln_f.weight', t([2], [2, 1])],
    ['ln_f.bias', t([2], [0, 1])],
  ]);
  const ln = (x: number[], g: number[], b: number[]) => {
    const d = (x[0] - x[1]) / 2;
    const r = d / Math.sqrt(d * d + 1);
    return [r * g[0] + b[0], -r * g[1] + b[1]];
  };
  /** softmax(scores) . values */
  const attend = (scores: number[], values: number[]) => {
    const mx = Math.max(...scores);
    const e = scores.map((z) => Math.exp(z - mx));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.reduce((acc, ej, j) => acc + (ej / sum) * values[j], 0);
  };
  function hand(ids: number[], heads: 1 | 2 = 1): number[] {
    const S = ids.length;
    const x = ids.map((id, s) => [wte[id][0] + wpe[s][0], wte[id][1] + wpe[s][1]]);
    const u = x.map((xs) => ln(xs, [1, 2], [0.1, 0]));
    const out: number[] = [];
    for (let s = 0; s < S; s++) {
      const seen = u.slice(0, s + 1);
      const v0 = seen.map((uj) => uj[0] + 0.1);
      const v1 = seen.map((uj) => uj[1] + 0.2);
      let o0: number;
      let o1: number;
      if (heads === 1) {
        // one head of dim 2: scores q . k_j / sqrt(2) for j <= s
        const sc = seen.map((uj) => (c0 * uj[0] + c1 * uj[1]) / Math.SQRT2);
        o0 = attend(sc, v0);
        o1 = attend(sc, v1);
      } else {
        // two heads of dim 1: head h sees only column h of q, k, v; scale 1/sqrt(1)
        o0 = attend(seen.map((uj) => c0 * uj[0]), v0);
        o1 = attend(seen.map((uj) => c1 * uj[1]), v1);
      }
      const r = [x[s][0] + o0, x[s][1] + 0.5 * o0 + 2 * o1 + 0.5];
      const u2 = ln(r, [1.5, 1], [0, 0.1]);
      const f0 = gelu(u2[0] + 0.2);
      const f1 = gelu(-u2[1]);
      const r2 = [r[0] + 0.5 * f0 + f1, r[1] + f1 - 0.3];
      const y = ln(r2, [2, 1], [0, 1]);
      for (let v = 0; v < 3; v++) out.push(y[0] * wte[v][0] + y[1] * wte[v][1]);
    }
    return out;
  }

  it('logits of every position match, with one head of dim 2 and two heads of dim 1', () => {
    for (const ids of [[2, 0, 1, 2], [1], [0, 0, 0], [1, 2, 1, 0]]) {
      close(gpt2Forward(cfg1, w, [ids]), hand(ids, 1), 1e-13, `ids ${ids}`);
      close(gpt2Forward(cfg2, w, [ids]), hand(ids, 2), 1e-13, `ids ${ids}, 2 heads`);
    }
    differ(hand([2, 0, 1, 2], 1), hand([2, 0, 1, 2], 2), 'the head split matters');
  });

  it('accepts the transformer. prefix; lm_head.weight overrides the tied head', () => {
    const prefixed: Weights = new Map([...w].map(([k, v]) => [`transformer.${k}`, v]));
    const ids = [2, 0, 1, 2];
    expect(Array.from(gpt2Forward(cfg, prefixed, [ids]))).toEqual(Array.from(gpt2Forward(cfg, w, [ids])));
    const head = new Map(w).set('lm_head.weight', t([3, 2], [0, 1, 1, 0, 1, 1]));
    const got = gpt2Forward(cfg, head, [ids]);
    const ref = hand(ids);
    // swapping wte's columns and adding them: logits [y1, y0, y0 + y1] from the tied ones
    for (let s = 0; s < 4; s++) {
      // tied: l_v = y0 a_v + y1 b_v for wte rows (1,-1), (0,2), (3,1): solve y from rows 0 and 1
      const y1 = ref[s * 3 + 1] / 2;
      const y0 = ref[s * 3] + y1;
      close(got.slice(s * 3, s * 3 + 3), [y1, y0, y0 + y1], 1e-13, `lm_head position ${s}`);
    }
  });
});

describe('llamaForward: hand calculation', () => {
  // hidden 2, one head of head_dim 2 (RoPE: one pair, angle = position), one layer, eps 0.5
  const cfg: LlamaConfig = {
    model_type: 'llama',
    vocab_size: 3,
    hidden_size: 2,
    intermediate_size: 1,
    num_hidden_layers: 1,
    num_attention_heads: 1,
    num_key_value_heads: 1,
    rms_norm_eps: 0.5,
    rope_theta: 123, // irrelevant for head_dim 2: the one frequency is theta^0 = 1
    max_position_embeddings: 16,
    hidden_act: 'silu',
  };
  const embed = [[1, 0], [0.5, -1], [-1, 2]];
  const w: Weights = new Map([
    ['model.embed_tokens.weight', t([3, 2], embed.flat())],
    ['model.layers.0.input_layernorm.weight', t([2], [1, 2])],
    // nn.Linear [out, in]
    ['model.layers.0.self_attn.q_proj.weight', t([2, 2], [1, 0.5, 0, 1])], // q = [u0 + 0.5 u1, u1]
    ['model.layers.0.self_attn.k_proj.weight', t([2, 2], [1, 0, 0, 1])], // k = u
    ['model.layers.0.self_attn.v_proj.weight', t([2, 2], [0, 1, 1, 0])], // v = [u1, u0]
    ['model.layers.0.self_attn.o_proj.weight', t([2, 2], [1, 0, 0, -1])], // o = [a0, -a1]
    ['model.layers.0.post_attention_layernorm.weight', t([2], [1, 1])],
    ['model.layers.0.mlp.gate_proj.weight', t([1, 2], [1, 1])],
    ['model.layers.0.mlp.up_proj.weight', t([1, 2], [1, -1])],
    ['model.layers.0.mlp.down_proj.weight', t([2, 1], [1, 0.5])],
    ['model.norm.weight', t([2], [1, 0.5])],
    ['lm_head.weight', t([3, 2], [1, 0, 0, 1, 1, 1])],
  ]);
  const rms = (x: number[], g: number[]) => {
    const r = 1 / Math.sqrt((x[0] * x[0] + x[1] * x[1]) / 2 + 0.5);
    return [x[0] * r * g[0], x[1] * r * g[1]];
  };
  // rotation of a 2-vector by angle a
  const rot = (v: number[], a: number) => [v[0] * Math.cos(a) - v[1] * Math.sin(a), v[0] * Math.sin(a) + v[1] * Math.cos(a)];
  function hand(ids: number[], pos0: number): number[] {
    const x = ids.map((id) => [...embed[id]]);
    const u = x.map((xs) => rms(xs, [1, 2]));
    const q = u.map((us, s) => rot([us[0] + 0.5 * us[1], us[1]], pos0 + s));
    const k = u.map((us, s) => rot(us, pos0 + s));
    const out: number[] = [];
    for (let s = 0; s < ids.length; s++) {
      const sc = k.slice(0, s + 1).map((kj) => (q[s][0] * kj[0] + q[s][1] * kj[1]) / Math.SQRT2);
      const mx = Math.max(...sc);
      const e = sc.map((z) => Math.exp(z - mx));
      const sum = e.reduce((a, b) => a + b, 0);
      let a0 = 0;
      let a1 = 0;
      for (let j = 0; j <= s; j++) {
        a0 += (e[j] / sum) * u[j][1];
        a1 += (e[j] / sum) * u[j][0];
      }
      const r = [x[s][0] + a0, x[s][1] - a1];
      const h = rms(r, [1, 1]);
      const g = silu(h[0] + h[1]) * (h[0] - h[1]);
      const y = rms([r[0] + g, r[1] + 0.5 * g], [1, 0.5]);
      out.push(y[0], y[1], y[0] + y[1]);
    }
    return out;
  }

  it('logits of every position match, from position 0 and from pos0 3', () => {
    for (const ids of [[2, 0, 1, 1], [1], [0, 2, 2, 1, 0]]) {
      close(llamaForward(cfg, w, [ids]), hand(ids, 0), 1e-13, `ids ${ids}`);
      close(llamaForward(cfg, w, [ids], { pos0: 3 }), hand(ids, 3), 1e-13, `ids ${ids} pos0 3`);
    }
  });

  it('the hand model is position sensitive (RoPE is applied)', () => {
    // with one layer and no RoPE, the last position would not see the order of the prefix
    const a = llamaForward(cfg, w, [[2, 0, 1]]);
    const b = llamaForward(cfg, w, [[0, 2, 1]]);
    differ(rows(a, 3, 3, 0, 2, 3), rows(b, 3, 3, 0, 2, 3), 'last position after swapping the prefix');
  });
});

// --- properties of both architectures -----------------------------------------------------------

describe.each(models())('$name: properties', ({ name, cfg, w }) => {
  const V = cfg.vocab_size;
  const rng = new Rng(0x5eed ^ name.length);

  it('logits are finite and O(1)-O(10), not degenerate', () => {
    const S = 9;
    const logits = forwardReference(cfg, w, [randomIds(rng, S, V)]);
    expect(logits.length).toBe(S * V);
    let sum = 0;
    let sq = 0;
    for (const z of logits) {
      expect(Number.isFinite(z)).toBe(true);
      sum += z;
      sq += z * z;
    }
    const std = Math.sqrt(sq / logits.length - (sum / logits.length) ** 2);
    expect(std).toBeGreaterThan(0.3);
    expect(std).toBeLessThan(30);
  });

  it('causal: changing token t changes no logits before t, and those at t', () => {
    const S = 9;
    const ids = randomIds(rng, S, V);
    const base = forwardReference(cfg, w, [ids]);
    for (const tok of [0, 4, 8]) {
      const other = [...ids];
      other[tok] = (ids[tok] + 1 + rng.int(0, V - 2)) % V;
      const got = forwardReference(cfg, w, [other]);
      expect(Array.from(rows(got, S, V, 0, 0, tok)), `positions < ${tok}`).toEqual(Array.from(rows(base, S, V, 0, 0, tok)));
      differ(rows(got, S, V, 0, tok, tok + 1), rows(base, S, V, 0, tok, tok + 1), `position ${tok}`);
    }
  });

  it('batch rows are independent: row b equals the single-sequence call', () => {
    const S = 7;
    const batch = [randomIds(rng, S, V), randomIds(rng, S, V), randomIds(rng, S, V)];
    const all = forwardReference(cfg, w, batch);
    expect(all.length).toBe(3 * S * V);
    for (let b = 0; b < 3; b++) {
      close(rows(all, S, V, b, 0, S), forwardReference(cfg, w, [batch[b]]), 1e-14, `row ${b}`);
    }
  });

  it('order matters: swapping two prefix tokens changes the last logits of a 1-layer model', () => {
    const cfg1 = cfg.model_type === 'gpt2' ? { ...cfg, n_layer: 1 } : { ...cfg, num_hidden_layers: 1 };
    const w1 = cfg.model_type === 'gpt2' ? randomGpt2(cfg1 as Gpt2Config, 5) : randomLlama(cfg1 as LlamaConfig, 5);
    const ids = [3, 17, 42, 8];
    const swapped = [17, 3, 42, 8];
    const a = forwardReference(cfg1, w1, [ids]);
    const b = forwardReference(cfg1, w1, [swapped]);
    differ(rows(a, 4, V, 0, 3, 4), rows(b, 4, V, 0, 3, 4), 'last position');
    if (cfg.model_type === 'gpt2') {
      // control: without position embeddings the last position sees the prefix as a set
      const w0 = copyWeights(w1);
      w0.get('wpe.weight')!.data.fill(0);
      close(rows(forwardReference(cfg1, w0, [ids]), 4, V, 0, 3, 4), rows(forwardReference(cfg1, w0, [swapped]), 4, V, 0, 3, 4), 1e-13, 'no wpe');
    }
  });

  it('every checkpoint tensor affects the logits', () => {
    const ids = [[1, 5, 9, 2, 7]];
    const base = forwardReference(cfg, w, ids);
    const prng = new Rng(99);
    for (const [key, tensor] of w) {
      const w2 = new Map(w);
      const data = Float64Array.from(tensor.data);
      for (let i = 0; i < data.length; i++) data[i] += 1e-3 * prng.normal();
      w2.set(key, { shape: tensor.shape, data });
      differ(forwardReference(cfg, w2, ids), base, `perturbing ${key}`, 1e-7);
    }
  });

  it('rejects bad ids', () => {
    expect(() => forwardReference(cfg, w, [[0, V]])).toThrow(`token id ${V} outside [0, ${V})`);
    expect(() => forwardReference(cfg, w, [[0, 1.5]])).toThrow('token id 1.5');
    expect(() => forwardReference(cfg, w, [[0, 1], [2]])).toThrow('different lengths');
    expect(() => forwardReference(cfg, w, [])).toThrow('non-empty');
  });
});

// --- GPT-2 specifics ----------------------------------------------------------------------------

describe('gpt2 checkpoint and forward', () => {
  const cfg = tinyGpt2Config();
  const w = randomGpt2(cfg, 21);

  it('holds every HF tensor with its shape, deterministically per seed', () => {
    expect(w.size).toBe(2 + 12 * cfg.n_layer + 2);
    const shapes = Object.fromEntries([...w].map(([k, v]) => [k, v.shape]));
    expect(shapes['wte.weight']).toEqual([101, 48]);
    expect(shapes['wpe.weight']).toEqual([64, 48]);
    expect(shapes['h.1.ln_1.weight']).toEqual([48]);
    expect(shapes['h.1.attn.c_attn.weight']).toEqual([48, 144]);
    expect(shapes['h.1.attn.c_attn.bias']).toEqual([144]);
    expect(shapes['h.1.attn.c_proj.weight']).toEqual([48, 48]);
    expect(shapes['h.1.mlp.c_fc.weight']).toEqual([48, 192]);
    expect(shapes['h.1.mlp.c_fc.bias']).toEqual([192]);
    expect(shapes['h.1.mlp.c_proj.weight']).toEqual([192, 48]);
    expect(shapes['ln_f.bias']).toEqual([48]);
    expect(w.has('lm_head.weight')).toBe(false);
    for (const v of w.values()) expect(v.data.length).toBe(v.shape.reduce((a, b) => a * b, 1));
    expect(randomGpt2(cfg, 21).get('h.0.mlp.c_fc.weight')!.data).toEqual(w.get('h.0.mlp.c_fc.weight')!.data);
    expect(randomGpt2(cfg, 22).get('h.0.mlp.c_fc.weight')!.data).not.toEqual(w.get('h.0.mlp.c_fc.weight')!.data);
    const untied = randomGpt2({ ...cfg, tie_word_embeddings: false, n_inner: 40 }, 21);
    expect(untied.get('lm_head.weight')!.shape).toEqual([101, 48]);
    expect(untied.get('h.0.mlp.c_fc.weight')!.shape).toEqual([48, 40]);
  });

  it('the transformer. prefix gives the same logits', () => {
    const p = randomGpt2(cfg, 21, { transformerPrefix: true });
    expect([...p.keys()].every((k) => k.startsWith('transformer.'))).toBe(true);
    const ids = [[4, 8, 15, 16, 23, 42]];
    expect(Array.from(gpt2Forward(cfg, p, ids))).toEqual(Array.from(gpt2Forward(cfg, w, ids)));
  });

  it('q | k | v order of c_attn: only the k third of the bias is invisible (softmax shift)', () => {
    const E = cfg.n_embd;
    const ids = [[4, 8, 15, 16, 23, 42]];
    const base = gpt2Forward(cfg, w, ids);
    const prng = new Rng(7);
    for (const [third, visible] of [[0, true], [1, false], [2, true]] as const) {
      const w2 = copyWeights(w);
      const bias = w2.get('h.0.attn.c_attn.bias')!.data;
      for (let i = third * E; i < (third + 1) * E; i++) bias[i] += 0.5 * prng.normal();
      const got = gpt2Forward(cfg, w2, ids);
      if (visible) differ(got, base, `third ${third}`, 1e-3);
      else close(got, base, 1e-13, 'k bias');
    }
  });

  it('positions: pos0 shifts the wpe rows; the sequence must fit n_positions', () => {
    const ids = [[4, 8, 15]];
    differ(gpt2Forward(cfg, w, ids, { pos0: 2 }), gpt2Forward(cfg, w, ids), 'pos0 2');
    expect(() => gpt2Forward(cfg, w, [new Array(65).fill(1)])).toThrow('exceed n_positions 64');
    expect(() => gpt2Forward(cfg, w, ids, { pos0: 62 })).toThrow('exceed n_positions 64');
    expect(gpt2Forward(cfg, w, ids, { pos0: 61 }).length).toBe(3 * 101);
  });

  it('missing or mis-shaped tensors fail with the name', () => {
    const w2 = new Map(w);
    w2.delete('h.1.ln_2.bias');
    expect(() => gpt2Forward(cfg, w2, [[1]])).toThrow('missing weight h.1.ln_2.bias (or transformer.h.1.ln_2.bias)');
    const w3 = new Map(w).set('h.0.attn.c_proj.weight', t([2, 3], [0, 0, 0, 0, 0, 0]));
    expect(() => gpt2Forward(cfg, w3, [[1]])).toThrow('h.0.attn.c_proj.weight has shape [2, 3], expected [48, 48]');
    expect(() => gpt2Forward({ ...cfg, tie_word_embeddings: false }, w, [[1]])).toThrow('lm_head.weight is missing');
  });
});

// --- Llama specifics ----------------------------------------------------------------------------

/**
 * The kv projections of w (config with Hkv kv heads) re-expressed for a config with H kv heads:
 * new kv head j is old kv head map(j).
 */
function expandKv(w: Weights, cfg: LlamaConfig, map: (j: number) => number): Weights {
  const { E, H, D, L } = llamaDims(cfg);
  const out = new Map(w);
  for (let l = 0; l < L; l++) {
    for (const proj of ['k_proj', 'v_proj']) {
      const name = `model.layers.${l}.self_attn.${proj}.weight`;
      const src = w.get(name)!.data; // [Hkv * D, E]
      const dst = new Float64Array(H * D * E);
      for (let j = 0; j < H; j++) dst.set(src.subarray(map(j) * D * E, (map(j) + 1) * D * E), j * D * E);
      out.set(name, { shape: [H * D, E], data: dst });
    }
  }
  return out;
}

describe('llama checkpoint and forward', () => {
  const cfg = tinyLlamaConfig();
  const w = randomLlama(cfg, 31);
  const ids = [[3, 1, 4, 1, 5, 9, 2, 6, 5]];

  it('holds every HF tensor with its shape, deterministically per seed', () => {
    expect(w.size).toBe(1 + 9 * cfg.num_hidden_layers + 2);
    const shapes = Object.fromEntries([...w].map(([k, v]) => [k, v.shape]));
    expect(shapes['model.embed_tokens.weight']).toEqual([97, 64]);
    expect(shapes['model.layers.1.input_layernorm.weight']).toEqual([64]);
    expect(shapes['model.layers.1.self_attn.q_proj.weight']).toEqual([64, 64]);
    expect(shapes['model.layers.1.self_attn.k_proj.weight']).toEqual([32, 64]);
    expect(shapes['model.layers.1.self_attn.v_proj.weight']).toEqual([32, 64]);
    expect(shapes['model.layers.1.self_attn.o_proj.weight']).toEqual([64, 64]);
    expect(shapes['model.layers.1.post_attention_layernorm.weight']).toEqual([64]);
    expect(shapes['model.layers.1.mlp.gate_proj.weight']).toEqual([88, 64]);
    expect(shapes['model.layers.1.mlp.up_proj.weight']).toEqual([88, 64]);
    expect(shapes['model.layers.1.mlp.down_proj.weight']).toEqual([64, 88]);
    expect(shapes['model.norm.weight']).toEqual([64]);
    expect(shapes['lm_head.weight']).toEqual([97, 64]);
    expect(randomLlama(cfg, 31).get('lm_head.weight')!.data).toEqual(w.get('lm_head.weight')!.data);
    const odd = randomLlama(tinyLlamaConfig({ head_dim: 24 }), 1);
    expect(odd.get('model.layers.0.self_attn.q_proj.weight')!.shape).toEqual([96, 64]);
    expect(odd.get('model.layers.0.self_attn.o_proj.weight')!.shape).toEqual([64, 96]);
  });

  it('GQA 4/2 equals MHA 4/4 with each kv head repeated for its query group (floor(h / 2))', () => {
    const mha: LlamaConfig = { ...cfg, num_key_value_heads: 4 };
    const got = llamaForward(cfg, w, ids);
    close(llamaForward(mha, expandKv(w, cfg, (j) => Math.floor(j / 2)), ids), got, 1e-13, 'kv heads 0 0 1 1');
    differ(llamaForward(mha, expandKv(w, cfg, (j) => j % 2), ids), got, 'kv heads 0 1 0 1', 1e-3);
    // MQA: one kv head for all four query heads
    const mqa: LlamaConfig = { ...cfg, num_key_value_heads: 1 };
    const wq = randomLlama(mqa, 8);
    close(llamaForward(mha, expandKv(wq, mqa, () => 0), ids), llamaForward(mqa, wq, ids), 1e-13, 'MQA');
  });

  it('RoPE is relative: the logits do not depend on pos0', () => {
    const base = llamaForward(cfg, w, ids);
    for (const pos0 of [1, 13, 40]) close(llamaForward(cfg, w, ids, { pos0 }), base, 1e-10, `pos0 ${pos0}`);
  });

  it('rope_theta matters', () => {
    const other = tinyLlamaConfig({ rope_theta: 500000 });
    differ(llamaForward(other, w, ids), llamaForward(cfg, w, ids), 'theta 5e5 vs 1e4', 1e-3);
  });

  it('tied: no lm_head.weight, logits = the untied model whose head copies embed_tokens', () => {
    const tiedCfg = tinyLlamaConfig({ tie_word_embeddings: true });
    const tied = randomLlama(tiedCfg, 41);
    expect(tied.has('lm_head.weight')).toBe(false);
    expect(tied.size).toBe(1 + 9 * cfg.num_hidden_layers + 1);
    const untied = new Map(tied).set('lm_head.weight', tied.get('model.embed_tokens.weight')!);
    expect(Array.from(llamaForward(tiedCfg, tied, ids))).toEqual(Array.from(llamaForward(cfg, untied, ids)));
    expect(() => llamaForward(cfg, tied, ids)).toThrow('lm_head.weight is missing');
  });

  it('head_dim other than hidden / heads', () => {
    const c = tinyLlamaConfig({ head_dim: 24 });
    const logits = llamaForward(c, randomLlama(c, 3), ids);
    expect(logits.length).toBe(9 * 97);
    expect(logits.every(Number.isFinite)).toBe(true);
  });

  it('rejects unsupported configs', () => {
    expect(() => llamaForward({ ...cfg, rope_scaling: { rope_type: 'mrope', factor: 8 } }, w, ids)).toThrow('rope_type mrope');
    expect(() => llamaForward({ ...cfg, num_key_value_heads: 3 }, w, ids)).toThrow('not a multiple');
  });
});

describe('rope (as llamaForward applies it)', () => {
  const D = 16;
  const theta = 500000;
  const rng = new Rng(2024);

  it('rotates each pair (i, i + D/2) by (pos0 + s) * theta^(-2i/D)', () => {
    const S = 3;
    const H = 2;
    const x = rng.normals(S * H * D);
    const pos0 = 5;
    const got = rope(x, [1, S, H, D], pos0, theta).data;
    for (let s = 0; s < S; s++) {
      for (let h = 0; h < H; h++) {
        const o = (s * H + h) * D;
        for (let i = 0; i < D / 2; i++) {
          const ang = (pos0 + s) * Math.exp((-2 * i * Math.log(theta)) / D);
          // [out_i, out_{i+D/2}] = [[cos, -sin], [sin, cos]] [x_i, x_{i+D/2}]
          const e0 = Math.cos(ang) * x[o + i] - Math.sin(ang) * x[o + i + D / 2];
          const e1 = Math.sin(ang) * x[o + i] + Math.cos(ang) * x[o + i + D / 2];
          expect(Math.abs(got[o + i] - e0)).toBeLessThan(1e-12);
          expect(Math.abs(got[o + i + D / 2] - e1)).toBeLessThan(1e-12);
        }
      }
    }
  });

  it('q . k after rotation depends only on the distance of the positions', () => {
    const q = rng.normals(D);
    const k = rng.normals(D);
    const dot = (p: number, r: number) => {
      const qr = rope(q, [1, 1, 1, D], p, theta).data;
      const kr = rope(k, [1, 1, 1, D], r, theta).data;
      let s = 0;
      for (let i = 0; i < D; i++) s += qr[i] * kr[i];
      return s;
    };
    const d4 = dot(4, 0);
    expect(Math.abs(dot(7, 3) - d4)).toBeLessThan(1e-12);
    expect(Math.abs(dot(1004, 1000) - d4)).toBeLessThan(1e-9);
    expect(Math.abs(dot(5, 0) - d4)).toBeGreaterThan(1e-6);
  });
});

// --- greedy decoding ----------------------------------------------------------------------------

describe.each(models())('$name: greedyReference', ({ cfg, w }) => {
  const V = cfg.vocab_size;
  const prompt = [7, 3, 19, 3];

  it('returns `steps` ids in the vocab, deterministically; the first is the argmax of the forward', () => {
    const out = greedyReference(cfg, w, prompt, 6);
    expect(out.length).toBe(6);
    for (const id of out) expect(Number.isInteger(id) && id >= 0 && id < V).toBe(true);
    expect(greedyReference(cfg, w, prompt, 6)).toEqual(out);
    const logits = forwardReference(cfg, w, [prompt]);
    expect(out[0]).toBe(argmax(logits, (prompt.length - 1) * V, V));
    // each step is the argmax after the ids before it
    const again = greedyReference(cfg, w, [...prompt, ...out.slice(0, 3)], 3);
    expect(again).toEqual(out.slice(3));
    expect(greedyReference(cfg, w, prompt, 0)).toEqual([]);
  });

  it('ties go to the lowest id', () => {
    const w0 = new Map(w);
    const E = cfg.model_type === 'gpt2' ? cfg.n_embd : cfg.hidden_size;
    w0.set('lm_head.weight', { shape: [V, E], data: new Float64Array(V * E) }); // all logits 0
    expect(greedyReference(cfg, w0, prompt, 3)).toEqual([0, 0, 0]);
    expect(argmax([1, 3, 3, 2])).toBe(1);
  });
});

describe('greedyReference: limits and rounding', () => {
  it('GPT-2 cannot run past n_positions', () => {
    const cfg = tinyGpt2Config({ n_positions: 8 });
    const w = randomGpt2(cfg, 1);
    // the 6th new id comes from a forward over 8 tokens; the 7th would need 9 positions
    expect(greedyReference(cfg, w, [1, 2, 3], 6).length).toBe(6);
    expect(() => greedyReference(cfg, w, [1, 2, 3], 7)).toThrow('exceed n_positions 8');
  });

  it('roundWeights keeps names and shapes, rounds values', () => {
    const cfg = tinyLlamaConfig();
    const w = randomLlama(cfg, 2);
    const r = roundWeights(w, 'bf16');
    expect([...r.keys()]).toEqual([...w.keys()]);
    const a = w.get('model.norm.weight')!;
    const b = r.get('model.norm.weight')!;
    expect(b.shape).toEqual(a.shape);
    close(b.data, a.data, 2 ** -8, 'bf16 rounding');
    expect(Array.from(b.data).every((v) => Math.fround(v) === v)).toBe(true);
  });
});
