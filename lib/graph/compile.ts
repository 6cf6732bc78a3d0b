// compile: a built graph into one native plan, in named phases: the symbols' maxima, the nodes
// the outputs need, one buffer per node, the KV caches' state, arena placement by liveness,
// and the steps (each an op of the native table with its params). The native plan checks every
// step against the same op rules again.
import { Handle, native } from '../binding';
import { IgnisError, rangeError, typeError } from '../errors';
import { DType, DTYPE_BYTES } from '../dtype';
import { BufferKind } from '../native-tables';
import { handle } from '../tensor';
import type { Device } from '../device';
import * as v from '../validate';
import type { CompileOptions, Dim, GraphBuilder, NodeRec } from './builder';
import { Model } from './model';

interface BufferDesc {
  kind: BufferKind;
  index: number;
  offset: number;
  dtype: DType;
  dims: number[];
}

interface StepDesc {
  op: string;
  in: number[];
  out: number[];
  params: object;
  scalar: number;
}

const ALIGN = 64;

function dimsStr(d: readonly Dim[]): string {
  return `[${d.join(', ')}]`;
}

class Compiler {
  readonly op = 'compile';
  readonly device: Device;
  readonly maxOf = new Map<string, number>();
  readonly symbols: string[] = [];
  private readonly symIndex = new Map<string, number>();
  readonly bound = new Set<string>(); // symbols some input binds
  readonly nodes: NodeRec[];
  steps: NodeRec[] = []; // op nodes in order, copies of outputs that are inputs or weights last
  used: boolean[] = [];
  readonly copies = new Map<number, number>(); // output node -> its copy's id
  readonly buffers: BufferDesc[] = [];
  readonly bufOf = new Map<number, number>(); // node id -> buffer
  readonly weights: Handle[] = [];
  readonly inputs: number[] = [];
  readonly inputNames: string[] = [];
  readonly states: { dtype: DType; shape: number[] }[] = [];
  readonly cacheBufs: [number, number][] = [];
  readonly pagedBufs: [number, number][] = [];
  arenaBytes = 0;

  constructor(readonly g: GraphBuilder, opts: CompileOptions) {
    const o = opts as Record<string, unknown>;
    for (const k of Object.keys(o))
      if (k !== 'device' && k !== 'max' && !/^max[A-Z]/.test(k)) throw typeError(`graph.${this.op}: unknown option '${k}' (device, max, max<Symbol>)`);
    this.device = v.device(this.op, o.device);
    if (!g.outputs.length) throw new IgnisError('E_ARGUMENT', `graph.${this.op}: the graph has no outputs (call graph.output())`);
    if (o.max !== undefined) {
      if (typeof o.max !== 'object' || o.max === null) throw typeError(`graph.${this.op}: max must be an object of symbol maxima`);
      for (const [k, m] of Object.entries(o.max)) this.maxOf.set(k, v.int(this.op, `max.${k}`, m, 1));
    }
    for (const [k, m] of Object.entries(o))
      if (/^max[A-Z]/.test(k)) this.maxOf.set(k[3].toLowerCase() + k.slice(4), v.int(this.op, k, m, 1));
    this.nodes = g.nodes;
  }

  requireMax(d: string, where: string): void {
    if (!this.maxOf.has(d))
      throw rangeError(`graph.${this.op}: give a maximum for the symbolic dimension '${d}' (${where}): max: { ${d}: N } or max${d[0].toUpperCase()}${d.slice(1)}: N`);
  }

  /** A dimension as the plan holds it: a size, or -1 - the symbol's index. */
  enc(d: Dim, where: string): number {
    if (typeof d === 'number') return d;
    let i = this.symIndex.get(d);
    if (i === undefined) {
      this.requireMax(d, `used by ${where}`);
      i = this.symbols.length;
      this.symbols.push(d);
      this.symIndex.set(d, i);
    }
    return -1 - i;
  }

  concrete(d: Dim): number {
    return typeof d === 'number' ? d : this.maxOf.get(d)!;
  }

  rootOf(id: number): number {
    return this.nodes[id].kind === 'view' ? this.rootOf(this.nodes[id].in[0]) : id;
  }

  /** The nodes the outputs need, in build order; every declared input is part of the model. */
  reachable(): void {
    const { nodes, g } = this;
    const need = new Array<boolean>(nodes.length).fill(false);
    const stack = [...g.outputs.map((x) => x.node), ...nodes.filter((r) => r.kind === 'input').map((r) => r.id)];
    while (stack.length) {
      const id = stack.pop()!;
      if (need[id]) continue;
      need[id] = true;
      for (const i of nodes[id].in) stack.push(i);
    }
    for (const r of nodes) if (need[r.id] && r.kind === 'input') for (const d of r.shape) if (typeof d === 'string') this.bound.add(d);
    for (const r of nodes) if (need[r.id] && r.kind === 'op') this.steps.push(r);
    // Outputs that are inputs, weights or views of them get a copy step (a cast to the same dtype).
    const extra: NodeRec[] = [];
    for (const id of new Set(g.outputs.map((x) => x.node))) {
      const root = nodes[this.rootOf(id)];
      if (root.kind !== 'input' && root.kind !== 'weight') continue;
      const copy: NodeRec = { ...nodes[id], id: nodes.length + extra.length, kind: 'op', op: 'cast', params: { dtype: nodes[id].dtype }, in: [id], scalar: -1, cache: -1, label: `copy of ${nodes[id].label}` };
      extra.push(copy);
      this.copies.set(id, copy.id);
      this.steps.push(copy);
    }
    this.used = [...need, ...extra.map(() => true)];
    this.all = [...nodes, ...extra];
  }
  all: NodeRec[] = [];

  /** One buffer per used node: inputs, weights, views of their root, outputs, the rest arena. */
  makeBuffers(): void {
    const outputRoots = new Set(this.g.outputs.map((x) => this.copies.get(x.node) ?? this.rootOf(x.node)));
    for (const r of this.all) {
      if (!this.used[r.id]) continue;
      const dims = r.shape.map((d) => this.enc(d, r.label));
      for (const d of r.shape)
        if (typeof d === 'string' && !this.bound.has(d))
          throw rangeError(`graph.${this.op}: the symbolic dimension '${d}' of ${r.label} is not a dimension of any input, so no run could bind it`);
      const b: BufferDesc = { kind: 'arena', index: 0, offset: 0, dtype: r.dtype, dims };
      if (r.kind === 'input') {
        b.kind = 'input';
        b.index = this.inputs.length;
        this.inputs.push(this.buffers.length);
        this.inputNames.push(r.inputName!);
      } else if (r.kind === 'weight') {
        b.kind = 'weight';
        b.index = this.weights.length;
        this.weights.push(handle(this.op, r.label, r.tensor!));
      } else if (r.kind === 'view') {
        b.kind = 'view';
        b.index = this.bufOf.get(this.rootOf(r.id))!;
      } else if (outputRoots.has(r.id)) {
        b.kind = 'output';
      }
      this.bufOf.set(r.id, this.buffers.length);
      this.buffers.push(b);
    }
    // rows with a symbolic count: at the symbol's maximum the rows must still lie in the table.
    for (const r of this.steps) {
      if (r.op !== 'rows' || typeof r.shape[0] !== 'string') continue;
      const t = this.nodes[r.in[0]], m = this.maxOf.get(r.shape[0])!, start = (r.params as { start: number }).start;
      if (start + m > (t.shape[0] as number))
        throw rangeError(`graph.${this.op}: ${r.label} takes up to ${m} rows (the maximum of '${r.shape[0]}') from row ${start} of ${t.label} ${dimsStr(t.shape)}`);
    }
  }

  /** Each cache is two state tensors [maxBatch, maxSeq, heads, headDim]; steps see the run's batch. */
  makeStates(): void {
    for (const c of this.g.caches) {
      if (typeof c.maxSeq === 'string') this.requireMax(c.maxSeq, `maxSeq of cache '${c.name}'`);
      if (typeof c.batch === 'string' && !this.bound.has(c.batch))
        throw rangeError(`graph.${this.op}: cache '${c.name}' has batch '${c.batch}', which no input binds`);
      const full = [this.concrete(c.batch), this.concrete(c.maxSeq), c.heads, c.headDim];
      const dims = [this.enc(c.batch, `cache '${c.name}'`), this.concrete(c.maxSeq), c.heads, c.headDim];
      this.cacheBufs.push(this.statePair(c.dtype, dims, full));
    }
    // a paged cache: two state tensors [blocks, blockSize, heads, headDim], whatever the run's sizes
    for (const c of this.g.pagedCaches) {
      const dims = [c.blocks, c.blockSize, c.heads, c.headDim];
      this.pagedBufs.push(this.statePair(c.dtype, dims, dims));
    }
  }

  /** Two state tensors (a cache's k and v) of shape `full`, seen by the steps as `dims`: their buffers. */
  private statePair(dtype: DType, dims: number[], full: number[]): [number, number] {
    const pair: number[] = [];
    for (let k = 0; k < 2; k++) {
      pair.push(this.buffers.length);
      this.buffers.push({ kind: 'state', index: this.states.length, offset: 0, dtype, dims });
      this.states.push({ dtype, shape: full });
    }
    return [pair[0], pair[1]];
  }

  private rootBuf(b: number): number {
    return this.buffers[b].kind === 'view' ? this.buffers[b].index : b;
  }

  private sizeOf(b: number): number {
    const dims = this.buffers[b].dims;
    const bytes = dims.reduce((a, d) => a * (d >= 0 ? d : this.maxOf.get(this.symbols[-1 - d])!), 1) * DTYPE_BYTES[this.buffers[b].dtype];
    return Math.ceil(Math.max(bytes, 1) / ALIGN) * ALIGN;
  }

  /** Liveness over the steps, then first-fit placement in the arena, largest buffers first. */
  place(): void {
    const def = new Map<number, number>(), lastUse = new Map<number, number>();
    this.steps.forEach((s, i) => {
      const outBuf = this.rootBuf(this.bufOf.get(s.id)!);
      if (!def.has(outBuf)) def.set(outBuf, i);
      lastUse.set(outBuf, Math.max(lastUse.get(outBuf) ?? i, i));
      for (const x of s.in) {
        const b = this.rootBuf(this.bufOf.get(x)!);
        lastUse.set(b, Math.max(lastUse.get(b) ?? i, i));
      }
    });
    const arenaBufs = [...def.keys()].filter((b) => this.buffers[b].kind === 'arena');
    arenaBufs.sort((a, b) => this.sizeOf(b) - this.sizeOf(a) || a - b);
    const placed: { lo: number; hi: number; from: number; to: number }[] = [];
    for (const b of arenaBufs) {
      const size = this.sizeOf(b), from = def.get(b)!, to = lastUse.get(b)!;
      const clash = placed.filter((p) => p.from <= to && from <= p.to).sort((x, y) => x.lo - y.lo);
      let off = 0;
      for (const p of clash) {
        if (off + size <= p.lo) break;
        off = Math.max(off, p.hi);
      }
      placed.push({ lo: off, hi: off + size, from, to });
      this.buffers[b].offset = off;
      this.arenaBytes = Math.max(this.arenaBytes, off + size);
    }
  }

  /** The plan's steps: each op node's, a cached attention as kv_append into its cache, then attention over it. */
  stepDescs(): StepDesc[] {
    const out: StepDesc[] = [];
    for (const r of this.steps) {
      const ins = r.in.map((x) => this.bufOf.get(x)!);
      const self = this.bufOf.get(r.id)!;
      if (r.op === 'attention' && r.cache >= 0) {
        const [ck, cv] = this.cacheBufs[r.cache];
        out.push({ op: 'kv_append', in: [ck, cv, ins[1], ins[2]], out: [ck, cv], params: { position: 0 }, scalar: r.scalar });
        out.push({ op: 'attention', in: [ins[0], ck, cv], out: [self], params: r.params!, scalar: r.scalar });
      } else if (r.op === 'paged_attention') {
        // q, k, v, slots, block tables, rows: k and v into the pools, then q over them
        const [pk, pv] = this.pagedBufs[r.cache];
        out.push({ op: 'kv_write', in: [pk, pv, ins[1], ins[2], ins[3]], out: [pk, pv], params: {}, scalar: -1 });
        out.push({ op: 'paged_attention', in: [ins[0], pk, pv, ins[4], ins[5]], out: [self], params: r.params!, scalar: -1 });
      } else {
        out.push({ op: r.op!, in: ins, out: [self], params: r.params!, scalar: r.scalar });
      }
    }
    return out;
  }

  build(): Model {
    this.reachable();
    this.makeBuffers();
    this.makeStates();
    this.place();
    const { g, symbols, maxOf } = this;
    const plan = native().compilePlan({
      device: this.device,
      symbolMax: symbols.map((s) => maxOf.get(s)!),
      symbolNames: symbols,
      buffers: this.buffers,
      steps: this.stepDescs(),
      inputs: this.inputs,
      inputNames: this.inputNames,
      outputs: g.outputs.map((x) => this.bufOf.get(this.copies.get(x.node) ?? x.node)!),
      scalarNames: g.scalars.slice(),
      outputNames: g.outputs.map((x) => x.name),
      weights: this.weights,
      states: this.states,
      arenaBytes: this.arenaBytes,
    });
    const inputSpecs = this.inputNames.map((name, i) => ({ name, dims: this.nodes.find((r) => r.inputName === name)!.shape.slice(), dtype: this.buffers[this.inputs[i]].dtype }));
    return new Model(plan, this.device, inputSpecs, g.scalars.slice(), g.outputs.map((x) => x.name), Object.fromEntries(symbols.map((s) => [s, maxOf.get(s)!])));
  }
}

/** @internal One native plan for a device from a built graph. */
export function compileGraph(g: GraphBuilder, opts: CompileOptions): Model {
  return new Compiler(g, opts).build();
}
