// Random GPT-2 and Llama checkpoints in the exact Hugging Face tensor names, shapes and order,
// from a seeded generator, scaled so activations stay O(1) and the logits depend on every
// tensor; and tiny configs with awkward sizes for the model tests.

import { gpt2Dims, llamaDims, type Gemma3Config, type Gpt2Config, type LlamaConfig, type Weights } from './models';
import { Rng } from './rng';
import { roundTo, type FloatDType } from './round';

/** GPT-2 small in shape, awkward in size: head_dim 16, 3 heads, vocab 101 (prime). */
export function tinyGpt2Config(overrides: Partial<Gpt2Config> = {}): Gpt2Config {
  return {
    model_type: 'gpt2',
    vocab_size: 101,
    n_positions: 64,
    n_embd: 48,
    n_layer: 2,
    n_head: 3,
    layer_norm_epsilon: 1e-5,
    n_inner: null,
    activation_function: 'gelu_new',
    tie_word_embeddings: true,
    ...overrides,
  };
}

/** Llama small in shape, awkward in size: GQA 4/2 heads, head_dim 16, intermediate 88, vocab 97, untied head. */
export function tinyLlamaConfig(overrides: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    model_type: 'llama',
    vocab_size: 97,
    hidden_size: 64,
    intermediate_size: 88,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    max_position_embeddings: 64,
    tie_word_embeddings: false,
    hidden_act: 'silu',
    ...overrides,
  };
}

/** A Gemma 3 text config of the tiny shape: 3 layers, two sliding (window 64: the whole context) and one global. */
export function tinyGemma3Config(overrides: Partial<Gemma3Config> = {}): Gemma3Config {
  return {
    model_type: 'gemma3_text',
    vocab_size: 97,
    hidden_size: 64,
    intermediate_size: 88,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    rms_norm_eps: 1e-6,
    max_position_embeddings: 64,
    hidden_activation: 'gelu_pytorch_tanh',
    query_pre_attn_scalar: 24,
    rope_theta: 1000000,
    rope_scaling: { rope_type: 'linear', factor: 2 },
    rope_local_base_freq: 10000,
    sliding_window: 64,
    sliding_window_pattern: 3,
    final_logit_softcapping: 4,
    tie_word_embeddings: true,
    ...overrides,
  };
}

/** A Gemma 2 config of the tiny shape: 4 layers, every other one sliding, scores and logits soft-capped. */
export function tinyGemma2Config(overrides: Partial<Gemma3Config> = {}): Gemma3Config {
  const { rope_local_base_freq: _l, rope_scaling: _s, ...base } = tinyGemma3Config();
  return { ...base, model_type: 'gemma2', num_hidden_layers: 4, rope_theta: 10000, sliding_window_pattern: undefined, attn_logit_softcapping: 2, final_logit_softcapping: 5, ...overrides };
}

/** Adds tensors drawn from one seeded stream, in the order they are added. */
class Builder {
  readonly w: Weights = new Map();
  private readonly rng: Rng;
  constructor(seed: number) {
    this.rng = new Rng(seed);
  }
  /** mean + std * normal, every element */
  normal(name: string, shape: number[], std: number, mean = 0): void {
    let n = 1;
    for (const d of shape) n *= d;
    this.w.set(name, { shape, data: this.rng.normals(n, std, mean) });
  }
  /** a weight matrix whose input dim is fanIn: std 1/sqrt(fanIn), so outputs stay O(1) */
  matrix(name: string, shape: number[], fanIn: number): void {
    this.normal(name, shape, 1 / Math.sqrt(fanIn));
  }
  /** a norm's gain: 1 + 0.1 normal */
  gain(name: string, n: number): void {
    this.normal(name, [n], 0.1, 1);
  }
  /** a bias: 0.1 normal */
  bias(name: string, n: number): void {
    this.normal(name, [n], 0.1);
  }
}

export interface Gpt2CheckpointOptions {
  /** name the body tensors "transformer.<name>" as a saved GPT2LMHeadModel does; default false (the hub's bare names) */
  transformerPrefix?: boolean;
}

/**
 * Every tensor of a GPT-2 checkpoint for cfg: wte, wpe, h.{i}.* (Conv1D weights [in, out]),
 * ln_f; plus lm_head.weight [vocab, n_embd] when tie_word_embeddings is false.
 */
export function randomGpt2(cfg: Gpt2Config, seed: number, opts: Gpt2CheckpointOptions = {}): Weights {
  const { V, E, L, I, P, tied } = gpt2Dims(cfg);
  const pre = opts.transformerPrefix ? 'transformer.' : '';
  const b = new Builder(seed);
  b.normal(`${pre}wte.weight`, [V, E], 1); // tied head: logits std ~ sqrt(E)
  b.normal(`${pre}wpe.weight`, [P, E], 0.5);
  for (let l = 0; l < L; l++) {
    const p = `${pre}h.${l}.`;
    b.gain(`${p}ln_1.weight`, E);
    b.bias(`${p}ln_1.bias`, E);
    b.matrix(`${p}attn.c_attn.weight`, [E, 3 * E], E);
    b.bias(`${p}attn.c_attn.bias`, 3 * E);
    b.matrix(`${p}attn.c_proj.weight`, [E, E], E);
    b.bias(`${p}attn.c_proj.bias`, E);
    b.gain(`${p}ln_2.weight`, E);
    b.bias(`${p}ln_2.bias`, E);
    b.matrix(`${p}mlp.c_fc.weight`, [E, I], E);
    b.bias(`${p}mlp.c_fc.bias`, I);
    b.matrix(`${p}mlp.c_proj.weight`, [I, E], I);
    b.bias(`${p}mlp.c_proj.bias`, E);
  }
  b.gain(`${pre}ln_f.weight`, E);
  b.bias(`${pre}ln_f.bias`, E);
  if (!tied) b.matrix('lm_head.weight', [V, E], E);
  return b.w;
}

/**
 * Every tensor of a Llama checkpoint for cfg: model.embed_tokens, model.layers.{i}.*
 * (nn.Linear weights [out, in]), model.norm; plus lm_head.weight [vocab, hidden] unless
 * tie_word_embeddings is true.
 */
export function randomLlama(cfg: LlamaConfig, seed: number): Weights {
  const { V, E, I, L, H, Hkv, D, tied, bias, qkNorm } = llamaDims(cfg);
  const b = new Builder(seed);
  // RMSNorm removes the scale of the embedding; a tied head then gives logits std ~ sqrt(E)
  b.normal('model.embed_tokens.weight', [V, E], 1);
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    linears(b, p, E, I, H, Hkv, D);
    // biases of the families that have them (drawn after the matrices, so a family without
    // biases gets the same weights as before)
    if (bias.qkv) for (const [n, rows] of [['q', H * D], ['k', Hkv * D], ['v', Hkv * D]] as const) b.normal(`${p}self_attn.${n}_proj.bias`, [rows], 0.5);
    if (bias.o) b.normal(`${p}self_attn.o_proj.bias`, [E], 0.5);
    if (bias.mlp) for (const [n, rows] of [['gate', I], ['up', I], ['down', E]] as const) b.normal(`${p}mlp.${n}_proj.bias`, [rows], 0.5);
    if (qkNorm) for (const n of ['q', 'k']) b.gain(`${p}self_attn.${n}_norm.weight`, D);
    b.gain(`${p}input_layernorm.weight`, E);
    b.gain(`${p}post_attention_layernorm.weight`, E);
  }
  b.gain('model.norm.weight', E);
  if (!tied) b.matrix('lm_head.weight', [V, E], E);
  return b.w;
}

/** A decoder layer's q, k, v, o and gate, up, down projections (nn.Linear [out, in]), in that order. */
function linears(b: Builder, p: string, E: number, I: number, H: number, Hkv: number, D: number): void {
  b.matrix(`${p}self_attn.q_proj.weight`, [H * D, E], E);
  b.matrix(`${p}self_attn.k_proj.weight`, [Hkv * D, E], E);
  b.matrix(`${p}self_attn.v_proj.weight`, [Hkv * D, E], E);
  b.matrix(`${p}self_attn.o_proj.weight`, [E, H * D], H * D);
  b.matrix(`${p}mlp.gate_proj.weight`, [I, E], E);
  b.matrix(`${p}mlp.up_proj.weight`, [I, E], E);
  b.matrix(`${p}mlp.down_proj.weight`, [E, I], I);
}

/** Random Gemma 3 text weights: norms stored as offsets from 1 (the model scales by 1 + w). */
export function randomGemma3(cfg: Gemma3Config, seed: number): Weights {
  const { vocab_size: V, hidden_size: E, intermediate_size: I, num_hidden_layers: L, num_attention_heads: H, num_key_value_heads: Hkv, head_dim: D } = cfg;
  const b = new Builder(seed);
  b.normal('model.embed_tokens.weight', [V, E], 1 / Math.sqrt(E)); // times sqrt(E) at the input
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    linears(b, p, E, I, H, Hkv, D);
    if (cfg.model_type === 'gemma3_text') for (const n of ['q', 'k']) b.normal(`${p}self_attn.${n}_norm.weight`, [D], 0.2);
    for (const n of ['input_layernorm', 'post_attention_layernorm', 'pre_feedforward_layernorm', 'post_feedforward_layernorm']) b.normal(`${p}${n}.weight`, [E], 0.2);
  }
  b.normal('model.norm.weight', [E], 0.2);
  if (cfg.tie_word_embeddings === false) b.matrix('lm_head.weight', [V, E], E);
  return b.w;
}

/**
 * Phi-3's layout of Llama weights, as a checkpoint stores them: self_attn.qkv_proj.weight holds
 * q, k and v's rows in that order, mlp.gate_up_proj.weight gate's then up's (the reference reads
 * the separate ones).
 */
export function phi3Layout(cfg: LlamaConfig, w: Weights): Weights {
  const out: Weights = new Map(w);
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const fuse = (to: string, parts: string[]) => {
      const ts = parts.map((n) => w.get(p + n)!);
      const data = new Float64Array(ts.reduce((n, t) => n + t.data.length, 0));
      let at = 0;
      for (const t of ts) {
        data.set(t.data, at);
        at += t.data.length;
      }
      out.set(p + to, { shape: [ts.reduce((n, t) => n + t.shape[0], 0), ts[0].shape[1]], data });
      for (const n of parts) out.delete(p + n);
    };
    fuse('self_attn.qkv_proj.weight', ['self_attn.q_proj.weight', 'self_attn.k_proj.weight', 'self_attn.v_proj.weight']);
    fuse('mlp.gate_up_proj.weight', ['mlp.gate_proj.weight', 'mlp.up_proj.weight']);
  }
  return out;
}

/** A copy of w with every value rounded to dtype, so a reference sees the values an engine loads. */
export function roundWeights(w: Weights, dtype: FloatDType): Weights {
  const out: Weights = new Map();
  for (const [name, t] of w) out.set(name, { shape: [...t.shape], data: roundTo(t.data, dtype) });
  return out;
}
