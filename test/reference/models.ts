// Float64 reference forward passes of two Hugging Face decoders, GPT-2 (GPT2LMHeadModel) and
// Llama (LlamaForCausalLM), over weights keyed by the exact HF tensor names and layouts. Built
// from the op references, so a model test against them checks the engine's wiring of the ops.

import { attention } from './attention';
import { linear, matmul } from './matmul';
import { layernorm, rmsnorm } from './norm';
import { rope } from './rope';
import { ropeInit, RopeInit } from './rope-scaling';
import { shapeStr } from './shape';

// --- configs: the keys of HF config.json ---------------------------------------------------------

export interface Gpt2Config {
  model_type: 'gpt2';
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  layer_norm_epsilon: number;
  /** MLP width; null or absent means 4 * n_embd (HF writes "n_inner": null). */
  n_inner?: number | null;
  activation_function: 'gelu_new';
  /** default true: logits = h @ wte^T unless lm_head.weight is present */
  tie_word_embeddings?: boolean;
  /** default true: attention scores divided by sqrt(head_dim) */
  scale_attn_weights?: boolean;
  /** default false: layer l's scores also divided by l + 1 */
  scale_attn_by_inverse_layer_idx?: boolean;
}

/** Llama and the families built like it: Qwen2 (q/k/v biases), Qwen3 (per-head q/k RMSNorm),
 * Mistral (a sliding window). */
export interface LlamaConfig {
  model_type: 'llama' | 'qwen2' | 'qwen3' | 'mistral' | 'phi3';
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  /** default num_attention_heads (plain multi-head attention) */
  num_key_value_heads?: number;
  /** default hidden_size / num_attention_heads */
  head_dim?: number | null;
  rms_norm_eps: number;
  /** default 10000 */
  rope_theta?: number;
  /** transformers 5's form (./rope-scaling reads every rope type) */
  rope_parameters?: Record<string, unknown>;
  /** Phi-3 writes the pretrained context at the top level */
  original_max_position_embeddings?: number;
  max_position_embeddings: number;
  /** default false: lm_head.weight is a tensor of its own */
  tie_word_embeddings?: boolean;
  hidden_act: 'silu';
  /** transformers 4.x's form of rope_parameters' scaling keys */
  rope_scaling?: null | Record<string, unknown>;
  /** llama: biases on q, k, v and o (qwen2 always has q, k, v biases and none on o) */
  attention_bias?: boolean;
  /** llama: biases on gate, up and down */
  mlp_bias?: boolean;
  /** mistral (and qwen2 with use_sliding_window): each query sees the last sliding_window keys;
   * the reference refuses sequences longer than that (where the window would cut) */
  sliding_window?: number | null;
  use_sliding_window?: boolean;
  /** qwen2/qwen3: the first layer with a window when use_sliding_window (default 28) */
  max_window_layers?: number;
  /** transformers 5: each layer's attention, 'full_attention' or 'sliding_attention' */
  layer_types?: string[];
}

/** Gemma 3 text (Gemma3ForCausalLM, model_type gemma3_text) and Gemma 2 (Gemma2ForCausalLM): the keys their forward reads. */
export interface Gemma3Config {
  model_type: 'gemma3_text' | 'gemma2';
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  rms_norm_eps: number;
  max_position_embeddings: number;
  hidden_activation: 'gelu_pytorch_tanh';
  /** softmax(q k^T / sqrt(query_pre_attn_scalar)) */
  query_pre_attn_scalar: number;
  /** the global layers' RoPE (4.x form) */
  rope_theta: number;
  rope_scaling?: Record<string, unknown> | null;
  /** gemma3: the sliding layers' RoPE base (gemma2 rotates every layer with rope_theta) */
  rope_local_base_freq?: number;
  /** gemma2: scores s become cap tanh(s / cap) (absent: 50, null: none) */
  attn_logit_softcapping?: number | null;
  sliding_window: number;
  /** every n-th layer (1-based) global, the others sliding, when layer_types is absent (gemma3: 6, gemma2: 2) */
  sliding_window_pattern?: number;
  layer_types?: string[];
  final_logit_softcapping?: number | null;
  tie_word_embeddings?: boolean;
}

export type ModelConfig = Gpt2Config | LlamaConfig | Gemma3Config;

/** A checkpoint: HF tensor name -> row-major float64 values and their shape. */
export type Weights = Map<string, { shape: number[]; data: Float64Array }>;

export interface ForwardOptions {
  /** position of ids[b][0] (absolute position for GPT-2's wpe, rotation angle for Llama's RoPE); default 0 */
  pos0?: number;
}

/** GPT-2 sizes with the config defaults applied. */
export interface Gpt2Dims {
  V: number; // vocab
  E: number; // n_embd
  L: number; // layers
  H: number; // heads
  D: number; // head_dim = E / H
  I: number; // MLP width
  P: number; // n_positions
  eps: number;
  tied: boolean;
  /** layer l's score scale: 1/sqrt(D) and / (l + 1) as the config's two flags say */
  scale: (l: number) => number;
}

export function gpt2Dims(cfg: Gpt2Config): Gpt2Dims {
  if (cfg.model_type !== 'gpt2') throw new Error(`gpt2 reference: model_type ${cfg.model_type}`);
  if (cfg.activation_function !== 'gelu_new') throw new Error(`gpt2 reference: activation_function ${cfg.activation_function} is not supported (gelu_new only)`);
  if (cfg.n_embd % cfg.n_head !== 0) throw new Error(`gpt2 reference: n_embd ${cfg.n_embd} is not a multiple of n_head ${cfg.n_head}`);
  return {
    V: cfg.vocab_size,
    E: cfg.n_embd,
    L: cfg.n_layer,
    H: cfg.n_head,
    D: cfg.n_embd / cfg.n_head,
    I: cfg.n_inner ?? 4 * cfg.n_embd,
    P: cfg.n_positions,
    eps: cfg.layer_norm_epsilon,
    tied: cfg.tie_word_embeddings ?? true,
    scale: (l) => ((cfg.scale_attn_weights ?? true) ? 1 / Math.sqrt(cfg.n_embd / cfg.n_head) : 1) / (cfg.scale_attn_by_inverse_layer_idx ? l + 1 : 1),
  };
}

/** Llama sizes with the config defaults applied. */
export interface LlamaDims {
  V: number; // vocab
  E: number; // hidden_size
  I: number; // intermediate_size
  L: number; // layers
  H: number; // query heads
  Hkv: number; // key/value heads
  D: number; // head_dim
  eps: number;
  /** inverse frequencies and attention factor of the rotation (./rope-scaling) */
  rope: RopeInit;
  tied: boolean;
  /** which linear layers carry a bias */
  bias: { qkv: boolean; o: boolean; mlp: boolean };
  /** qwen3: q and k RMS-normalized per head (weights [head_dim]) before the rotation */
  qkNorm: boolean;
  /** the sliding window, where one applies */
  window?: number;
}

export function llamaDims(cfg: LlamaConfig): LlamaDims {
  if (!['llama', 'qwen2', 'qwen3', 'mistral', 'phi3'].includes(cfg.model_type)) throw new Error(`llama reference: model_type ${cfg.model_type}`);
  if (cfg.hidden_act !== 'silu') throw new Error(`llama reference: hidden_act ${cfg.hidden_act} is not supported (silu only)`);
  const H = cfg.num_attention_heads;
  const Hkv = cfg.num_key_value_heads ?? H;
  if (H % Hkv !== 0) throw new Error(`llama reference: num_attention_heads ${H} is not a multiple of num_key_value_heads ${Hkv}`);
  const D = cfg.head_dim ?? cfg.hidden_size / H;
  if (!Number.isInteger(D) || D % 2 !== 0) throw new Error(`llama reference: head_dim ${D} must be an even integer`);
  return {
    V: cfg.vocab_size,
    E: cfg.hidden_size,
    I: cfg.intermediate_size,
    L: cfg.num_hidden_layers,
    H,
    Hkv,
    D,
    eps: cfg.rms_norm_eps,
    rope: ropeInit(cfg, D),
    tied: cfg.tie_word_embeddings ?? false,
    bias: {
      qkv: cfg.model_type === 'qwen2' || ((cfg.model_type === 'llama' || cfg.model_type === 'qwen3') && !!cfg.attention_bias),
      o: (cfg.model_type === 'llama' || cfg.model_type === 'qwen3') && !!cfg.attention_bias,
      mlp: cfg.model_type === 'llama' && !!cfg.mlp_bias,
    },
    qkNorm: cfg.model_type === 'qwen3',
    // MistralConfig: sliding_window 4096 when absent, null for none
    // Phi3Config: sliding_window null when absent
    window: cfg.model_type === 'phi3' ? cfg.sliding_window ?? undefined
      : cfg.model_type === 'mistral' ? (cfg.sliding_window === null ? undefined : cfg.sliding_window ?? 4096)
      : (cfg.model_type === 'qwen2' || cfg.model_type === 'qwen3') && (cfg.use_sliding_window || cfg.layer_types) ? cfg.sliding_window ?? 4096 : undefined,
    // Qwen2Config: layer_types, else sliding from layer max_window_layers (28) on; Mistral, Phi3: every layer
    windowLayers: Array.from({ length: cfg.num_hidden_layers }, (_, l) =>
      cfg.model_type === 'qwen2' || cfg.model_type === 'qwen3'
        ? cfg.layer_types ? cfg.layer_types[l] === 'sliding_attention' : !!cfg.use_sliding_window && l >= (cfg.max_window_layers ?? 28)
        : true),
  };
}

// --- helpers ------------------------------------------------------------------------------------

/** The data of w[name], which must have exactly this shape. */
function tensorOf(w: Weights, name: string, shape: readonly number[]): Float64Array {
  const t = w.get(name);
  if (!t) throw new Error(`reference: missing weight ${name}`);
  const same = t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);
  if (!same) throw new Error(`reference: weight ${name} has shape ${shapeStr(t.shape)}, expected ${shapeStr(shape)}`);
  let n = 1;
  for (const d of shape) n *= d;
  if (t.data.length !== n) throw new Error(`reference: weight ${name} holds ${t.data.length} values, its shape ${shapeStr(shape)} needs ${n}`);
  return t.data;
}

/** ids must be [batch][seq], rectangular, non-empty, integers in [0, V); returns B and S. */
function checkIds(ids: readonly (readonly number[])[], V: number): { B: number; S: number } {
  const B = ids.length;
  if (B === 0 || ids[0].length === 0) throw new Error('reference: ids must be a non-empty [batch][seq] array');
  const S = ids[0].length;
  for (const row of ids) {
    if (row.length !== S) throw new Error(`reference: ids rows have different lengths (${S} and ${row.length})`);
    for (const id of row) {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`reference: token id ${id} outside [0, ${V})`);
    }
  }
  return { B, S };
}

/** x += y, elementwise. */
function addInto(x: Float64Array, y: Float64Array): void {
  for (let i = 0; i < x.length; i++) x[i] += y[i];
}

/** Columns [c0, c0 + n) of a row-major (rows, cols) matrix -> (rows, n). */
function columns(m: Float64Array, rows: number, cols: number, c0: number, n: number): Float64Array {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) for (let c = 0; c < n; c++) out[r * n + c] = m[r * cols + c0 + c];
  return out;
}

// --- GPT-2 --------------------------------------------------------------------------------------

/**
 * The name under which a GPT-2 tensor is stored: the hub's checkpoints use bare names
 * ("wte.weight"), a saved GPT2LMHeadModel prefixes them ("transformer.wte.weight").
 */
function gpt2Name(w: Weights, name: string): string {
  if (w.has(name)) return name;
  const prefixed = `transformer.${name}`;
  if (w.has(prefixed)) return prefixed;
  throw new Error(`reference: missing weight ${name} (or ${prefixed})`);
}

/**
 * GPT-2 logits [batch, seq, vocab] for ids [batch][seq]: pre-LN blocks
 * (x += attn(ln_1(x)); x += mlp(ln_2(x))), Conv1D weights [in, out] (y = x W + b), gelu_new,
 * causal attention scaled by 1/sqrt(head_dim), logits = ln_f(x) @ wte^T (or lm_head.weight).
 */
export function gpt2Forward(cfg: Gpt2Config, w: Weights, ids: readonly (readonly number[])[], opts: ForwardOptions = {}): Float64Array {
  const { V, E, L, H, D, I, P, eps, tied, scale } = gpt2Dims(cfg);
  const { B, S } = checkIds(ids, V);
  const pos0 = opts.pos0 ?? 0;
  if (!Number.isInteger(pos0) || pos0 < 0 || pos0 + S > P) {
    throw new Error(`gpt2 reference: positions [${pos0}, ${pos0 + S}) exceed n_positions ${P}`);
  }
  const T = B * S;
  const get = (name: string, shape: readonly number[]) => tensorOf(w, gpt2Name(w, name), shape);

  const wte = get('wte.weight', [V, E]);
  const wpe = get('wpe.weight', [P, E]);
  const x = new Float64Array(T * E); // (B, S, E) residual stream
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < S; s++) {
      const id = ids[b][s];
      const o = (b * S + s) * E;
      for (let e = 0; e < E; e++) x[o + e] = wte[id * E + e] + wpe[(pos0 + s) * E + e]; // x = wte[id] + wpe[pos]
    }
  }

  for (let l = 0; l < L; l++) {
    const p = `h.${l}.`;
    const h1 = layernorm(x, [T, E], get(`${p}ln_1.weight`, [E]), get(`${p}ln_1.bias`, [E]), eps).data;
    // qkv = h1 W + b, (T, 3E): q | k | v along the columns, heads contiguous inside each
    const qkv = matmul(h1, [T, E], get(`${p}attn.c_attn.weight`, [E, 3 * E]), [E, 3 * E], {
      bias: get(`${p}attn.c_attn.bias`, [3 * E]),
    }).data;
    const q = columns(qkv, T, 3 * E, 0, E); // (B, S, H, D)
    const k = columns(qkv, T, 3 * E, E, E);
    const v = columns(qkv, T, 3 * E, 2 * E, E);
    const a = attention(q, k, v, B, S, S, H, H, D, { causal: true, scale: scale(l) }).data; // (B, S, H, D) = (T, E)
    const attnOut = matmul(a, [T, E], get(`${p}attn.c_proj.weight`, [E, E]), [E, E], {
      bias: get(`${p}attn.c_proj.bias`, [E]),
    }).data;
    addInto(x, attnOut);

    const h2 = layernorm(x, [T, E], get(`${p}ln_2.weight`, [E]), get(`${p}ln_2.bias`, [E]), eps).data;
    const f = matmul(h2, [T, E], get(`${p}mlp.c_fc.weight`, [E, I]), [E, I], {
      bias: get(`${p}mlp.c_fc.bias`, [I]),
      activation: 'gelu', // tanh form = gelu_new
    }).data; // (T, I)
    const mlpOut = matmul(f, [T, I], get(`${p}mlp.c_proj.weight`, [I, E]), [I, E], {
      bias: get(`${p}mlp.c_proj.bias`, [E]),
    }).data;
    addInto(x, mlpOut);
  }

  const hf = layernorm(x, [T, E], get('ln_f.weight', [E]), get('ln_f.bias', [E]), eps).data;
  let head: Float64Array;
  if (w.has('lm_head.weight')) head = tensorOf(w, 'lm_head.weight', [V, E]);
  else if (tied) head = wte;
  else throw new Error('gpt2 reference: tie_word_embeddings is false but lm_head.weight is missing');
  return linear(hf, [T, E], head, V, E).data; // logits = hf @ head^T, (B, S, V)
}

// --- Llama --------------------------------------------------------------------------------------

/**
 * Llama logits [batch, seq, vocab] for ids [batch][seq]: pre-norm blocks with RMSNorm,
 * nn.Linear weights [out, in] (y = x W^T, no biases), rotate-half RoPE on q and k (token s at
 * position pos0 + s), grouped-query causal attention scaled by 1/sqrt(head_dim), SwiGLU MLP
 * down(silu(gate(x)) * up(x)), logits = norm(x) @ lm_head^T (embed_tokens when tied).
 */
export function llamaForward(cfg: LlamaConfig, w: Weights, ids: readonly (readonly number[])[], opts: ForwardOptions = {}): Float64Array {
  const { V, E, I, L, H, Hkv, D, eps, rope: rot, tied, bias, qkNorm, window, windowLayers } = llamaDims(cfg);
  const { B, S } = checkIds(ids, V);
  const pos0 = opts.pos0 ?? 0;
  if (!Number.isInteger(pos0) || pos0 < 0) throw new Error(`llama reference: pos0 ${pos0} must be a non-negative integer`);
  if (pos0 + S > rot.limit) throw new Error('llama reference: past the original context the rotation changes with the length (not modelled)');
  const T = B * S;
  const get = (name: string, shape: readonly number[]) => tensorOf(w, name, shape);
  // y = x W^T (+ b where the family has that bias)
  const lin = (x: Float64Array, name: string, N: number, K: number, hasBias: boolean, activation?: 'silu') =>
    linear(x, [T, K], get(`${name}.weight`, [N, K]), N, K, { activation, bias: hasBias ? get(`${name}.bias`, [N]) : undefined }).data;

  const embed = get('model.embed_tokens.weight', [V, E]);
  const x = new Float64Array(T * E); // (B, S, E) residual stream
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < S; s++) {
      const id = ids[b][s];
      const o = (b * S + s) * E;
      for (let e = 0; e < E; e++) x[o + e] = embed[id * E + e];
    }
  }

  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    const h1 = rmsnorm(x, [T, E], get(`${p}input_layernorm.weight`, [E]), eps).data;
    const q = lin(h1, `${p}self_attn.q_proj`, H * D, E, bias.qkv); // (B, S, H, D)
    const k = lin(h1, `${p}self_attn.k_proj`, Hkv * D, E, bias.qkv); // (B, S, Hkv, D)
    const v = lin(h1, `${p}self_attn.v_proj`, Hkv * D, E, bias.qkv); // (B, S, Hkv, D)
    // qwen3: each head of q and k RMS-normalized over head_dim, then rotated
    const qn = qkNorm ? rmsnorm(q, [T * H, D], get(`${p}self_attn.q_norm.weight`, [D]), eps).data : q;
    const kn = qkNorm ? rmsnorm(k, [T * Hkv, D], get(`${p}self_attn.k_norm.weight`, [D]), eps).data : k;
    const qr = rope(qn, [B, S, H, D], pos0, undefined, rot.invFreq, rot.attentionFactor).data;
    const kr = rope(kn, [B, S, Hkv, D], pos0, undefined, rot.invFreq, rot.attentionFactor).data;
    // a sliding window: each query sees its last `window` keys (the layers it is on)
    const a = attention(qr, kr, v, B, S, S, H, Hkv, D, { causal: true, window: windowLayers?.[l] ? window : undefined }).data; // (B, S, H, D)
    addInto(x, lin(a, `${p}self_attn.o_proj`, E, H * D, bias.o));

    const h2 = rmsnorm(x, [T, E], get(`${p}post_attention_layernorm.weight`, [E]), eps).data;
    const g = lin(h2, `${p}mlp.gate_proj`, I, E, bias.mlp, 'silu'); // (T, I)
    const u = lin(h2, `${p}mlp.up_proj`, I, E, bias.mlp); // (T, I)
    for (let i = 0; i < g.length; i++) g[i] *= u[i]; // silu(gate) * up
    addInto(x, lin(g, `${p}mlp.down_proj`, E, I, bias.mlp));
  }

  const hf = rmsnorm(x, [T, E], get('model.norm.weight', [E]), eps).data;
  let head: Float64Array;
  if (w.has('lm_head.weight')) head = get('lm_head.weight', [V, E]);
  else if (tied) head = embed;
  else throw new Error('llama reference: tie_word_embeddings is false but lm_head.weight is missing');
  return linear(hf, [T, E], head, V, E).data; // logits = hf @ head^T, (B, S, V)
}

// --- Gemma 3 -------------------------------------------------------------------------------------

/**
 * Gemma 3 text and Gemma 2 logits [batch, seq, vocab], as Gemma3ForCausalLM / Gemma2ForCausalLM
 * compute them (Gemma 2: no q/k norms, one RoPE for every layer, scores soft-capped, final cap 30
 * by default): the embedding
 * times sqrt(hidden); per layer x += post_attn_norm(attn(input_norm(x))), x +=
 * post_ffn_norm(mlp(pre_ffn_norm(x))) with every RMSNorm scaling by (1 + w); q and k normalized
 * per head the same way, rotated with the sliding layers' base or the global layers' RoPE;
 * attention scaled by query_pre_attn_scalar^-1/2, causal, within the sliding window on sliding
 * layers; MLP down(gelu_tanh(gate) * up); the tied head; then cap tanh(logits / cap).
 */
export function gemma3Forward(cfg: Gemma3Config, w: Weights, ids: readonly (readonly number[])[], opts: ForwardOptions = {}): Float64Array {
  const V = cfg.vocab_size, E = cfg.hidden_size, I = cfg.intermediate_size, L = cfg.num_hidden_layers;
  const H = cfg.num_attention_heads, Hkv = cfg.num_key_value_heads, D = cfg.head_dim, eps = cfg.rms_norm_eps;
  const { B, S } = checkIds(ids, V);
  const pos0 = opts.pos0 ?? 0;
  const T = B * S;
  const get = (name: string, shape: readonly number[]) => tensorOf(w, name, shape);
  const norm1 = (name: string, n: number) => get(name, [n]).map((x) => 1 + x); // (1 + w)
  const lin = (x: Float64Array, name: string, N: number, K: number, activation?: 'gelu') => linear(x, [T, K], get(`${name}.weight`, [N, K]), N, K, { activation }).data;
  const gemma2 = cfg.model_type === 'gemma2';
  const global = ropeInit({ rope_theta: cfg.rope_theta, rope_scaling: cfg.rope_scaling, max_position_embeddings: cfg.max_position_embeddings }, D);
  const local = gemma2 ? global : ropeInit({ rope_theta: cfg.rope_local_base_freq ?? 10000, max_position_embeddings: cfg.max_position_embeddings }, D);
  if (pos0 + S > Math.min(global.limit, local.limit)) throw new Error('gemma reference: past the rotation limit');
  const pattern = cfg.sliding_window_pattern ?? (gemma2 ? 2 : 6);
  const attnCap = cfg.attn_logit_softcapping === undefined ? (gemma2 ? 50 : undefined) : cfg.attn_logit_softcapping ?? undefined;
  const finalCap = cfg.final_logit_softcapping === undefined ? (gemma2 ? 30 : undefined) : cfg.final_logit_softcapping ?? undefined;
  const qkNorm = (y: Float64Array, rows: number, name: string) => (gemma2 ? y : rmsnorm(y, [rows, D], norm1(name, D), eps).data);
  const embed = get('model.embed_tokens.weight', [V, E]);
  const x = new Float64Array(T * E);
  const scale = Math.sqrt(E);
  for (let t = 0; t < T; t++) {
    const id = ids[Math.floor(t / S)][t % S];
    for (let e = 0; e < E; e++) x[t * E + e] = embed[id * E + e] * scale;
  }
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    const sliding = cfg.layer_types ? cfg.layer_types[l] === 'sliding_attention' : (l + 1) % pattern !== 0;
    const rot = sliding ? local : global;
    const h = rmsnorm(x, [T, E], norm1(`${p}input_layernorm.weight`, E), eps).data;
    const q = qkNorm(lin(h, `${p}self_attn.q_proj`, H * D, E), T * H, `${p}self_attn.q_norm.weight`);
    const k = qkNorm(lin(h, `${p}self_attn.k_proj`, Hkv * D, E), T * Hkv, `${p}self_attn.k_norm.weight`);
    const v = lin(h, `${p}self_attn.v_proj`, Hkv * D, E);
    const qr = rope(q, [B, S, H, D], pos0, undefined, rot.invFreq, rot.attentionFactor).data;
    const kr = rope(k, [B, S, Hkv, D], pos0, undefined, rot.invFreq, rot.attentionFactor).data;
    const a = attention(qr, kr, v, B, S, S, H, Hkv, D, { causal: true, scale: 1 / Math.sqrt(cfg.query_pre_attn_scalar), window: sliding ? cfg.sliding_window : undefined, softcap: attnCap }).data;
    const ao = rmsnorm(lin(a, `${p}self_attn.o_proj`, E, H * D), [T, E], norm1(`${p}post_attention_layernorm.weight`, E), eps).data;
    for (let i = 0; i < x.length; i++) x[i] += ao[i];
    const h2 = rmsnorm(x, [T, E], norm1(`${p}pre_feedforward_layernorm.weight`, E), eps).data;
    const g = lin(h2, `${p}mlp.gate_proj`, I, E, 'gelu');
    const u = lin(h2, `${p}mlp.up_proj`, I, E);
    for (let i = 0; i < g.length; i++) g[i] *= u[i];
    const m = rmsnorm(lin(g, `${p}mlp.down_proj`, E, I), [T, E], norm1(`${p}post_feedforward_layernorm.weight`, E), eps).data;
    for (let i = 0; i < x.length; i++) x[i] += m[i];
  }
  const y = rmsnorm(x, [T, E], norm1('model.norm.weight', E), eps).data;
  const head = w.has('lm_head.weight') ? get('lm_head.weight', [V, E]) : embed;
  const logits = linear(y, [T, E], head, V, E).data;
  if (finalCap) for (let i = 0; i < logits.length; i++) logits[i] = finalCap * Math.tanh(logits[i] / finalCap);
  return logits;
}

// --- dispatch and greedy decoding ----------------------------------------------------------------

/** Logits [batch, seq, vocab] of the model cfg.model_type names. */
export function forwardReference(cfg: ModelConfig, w: Weights, ids: readonly (readonly number[])[], opts: ForwardOptions = {}): Float64Array {
  switch (cfg.model_type) {
    case 'gpt2':
      return gpt2Forward(cfg, w, ids, opts);
    case 'llama':
    case 'qwen2':
    case 'qwen3':
    case 'mistral':
    case 'phi3':
      return llamaForward(cfg, w, ids, opts);
    case 'gemma3_text':
    case 'gemma2':
      return gemma3Forward(cfg, w, ids, opts);
    default:
      throw new Error(`reference: unsupported model_type ${(cfg as { model_type: unknown }).model_type}`);
  }
}

/** Index of the largest of xs[off, off + n); ties go to the lowest index. */
export function argmax(xs: ArrayLike<number>, off = 0, n = xs.length - off): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (xs[off + i] > xs[off + best]) best = i;
  return best;
}

/**
 * The `steps` token ids greedy decoding appends to ids: each step re-runs the whole sequence
 * and takes the argmax of the last position's logits (ties -> lowest id). Returns the new ids
 * only.
 */
export function greedyReference(cfg: ModelConfig, w: Weights, ids: readonly number[], steps: number): number[] {
  const V = cfg.vocab_size;
  const seq = [...ids];
  const out: number[] = [];
  for (let t = 0; t < steps; t++) {
    const logits = forwardReference(cfg, w, [seq]);
    const next = argmax(logits, (seq.length - 1) * V, V);
    out.push(next);
    seq.push(next);
  }
  return out;
}
