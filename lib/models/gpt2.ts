// GPT-2 (Hugging Face GPT2LMHeadModel layout, with or without the 'transformer.' prefix):
// learned positions, pre-LayerNorm blocks, tanh GELU, Conv1D weights stored [in, out] with the
// fused c_attn (q | k | v), LM head tied to the token embedding.
import { IgnisError } from '../errors';
import { GraphBuilder, GraphNode, GraphScalar } from '../graph';
import { TensorSource } from '../safetensors';
import { tensor, Tensor } from '../tensor';
import { serveInputs, serveOutputs, type ServeLayout } from './servegraph';
import { configBool, configInt as needInt, configNumber as need, disposeLinear, graphLinear, Linear, linearTensors, linearFromNK, modelDtypes, readChecked, readHost, transposeCols, WeightOptions } from './weights';

export interface Gpt2Config {
  modelType: 'gpt2';
  vocab: number;
  positions: number;
  embd: number;
  layers: number;
  heads: number;
  inner: number;
  eps: number;
  /** scale_attn_weights: scores divided by sqrt(head_dim) (default true) */
  scaleWeights: boolean;
  /** scale_attn_by_inverse_layer_idx: layer i's scores also divided by i + 1 (default false) */
  scaleByLayer: boolean;
}

export function gpt2Config(cfg: Record<string, unknown>): Gpt2Config {
  const act = cfg.activation_function ?? 'gelu_new';
  if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh')
    throw new IgnisError('E_FORMAT', `loadModel: config.json: activation_function '${act}' is not supported (gelu_new)`);
  const embd = needInt(cfg, 'n_embd');
  const c: Gpt2Config = {
    modelType: 'gpt2',
    vocab: needInt(cfg, 'vocab_size'),
    positions: needInt(cfg, 'n_positions', (cfg.n_ctx as number | undefined) ?? 1024),
    embd,
    layers: needInt(cfg, 'n_layer'),
    heads: needInt(cfg, 'n_head'),
    inner: cfg.n_inner == null ? 4 * embd : needInt(cfg, 'n_inner'),
    eps: need(cfg, 'layer_norm_epsilon', 1e-5),
    scaleWeights: configBool(cfg, 'scale_attn_weights', true),
    scaleByLayer: configBool(cfg, 'scale_attn_by_inverse_layer_idx', false),
  };
  // reorder_and_upcast_attn only upcasts the scores to f32, which the kernels accumulate in anyway
  configBool(cfg, 'reorder_and_upcast_attn', false);
  if (configBool(cfg, 'add_cross_attention', false))
    throw new IgnisError('E_FORMAT', 'loadModel: config.json: add_cross_attention: true is not supported (a decoder-only GPT-2)');
  if (c.embd % c.heads || (c.embd / c.heads) % 2) throw new IgnisError('E_FORMAT', `loadModel: config.json: n_embd ${c.embd} does not split into ${c.heads} heads of even size`);
  return c;
}

interface Block {
  ln1: [Tensor, Tensor];
  ln2: [Tensor, Tensor];
  q: Linear;
  k: Linear;
  v: Linear;
  qb: Tensor;
  kb: Tensor;
  vb: Tensor;
  proj: Linear;
  projB: Tensor;
  fc: Linear;
  fcB: Tensor;
  out: Linear;
  outB: Tensor;
}

export interface Gpt2Weights {
  wte: Tensor; // [vocab, embd], for the embedding (and the head when it is not quantized)
  wpe: Tensor;
  lnf: [Tensor, Tensor];
  head: Linear;
  blocks: Block[];
}

export async function loadGpt2(src: TensorSource, c: Gpt2Config, o: WeightOptions): Promise<Gpt2Weights> {
  const prefix = src.has('wte.weight') ? '' : src.has('transformer.wte.weight') ? 'transformer.' : null;
  if (prefix === null) throw new IgnisError('E_FORMAT', `loadModel: the checkpoint has no tensor 'wte.weight' (or 'transformer.wte.weight')`);
  const { act, weights: wdt } = modelDtypes(o);
  const E = c.embd, I = c.inner;
  const vec = (name: string, n: number) => readChecked(src, prefix + name, [n], act, o.device);
  // Conv1D stores W [in, out] (y = x W + b); a linear weight here is [out, in].
  const conv = async (name: string, K: number, N: number, cols: [number, number][]) => {
    const host = await readHost(src, prefix + name, [K, N]);
    return cols.map(([c0, c1]) => linearFromNK(tensor(transposeCols(host, K, N, c0, c1), { shape: [c1 - c0, K], dtype: wdt, device: o.device }), o));
  };
  const split = async (name: string, parts: number) => {
    const host = await readHost(src, prefix + name, [parts * E]);
    return Array.from({ length: parts }, (_, i) => tensor(host.slice(i * E, (i + 1) * E), { shape: [E], dtype: act, device: o.device }));
  };
  // wte is also the tied head: the weights' dtype (a row cast after the lookup under f32 activations)
  const wte = await readChecked(src, prefix + 'wte.weight', [c.vocab, E], o.quantize ? act : wdt, o.device);
  const wpe = await readChecked(src, prefix + 'wpe.weight', [c.positions, E], act, o.device);
  const blocks: Block[] = [];
  for (let i = 0; i < c.layers; i++) {
    const p = `h.${i}.`;
    const [q, k, v] = await conv(`${p}attn.c_attn.weight`, E, 3 * E, [[0, E], [E, 2 * E], [2 * E, 3 * E]]);
    const [qb, kb, vb] = await split(`${p}attn.c_attn.bias`, 3);
    blocks.push({
      ln1: [await vec(`${p}ln_1.weight`, E), await vec(`${p}ln_1.bias`, E)],
      ln2: [await vec(`${p}ln_2.weight`, E), await vec(`${p}ln_2.bias`, E)],
      q, k, v, qb, kb, vb,
      proj: (await conv(`${p}attn.c_proj.weight`, E, E, [[0, E]]))[0],
      projB: await vec(`${p}attn.c_proj.bias`, E),
      fc: (await conv(`${p}mlp.c_fc.weight`, E, I, [[0, I]]))[0],
      fcB: await vec(`${p}mlp.c_fc.bias`, I),
      out: (await conv(`${p}mlp.c_proj.weight`, I, E, [[0, E]]))[0],
      outB: await vec(`${p}mlp.c_proj.bias`, E),
    });
  }
  const lnf: [Tensor, Tensor] = [await vec('ln_f.weight', E), await vec('ln_f.bias', E)];
  // The head: lm_head.weight when the checkpoint has its own, else the token embedding.
  const headName = src.has('lm_head.weight') ? 'lm_head.weight' : prefix + 'wte.weight';
  let head: Linear;
  if (o.quantize) head = linearFromNK(await readChecked(src, headName, [c.vocab, E], 'f32', o.device), o);
  else if (headName === prefix + 'wte.weight') head = { kind: 'tensor', t: wte };
  else head = { kind: 'tensor', t: await readChecked(src, headName, [c.vocab, E], wdt, o.device) };
  return { wte, wpe, lnf, head, blocks };
}

/** Every tensor of the weights (a tied head's once). */
export function gpt2Tensors(w: Gpt2Weights): Tensor[] {
  const out = [w.wte, w.wpe, w.lnf[0], w.lnf[1], ...(w.head.kind === 'tensor' && w.head.t === w.wte ? [] : linearTensors(w.head))];
  for (const b of w.blocks) {
    out.push(b.ln1[0], b.ln1[1], b.ln2[0], b.ln2[1], b.qb, b.kb, b.vb, b.projB, b.fcB, b.outB);
    for (const l of [b.q, b.k, b.v, b.proj, b.fc, b.out]) out.push(...linearTensors(l));
  }
  return out;
}

export function disposeGpt2(w: Gpt2Weights): void {
  if (!(w.head.kind === 'tensor' && w.head.t === w.wte)) disposeLinear(w.head);
  for (const x of [w.wte, w.wpe, w.lnf[0], w.lnf[1]]) x.dispose();
  for (const b of w.blocks) {
    for (const x of [b.ln1[0], b.ln1[1], b.ln2[0], b.ln2[1], b.qb, b.kb, b.vb, b.projB, b.fcB, b.outB]) x.dispose();
    for (const l of [b.q, b.k, b.v, b.proj, b.fc, b.out]) disposeLinear(l);
  }
}

export function buildGpt2(g: GraphBuilder, c: Gpt2Config, w: Gpt2Weights, mode: 'full' | 'step', maxSeq: number, int8Activations = false): void {
  gpt2Graph(g, c, w, mode, maxSeq, int8Activations);
}

/** The serving step of continuous batching for GPT-2 (servegraph.ts; learned positions, looked up per row). */
export function buildGpt2Serve(g: GraphBuilder, c: Gpt2Config, w: Gpt2Weights, layout: ServeLayout, int8Activations = false): void {
  gpt2Graph(g, c, w, 'serve', 0, int8Activations, layout);
}

// mode 'full' and 'step': ids [batch, seq] (step: appending to the KV caches at `position`);
// 'serve': the serving inputs, rows of any sequences over paged caches.
function gpt2Graph(g: GraphBuilder, c: Gpt2Config, w: Gpt2Weights, mode: 'full' | 'step' | 'serve', maxSeq: number, int8Activations: boolean, layout?: ServeLayout): void {
  const serve = mode === 'serve' ? serveInputs(g, layout!) : undefined;
  const ids = serve ? serve.ids : g.input('ids', { shape: ['batch', 'seq'], dtype: 'i32' });
  const position: GraphScalar | undefined = mode === 'step' ? g.scalar('position') : undefined;
  const dtype = w.lnf[0].dtype as 'f32' | 'f16' | 'bf16'; // the activations'
  const hd = c.embd / c.heads;
  const rowDims = serve ? ['tokens'] : ['batch', 'seq'];
  const wte = g.weight('wte', w.wte);
  const linear = (x: GraphNode, name: string, l: Linear, bias?: Tensor, activation?: 'gelu') => {
    const { b, ...how } = graphLinear(g, name, l, int8Activations);
    return g.matmul(x, b, { ...how, bias: bias && g.weight(`${name}.bias`, bias), activation });
  };
  // x = wte[ids] + wpe[position + s] (serve: wpe[positions])
  let e = g.embedding(ids, wte);
  if (w.wte.dtype !== dtype) e = g.cast(e, dtype);
  const wpe = g.weight('wpe', w.wpe);
  let x = g.add(e, serve ? g.embedding(serve.positions, wpe) : g.rows(wpe, { start: position ?? 0, count: 'seq' }));
  w.blocks.forEach((b, i) => {
    const h = g.layernorm(x, g.weight(`h${i}.ln1.w`, b.ln1[0]), g.weight(`h${i}.ln1.b`, b.ln1[1]), { eps: c.eps });
    const heads = (y: GraphNode) => g.reshape(y, [...rowDims, c.heads, hd]);
    const q = heads(linear(h, `h${i}.q`, b.q, b.qb));
    const k = heads(linear(h, `h${i}.k`, b.k, b.kb));
    const v = heads(linear(h, `h${i}.v`, b.v, b.vb));
    // scores = q k^T / sqrt(hd) / (i + 1), as scale_attn_weights and scale_attn_by_inverse_layer_idx say
    const scale = c.scaleWeights && !c.scaleByLayer ? undefined : (c.scaleWeights ? 1 / Math.sqrt(hd) : 1) / (c.scaleByLayer ? i + 1 : 1);
    let att: GraphNode;
    if (serve) {
      const cache = g.pagedKvCache(`layer${i}`, { blocks: layout!.blocks, blockSize: layout!.blockSize, heads: c.heads, headDim: hd, dtype });
      att = g.pagedAttention(q, k, v, { cache, slots: serve.slots, blockTables: serve.blockTables, rows: serve.rows, scale });
    } else {
      const cache = mode === 'step' ? g.kvCache(`layer${i}`, { batch: 'batch', maxSeq, heads: c.heads, headDim: hd, dtype }) : undefined;
      att = g.attention(q, k, v, { causal: true, cache, position, scale });
    }
    x = g.add(x, linear(g.reshape(att, [...rowDims, c.embd]), `h${i}.proj`, b.proj, b.projB));
    const h2 = g.layernorm(x, g.weight(`h${i}.ln2.w`, b.ln2[0]), g.weight(`h${i}.ln2.b`, b.ln2[1]), { eps: c.eps });
    x = g.add(x, linear(linear(h2, `h${i}.fc`, b.fc, b.fcB, 'gelu'), `h${i}.out`, b.out, b.outB));
  });
  // serve: only the rows whose next token is wanted go on
  let y = g.layernorm(serve ? g.embedding(serve.logitRows, x) : x, g.weight('lnf.w', w.lnf[0]), g.weight('lnf.b', w.lnf[1]), { eps: c.eps });
  if (mode === 'step') y = g.last(y);
  const logits = w.head.kind === 'tensor' && w.head.t === w.wte ? g.matmul(y, wte, { transposeB: true }) : linear(y, 'head', w.head);
  if (serve) return serveOutputs(g, logits);
  g.output('logits', logits);
  if (mode === 'step') g.output('next', g.argmax(logits)); // [batch, 1]: the greedy token, fed to the next step
}
