// Llama (Hugging Face LlamaForCausalLM layout): RMSNorm, rotary positions (rope_theta),
// grouped-query attention, SwiGLU MLP, optional untied LM head; and the families built the same
// way: Qwen2 (biases on q, k and v), Mistral (a sliding window, which equals full attention for
// sequences no longer than it: maxSeq is held to it), and Gemma 3 (gemma3_text: RMSNorm with
// (1 + w), norms before and after attention and MLP, embeddings scaled by sqrt(hidden), GELU
// (tanh) MLP, q/k norms, sliding and global layers with their own RoPE, a tied head).
import { IgnisError } from '../errors';
import { GraphBuilder, GraphNode, GraphScalar } from '../graph';
import { TensorSource } from '../safetensors';
import { Rope, ropeOf } from './rope';
import { serveInputs, serveOutputs, type ServeLayout } from './servegraph';
import { tensor, Tensor } from '../tensor';
import { configBool, configInt as needInt, configNumber as need, disposeLinear, graphLinear, Linear, linearTensors, linearFromNK, modelDtypes, readChecked, readHost, WeightOptions } from './weights';

export interface LlamaConfig {
  /** the checkpoint's family: the same graph, with the biases and window each one has */
  modelType: 'llama' | 'qwen2' | 'qwen3' | 'mistral' | 'phi3' | 'gemma2' | 'gemma3_text';
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  /** the rotation: its base, or the frequencies and scale of a scaled RoPE (./rope) */
  rope: Rope;
  maxPositions: number;
  tied: boolean;
  /** which linear layers carry a bias: llama's attention_bias (q, k, v, o) and mlp_bias (gate,
   * up, down); qwen2's q, k, v always */
  bias: { qkv: boolean; o: boolean; mlp: boolean };
  /** the sliding window where the family applies one: its size, the layers it is on, and whether
   * the attention kernel computes it (else loadModel holds maxSeq to it) */
  windows?: { size: number; layers: boolean[]; kernel: boolean };
  /** qwen3, gemma3: q and k RMS-normalized per head before the rotation */
  qkNorm: boolean;
  /** gemma3's differences from the llama graph */
  gemma?: GemmaParts;
}

export interface GemmaParts {
  /** the embeddings are multiplied by sqrt(hidden) (in the weights' dtype, as transformers) */
  embedScale: number;
  /** softmax(attnScale q k^T): query_pre_attn_scalar^-0.5 */
  attnScale: number;
  /** the sliding layers' rotation (rope_local_base_freq); `rope` is the global layers' */
  localRope: Rope;
  /** logits = cap tanh(logits / cap) where set */
  finalSoftcap?: number;
  /** gemma2: attention scores capped the same way */
  attnSoftcap?: number;
}

export function llamaConfig(cfg: Record<string, unknown>): LlamaConfig {
  const family = cfg.model_type as LlamaConfig['modelType'];
  // llama reads attention_bias and mlp_bias; qwen2 and mistral do not have them (transformers
  // builds Qwen2's q, k, v with biases and nothing else; Mistral none)
  // (qwen3 reads attention_bias for q, k, v and o, as llama does, and has no mlp_bias)
  const attnBias = family === 'llama' || family === 'qwen3' || isGemmaFamily(family) ? configBool(cfg, 'attention_bias', false) : false;
  const bias = { qkv: attnBias || family === 'qwen2', o: attnBias, mlp: family === 'llama' ? configBool(cfg, 'mlp_bias', false) : false };
  const isGemma = family === 'gemma3_text' || family === 'gemma2';
  // gemma writes hidden_activation (hidden_act is the older key); both must be its GELU
  const act = isGemma ? 'gelu_pytorch_tanh' : 'silu';
  for (const key of isGemma ? ['hidden_activation', 'hidden_act'] : ['hidden_act'])
    if (cfg[key] != null && cfg[key] !== act)
      throw new IgnisError('E_FORMAT', `loadModel: config.json: ${key} '${cfg[key]}' is not supported (${act})`);
  const hidden = needInt(cfg, 'hidden_size'), heads = needInt(cfg, 'num_attention_heads');
  const headDim = cfg.head_dim == null ? hidden / heads : needInt(cfg, 'head_dim');
  const kvHeads = needInt(cfg, 'num_key_value_heads', heads);
  if (!Number.isInteger(headDim) || headDim % 2 || heads % kvHeads)
    throw new IgnisError('E_FORMAT', `loadModel: config.json: heads ${heads}, kv heads ${kvHeads} and head_dim ${headDim} do not fit together`);
  const gemma = isGemma ? gemmaParts(cfg, family, headDim, hidden) : undefined;
  const rope = family === 'gemma3_text' ? gemmaRope(cfg, headDim, 'full_attention') : ropeOf(cfg, headDim);
  if (gemma?.localRope.limit !== undefined) rope.limit = Math.min(rope.limit ?? Infinity, gemma.localRope.limit);
  const c: LlamaConfig = {
    modelType: family,
    vocab: needInt(cfg, 'vocab_size'),
    hidden,
    intermediate: needInt(cfg, 'intermediate_size'),
    layers: needInt(cfg, 'num_hidden_layers'),
    heads,
    kvHeads,
    headDim,
    eps: need(cfg, 'rms_norm_eps', 1e-6),
    rope,
    maxPositions: needInt(cfg, 'max_position_embeddings', 2048),
    // Gemma3TextConfig ties the head unless told not to
    tied: isGemma ? cfg.tie_word_embeddings !== false : cfg.tie_word_embeddings === true,
    bias,
    windows: slidingWindows(cfg, family, needInt(cfg, 'num_hidden_layers')),
    qkNorm: family === 'qwen3' || family === 'gemma3_text',
    gemma,
  };
  return c;
}

const isGemmaFamily = (f: string) => f === 'gemma2' || f === 'gemma3_text';

/**
 * Gemma's config keys beside llama's: query_pre_attn_scalar (default 256), final_logit_softcapping
 * and attn_logit_softcapping (Gemma2Config: 30 and 50 when absent, Gemma 3: none; null turns them
 * off), and Gemma 3's sliding layers' rope_local_base_freq (Gemma 2 rotates every layer alike);
 * use_bidirectional_attention (the embedding variants) is not computed: E_FORMAT naming it.
 */
function gemmaParts(cfg: Record<string, unknown>, family: string, headDim: number, hidden: number): GemmaParts {
  const bad = (k: string, want: string) => new IgnisError('E_FORMAT', `loadModel: config.json: ${k} ${JSON.stringify(cfg[k])} ${want}`);
  if (cfg.use_bidirectional_attention != null && cfg.use_bidirectional_attention !== false) throw bad('use_bidirectional_attention', 'is not supported (causal attention only)');
  const pre = need(cfg, 'query_pre_attn_scalar', 256);
  if (!(pre > 0)) throw bad('query_pre_attn_scalar', 'must be a positive number');
  const gemma2 = family === 'gemma2';
  const cap = (k: string, fallback: number | undefined) => {
    if (cfg[k] === null || (cfg[k] === undefined && fallback === undefined)) return undefined;
    const x = cfg[k] === undefined ? fallback! : need(cfg, k);
    if (!(x > 0)) throw bad(k, 'must be a positive number or null');
    return x;
  };
  return {
    embedScale: Math.sqrt(hidden),
    attnScale: 1 / Math.sqrt(pre),
    localRope: gemma2 ? ropeOf(cfg, headDim) : gemmaRope(cfg, headDim, 'sliding_attention'),
    finalSoftcap: cap('final_logit_softcapping', gemma2 ? 30 : undefined),
    attnSoftcap: cap('attn_logit_softcapping', gemma2 ? 50 : undefined),
  };
}

/** rope_parameters keyed by layer type (transformers 5's form for Gemma 3), or null. */
function ropeByLayerType(cfg: Record<string, unknown>): Record<string, unknown> | null {
  const p = cfg.rope_parameters;
  if (typeof p !== 'object' || p === null || Array.isArray(p)) return null;
  const keys = Object.keys(p);
  if (!keys.some((k) => k === 'full_attention' || k === 'sliding_attention')) return null;
  const other = keys.find((k) => k !== 'full_attention' && k !== 'sliding_attention');
  if (other) throw new IgnisError('E_FORMAT', `loadModel: config.json: rope_parameters.${other} is not a layer type (full_attention, sliding_attention)`);
  if (cfg.rope_scaling != null || cfg.rope_theta != null || cfg.rope_local_base_freq != null)
    throw new IgnisError('E_FORMAT', 'loadModel: config.json: rope_parameters per layer type beside rope_theta / rope_scaling / rope_local_base_freq: one form or the other');
  return p as Record<string, unknown>;
}

/**
 * Gemma 3's rotation of one layer type: rope_parameters[type] (absent: the default rotation, base
 * 1e6 global, 10000 sliding), else, in the 4.x form, rope_theta (1e6) with rope_scaling for the
 * global layers and the default rotation of rope_local_base_freq (10000) for the sliding ones.
 */
function gemmaRope(cfg: Record<string, unknown>, headDim: number, type: 'full_attention' | 'sliding_attention'): Rope {
  const global = type === 'full_attention';
  const byType = ropeByLayerType(cfg);
  const maxPos = { max_position_embeddings: cfg.max_position_embeddings };
  if (byType) return ropeOf({ ...maxPos, rope_parameters: byType[type] ?? { rope_type: 'default', rope_theta: global ? 1e6 : 10000 } }, headDim);
  if (global) return ropeOf({ ...cfg, rope_theta: cfg.rope_theta ?? (cfg.rope_parameters == null ? 1e6 : undefined) }, headDim);
  return ropeOf({ ...maxPos, rope_theta: need(cfg, 'rope_local_base_freq', 10000) }, headDim);
}

/**
 * The sliding window as transformers applies it, per layer: mistral's and phi3's on every layer
 * (MistralConfig's sliding_window is 4096 when absent, Phi3Config's none; null turns it off);
 * qwen2's and qwen3's on the layers layer_types marks 'sliding_attention', which transformers
 * derives from use_sliding_window and max_window_layers (layers i >= it, default 28) when the
 * config has none. The CPU's attention kernel computes the window; elsewhere it equals full
 * attention up to w tokens, so loadModel holds maxSeq to it. llama reads no window: a
 * layer_types with sliding layers there is held to its window too (exact either way).
 */
function slidingWindows(cfg: Record<string, unknown>, family: LlamaConfig['modelType'], layers: number): LlamaConfig['windows'] {
  const types = cfg.layer_types;
  if (types != null && (!Array.isArray(types) || types.some((t) => t !== 'full_attention' && t !== 'sliding_attention')))
    throw new IgnisError('E_FORMAT', `loadModel: config.json: layer_types ${JSON.stringify(types)} is not a list of 'full_attention' / 'sliding_attention'`);
  if (layers > 65536) throw new IgnisError('E_FORMAT', `loadModel: config.json: num_hidden_layers ${layers} is past any model's (65536 at most)`);
  if (Array.isArray(types) && types.length !== layers)
    throw new IgnisError('E_FORMAT', `loadModel: config.json: layer_types has ${types.length} entries for ${layers} layers`);
  const all = (on: boolean) => Array.from({ length: layers }, () => on);
  let on: boolean[];
  if (family === 'mistral' || family === 'phi3') {
    on = all(family === 'mistral' ? cfg.sliding_window !== null : cfg.sliding_window != null);
    if (Array.isArray(types) && on[0] && types.includes('full_attention'))
      throw new IgnisError('E_FORMAT', `loadModel: config.json: layer_types ${JSON.stringify(types)} has full-attention layers, which ${family} does not read (its window is on every layer)`);
  } else if (isGemmaFamily(family)) {
    // layer_types, else every sliding_window_pattern-th layer global (Gemma3TextConfig: 6;
    // Gemma2Config: every other layer, the first sliding)
    const pattern = cfg.sliding_window_pattern == null ? (family === 'gemma2' ? 2 : 6) : cfg.sliding_window_pattern;
    if (!Number.isSafeInteger(pattern) || (pattern as number) < 1)
      throw new IgnisError('E_FORMAT', `loadModel: config.json: 'sliding_window_pattern' must be a whole number >= 1, got ${JSON.stringify(pattern)}`);
    on = Array.isArray(types) ? types.map((t) => t === 'sliding_attention') : all(false).map((_, i) => (i + 1) % (pattern as number) !== 0);
  } else if (family === 'qwen2' || family === 'qwen3') {
    const use = configBool(cfg, 'use_sliding_window', false);
    const from = cfg.max_window_layers == null ? 28 : cfg.max_window_layers;
    if (!Number.isSafeInteger(from) || (from as number) < 0)
      throw new IgnisError('E_FORMAT', `loadModel: config.json: 'max_window_layers' must be a whole number >= 0, got ${JSON.stringify(from)}`);
    on = Array.isArray(types) ? types.map((t) => t === 'sliding_attention') : all(false).map((_, i) => use && cfg.sliding_window !== null && i >= (from as number));
  } else {
    on = all(Array.isArray(types) && types.includes('sliding_attention'));
  }
  if (!on.includes(true)) return undefined;
  return { size: needInt(cfg, 'sliding_window', 4096), layers: on, kernel: family !== 'llama' };
}

interface Layer {
  ln1: Tensor;
  ln2: Tensor;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  gate: Linear;
  up: Linear;
  down: Linear;
  /** qwen3's per-head RMSNorm weights of q and k, [headDim] each */
  qNorm?: Tensor;
  kNorm?: Tensor;
  /** gemma3: the norms after attention and after the MLP (ln2 is then the one before the MLP) */
  postAttn?: Tensor;
  postFfn?: Tensor;
  /** the biases the family has, by layer name (q, k, v, o, gate, up, down) */
  bias: Partial<Record<'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down', Tensor>>;
}

export interface LlamaWeights {
  embed: Tensor; // [vocab, hidden], the weights' dtype (int8 models: f16/bf16)
  norm: Tensor;
  head: Linear;
  layers: Layer[];
  /** gemma: sqrt(hidden) [1] in the activation dtype; the final soft-cap's 1/cap and cap [1] */
  gemma?: { embedScale: Tensor; softcap?: [Tensor, Tensor] };
}

export async function loadLlama(src: TensorSource, c: LlamaConfig, o: WeightOptions): Promise<LlamaWeights> {
  const { act, weights: wdt } = modelDtypes(o);
  const vec = (name: string, n: number) => readChecked(src, name, [n], act, o.device);
  // Gemma's RMSNorm scales by (1 + w), formed here in f32 (as transformers does) and kept as w'
  const norm = async (name: string, n: number) => {
    if (!c.gemma) return vec(name, n);
    const w = await readHost(src, name, [n]);
    return tensor(w.map((x) => 1 + x), { shape: [n], dtype: act, device: o.device });
  };
  const lin = async (name: string, N: number, K: number) =>
    linearFromNK(await readChecked(src, name, [N, K], wdt, o.device), o);
  const H = c.hidden, I = c.intermediate, qd = c.heads * c.headDim, kd = c.kvHeads * c.headDim;
  // W [sum(rows), K] stored as one tensor: one linear layer per block of rows, in order
  const fusedRows = async (name: string, K: number, rows: number[]) => {
    const host = await readHost(src, name, [rows.reduce((a, b) => a + b, 0), K]);
    let r0 = 0;
    return rows.map((n) => {
      const part = host.subarray(r0 * K, (r0 += n) * K);
      return linearFromNK(tensor(part, { shape: [n, K], dtype: wdt, device: o.device }), o);
    });
  };
  // int8 models keep a 16-bit embedding table (a row is cast to f32 after the lookup), at half
  // the memory of an f32 one: f16/bf16 as stored (exact), an f32 table rounded to bf16 (f32's
  // range, so nothing overflows; its 2^-9 relative rounding is below the int8 weights' own).
  // Otherwise the table is in the weights' dtype (16-bit weights under f32 activations: a row is
  // cast after the lookup, as the int8 table's).
  const storedEmbed = src.info('model.embed_tokens.weight')?.dtype;
  const embedDtype = o.quantize === 'int8' ? (storedEmbed === 'F16' ? 'f16' : 'bf16') : wdt;
  const embed = await readChecked(src, 'model.embed_tokens.weight', [c.vocab, H], embedDtype, o.device);
  const layers: Layer[] = [];
  // A layer's tensors are read concurrently (each read runs on a pool thread, packing and
  // quantizing are queued on the CPU worker), the layers one after another.
  const optional = <T>(when: boolean, f: () => Promise<T>) => (when ? f() : Promise.resolve(undefined));
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}.`;
    const phi3 = c.modelType === 'phi3';
    const [bq, bk, bv, bo, bgate, bup, bdown, qkv, gateUp, q, k, v, o, gate, up, down, qNorm, kNorm, ln1, ln2, postAttn, postFfn] = await settleAll([
      optional(c.bias.qkv, () => vec(`${p}self_attn.q_proj.bias`, qd)),
      optional(c.bias.qkv, () => vec(`${p}self_attn.k_proj.bias`, kd)),
      optional(c.bias.qkv, () => vec(`${p}self_attn.v_proj.bias`, kd)),
      optional(c.bias.o, () => vec(`${p}self_attn.o_proj.bias`, H)),
      optional(c.bias.mlp, () => vec(`${p}mlp.gate_proj.bias`, I)),
      optional(c.bias.mlp, () => vec(`${p}mlp.up_proj.bias`, I)),
      optional(c.bias.mlp, () => vec(`${p}mlp.down_proj.bias`, H)),
      // phi3 stores q, k, v in one qkv_proj and gate, up in one gate_up_proj: split by rows
      optional(phi3, () => fusedRows(`${p}self_attn.qkv_proj.weight`, H, [qd, kd, kd])),
      optional(phi3, () => fusedRows(`${p}mlp.gate_up_proj.weight`, H, [I, I])),
      optional(!phi3, () => lin(`${p}self_attn.q_proj.weight`, qd, H)),
      optional(!phi3, () => lin(`${p}self_attn.k_proj.weight`, kd, H)),
      optional(!phi3, () => lin(`${p}self_attn.v_proj.weight`, kd, H)),
      lin(`${p}self_attn.o_proj.weight`, H, qd),
      optional(!phi3, () => lin(`${p}mlp.gate_proj.weight`, I, H)),
      optional(!phi3, () => lin(`${p}mlp.up_proj.weight`, I, H)),
      lin(`${p}mlp.down_proj.weight`, H, I),
      optional(c.qkNorm, () => norm(`${p}self_attn.q_norm.weight`, c.headDim)),
      optional(c.qkNorm, () => norm(`${p}self_attn.k_norm.weight`, c.headDim)),
      norm(`${p}input_layernorm.weight`, H),
      norm(`${p}${c.gemma ? 'pre_feedforward_layernorm' : 'post_attention_layernorm'}.weight`, H),
      optional(!!c.gemma, () => norm(`${p}post_attention_layernorm.weight`, H)),
      optional(!!c.gemma, () => norm(`${p}post_feedforward_layernorm.weight`, H)),
    ] as const);
    const bias: Layer['bias'] = {};
    for (const [key, t] of [['q', bq], ['k', bk], ['v', bv], ['o', bo], ['gate', bgate], ['up', bup], ['down', bdown]] as const) if (t) bias[key] = t as Tensor;
    const [q2, k2, v2] = phi3 ? (qkv as Linear[]) : [q as Linear, k as Linear, v as Linear];
    const [gate2, up2] = phi3 ? (gateUp as Linear[]) : [gate as Linear, up as Linear];
    layers.push({
      ...(c.qkNorm ? { qNorm: qNorm as Tensor, kNorm: kNorm as Tensor } : {}),
      ...(c.gemma ? { postAttn: postAttn as Tensor, postFfn: postFfn as Tensor } : {}),
      ln1: ln1 as Tensor,
      ln2: ln2 as Tensor,
      q: q2,
      k: k2,
      v: v2,
      o: o as Linear,
      gate: gate2,
      up: up2,
      down: down as Linear,
      bias,
    });
  }
  const headName = !c.tied && src.has('lm_head.weight') ? 'lm_head.weight' : 'model.embed_tokens.weight';
  if (!c.tied && headName !== 'lm_head.weight') throw new IgnisError('E_FORMAT', `loadModel: the checkpoint has no tensor 'lm_head.weight' and tie_word_embeddings is false`);
  // A tied head kept as stored is the embedding itself (one copy); packed or int8 it is its own.
  const sameAsEmbed = headName === 'model.embed_tokens.weight' && o.quantize !== 'int8' && !(wdt === 'f32' && o.device === 'cpu');
  const head: Linear = sameAsEmbed ? { kind: 'tensor', t: embed } : await lin(headName, c.vocab, H);
  const scalar = (x: number) => tensor(new Float32Array([x]), { shape: [1], dtype: act, device: o.device });
  const gemma = c.gemma && {
    embedScale: scalar(c.gemma.embedScale),
    softcap: c.gemma.finalSoftcap ? ([scalar(1 / c.gemma.finalSoftcap), scalar(c.gemma.finalSoftcap)] as [Tensor, Tensor]) : undefined,
  };
  return { embed, norm: await norm('model.norm.weight', H), head, layers, gemma };
}

/** Every tensor of the weights (a tied head's once); not gemma's scalar constants, made from numbers. */
export function llamaTensors(w: LlamaWeights): Tensor[] {
  const out = [w.embed, w.norm, ...(w.head.t === w.embed ? [] : linearTensors(w.head))];
  for (const l of w.layers) {
    out.push(l.ln1, l.ln2, ...(l.qNorm ? [l.qNorm, l.kNorm!] : []), ...(l.postAttn ? [l.postAttn, l.postFfn!] : []), ...Object.values(l.bias));
    for (const x of [l.q, l.k, l.v, l.o, l.gate, l.up, l.down]) out.push(...linearTensors(x));
  }
  return out;
}

export function disposeLlama(w: LlamaWeights): void {
  w.gemma?.embedScale.dispose();
  for (const t of w.gemma?.softcap ?? []) t.dispose();
  w.embed.dispose();
  w.norm.dispose();
  disposeLinear(w.head);
  for (const l of w.layers) {
    l.ln1.dispose();
    l.ln2.dispose();
    l.qNorm?.dispose();
    l.kNorm?.dispose();
    l.postAttn?.dispose();
    l.postFfn?.dispose();
    for (const b of Object.values(l.bias)) b.dispose();
    for (const x of [l.q, l.k, l.v, l.o, l.gate, l.up, l.down]) disposeLinear(x);
  }
}

/**
 * ids [batch, seq] -> logits: every position's ('full': no cache, causal over the input) or
 * the last position's ('step': appends to the KV caches at `position`).
 */
export function buildLlama(g: GraphBuilder, c: LlamaConfig, w: LlamaWeights, mode: 'full' | 'step', maxSeq: number, int8Activations = false): void {
  llamaGraph(g, c, w, mode, maxSeq, int8Activations);
}

/**
 * The serving step of continuous batching (servegraph.ts: its inputs and outputs): any mix of
 * sequences, each at its own position, as one batch of token rows. The linear layers run over all
 * rows at once (each weight read once a step, whatever the number of sequences); attention runs
 * each row against its own sequence's rows in the paged cache.
 */
export function buildLlamaServe(g: GraphBuilder, c: LlamaConfig, w: LlamaWeights, maxSeq: number, layout: ServeLayout, int8Activations = false): void {
  llamaGraph(g, c, w, 'serve', maxSeq, int8Activations, layout);
}

function llamaGraph(g: GraphBuilder, c: LlamaConfig, w: LlamaWeights, mode: 'full' | 'step' | 'serve', maxSeq: number, int8Activations: boolean, layout?: ServeLayout): void {
  const serve = mode === 'serve' ? serveInputs(g, layout!) : undefined;
  const ids = serve ? serve.ids : g.input('ids', { shape: ['batch', 'seq'], dtype: 'i32' });
  const position: GraphScalar | undefined = mode === 'step' ? g.scalar('position') : undefined;
  const positions = serve ? g.reshape(serve.positions, [1, 'tokens']) : undefined; // rope's [batch, seq]
  const rowDims = serve ? ['tokens'] : ['batch', 'seq'];
  const dtype = w.norm.dtype as 'f32' | 'f16' | 'bf16'; // the activations' (an int8 model's table may be 16-bit)
  const linear = (x: GraphNode, name: string, l: Linear, activation?: 'silu' | 'gelu', bias?: Tensor) => {
    const { b, ...how } = graphLinear(g, name, l, int8Activations);
    return g.matmul(x, b, { ...how, activation, bias: bias && g.weight(`${name}.bias`, bias) }); // act(x W^T + b)
  };
  let x = g.embedding(ids, g.weight('embed', w.embed)); // [batch, seq, hidden] (serve: [tokens, hidden])
  if (w.embed.dtype !== dtype) x = g.cast(x, dtype);
  const gm = c.gemma, gw = w.gemma;
  if (gw) x = g.mul(x, g.weight('embed_scale', gw.embedScale)); // gemma: x sqrt(hidden)
  w.layers.forEach((l, i) => {
    const h = g.rmsnorm(x, g.weight(`l${i}.ln1`, l.ln1), { eps: c.eps });
    const heads = (y: GraphNode, n: number) => g.reshape(y, [...rowDims, n, c.headDim]);
    // qwen3: q and k RMS-normalized per head (over headDim) before the rotation
    const qkNorm = (y: GraphNode, w: Tensor | undefined, name: string) => (w ? g.rmsnorm(y, g.weight(name, w), { eps: c.eps }) : y);
    // gemma's sliding layers rotate with their own base
    const sliding = !!c.windows?.layers[i];
    const r = gm && sliding ? gm.localRope : c.rope;
    const rope = (y: GraphNode, n: number) =>
      positions
        ? g.reshape(g.rope(g.reshape(y, [1, 'tokens', n, c.headDim]), { positions, theta: r.theta, freqs: r.freqs, scale: r.scale }), ['tokens', n, c.headDim])
        : g.rope(y, { position, theta: r.theta, freqs: r.freqs, scale: r.scale });
    const q = rope(qkNorm(heads(linear(h, `l${i}.q`, l.q, undefined, l.bias.q), c.heads), l.qNorm, `l${i}.qnorm`), c.heads);
    const k = rope(qkNorm(heads(linear(h, `l${i}.k`, l.k, undefined, l.bias.k), c.kvHeads), l.kNorm, `l${i}.knorm`), c.kvHeads);
    const v = heads(linear(h, `l${i}.v`, l.v, undefined, l.bias.v), c.kvHeads);
    // a sliding window matters only past its size: below it, it is the full attention
    const window = sliding && maxSeq > c.windows!.size ? c.windows!.size : 0;
    const how = { window, scale: gm?.attnScale, softcap: gm?.attnSoftcap };
    const a = serve
      ? g.pagedAttention(q, k, v, { cache: g.pagedKvCache(`layer${i}`, { blocks: layout!.blocks, blockSize: layout!.blockSize, heads: c.kvHeads, headDim: c.headDim, dtype }), slots: serve.slots, blockTables: serve.blockTables, rows: serve.rows, ...how })
      : g.attention(q, k, v, { causal: true, cache: mode === 'step' ? g.kvCache(`layer${i}`, { batch: 'batch', maxSeq, heads: c.kvHeads, headDim: c.headDim, dtype }) : undefined, position, ...how });
    // gemma normalizes the attention's and the MLP's outputs before adding them
    const post = (y: GraphNode, t: Tensor | undefined, name: string) => (t ? g.rmsnorm(y, g.weight(name, t), { eps: c.eps }) : y);
    x = g.add(x, post(linear(g.reshape(a, [...rowDims, c.heads * c.headDim]), `l${i}.o`, l.o, undefined, l.bias.o), l.postAttn, `l${i}.postattn`));
    const h2 = g.rmsnorm(x, g.weight(`l${i}.ln2`, l.ln2), { eps: c.eps });
    const act = gm ? 'gelu' : 'silu';
    const mlp = g.mul(linear(h2, `l${i}.gate`, l.gate, act, l.bias.gate), linear(h2, `l${i}.up`, l.up, undefined, l.bias.up)); // act(gate) * up
    x = g.add(x, post(linear(mlp, `l${i}.down`, l.down, undefined, l.bias.down), l.postFfn, `l${i}.postffn`));
  });
  // serve: only the rows whose next token is wanted go through the final norm and the LM head
  let y = g.rmsnorm(serve ? g.embedding(serve.logitRows, x) : x, g.weight('norm', w.norm), { eps: c.eps });
  if (mode === 'step') y = g.last(y);
  let logits = linear(y, 'head', w.head);
  // gemma's final soft-capping: cap tanh(logits / cap)
  if (gw?.softcap) logits = g.mul(g.activation(g.mul(logits, g.weight('softcap_inv', gw.softcap[0])), 'tanh'), g.weight('softcap', gw.softcap[1]));
  if (serve) return serveOutputs(g, logits);
  g.output('logits', logits);
  if (mode === 'step') g.output('next', g.argmax(logits)); // [batch, 1]: the greedy token, fed to the next step
}

/**
 * Promise.all that waits for every promise before it throws (the first rejection): a failed load
 * leaves no read running, so the caller can free what was read.
 */
async function settleAll<T extends readonly Promise<unknown>[]>(ps: T): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const r = await Promise.allSettled(ps);
  const bad = r.find((x) => x.status === 'rejected');
  if (bad) throw (bad as PromiseRejectedResult).reason;
  return r.map((x) => (x as PromiseFulfilledResult<unknown>).value) as { -readonly [K in keyof T]: Awaited<T[K]> };
}
