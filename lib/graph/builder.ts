// The graph builder: describe a forward pass once (ignis.graph()), node by node. Each op node's
// shape and dtype come from the native op table's rules (native().infer), the same rules the
// eager ops and the compiled plan apply, so shape and dtype errors are raised while building,
// naming the nodes. Shapes may name symbolic dimensions ('batch', 'seq') whose maxima are given
// at compile (./compile.ts), which makes the native plan that ./model.ts runs.
import { native } from '../binding';
import { describe, IgnisError, rangeError, typeError } from '../errors';
import { DType, FloatDType, isFloatDType } from '../dtype';
import { ACTIVATIONS, ActivationName, OpName, ParamsOf } from '../native-tables';
import { PackedWeight } from '../packed';
import { QuantizedTensor } from '../quant';
import { handle, Tensor } from '../tensor';
import type { Device } from '../device';
import * as v from '../validate';
import { compileGraph } from './compile';
import type { Model } from './model';

/** A dimension: a size, or the name of a symbolic dimension bound by the inputs at run time. */
export type Dim = number | string;

function dimsStr(d: readonly Dim[]): string {
  return `[${d.join(', ')}]`;
}

/** @internal A node: an input, a weight, a view (reshape) or an op of the native table. */
export interface NodeRec {
  id: number;
  label: string;
  kind: 'input' | 'weight' | 'op' | 'view';
  op?: OpName;
  params?: object; // the op's params (ParamsOf<op>)
  in: number[]; // operand node ids (absent optional ones left off the end)
  shape: Dim[];
  dtype: DType;
  scalar: number; // the run-time integer added to the op's position, or -1
  cache: number; // attention with a cache: the cache's index (compiled to kv_append + attention); paged_attention: the paged cache's (kv_write + paged_attention)
  tensor?: Tensor; // weight
  inputName?: string;
}

/** A value in a graph under construction: its shape (with symbols) and dtype. */
export class GraphNode {
  /** @internal */ readonly graph: GraphBuilder;
  /** @internal */ readonly id: number;
  readonly shape: readonly Dim[];
  readonly dtype: DType;
  /** What made it, for messages: "input 'ids'", "matmul #12", ... */
  readonly label: string;
  /** @internal */
  constructor(g: GraphBuilder, r: NodeRec) {
    this.graph = g;
    this.id = r.id;
    this.shape = Object.freeze(r.shape.slice());
    this.dtype = r.dtype;
    this.label = r.label;
  }
  toString(): string {
    return `GraphNode(${this.label}, ${dimsStr(this.shape)}, ${this.dtype})`;
  }
}

/** A QuantizedTensor or PackedWeight in a graph: usable as matmul's b. */
export class GraphWeight {
  /** @internal */ readonly graph: GraphBuilder;
  /** @internal */ readonly kind: 'quantized' | 'packed';
  /** @internal */ readonly parts: number[];
  /** [K, N] as matmul sees it (quantized: from [N, K]) */
  readonly K: number;
  readonly N: number;
  readonly groupSize: number;
  readonly label: string;
  /** @internal */
  constructor(g: GraphBuilder, kind: 'quantized' | 'packed', parts: number[], K: number, N: number, groupSize: number, label: string) {
    this.graph = g;
    this.kind = kind;
    this.parts = parts;
    this.K = K;
    this.N = N;
    this.groupSize = groupSize;
    this.label = label;
  }
}

/** An integer given with each run (e.g. the position of the first new token). */
export class GraphScalar {
  /** @internal */ readonly graph: GraphBuilder;
  readonly name: string;
  /** @internal */ readonly index: number;
  /** @internal */
  constructor(g: GraphBuilder, name: string, index: number) {
    this.graph = g;
    this.name = name;
    this.index = index;
  }
}

/** A KV cache that lives in a model's state: [batch, maxSeq, heads, headDim] keys and values. */
export class GraphCache {
  /** @internal */ readonly graph: GraphBuilder;
  readonly name: string;
  readonly batch: Dim;
  readonly maxSeq: Dim;
  readonly heads: number;
  readonly headDim: number;
  readonly dtype: FloatDType;
  /** @internal */ readonly index: number;
  /** @internal */
  constructor(g: GraphBuilder, name: string, index: number, o: { batch: Dim; maxSeq: Dim; heads: number; headDim: number; dtype: FloatDType }) {
    this.graph = g;
    this.name = name;
    this.index = index;
    this.batch = o.batch;
    this.maxSeq = o.maxSeq;
    this.heads = o.heads;
    this.headDim = o.headDim;
    this.dtype = o.dtype;
  }
}

/** A paged KV cache in a model's state: pools [blocks, blockSize, heads, headDim] of keys and values (ignis.pagedKvCache). */
export class GraphPagedCache {
  /** @internal */ readonly graph: GraphBuilder;
  readonly name: string;
  readonly blocks: number;
  readonly blockSize: number;
  readonly heads: number;
  readonly headDim: number;
  readonly dtype: FloatDType;
  /** @internal */ readonly index: number;
  /** @internal */
  constructor(g: GraphBuilder, name: string, index: number, o: { blocks: number; blockSize: number; heads: number; headDim: number; dtype: FloatDType }) {
    this.graph = g;
    this.name = name;
    this.index = index;
    this.blocks = o.blocks;
    this.blockSize = o.blockSize;
    this.heads = o.heads;
    this.headDim = o.headDim;
    this.dtype = o.dtype;
  }
}

export interface GraphPagedAttentionOptions {
  /** k, v are written to it at `slots` (i32 [rows]), then each q row attends to its sequence */
  cache: GraphPagedCache;
  slots: GraphNode;
  /** i32 [sequences, maxBlocks] */
  blockTables: GraphNode;
  /** i32 [rows, 2]: each row's sequence (-1: padding) and position */
  rows: GraphNode;
  scale?: number;
  /** the last `window` keys only (ignis.pagedAttention's window); 0: all */
  window?: number;
  /** score soft-capping; 0: none */
  softcap?: number;
}

export interface GraphInputOptions {
  shape: Dim[];
  dtype?: DType;
}
export interface GraphMatmulOptions {
  transposeB?: boolean;
  bias?: GraphNode;
  activation?: ActivationName;
  /** with a quantized weight: ignis.matmul's int8Activations (CPU) */
  int8Activations?: boolean;
}
export interface GraphAttentionOptions {
  causal?: boolean;
  scale?: number;
  /** append k, v to this cache at `position` and attend over rows [0, position + seq) */
  cache?: GraphCache;
  position?: GraphScalar;
  /** causal only: a sliding window of this many keys (ignis.attention's window); 0 none */
  window?: number;
  /** score soft-capping (ignis.attention's softcap); 0 none */
  softcap?: number;
}
export interface GraphRopeOptions {
  /** the position of token 0: a scalar given per run, a number, or both (scalar + offset) */
  position?: GraphScalar | number;
  /** i32 [batch, seq]: each token's own position, in place of position (ignis.rope's positions) */
  positions?: GraphNode;
  offset?: number;
  theta?: number;
  /** headDim/2 inverse frequencies in place of theta's (ignis.rope's freqs) */
  freqs?: readonly number[] | Float64Array;
  /** cos and sin are multiplied by it; default 1 */
  scale?: number;
}
export interface GraphKVCacheOptions {
  batch: Dim;
  maxSeq: Dim;
  heads: number;
  headDim: number;
  dtype?: FloatDType;
}
export interface CompileOptions {
  device?: Device;
  /** the maximum of each symbolic dimension, by name; `maxBatch: 4` also sets 'batch' */
  max?: Record<string, number>;
  [maxName: `max${string}`]: number | Record<string, number> | undefined;
}

/** g.gelu(x), g.silu(x), ...: one method per activation of ACTIVATIONS. */
type ActivationMethods = { [K in ActivationName]: (x: GraphNode) => GraphNode };
// eslint-disable-next-line @typescript-eslint/no-empty-object-type, @typescript-eslint/no-unsafe-declaration-merging
export interface GraphBuilder extends ActivationMethods {}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class GraphBuilder {
  /** @internal */ readonly nodes: NodeRec[] = [];
  /** @internal */ readonly scalars: string[] = [];
  /** @internal */ readonly caches: GraphCache[] = [];
  /** @internal */ readonly pagedCaches: GraphPagedCache[] = [];
  /** @internal */ readonly outputs: { name: string; node: number }[] = [];
  private readonly inputNames = new Set<string>();
  private readonly weightNames = new Set<string>();

  private push(r: Omit<NodeRec, 'id' | 'label' | 'scalar' | 'cache' | 'in'> & Partial<NodeRec>, label?: string): GraphNode {
    const id = this.nodes.length;
    const rec: NodeRec = { id, label: label ?? `${r.op ?? r.kind} #${id}`, in: [], scalar: -1, cache: -1, ...r };
    this.nodes.push(rec);
    return new GraphNode(this, rec);
  }

  private node(op: string, what: string, x: unknown): NodeRec {
    if (!(x instanceof GraphNode)) throw typeError(`graph.${op}: ${what} must be a node of this graph, got ${describe(x)}`);
    if (x.graph !== this) throw new IgnisError('E_ARGUMENT', `graph.${op}: ${what} (${x.label}) belongs to another graph`);
    return this.nodes[x.id];
  }

  private fail(op: string, msg: string): never {
    throw new IgnisError('E_SHAPE', `graph.${op} #${this.nodes.length}: ${msg}`);
  }

  // The outputs of `op` on operand nodes by the native rules (messages name the nodes).
  private infer<O extends OpName>(what: string, op: O, operands: readonly { shape: Dim[]; dtype: DType; label: string }[], params: ParamsOf<O>) {
    const ops = operands.map((r) => ({ dims: r.shape, dtype: r.dtype, name: r.label }));
    return native().infer(op, ops, params, `graph.${what} #${this.nodes.length}`);
  }

  // A node for `op` on operand nodes, shaped by the native rules.
  private op<O extends OpName>(what: string, op: O, ins: NodeRec[], params: ParamsOf<O>, extra?: Partial<NodeRec>): GraphNode {
    const [out] = this.infer(what, op, ins, params);
    return this.push({ kind: 'op', op, params, in: ins.map((r) => r.id), shape: out.dims, dtype: out.dtype as DType, ...extra }, `${what} #${this.nodes.length}`);
  }

  /** A run-time input; a string dimension is symbolic (its maximum is given at compile). */
  input(name: string, opts: GraphInputOptions): GraphNode {
    const op = 'input';
    if (typeof name !== 'string' || !name) throw typeError(`graph.${op}: name must be a non-empty string, got ${describe(name)}`);
    if (this.inputNames.has(name) || this.scalars.includes(name)) throw new IgnisError('E_ARGUMENT', `graph.${op}: '${name}' is already an input`);
    const o = v.options<GraphInputOptions>(op, opts, ['shape', 'dtype']);
    if (!Array.isArray(o.shape)) throw typeError(`graph.${op}: shape must be an array of sizes and symbol names, got ${describe(o.shape)}`);
    const shape = o.shape.map((d) => checkDim(op, d));
    const dtype = v.dtype(op, o.dtype, 'f32');
    this.inputNames.add(name);
    return this.push({ kind: 'input', shape, dtype, inputName: name }, `input '${name}'`);
  }

  /** An integer given with each run, e.g. `position` of the first new token. */
  scalar(name: string): GraphScalar {
    if (typeof name !== 'string' || !name) throw typeError(`graph.scalar: name must be a non-empty string, got ${describe(name)}`);
    if (this.inputNames.has(name) || this.scalars.includes(name)) throw new IgnisError('E_ARGUMENT', `graph.scalar: '${name}' is already an input`);
    this.scalars.push(name);
    return new GraphScalar(this, name, this.scalars.length - 1);
  }

  /** A constant: a Tensor, a QuantizedTensor or a PackedWeight (those two only as matmul's b). */
  weight(name: string, t: Tensor): GraphNode;
  weight(name: string, t: QuantizedTensor | PackedWeight): GraphWeight;
  weight(name: string, t: Tensor | QuantizedTensor | PackedWeight): GraphNode | GraphWeight {
    const op = 'weight';
    if (typeof name !== 'string' || !name) throw typeError(`graph.${op}: name must be a non-empty string, got ${describe(name)}`);
    if (this.weightNames.has(name)) throw new IgnisError('E_ARGUMENT', `graph.${op}: '${name}' is already a weight`);
    const tensorNode = (t: Tensor, label: string) => {
      handle(op, label, t); // disposed -> E_DISPOSED now
      return this.push({ kind: 'weight', shape: [...t.shape], dtype: t.dtype, tensor: t }, label);
    };
    let out: GraphNode | GraphWeight;
    if (t instanceof QuantizedTensor) {
      const q = tensorNode(t.q, `weight '${name}'.q`), s = tensorNode(t.scales, `weight '${name}'.scales`);
      out = new GraphWeight(this, 'quantized', [q.id, s.id], t.shape[1], t.shape[0], t.groupSize, `weight '${name}'`);
    } else if (t instanceof PackedWeight) {
      const p = tensorNode(t.packed, `weight '${name}'`);
      out = new GraphWeight(this, 'packed', [p.id], t.shape[0], t.shape[1], 0, `weight '${name}'`);
    } else if (Tensor.is(t)) {
      out = tensorNode(t, `weight '${name}'`);
    } else {
      throw typeError(`graph.${op}: '${name}' must be a Tensor, QuantizedTensor or PackedWeight, got ${describe(t)}`);
    }
    this.weightNames.add(name);
    return out;
  }

  /** A KV cache held in the model's state (model.createState()), one per attention layer. */
  kvCache(name: string, opts: GraphKVCacheOptions): GraphCache {
    const op = 'kvCache';
    const o = v.options<GraphKVCacheOptions>(op, opts, ['batch', 'maxSeq', 'heads', 'headDim', 'dtype']);
    const batch = checkDim(op, o.batch), maxSeq = checkDim(op, o.maxSeq);
    const heads = v.int(op, 'heads', o.heads, 1), headDim = v.int(op, 'headDim', o.headDim, 1);
    const dtype = v.dtype(op, o.dtype, 'f32');
    if (!isFloatDType(dtype)) throw new IgnisError('E_DTYPE', `graph.${op}: dtype must be f32, f16 or bf16, got ${dtype}`);
    const c = new GraphCache(this, String(name), this.caches.length, { batch, maxSeq, heads, headDim, dtype });
    this.caches.push(c);
    return c;
  }

  /** A paged KV cache held in the model's state (model.createState()), one per attention layer. */
  pagedKvCache(name: string, opts: { blocks: number; blockSize: number; heads: number; headDim: number; dtype?: FloatDType }): GraphPagedCache {
    const op = 'pagedKvCache';
    const o = v.options<{ blocks: number; blockSize: number; heads: number; headDim: number; dtype?: FloatDType }>(op, opts, ['blocks', 'blockSize', 'heads', 'headDim', 'dtype']);
    const dims = { blocks: v.int(op, 'blocks', o.blocks, 1), blockSize: v.int(op, 'blockSize', o.blockSize, 1), heads: v.int(op, 'heads', o.heads, 1), headDim: v.int(op, 'headDim', o.headDim, 1) };
    const dtype = v.dtype(op, o.dtype, 'f32');
    if (!isFloatDType(dtype)) throw new IgnisError('E_DTYPE', `graph.${op}: dtype must be f32, f16 or bf16, got ${dtype}`);
    const c = new GraphPagedCache(this, String(name), this.pagedCaches.length, { ...dims, dtype });
    this.pagedCaches.push(c);
    return c;
  }

  /**
   * k, v [rows, kvHeads, headDim] written into a paged cache at slots, then each row of q [rows,
   * heads, headDim] attending to its own sequence's rows [0, position] (ignis.pagedAttention).
   */
  pagedAttention(q: GraphNode, k: GraphNode, val: GraphNode, opts: GraphPagedAttentionOptions): GraphNode {
    const op = 'pagedAttention';
    const [rq, rk, rv] = [this.node(op, 'q', q), this.node(op, 'k', k), this.node(op, 'v', val)];
    const o = v.options<GraphPagedAttentionOptions>(op, opts, ['cache', 'slots', 'blockTables', 'rows', 'scale', 'window', 'softcap']);
    const c = o.cache;
    if (!(c instanceof GraphPagedCache) || c.graph !== this) throw typeError(`graph.${op}: cache must be a pagedKvCache of this graph, got ${describe(c)}`);
    const [rs, rt, rr] = [this.node(op, 'slots', o.slots), this.node(op, 'blockTables', o.blockTables), this.node(op, 'rows', o.rows)];
    const scale = v.number(op, 'scale', o.scale, 0, (x) => x > 0, 'a positive number');
    const window = v.int(op, 'window', o.window, 0, 0);
    const softcap = v.number(op, 'softcap', o.softcap, 0, (x) => x >= 0, 'a number >= 0');
    const dims = [c.blocks, c.blockSize, c.heads, c.headDim];
    const ck = { shape: dims, dtype: c.dtype as DType, label: `cache '${c.name}'.k` };
    const cv = { shape: dims, dtype: c.dtype as DType, label: `cache '${c.name}'.v` };
    this.infer(op, 'kv_write', [ck, cv, rk, rv, rs], {});
    const [out] = this.infer(op, 'paged_attention', [rq, ck, cv, rt, rr], { scale, window, softcap });
    return this.push({ kind: 'op', op: 'paged_attention', params: { scale, window, softcap }, in: [rq.id, rk.id, rv.id, rs.id, rt.id, rr.id], shape: out.dims, dtype: out.dtype as DType, cache: c.index }, `${op} #${this.nodes.length}`);
  }

  /** a [..., M, K] @ b [K, N] (b [N, K] with transposeB; a QuantizedTensor weight is [N, K]). */
  matmul(a: GraphNode, b: GraphNode | GraphWeight, opts?: GraphMatmulOptions): GraphNode {
    const op = 'matmul';
    const ra = this.node(op, 'a', a);
    const o = v.options<GraphMatmulOptions>(op, opts, ['transposeB', 'bias', 'activation', 'int8Activations']);
    const activation = v.oneOf(op, 'activation', o.activation, [...ACTIVATIONS, 'none'] as const, 'none');
    const int8Activations = v.bool(op, 'int8Activations', o.int8Activations, false);
    if (int8Activations && !(b instanceof GraphWeight && b.kind === 'quantized'))
      throw typeError(`graph.${op}: int8Activations applies to a quantized weight only`);
    const bias = o.bias === undefined ? [] : [this.node(op, 'bias', o.bias)];
    if (b instanceof GraphWeight) {
      if (b.graph !== this) throw new IgnisError('E_ARGUMENT', `graph.${op}: b (${b.label}) belongs to another graph`);
      if (o.transposeB !== undefined) throw typeError(`graph.${op}: transposeB does not apply to ${b.label} (its layout is fixed)`);
      const parts = b.parts.map((id) => this.nodes[id]);
      if (b.kind === 'quantized') return this.op(op, 'matmul_q', [ra, ...parts, ...bias], { groupSize: b.groupSize, activation, int8Activations });
      return this.op(op, 'matmul_packed', [ra, ...parts, ...bias], { N: b.N, activation });
    }
    const rb = this.node(op, 'b', b);
    const transposeB = v.bool(op, 'transposeB', o.transposeB, false);
    return this.op(op, op, [ra, rb, ...bias], { transposeB, activation });
  }

  /** softmax(scale q k^T) v per head; q, k, v [batch, seq, heads, headDim]; k's heads divide q's. */
  attention(q: GraphNode, k: GraphNode, val: GraphNode, opts?: GraphAttentionOptions): GraphNode {
    const op = 'attention';
    const [rq, rk, rv] = [this.node(op, 'q', q), this.node(op, 'k', k), this.node(op, 'v', val)];
    const o = v.options<GraphAttentionOptions>(op, opts, ['causal', 'scale', 'cache', 'position', 'window', 'softcap']);
    const causal = v.bool(op, 'causal', o.causal, false);
    const scale = v.number(op, 'scale', o.scale, 0, (x) => x > 0, 'a positive number');
    const window = v.int(op, 'window', o.window, 0, 0);
    const softcap = v.number(op, 'softcap', o.softcap, 0, (x) => x >= 0, 'a number >= 0');
    if (o.cache === undefined) {
      if (o.position !== undefined) throw typeError(`graph.${op}: position needs a cache`);
      // q attends over all of k, its rows being k's last
      return this.op(op, op, [rq, rk, rv], { causal, scale, kvLen: -1, qPos0: -1, window, softcap });
    }
    // With a cache: k, v are appended at the run's position (kv_append), then q (the same rows)
    // attends over the cache's rows [0, position + seq).
    const c = o.cache;
    if (!(c instanceof GraphCache) || c.graph !== this) throw typeError(`graph.${op}: cache must be a kvCache of this graph, got ${describe(c)}`);
    if (!(o.position instanceof GraphScalar) || o.position.graph !== this)
      throw typeError(`graph.${op}: a cache needs position: a graph.scalar() of this graph, got ${describe(o.position)}`);
    const dims = [c.batch, c.maxSeq, c.heads, c.headDim];
    const ck = { shape: dims, dtype: c.dtype as DType, label: `cache '${c.name}'.k` };
    const cv = { shape: dims, dtype: c.dtype as DType, label: `cache '${c.name}'.v` };
    this.infer(op, 'kv_append', [ck, cv, rk, rv], { position: 0 });
    if (rq.shape.length !== 4 || rk.shape.length !== 4 || rq.shape[1] !== rk.shape[1])
      this.fail(op, `with a cache q ${dimsStr(rq.shape)} and k ${dimsStr(rk.shape)} must have the same seq`);
    const [out] = this.infer(op, op, [rq, ck, cv], { causal, scale, kvLen: -1, qPos0: 0, window, softcap });
    const params: ParamsOf<'attention'> = { causal, scale, kvLen: -1, qPos0: 0, window, softcap };
    return this.push({ kind: 'op', op, params, in: [rq.id, rk.id, rv.id], shape: out.dims, dtype: out.dtype as DType, scalar: o.position.index, cache: c.index }, `${op} #${this.nodes.length}`);
  }

  rmsnorm(x: GraphNode, weight: GraphNode, opts?: { eps?: number }): GraphNode {
    const op = 'rmsnorm';
    const [rx, rw] = [this.node(op, 'x', x), this.node(op, 'weight', weight)];
    const eps = v.number(op, 'eps', v.options<{ eps?: number }>(op, opts, ['eps']).eps, 1e-5, (e) => e >= 0, 'a number >= 0');
    return this.op(op, op, [rx, rw], { eps });
  }

  layernorm(x: GraphNode, weight: GraphNode, bias: GraphNode, opts?: { eps?: number }): GraphNode {
    const op = 'layernorm';
    const [rx, rw, rb] = [this.node(op, 'x', x), this.node(op, 'weight', weight), this.node(op, 'bias', bias)];
    const eps = v.number(op, 'eps', v.options<{ eps?: number }>(op, opts, ['eps']).eps, 1e-5, (e) => e >= 0, 'a number >= 0');
    return this.op(op, op, [rx, rw, rb], { eps });
  }

  /**
   * An elementwise activation by name (ignis.ACTIVATIONS); each also has a method of its own,
   * g.gelu(x), g.silu(x), ..., made from that list (below the class).
   */
  activation(x: GraphNode, name: ActivationName): GraphNode {
    const activation = v.oneOf('activation', 'activation', name, ACTIVATIONS, 'gelu');
    return this.op(activation, 'activation', [this.node(activation, 'x', x)], { activation });
  }

  softmax(x: GraphNode, opts?: { axis?: number }): GraphNode {
    const op = 'softmax';
    const rx = this.node(op, 'x', x);
    const r = rx.shape.length;
    const axis = v.int(op, 'axis', v.options<{ axis?: number }>(op, opts, ['axis']).axis, -r, -1);
    if (axis >= r) throw rangeError(`graph.${op}: axis ${axis} is out of range for rank ${r}`);
    return this.op(op, op, [rx], { axis: axis < 0 ? axis + r : axis });
  }

  /** Rotary embedding (rotate-half) of x [batch, seq, heads, headDim] for positions position + s. */
  rope(x: GraphNode, opts?: GraphRopeOptions): GraphNode {
    const op = 'rope';
    const rx = this.node(op, 'x', x);
    const o = v.options<GraphRopeOptions>(op, opts, ['position', 'positions', 'offset', 'theta', 'freqs', 'scale']);
    const theta = v.number(op, 'theta', o.theta, 10000, (t) => t > 0, 'a positive number');
    const freqs = v.ropeFreqs(op, o.freqs);
    const scale = v.number(op, 'scale', o.scale, 1, Number.isFinite, 'a finite number');
    if (o.positions !== undefined) {
      if (o.position !== undefined || o.offset !== undefined) throw typeError(`graph.${op}: takes position (and offset) or positions, not both`);
      return this.op(op, op, [rx, this.node(op, 'positions', o.positions)], { position: 0, theta, freqs, scale });
    }
    let scalar = -1, offset = v.int(op, 'offset', o.offset, 0, 0);
    if (o.position instanceof GraphScalar) scalar = o.position.index;
    else if (o.position !== undefined) offset += v.int(op, 'position', o.position, 0);
    const node = this.op(op, op, [rx], { position: offset, theta, freqs, scale }, { scalar }); // x's shape is checked first
    if (o.position instanceof GraphScalar && o.position.graph !== this) {
      this.nodes.pop();
      throw new IgnisError('E_ARGUMENT', `graph.${op}: position belongs to another graph`);
    }
    return node;
  }

  /** out [...ids, D] = table [V, D] rows picked by ids (i32); ids out of range fail the run (E_INDEX). */
  embedding(ids: GraphNode, table: GraphNode): GraphNode {
    const op = 'embedding';
    return this.op(op, op, [this.node(op, 'ids', ids), this.node(op, 'table', table)], {});
  }

  add(a: GraphNode, b: GraphNode): GraphNode {
    return this.op('add', 'binary', [this.node('add', 'a', a), this.node('add', 'b', b)], { op: 'add' });
  }
  mul(a: GraphNode, b: GraphNode): GraphNode {
    return this.op('mul', 'binary', [this.node('mul', 'a', a), this.node('mul', 'b', b)], { op: 'mul' });
  }

  cast(x: GraphNode, dtype: FloatDType): GraphNode {
    const op = 'cast';
    const rx = this.node(op, 'x', x);
    const dt = v.dtype(op, dtype, 'f32');
    if (!isFloatDType(dt)) throw new IgnisError('E_DTYPE', `graph.${op}: dtype must be f32, f16 or bf16, got ${dt}`);
    return this.op(op, op, [rx], { dtype: dt });
  }

  /** The same values with another shape (no copy). Symbols must match; one size may be -1. */
  reshape(x: GraphNode, shape: Dim[]): GraphNode {
    const op = 'reshape';
    const rx = this.node(op, 'x', x);
    if (!Array.isArray(shape)) throw typeError(`graph.${op}: shape must be an array, got ${describe(shape)}`);
    const out = shape.map((d) => (d === -1 ? -1 : checkDim(op, d)));
    const syms = (s: Dim[]) => s.filter((d): d is string => typeof d === 'string').sort().join(',');
    const prod = (s: Dim[]) => s.reduce<number>((a, d) => (typeof d === 'number' && d !== -1 ? a * d : a), 1);
    if (syms(rx.shape) !== syms(out))
      this.fail(op, `x (${rx.label}) ${dimsStr(rx.shape)} cannot become ${dimsStr(out)}: the symbolic dimensions must be the same`);
    const infer = out.indexOf(-1);
    if (infer >= 0) {
      if (out.indexOf(-1, infer + 1) >= 0) this.fail(op, `at most one size may be -1, got ${dimsStr(out)}`);
      const rest = prod(out);
      if (rest === 0 || prod(rx.shape) % rest) this.fail(op, `x (${rx.label}) ${dimsStr(rx.shape)} cannot become ${dimsStr(out)}`);
      out[infer] = prod(rx.shape) / rest;
    }
    if (prod(out) !== prod(rx.shape)) this.fail(op, `x (${rx.label}) ${dimsStr(rx.shape)} cannot become ${dimsStr(out)}: sizes differ`);
    return this.push({ kind: 'view', in: [rx.id], shape: out, dtype: rx.dtype }, `reshape #${this.nodes.length}`);
  }

  /** table [R, ...] rows [start, start + count): start a scalar given per run (plus offset) or a number. */
  rows(table: GraphNode, opts: { start: GraphScalar | number; offset?: number; count: Dim }): GraphNode {
    const op = 'rows';
    const rt = this.node(op, 'table', table);
    const o = v.options<{ start: GraphScalar | number; offset?: number; count: Dim }>(op, opts, ['start', 'offset', 'count']);
    const count = checkDim(op, o.count);
    let scalar = -1, offset = v.int(op, 'offset', o.offset, 0, 0);
    if (o.start instanceof GraphScalar) {
      if (o.start.graph !== this) throw new IgnisError('E_ARGUMENT', `graph.${op}: start belongs to another graph`);
      scalar = o.start.index;
    } else offset += v.int(op, 'start', o.start, 0);
    return this.op(op, op, [rt], { start: offset, count }, { scalar });
  }

  /** x [batch, seq, ...] -> x[:, seq - 1 : seq, ...], the last position of each sequence. */
  last(x: GraphNode): GraphNode {
    return this.op('last', 'last', [this.node('last', 'x', x)], {});
  }

  /** i32 x.shape[:-1]: the index of each last-axis row's largest element (the first on ties; NaN above every number). */
  argmax(x: GraphNode): GraphNode {
    return this.op('argmax', 'argmax', [this.node('argmax', 'x', x)], {});
  }

  output(name: string, node: GraphNode): void {
    if (typeof name !== 'string' || !name) throw typeError(`graph.output: name must be a non-empty string, got ${describe(name)}`);
    if (this.outputs.some((o) => o.name === name)) throw new IgnisError('E_ARGUMENT', `graph.output: '${name}' is already an output`);
    this.outputs.push({ name, node: this.node('output', name, node).id });
  }

  /** One native plan for a device; weights must already be there. */
  async compile(opts?: CompileOptions): Promise<Model> {
    return compileGraph(this, opts ?? {});
  }
}

function checkDim(op: string, d: unknown): Dim {
  if (typeof d === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(d)) return d;
  if (typeof d === 'number' && Number.isSafeInteger(d) && d >= 0) return d;
  throw typeError(`graph.${op}: a dimension must be a whole number >= 0 or a symbol name, got ${describe(d)}`);
}

for (const name of ACTIVATIONS)
  Object.defineProperty(GraphBuilder.prototype, name, {
    value: function (this: GraphBuilder, x: GraphNode): GraphNode {
      return this.activation(x, name);
    },
    writable: true,
    configurable: true,
  });

/** A new, empty graph. */
export function graph(): GraphBuilder {
  return new GraphBuilder();
}

