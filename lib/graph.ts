// Fixed-weight forward graphs: describe a forward pass once (ignis.graph()), compile it for a
// device (one native plan: steps in order, intermediates placed in one arena by liveness,
// weights held), then run it per request as one unit on the device queue. Shapes may name
// symbolic dimensions ('batch', 'seq') whose maxima are given at compile; shape and dtype
// errors are raised while building, naming the node.
import { Handle, native } from './binding';
import { describe, IgnisError, rangeError, typeError } from './errors';
import { DType, DTYPE_BYTES, FloatDType, isFloatDType } from './dtype';
import { ACTIVATIONS, ActivationName } from './ops';
import { PackedWeight } from './packed';
import { QuantizedTensor } from './quant';
import { disposeSymbol, handle, Tensor } from './tensor';
import * as v from './validate';

/** A dimension: a size, or the name of a symbolic dimension bound by the inputs at run time. */
export type Dim = number | string;

const ACT_INDEX: Record<ActivationName | 'none', number> = { none: 0, gelu: 1, silu: 2, relu: 3 };

function dimsStr(d: readonly Dim[]): string {
  return `[${d.join(', ')}]`;
}

interface NodeRec {
  id: number;
  label: string;
  kind: 'input' | 'weight' | 'op' | 'view';
  op?: string;
  in: number[];
  shape: Dim[];
  dtype: DType;
  p: number[];
  scalar: number;
  cache: number; // attention with a cache: the cache's index
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

export interface GraphInputOptions {
  shape: Dim[];
  dtype?: DType;
}
export interface GraphMatmulOptions {
  transposeB?: boolean;
  bias?: GraphNode;
  activation?: ActivationName;
}
export interface GraphAttentionOptions {
  causal?: boolean;
  scale?: number;
  /** append k, v to this cache at `position` and attend over rows [0, position + seq) */
  cache?: GraphCache;
  position?: GraphScalar;
}
export interface GraphRopeOptions {
  /** the position of token 0: a scalar given per run, a number, or both (scalar + offset) */
  position?: GraphScalar | number;
  offset?: number;
  theta?: number;
}
export interface GraphKVCacheOptions {
  batch: Dim;
  maxSeq: Dim;
  heads: number;
  headDim: number;
  dtype?: FloatDType;
}
export interface CompileOptions {
  device?: string;
  /** the maximum of each symbolic dimension, by name; `maxBatch: 4` also sets 'batch' */
  max?: Record<string, number>;
  [maxName: `max${string}`]: number | Record<string, number> | undefined;
}

export class GraphBuilder {
  /** @internal */ readonly nodes: NodeRec[] = [];
  /** @internal */ readonly scalars: string[] = [];
  /** @internal */ readonly caches: GraphCache[] = [];
  /** @internal */ readonly outputs: { name: string; node: number }[] = [];
  private readonly inputNames = new Set<string>();
  private readonly weightNames = new Set<string>();

  private push(r: Omit<NodeRec, 'id' | 'label' | 'p' | 'scalar' | 'cache' | 'in'> & Partial<NodeRec>, label?: string): GraphNode {
    const id = this.nodes.length;
    const rec: NodeRec = { id, label: label ?? `${r.op ?? r.kind} #${id}`, in: [], p: [], scalar: -1, cache: -1, ...r };
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

  private float(op: string, what: string, r: NodeRec): void {
    if (!isFloatDType(r.dtype)) throw new IgnisError('E_DTYPE', `graph.${op}: ${what} (${r.label}) must be f32, f16 or bf16, got ${r.dtype}`);
  }

  private sameDtype(op: string, a: NodeRec, b: NodeRec): void {
    if (a.dtype !== b.dtype) throw new IgnisError('E_DTYPE', `graph.${op}: ${a.label} is ${a.dtype} but ${b.label} is ${b.dtype}`);
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
    } else if (t instanceof Tensor) {
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

  /** a [..., M, K] @ b [K, N] (b [N, K] with transposeB; a QuantizedTensor weight is [N, K]). */
  matmul(a: GraphNode, b: GraphNode | GraphWeight, opts?: GraphMatmulOptions): GraphNode {
    const op = 'matmul';
    const ra = this.node(op, 'a', a);
    const o = v.options<GraphMatmulOptions>(op, opts, ['transposeB', 'bias', 'activation']);
    const act = v.oneOf(op, 'activation', o.activation, [...ACTIVATIONS, 'none'] as const, 'none');
    this.float(op, 'a', ra);
    if (ra.shape.length < 1) this.fail(op, `a (${ra.label}) must have rank >= 1`);
    const K = ra.shape[ra.shape.length - 1];
    const bias = o.bias === undefined ? undefined : this.node(op, 'bias', o.bias);
    const withBias = (N: Dim) => {
      if (!bias) return -1;
      this.sameDtype(op, ra, bias);
      if (bias.shape.length !== 1 || bias.shape[0] !== N) this.fail(op, `bias (${bias.label}) ${dimsStr(bias.shape)} must be [${N}]`);
      return bias.id;
    };
    if (b instanceof GraphWeight) {
      if (b.graph !== this) throw new IgnisError('E_ARGUMENT', `graph.${op}: b (${b.label}) belongs to another graph`);
      if (o.transposeB !== undefined) throw typeError(`graph.${op}: transposeB does not apply to ${b.label} (its layout is fixed)`);
      if (K !== b.K) this.fail(op, `a (${ra.label}) ${dimsStr(ra.shape)} and ${b.label} [K, N] = [${b.K}, ${b.N}] do not fit: K ${K} vs ${b.K}`);
      const shape = [...ra.shape.slice(0, -1), b.N];
      if (b.kind === 'quantized')
        return this.push({ kind: 'op', op: 'matmul_q', in: [ra.id, b.parts[0], b.parts[1], withBias(b.N)], shape, dtype: ra.dtype, p: [b.groupSize, ACT_INDEX[act]] });
      return this.push({ kind: 'op', op: 'matmul_packed', in: [ra.id, b.parts[0], withBias(b.N)], shape, dtype: ra.dtype, p: [b.N, ACT_INDEX[act]] });
    }
    const rb = this.node(op, 'b', b);
    this.sameDtype(op, ra, rb);
    const tb = v.bool(op, 'transposeB', o.transposeB, false);
    if (ra.shape.length < 2 || rb.shape.length < 2) this.fail(op, `a (${ra.label}) ${dimsStr(ra.shape)} and b (${rb.label}) ${dimsStr(rb.shape)} need rank >= 2`);
    const Kb = tb ? rb.shape[rb.shape.length - 1] : rb.shape[rb.shape.length - 2];
    const N = tb ? rb.shape[rb.shape.length - 2] : rb.shape[rb.shape.length - 1];
    if (K !== Kb) this.fail(op, `a (${ra.label}) ${dimsStr(ra.shape)} and b (${rb.label}) ${dimsStr(rb.shape)}${tb ? ' (transposed)' : ''} do not fit: K ${K} vs ${Kb}`);
    if (rb.shape.length > 2 && (rb.shape.length !== ra.shape.length || rb.shape.slice(0, -2).some((d, i) => d !== ra.shape[i])))
      this.fail(op, `b (${rb.label}) ${dimsStr(rb.shape)} must be 2-D or have a's batch dims ${dimsStr(ra.shape.slice(0, -2))}`);
    return this.push({ kind: 'op', op: 'matmul', in: [ra.id, rb.id, withBias(N)], shape: [...ra.shape.slice(0, -1), N], dtype: ra.dtype, p: [tb ? 1 : 0, ACT_INDEX[act]] });
  }

  /** softmax(scale q k^T) v per head; q, k, v [batch, seq, heads, headDim]; k's heads divide q's. */
  attention(q: GraphNode, k: GraphNode, val: GraphNode, opts?: GraphAttentionOptions): GraphNode {
    const op = 'attention';
    const [rq, rk, rv] = [this.node(op, 'q', q), this.node(op, 'k', k), this.node(op, 'v', val)];
    const o = v.options<GraphAttentionOptions>(op, opts, ['causal', 'scale', 'cache', 'position']);
    const causal = v.bool(op, 'causal', o.causal, false);
    const scale = v.number(op, 'scale', o.scale, 0, (x) => x > 0, 'a positive number');
    this.float(op, 'q', rq);
    this.sameDtype(op, rq, rk);
    this.sameDtype(op, rq, rv);
    if (rq.shape.length !== 4 || rk.shape.length !== 4 || rv.shape.length !== 4)
      this.fail(op, `q ${dimsStr(rq.shape)}, k ${dimsStr(rk.shape)} and v ${dimsStr(rv.shape)} must be [batch, seq, heads, headDim]`);
    if (rk.shape.some((d, i) => d !== rv.shape[i])) this.fail(op, `k ${dimsStr(rk.shape)} and v ${dimsStr(rv.shape)} must have the same shape`);
    if (rq.shape[0] !== rk.shape[0] || rq.shape[3] !== rk.shape[3])
      this.fail(op, `q ${dimsStr(rq.shape)} and k ${dimsStr(rk.shape)} must agree on batch and headDim`);
    const hq = rq.shape[2], hk = rk.shape[2];
    if (typeof hq !== 'number' || typeof hk !== 'number' || hq % hk !== 0)
      this.fail(op, `q's heads (${hq}) must be a fixed multiple of k's (${hk})`);
    let ins = [rq.id, rk.id, rv.id];
    let scalar = -1, cache = -1;
    if (o.cache !== undefined) {
      const c = o.cache;
      if (!(c instanceof GraphCache) || c.graph !== this) throw typeError(`graph.${op}: cache must be a kvCache of this graph, got ${describe(c)}`);
      if (!(o.position instanceof GraphScalar) || o.position.graph !== this)
        throw typeError(`graph.${op}: a cache needs position: a graph.scalar() of this graph, got ${describe(o.position)}`);
      if (c.batch !== rk.shape[0] || c.heads !== hk || c.headDim !== rk.shape[3] || c.dtype !== rk.dtype)
        this.fail(op, `k ${dimsStr(rk.shape)} ${rk.dtype} does not fit cache '${c.name}' [${c.batch}, ${c.maxSeq}, ${c.heads}, ${c.headDim}] ${c.dtype}`);
      if (rq.shape[1] !== rk.shape[1]) this.fail(op, `with a cache q ${dimsStr(rq.shape)} and k ${dimsStr(rk.shape)} must have the same seq`);
      scalar = o.position.index;
      cache = c.index;
      ins = [...ins, -2, -2]; // filled at compile with the cache's state buffers
    } else {
      if (o.position !== undefined) throw typeError(`graph.${op}: position needs a cache`);
      if (causal && rq.shape[1] !== rk.shape[1] && typeof rq.shape[1] === 'number' && typeof rk.shape[1] === 'number' && rq.shape[1] > rk.shape[1])
        this.fail(op, `causal attention needs q's seq <= k's, got q ${dimsStr(rq.shape)} and k ${dimsStr(rk.shape)}`);
    }
    return this.push({ kind: 'op', op, in: ins, shape: rq.shape.slice(), dtype: rq.dtype, p: [causal ? 1 : 0, scale], scalar, cache });
  }

  rmsnorm(x: GraphNode, weight: GraphNode, opts?: { eps?: number }): GraphNode {
    const op = 'rmsnorm';
    const [rx, rw] = [this.node(op, 'x', x), this.node(op, 'weight', weight)];
    const eps = v.number(op, 'eps', v.options<{ eps?: number }>(op, opts, ['eps']).eps, 1e-5, (e) => e >= 0, 'a number >= 0');
    this.float(op, 'x', rx);
    this.sameDtype(op, rx, rw);
    const D = rx.shape[rx.shape.length - 1];
    if (rw.shape.length !== 1 || rw.shape[0] !== D) this.fail(op, `weight (${rw.label}) ${dimsStr(rw.shape)} must be [${D}] for x ${dimsStr(rx.shape)}`);
    return this.push({ kind: 'op', op, in: [rx.id, rw.id], shape: rx.shape.slice(), dtype: rx.dtype, p: [eps] });
  }

  layernorm(x: GraphNode, weight: GraphNode, bias: GraphNode, opts?: { eps?: number }): GraphNode {
    const op = 'layernorm';
    const [rx, rw, rb] = [this.node(op, 'x', x), this.node(op, 'weight', weight), this.node(op, 'bias', bias)];
    const eps = v.number(op, 'eps', v.options<{ eps?: number }>(op, opts, ['eps']).eps, 1e-5, (e) => e >= 0, 'a number >= 0');
    this.float(op, 'x', rx);
    this.sameDtype(op, rx, rw);
    this.sameDtype(op, rx, rb);
    const D = rx.shape[rx.shape.length - 1];
    for (const r of [rw, rb])
      if (r.shape.length !== 1 || r.shape[0] !== D) this.fail(op, `${r.label} ${dimsStr(r.shape)} must be [${D}] for x ${dimsStr(rx.shape)}`);
    return this.push({ kind: 'op', op, in: [rx.id, rw.id, rb.id], shape: rx.shape.slice(), dtype: rx.dtype, p: [eps] });
  }

  private unary(op: ActivationName, x: GraphNode): GraphNode {
    const rx = this.node(op, 'x', x);
    this.float(op, 'x', rx);
    return this.push({ kind: 'op', op: 'activation', in: [rx.id], shape: rx.shape.slice(), dtype: rx.dtype, p: [ACT_INDEX[op]] }, `${op} #${this.nodes.length}`);
  }
  gelu(x: GraphNode): GraphNode {
    return this.unary('gelu', x);
  }
  silu(x: GraphNode): GraphNode {
    return this.unary('silu', x);
  }
  relu(x: GraphNode): GraphNode {
    return this.unary('relu', x);
  }

  softmax(x: GraphNode, opts?: { axis?: number }): GraphNode {
    const op = 'softmax';
    const rx = this.node(op, 'x', x);
    this.float(op, 'x', rx);
    const r = rx.shape.length;
    let axis = v.int(op, 'axis', v.options<{ axis?: number }>(op, opts, ['axis']).axis, -r, -1);
    if (axis >= r) throw rangeError(`graph.${op}: axis ${axis} is out of range for rank ${r}`);
    if (axis < 0) axis += r;
    return this.push({ kind: 'op', op, in: [rx.id], shape: rx.shape.slice(), dtype: rx.dtype, p: [axis] });
  }

  /** Rotary embedding (rotate-half) of x [batch, seq, heads, headDim] for positions position + s. */
  rope(x: GraphNode, opts?: GraphRopeOptions): GraphNode {
    const op = 'rope';
    const rx = this.node(op, 'x', x);
    const o = v.options<GraphRopeOptions>(op, opts, ['position', 'offset', 'theta']);
    const theta = v.number(op, 'theta', o.theta, 10000, (t) => t > 0, 'a positive number');
    this.float(op, 'x', rx);
    const D = rx.shape[3];
    if (rx.shape.length !== 4 || typeof D !== 'number' || D % 2) this.fail(op, `x (${rx.label}) ${dimsStr(rx.shape)} must be [batch, seq, heads, headDim] with an even headDim`);
    let scalar = -1, offset = v.int(op, 'offset', o.offset, 0, 0);
    if (o.position instanceof GraphScalar) {
      if (o.position.graph !== this) throw new IgnisError('E_ARGUMENT', `graph.${op}: position belongs to another graph`);
      scalar = o.position.index;
    } else if (o.position !== undefined) {
      offset += v.int(op, 'position', o.position, 0);
    }
    return this.push({ kind: 'op', op, in: [rx.id], shape: rx.shape.slice(), dtype: rx.dtype, p: [theta, offset], scalar });
  }

  /** out [...ids, D] = table [V, D] rows picked by ids (i32); ids out of range fail the run (E_INDEX). */
  embedding(ids: GraphNode, table: GraphNode): GraphNode {
    const op = 'embedding';
    const [ri, rt] = [this.node(op, 'ids', ids), this.node(op, 'table', table)];
    if (ri.dtype !== 'i32') throw new IgnisError('E_DTYPE', `graph.${op}: ids (${ri.label}) must be i32, got ${ri.dtype}`);
    this.float(op, 'table', rt);
    if (rt.shape.length !== 2) this.fail(op, `table (${rt.label}) ${dimsStr(rt.shape)} must be [V, D]`);
    return this.push({ kind: 'op', op, in: [ri.id, rt.id], shape: [...ri.shape, rt.shape[1]], dtype: rt.dtype });
  }

  private binary(op: 'add' | 'mul', a: GraphNode, b: GraphNode): GraphNode {
    const [ra, rb] = [this.node(op, 'a', a), this.node(op, 'b', b)];
    this.float(op, 'a', ra);
    this.sameDtype(op, ra, rb);
    const n = Math.max(ra.shape.length, rb.shape.length);
    const shape: Dim[] = [];
    for (let i = 0; i < n; i++) {
      const da = ra.shape[ra.shape.length - n + i] ?? 1, db = rb.shape[rb.shape.length - n + i] ?? 1;
      if (da === db || db === 1) shape.push(da);
      else if (da === 1) shape.push(db);
      else this.fail(op, `${ra.label} ${dimsStr(ra.shape)} and ${rb.label} ${dimsStr(rb.shape)} do not broadcast`);
    }
    return this.push({ kind: 'op', op: 'binary', in: [ra.id, rb.id], shape, dtype: ra.dtype, p: [op === 'add' ? 0 : 1] }, `${op} #${this.nodes.length}`);
  }
  add(a: GraphNode, b: GraphNode): GraphNode {
    return this.binary('add', a, b);
  }
  mul(a: GraphNode, b: GraphNode): GraphNode {
    return this.binary('mul', a, b);
  }

  cast(x: GraphNode, dtype: FloatDType): GraphNode {
    const op = 'cast';
    const rx = this.node(op, 'x', x);
    this.float(op, 'x', rx);
    const dt = v.dtype(op, dtype, 'f32');
    if (!isFloatDType(dt)) throw new IgnisError('E_DTYPE', `graph.${op}: dtype must be f32, f16 or bf16, got ${dt}`);
    return this.push({ kind: 'op', op, in: [rx.id], shape: rx.shape.slice(), dtype: dt });
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
    if (rt.shape.length < 1 || typeof rt.shape[0] !== 'number') this.fail(op, `table (${rt.label}) ${dimsStr(rt.shape)} needs a fixed first dimension`);
    const count = checkDim(op, o.count);
    let scalar = -1, offset = v.int(op, 'offset', o.offset, 0, 0);
    if (o.start instanceof GraphScalar) {
      if (o.start.graph !== this) throw new IgnisError('E_ARGUMENT', `graph.${op}: start belongs to another graph`);
      scalar = o.start.index;
    } else offset += v.int(op, 'start', o.start, 0);
    if (typeof count === 'number' && offset + count > (rt.shape[0] as number)) this.fail(op, `rows [${offset}, ${offset + count}) run past ${rt.label} ${dimsStr(rt.shape)}`);
    return this.push({ kind: 'op', op, in: [rt.id], shape: [count, ...rt.shape.slice(1)], dtype: rt.dtype, p: [offset], scalar });
  }

  /** x [batch, seq, ...] -> x[:, seq - 1 : seq, ...], the last position of each sequence. */
  last(x: GraphNode): GraphNode {
    const op = 'last';
    const rx = this.node(op, 'x', x);
    if (rx.shape.length < 2) this.fail(op, `x (${rx.label}) ${dimsStr(rx.shape)} needs rank >= 2`);
    const shape = rx.shape.slice();
    shape[1] = 1;
    return this.push({ kind: 'op', op, in: [rx.id], shape, dtype: rx.dtype });
  }

  /** i32 x.shape[:-1]: the index of each last-axis row's largest element (the first on ties; NaN above every number). */
  argmax(x: GraphNode): GraphNode {
    const op = 'argmax';
    const rx = this.node(op, 'x', x);
    this.float(op, 'x', rx);
    if (rx.shape.length < 1) this.fail(op, `x (${rx.label}) needs rank >= 1`);
    if (rx.shape[rx.shape.length - 1] === 0) this.fail(op, `x (${rx.label}) ${dimsStr(rx.shape)} has an empty last axis`);
    return this.push({ kind: 'op', op, in: [rx.id], shape: rx.shape.slice(0, -1), dtype: 'i32' });
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

// --- compile ---------------------------------------------------------------------------------

interface BufferDesc {
  kind: 'input' | 'weight' | 'arena' | 'output' | 'state' | 'view';
  index: number;
  offset: number;
  dtype: DType;
  dims: number[];
}

const ALIGN = 64;

function compileGraph(g: GraphBuilder, opts: CompileOptions): Model {
  const op = 'compile';
  const o = opts as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (k !== 'device' && k !== 'max' && !/^max[A-Z]/.test(k)) throw typeError(`graph.${op}: unknown option '${k}' (device, max, max<Symbol>)`);
  const device = v.device(op, o.device);
  if (!g.outputs.length) throw new IgnisError('E_ARGUMENT', `graph.${op}: the graph has no outputs (call graph.output())`);

  // Symbols and their maxima.
  const maxOf = new Map<string, number>();
  if (o.max !== undefined) {
    if (typeof o.max !== 'object' || o.max === null) throw typeError(`graph.${op}: max must be an object of symbol maxima`);
    for (const [k, m] of Object.entries(o.max)) maxOf.set(k, v.int(op, `max.${k}`, m, 1));
  }
  for (const [k, m] of Object.entries(o))
    if (/^max[A-Z]/.test(k)) maxOf.set(k[3].toLowerCase() + k.slice(4), v.int(op, k, m, 1));
  const symbols: string[] = [];
  const symIndex = new Map<string, number>();
  const bound = new Set<string>();
  const requireMax = (d: string, where: string) => {
    if (!maxOf.has(d)) throw rangeError(`graph.${op}: give a maximum for the symbolic dimension '${d}' (${where}): max: { ${d}: N } or max${d[0].toUpperCase()}${d.slice(1)}: N`);
  };
  const enc = (d: Dim, where: string): number => {
    if (typeof d === 'number') return d;
    let i = symIndex.get(d);
    if (i === undefined) {
      requireMax(d, `used by ${where}`);
      i = symbols.length;
      symbols.push(d);
      symIndex.set(d, i);
    }
    return -1 - i;
  };
  const concrete = (d: Dim) => (typeof d === 'number' ? d : maxOf.get(d)!);

  // Nodes the outputs need, in build order.
  const nodes = g.nodes;
  const need = new Array<boolean>(nodes.length).fill(false);
  // Every declared input is part of the model (runs pass it; its symbols bind), used or not.
  const stack = [...g.outputs.map((x) => x.node), ...nodes.filter((r) => r.kind === 'input').map((r) => r.id)];
  while (stack.length) {
    const id = stack.pop()!;
    if (need[id]) continue;
    need[id] = true;
    for (const i of nodes[id].in) if (i >= 0) stack.push(i);
  }
  for (const r of nodes) if (need[r.id] && r.kind === 'input') for (const d of r.shape) if (typeof d === 'string') bound.add(d);

  // Outputs that are inputs, weights or views of them get a copy step (cast to the same dtype).
  const rootOf = (id: number): number => (nodes[id].kind === 'view' ? rootOf(nodes[id].in[0]) : id);
  const steps: NodeRec[] = [];
  const outputIds = g.outputs.map((x) => x.node);
  const copies = new Map<number, number>(); // output node -> synthetic node id
  const extra: NodeRec[] = [];
  for (const r of nodes) if (need[r.id] && r.kind === 'op') steps.push(r);
  for (const id of new Set(outputIds)) {
    const root = nodes[rootOf(id)];
    if (root.kind === 'input' || root.kind === 'weight') {
      const syn: NodeRec = { ...nodes[id], id: nodes.length + extra.length, kind: 'op', op: 'cast', in: [id], p: [], scalar: -1, cache: -1, label: `copy of ${nodes[id].label}` };
      extra.push(syn);
      copies.set(id, syn.id);
      steps.push(syn);
    }
  }
  const all = [...nodes, ...extra];
  const used = new Array<boolean>(all.length).fill(false);
  for (let i = 0; i < need.length; i++) used[i] = need[i];
  for (const s of extra) used[s.id] = true;

  // Buffers: one per used node (views name their root).
  const bufOf = new Map<number, number>();
  const buffers: BufferDesc[] = [];
  const weights: Handle[] = [];
  const inputs: number[] = [];
  const inputNames: string[] = [];
  const outputRoots = new Set([...outputIds.map((id) => (copies.has(id) ? copies.get(id)! : rootOf(id)))]);
  for (const r of all) {
    if (!used[r.id]) continue;
    const dims = r.shape.map((d) => enc(d, r.label));
    for (const d of r.shape) if (typeof d === 'string' && !bound.has(d)) throw rangeError(`graph.${op}: the symbolic dimension '${d}' of ${r.label} is not a dimension of any input, so no run could bind it`);
    const b: BufferDesc = { kind: 'arena', index: 0, offset: 0, dtype: r.dtype, dims };
    if (r.kind === 'input') {
      b.kind = 'input';
      b.index = inputs.length;
      inputs.push(buffers.length);
      inputNames.push(r.inputName!);
    } else if (r.kind === 'weight') {
      b.kind = 'weight';
      b.index = weights.length;
      weights.push(handle(op, r.label, r.tensor!));
    } else if (r.kind === 'view') {
      b.kind = 'view';
      b.index = bufOf.get(rootOf(r.id))!;
    } else if (outputRoots.has(r.id)) {
      b.kind = 'output';
    }
    bufOf.set(r.id, buffers.length);
    buffers.push(b);
  }
  // rows with a symbolic count: at the symbol's maximum the rows must still lie in the table.
  for (const r of all) {
    if (!used[r.id] || r.op !== 'rows' || typeof r.shape[0] !== 'string') continue;
    const t = nodes[r.in[0]], m = maxOf.get(r.shape[0])!;
    if (r.p[0] + m > (t.shape[0] as number))
      throw rangeError(`graph.${op}: ${r.label} takes up to ${m} rows (the maximum of '${r.shape[0]}') from row ${r.p[0]} of ${t.label} ${dimsStr(t.shape)}`);
  }

  // State: each cache is two tensors [maxBatch, maxSeq, heads, headDim]; the steps see views
  // whose batch is the run's.
  const states: { dtype: DType; shape: number[] }[] = [];
  const cacheBufs: [number, number][] = [];
  for (const c of g.caches) {
    if (typeof c.maxSeq === 'string') requireMax(c.maxSeq, `maxSeq of cache '${c.name}'`);
    if (typeof c.batch === 'string' && !bound.has(c.batch)) throw rangeError(`graph.${op}: cache '${c.name}' has batch '${c.batch}', which no input binds`);
    const full = [concrete(c.batch), concrete(c.maxSeq), c.heads, c.headDim];
    const dims = [enc(c.batch, `cache '${c.name}'`), concrete(c.maxSeq), c.heads, c.headDim];
    const pair: number[] = [];
    for (let k = 0; k < 2; k++) {
      pair.push(buffers.length);
      buffers.push({ kind: 'state', index: states.length, offset: 0, dtype: c.dtype, dims });
      states.push({ dtype: c.dtype, shape: full });
    }
    cacheBufs.push([pair[0], pair[1]]);
  }

  // Liveness over the steps, then first-fit placement in the arena, largest buffers first.
  const def = new Map<number, number>(), lastUse = new Map<number, number>();
  steps.forEach((s, i) => {
    const outBuf = rootBuf(bufOf.get(s.id)!);
    if (!def.has(outBuf)) def.set(outBuf, i);
    lastUse.set(outBuf, Math.max(lastUse.get(outBuf) ?? i, i));
    for (const x of s.in) {
      if (x < 0) continue;
      const b = rootBuf(bufOf.get(x)!);
      lastUse.set(b, Math.max(lastUse.get(b) ?? i, i));
    }
  });
  function rootBuf(b: number): number {
    return buffers[b].kind === 'view' ? buffers[b].index : b;
  }
  const arenaBufs = [...def.keys()].filter((b) => buffers[b].kind === 'arena');
  const sizeOf = (b: number) => {
    const bytes = buffers[b].dims.reduce((a, d) => a * (d >= 0 ? d : maxOf.get(symbols[-1 - d])!), 1) * DTYPE_BYTES[buffers[b].dtype];
    return Math.ceil(Math.max(bytes, 1) / ALIGN) * ALIGN;
  };
  arenaBufs.sort((a, b) => sizeOf(b) - sizeOf(a) || a - b);
  const placed: { b: number; lo: number; hi: number; from: number; to: number }[] = [];
  let arenaBytes = 0;
  for (const b of arenaBufs) {
    const size = sizeOf(b), from = def.get(b)!, to = lastUse.get(b)!;
    const clash = placed.filter((p) => p.from <= to && from <= p.to).sort((x, y) => x.lo - y.lo);
    let off = 0;
    for (const p of clash) {
      if (off + size <= p.lo) break;
      off = Math.max(off, p.hi);
    }
    placed.push({ b, lo: off, hi: off + size, from, to });
    buffers[b].offset = off;
    arenaBytes = Math.max(arenaBytes, off + size);
  }

  const stepDescs = steps.map((r) => {
    let ins = r.in.map((x) => (x === -1 ? -1 : x === -2 ? -2 : bufOf.get(x)!));
    if (r.op === 'attention' && r.cache >= 0) ins = [ins[0], ins[1], ins[2], cacheBufs[r.cache][0], cacheBufs[r.cache][1]];
    return { op: r.op!, in: ins, out: bufOf.get(r.id)!, p: r.p, scalar: r.scalar };
  });
  const outputs = g.outputs.map((x) => bufOf.get(copies.get(x.node) ?? x.node)!);
  const plan = native().compilePlan({
    device,
    symbolMax: symbols.map((s) => maxOf.get(s)!),
    symbolNames: symbols,
    buffers,
    steps: stepDescs,
    inputs,
    inputNames,
    outputs,
    scalarNames: g.scalars.slice(),
    outputNames: g.outputs.map((x) => x.name),
    weights,
    states,
    arenaBytes,
  });
  const inputSpecs = inputNames.map((name, i) => ({ name, dims: nodes.find((r) => r.inputName === name)!.shape.slice(), dtype: buffers[inputs[i]].dtype }));
  return new Model(plan, device, inputSpecs, g.scalars.slice(), g.outputs.map((x) => x.name), Object.fromEntries(symbols.map((s) => [s, maxOf.get(s)!])));
}

// --- the compiled model ---------------------------------------------------------------------

/** KV caches (and any other state) of one model, for one independent batch of sequences. */
export class ModelState {
  /** @internal */ handle: Handle | null;
  /** @internal */ readonly owner: Model;
  /** @internal */
  constructor(owner: Model, h: Handle) {
    this.owner = owner;
    this.handle = h;
  }
  get disposed(): boolean {
    return this.handle === null;
  }
  /** Frees the caches now (runs already queued keep what they use). Safe to call twice. */
  dispose(): void {
    this.handle?.dispose();
    this.handle = null;
  }
  [disposeSymbol](): void {
    this.dispose();
  }
}

export type RunInputs = Record<string, Tensor | number>;

export interface RunOptions {
  /** the KV caches (from createState()) a model with attention caches needs */
  state?: ModelState;
  /**
   * Tensors to write outputs into instead of making new ones (any subset, by output name):
   * each must have the output's exact shape, dtype and device, and share no memory with the
   * inputs, the state or the weights. The run returns them. A decode loop that reuses one
   * logits tensor saves an allocation and a JS object per step.
   */
  outputs?: Record<string, Tensor>;
}

export class Model {
  readonly device: string;
  readonly inputs: readonly { name: string; dims: Dim[]; dtype: DType }[];
  readonly scalars: readonly string[];
  readonly outputs: readonly string[];
  /** each symbolic dimension's maximum */
  readonly max: Readonly<Record<string, number>>;
  private plan: Handle | null;

  /** @internal */
  constructor(plan: Handle, device: string, inputs: { name: string; dims: Dim[]; dtype: DType }[], scalars: string[], outputs: string[], max: Record<string, number>) {
    this.plan = plan;
    this.device = device;
    this.inputs = inputs;
    this.scalars = scalars;
    this.outputs = outputs;
    this.max = Object.freeze(max);
  }

  private live(op: string): Handle {
    if (!this.plan) throw new IgnisError('E_DISPOSED', `model.${op}: the model was disposed`);
    return this.plan;
  }

  /** Bytes: weights (held, shared with the tensors given), the activation arena, and one state. */
  memory(): { weights: number; arena: number; state: number } {
    return native().planMemory(this.live('memory'));
  }

  /**
   * Step timing: profile(true) makes every later run time each step; profile() returns the last
   * finished profiled run's steps ({ op, ns }, in order; empty before one), profile(false) stops.
   */
  profile(on?: boolean): { op: string; ns: number }[] {
    if (on !== undefined && typeof on !== 'boolean') throw typeError(`model.profile: on must be a boolean, got ${describe(on)}`);
    return native().planProfile(this.live('profile'), on);
  }

  /**
   * The profiled runs finished since profile(true) (turned on from off), and their steps' time
   * summed: with runs queued back to back, wall time minus `ns` is what the runs cost beyond
   * their kernels.
   */
  profileTotal(): { runs: number; ns: number } {
    const [runs, ns] = native().planProfileTotal(this.live('profileTotal'));
    return { runs, ns };
  }

  /** Fresh state (zeroed KV caches) for one batch of sequences; runs with it queue in order. */
  createState(): ModelState {
    return new ModelState(this, native().planState(this.live('createState')));
  }

  /**
   * Enqueues the whole plan and returns its outputs at once (not yet computed: await their
   * data(), or use run()). Tensors for the inputs, numbers for the scalars.
   */
  enqueue(inputs: RunInputs, opts?: RunOptions): Record<string, Tensor> {
    return this.launch(inputs, opts, false).outs;
  }

  /** Enqueues the plan and resolves with its outputs once they are computed. */
  async run(inputs: RunInputs, opts?: RunOptions): Promise<Record<string, Tensor>> {
    const { outs, done } = this.launch(inputs, opts, true);
    await done;
    return outs;
  }

  // A run's JS side is on the path of every decode step, so the common case is checked in
  // straight loops; anything unusual goes through the checks that name the problem.
  private launch(inputs: RunInputs, opts: RunOptions | undefined, settled: boolean): { outs: Record<string, Tensor>; done?: Promise<void> } {
    const op = 'run';
    const plan = this.live(op);
    if (typeof inputs !== 'object' || inputs === null) throw typeError(`model.${op}: inputs must be an object of tensors and scalars, got ${describe(inputs)}`);
    let st: Handle | null = null;
    let given: Tensor[] | undefined;
    if (opts !== undefined) {
      const o = v.options<RunOptions>(op, opts, ['state', 'outputs']);
      const state = o.state;
      if (state !== undefined) {
        if (!(state instanceof ModelState) || state.owner !== this) throw typeError(`model.${op}: state must come from this model's createState(), got ${describe(state)}`);
        if (!state.handle) throw new IgnisError('E_DISPOSED', `model.${op}: the state was disposed`);
        st = state.handle;
      }
      if (o.outputs !== undefined) given = this.givenOutputs(op, o.outputs);
    }
    const hs: Handle[] = new Array(this.inputs.length);
    for (let i = 0; i < hs.length; i++) {
      const t = inputs[this.inputs[i].name];
      hs[i] = t instanceof Tensor && t._h !== null ? t._h : this.badInput(op, inputs, i, t);
    }
    const sc: number[] = new Array(this.scalars.length);
    for (let i = 0; i < sc.length; i++) {
      const x = inputs[this.scalars[i]];
      if (x === undefined) {
        this.unknownInput(op, inputs);
        throw new IgnisError('E_ARGUMENT', `model.${op}: missing scalar '${this.scalars[i]}'`);
      }
      sc[i] = v.int(`model.${op}`, this.scalars[i], x, 0);
    }
    // Every expected name was present, so more keys than names means an unknown one.
    if (Object.keys(inputs).length !== hs.length + sc.length) this.unknownInput(op, inputs);
    let gh: (Handle | null)[] | undefined;
    if (given) {
      gh = new Array(given.length);
      for (let i = 0; i < given.length; i++) gh[i] = given[i] ? given[i]._h : null;
    }
    const r = native().planRun(plan, hs, sc, st, settled, gh);
    const outs: Record<string, Tensor> = {};
    for (let i = 0; i < this.outputs.length; i++) {
      if (given && given[i]) {
        outs[this.outputs[i]] = given[i];
        continue;
      }
      const [h, meta] = r[i] as [Handle, [number[], string, string]];
      outs[this.outputs[i]] = new Tensor(h, meta);
    }
    return { outs, done: settled ? (r[this.outputs.length] as Promise<void>) : undefined };
  }

  // The outputs option as one slot per output (undefined: make a fresh one); native checks the
  // shapes, dtypes and shared memory, naming the output.
  private givenOutputs(op: string, outputs: unknown): Tensor[] {
    if (typeof outputs !== 'object' || outputs === null || Array.isArray(outputs))
      throw typeError(`model.${op}: outputs must be an object of tensors by output name, got ${describe(outputs)}`);
    const o = outputs as Record<string, unknown>;
    const given: Tensor[] = new Array(this.outputs.length);
    let n = 0;
    for (let i = 0; i < given.length; i++) {
      const t = o[this.outputs[i]];
      if (t === undefined) continue;
      if (!(t instanceof Tensor)) throw typeError(`model.${op}: output '${this.outputs[i]}' must be a Tensor, got ${describe(t)}`);
      handle(op, `output '${this.outputs[i]}'`, t); // a disposed tensor: E_DISPOSED
      given[i] = t;
      n++;
    }
    if (Object.keys(o).length !== n)
      for (const k of Object.keys(o))
        if (!this.outputs.includes(k)) throw new IgnisError('E_ARGUMENT', `model.${op}: unknown output '${k}' (outputs: ${this.outputs.join(', ')})`);
    return given;
  }

  private unknownInput(op: string, inputs: RunInputs): void {
    for (const k of Object.keys(inputs))
      if (!this.inputs.some((i) => i.name === k) && !this.scalars.includes(k))
        throw new IgnisError('E_ARGUMENT', `model.${op}: unknown input '${k}' (inputs: ${[...this.inputs.map((i) => i.name), ...this.scalars].join(', ')})`);
  }

  private badInput(op: string, inputs: RunInputs, i: number, t: unknown): never {
    const { name, dims, dtype } = this.inputs[i];
    if (t === undefined) {
      this.unknownInput(op, inputs);
      throw new IgnisError('E_ARGUMENT', `model.${op}: missing input '${name}' ${dimsStr(dims)} ${dtype}`);
    }
    if (!(t instanceof Tensor)) throw typeError(`model.${op}: input '${name}' must be a Tensor, got ${describe(t)}`);
    return handle(op, `input '${name}'`, t) as never; // a disposed tensor: handle() throws E_DISPOSED
  }

  dispose(): void {
    if (this.plan) {
      this.plan.dispose();
      this.plan = null;
    }
  }
  [disposeSymbol](): void {
    this.dispose();
  }
}

/** A new, empty graph. */
export function graph(): GraphBuilder {
  return new GraphBuilder();
}

