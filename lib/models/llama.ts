// Llama (Hugging Face LlamaForCausalLM layout): RMSNorm, rotary positions (rope_theta),
// grouped-query attention, SwiGLU MLP, optional untied LM head.
import { IgnisError } from '../errors';
import { GraphBuilder, GraphCache, GraphNode, GraphScalar } from '../graph';
import { TensorSource } from '../safetensors';
import { Tensor } from '../tensor';
import { configBool, configInt as needInt, configNumber as need, disposeLinear, graphLinear, Linear, linearBytes, linearFromNK, readChecked, tensorBytes, WeightOptions } from './weights';

export interface LlamaConfig {
  modelType: 'llama';
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  theta: number;
  maxPositions: number;
  tied: boolean;
}

export function llamaConfig(cfg: Record<string, unknown>): LlamaConfig {
  for (const k of ['attention_bias', 'mlp_bias'])
    if (configBool(cfg, k, false)) throw new IgnisError('E_FORMAT', `loadModel: config.json: ${k}: true is not supported`);
  if (cfg.hidden_act !== undefined && cfg.hidden_act !== 'silu')
    throw new IgnisError('E_FORMAT', `loadModel: config.json: hidden_act '${cfg.hidden_act}' is not supported (silu)`);
  const hidden = needInt(cfg, 'hidden_size'), heads = needInt(cfg, 'num_attention_heads');
  const c: LlamaConfig = {
    modelType: 'llama',
    vocab: needInt(cfg, 'vocab_size'),
    hidden,
    intermediate: needInt(cfg, 'intermediate_size'),
    layers: needInt(cfg, 'num_hidden_layers'),
    heads,
    kvHeads: needInt(cfg, 'num_key_value_heads', heads),
    headDim: cfg.head_dim == null ? hidden / heads : needInt(cfg, 'head_dim'),
    eps: need(cfg, 'rms_norm_eps', 1e-6),
    theta: ropeTheta(cfg),
    maxPositions: needInt(cfg, 'max_position_embeddings', 2048),
    tied: cfg.tie_word_embeddings === true,
  };
  if (!Number.isInteger(c.headDim) || c.headDim % 2 || c.heads % c.kvHeads)
    throw new IgnisError('E_FORMAT', `loadModel: config.json: heads ${c.heads}, kv heads ${c.kvHeads} and head_dim ${c.headDim} do not fit together`);
  return c;
}

/**
 * RoPE's base as transformers reads it: transformers 5 writes `rope_parameters: { rope_type,
 * rope_theta, ... }`, 4.x a top-level `rope_theta` and an optional `rope_scaling`. Only the
 * default rotation is computed here; every other rope type, and a partial rotary factor, is
 * E_FORMAT naming the key (a wrong rotation would give wrong logits and no error).
 */
function ropeTheta(cfg: Record<string, unknown>): number {
  const typeOf = (o: Record<string, unknown>) => o.rope_type ?? o.type ?? 'default';
  const where = (k: string, o: unknown) => `loadModel: config.json: ${k} ${JSON.stringify(o)}`;
  if (cfg.rope_scaling != null) {
    const s = cfg.rope_scaling;
    if (typeof s !== 'object' || Array.isArray(s)) throw new IgnisError('E_FORMAT', `${where('rope_scaling', s)} is not an object`);
    if (typeOf(s as Record<string, unknown>) !== 'default')
      throw new IgnisError('E_FORMAT', `${where('rope_scaling', s)} is not supported yet (the default rotation only)`);
  }
  if (cfg.partial_rotary_factor != null && cfg.partial_rotary_factor !== 1)
    throw new IgnisError('E_FORMAT', `${where('partial_rotary_factor', cfg.partial_rotary_factor)} is not supported (1: every dimension rotates)`);
  const p = cfg.rope_parameters;
  if (p == null) return need(cfg, 'rope_theta', 10000);
  if (typeof p !== 'object' || Array.isArray(p)) throw new IgnisError('E_FORMAT', `${where('rope_parameters', p)} is not an object`);
  const params = p as Record<string, unknown>;
  if (typeOf(params) !== 'default')
    throw new IgnisError('E_FORMAT', `loadModel: config.json: rope_parameters.rope_type ${JSON.stringify(typeOf(params))} is not supported yet (default)`);
  if (params.partial_rotary_factor != null && params.partial_rotary_factor !== 1)
    throw new IgnisError('E_FORMAT', `${where('rope_parameters.partial_rotary_factor', params.partial_rotary_factor)} is not supported (1: every dimension rotates)`);
  if (params.rope_theta == null) return need(cfg, 'rope_theta', 10000);
  const theta = need(params, 'rope_theta');
  if (cfg.rope_theta != null && cfg.rope_theta !== theta)
    throw new IgnisError('E_FORMAT', `loadModel: config.json: rope_theta ${JSON.stringify(cfg.rope_theta)} and rope_parameters.rope_theta ${theta} disagree`);
  return theta;
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
}

export interface LlamaWeights {
  embed: Tensor; // [vocab, hidden], activation dtype
  norm: Tensor;
  head: Linear;
  layers: Layer[];
}

export async function loadLlama(src: TensorSource, c: LlamaConfig, o: WeightOptions): Promise<LlamaWeights> {
  const act = o.quantize ? 'f32' : o.dtype;
  const vec = (name: string, n: number) => readChecked(src, name, [n], act, o.device);
  const lin = async (name: string, N: number, K: number) =>
    linearFromNK(await readChecked(src, name, [N, K], act, o.device), o);
  const H = c.hidden, I = c.intermediate, qd = c.heads * c.headDim, kd = c.kvHeads * c.headDim;
  const embed = await readChecked(src, 'model.embed_tokens.weight', [c.vocab, H], act, o.device);
  const layers: Layer[] = [];
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}.`;
    layers.push({
      ln1: await vec(`${p}input_layernorm.weight`, H),
      ln2: await vec(`${p}post_attention_layernorm.weight`, H),
      q: await lin(`${p}self_attn.q_proj.weight`, qd, H),
      k: await lin(`${p}self_attn.k_proj.weight`, kd, H),
      v: await lin(`${p}self_attn.v_proj.weight`, kd, H),
      o: await lin(`${p}self_attn.o_proj.weight`, H, qd),
      gate: await lin(`${p}mlp.gate_proj.weight`, I, H),
      up: await lin(`${p}mlp.up_proj.weight`, I, H),
      down: await lin(`${p}mlp.down_proj.weight`, H, I),
    });
  }
  const headName = !c.tied && src.has('lm_head.weight') ? 'lm_head.weight' : 'model.embed_tokens.weight';
  if (!c.tied && headName !== 'lm_head.weight') throw new IgnisError('E_FORMAT', `loadModel: the checkpoint has no tensor 'lm_head.weight' and tie_word_embeddings is false`);
  const head = await lin(headName, c.vocab, H);
  return { embed, norm: await vec('model.norm.weight', H), head, layers };
}

export function llamaWeightBytes(w: LlamaWeights): number {
  let n = tensorBytes(w.embed) + tensorBytes(w.norm) + linearBytes(w.head);
  for (const l of w.layers) {
    n += tensorBytes(l.ln1) + tensorBytes(l.ln2);
    for (const x of [l.q, l.k, l.v, l.o, l.gate, l.up, l.down]) n += linearBytes(x);
  }
  return n;
}

export function disposeLlama(w: LlamaWeights): void {
  w.embed.dispose();
  w.norm.dispose();
  disposeLinear(w.head);
  for (const l of w.layers) {
    l.ln1.dispose();
    l.ln2.dispose();
    for (const x of [l.q, l.k, l.v, l.o, l.gate, l.up, l.down]) disposeLinear(x);
  }
}

/**
 * ids [batch, seq] -> logits: every position's ('full': no cache, causal over the input) or
 * the last position's ('step': appends to the KV caches at `position`).
 */
export function buildLlama(g: GraphBuilder, c: LlamaConfig, w: LlamaWeights, mode: 'full' | 'step', maxSeq: number): void {
  const ids = g.input('ids', { shape: ['batch', 'seq'], dtype: 'i32' });
  const position: GraphScalar | undefined = mode === 'step' ? g.scalar('position') : undefined;
  const dtype = w.embed.dtype as 'f32' | 'f16' | 'bf16';
  const linear = (x: GraphNode, name: string, l: Linear, activation?: 'silu') => {
    const { b, transposeB } = graphLinear(g, name, l);
    return g.matmul(x, b, { transposeB, activation });
  };
  let x = g.embedding(ids, g.weight('embed', w.embed)); // [batch, seq, hidden]
  w.layers.forEach((l, i) => {
    const cache: GraphCache | undefined =
      mode === 'step' ? g.kvCache(`layer${i}`, { batch: 'batch', maxSeq, heads: c.kvHeads, headDim: c.headDim, dtype }) : undefined;
    const h = g.rmsnorm(x, g.weight(`l${i}.ln1`, l.ln1), { eps: c.eps });
    const heads = (y: GraphNode, n: number) => g.reshape(y, ['batch', 'seq', n, c.headDim]);
    const q = g.rope(heads(linear(h, `l${i}.q`, l.q), c.heads), { position, theta: c.theta });
    const k = g.rope(heads(linear(h, `l${i}.k`, l.k), c.kvHeads), { position, theta: c.theta });
    const v = heads(linear(h, `l${i}.v`, l.v), c.kvHeads);
    const a = g.attention(q, k, v, { causal: true, cache, position }); // [batch, seq, heads, headDim]
    x = g.add(x, linear(g.reshape(a, ['batch', 'seq', c.heads * c.headDim]), `l${i}.o`, l.o));
    const h2 = g.rmsnorm(x, g.weight(`l${i}.ln2`, l.ln2), { eps: c.eps });
    const mlp = g.mul(linear(h2, `l${i}.gate`, l.gate, 'silu'), linear(h2, `l${i}.up`, l.up)); // silu(gate) * up
    x = g.add(x, linear(mlp, `l${i}.down`, l.down));
  });
  let y = g.rmsnorm(x, g.weight('norm', w.norm), { eps: c.eps });
  if (mode === 'step') y = g.last(y);
  const logits = linear(y, 'head', w.head);
  g.output('logits', logits);
  if (mode === 'step') g.output('next', g.argmax(logits)); // [batch, 1]: the greedy token, fed to the next step
}
