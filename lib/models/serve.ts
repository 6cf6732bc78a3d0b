// Continuous batching: one model serving many requests from one process. A Server owns a
// serving graph (llama.ts buildLlamaServe) whose state is a paged KV cache, and a loop that runs
// one step at a time over every running sequence: each decoding sequence gives one row, the
// prompts being read give chunks of theirs up to the step's token budget, so a long prompt never
// stalls the sequences that decode. Sequences join at any step (when a slot and their KV blocks
// are free) and leave at any step (finished, stopped by their consumer, aborted or past their
// deadline), freeing their blocks at once. Full blocks of prompts are shared: a request whose
// prompt starts with another's reuses those blocks instead of computing them again.
import { IgnisError, describe, rangeError, typeError } from '../errors';
import type { Model, ModelState } from '../graph';
import * as v from '../validate';
import type { FinishReason, GeneratedPiece, GenerateInput, GenerateOptions, LanguageModel } from './index';
import { argmax, samplerFor } from './sampling';
import { runServeStep, type ServeLayout } from './servegraph';

export interface ServeOptions {
  /** sequences a step runs at most (default 16) */
  maxBatch?: number;
  /** token rows a step runs at most: the decoding sequences' rows first, then chunks of the
   * prompts being read (default 64: it bounds the inter-token gap against the time to first token) */
  maxTokens?: number;
  /** rows of a KV block (default 16) */
  blockSize?: number;
  /** KV blocks in the pool: the cache's memory cap (default: maxBatch sequences of maxSeq) */
  kvBlocks?: number;
  /** requests waiting for a slot at most; one more is refused at once with E_QUEUE_FULL (default 1024) */
  maxQueue?: number;
  /** a copy of the model on another device (the CPU): served instead when this model's device
   * cannot serve (refused at creation, or lost mid-run: the running requests go on there, their
   * caches computed again from their tokens); without one such requests fail with the error */
  fallback?: LanguageModel;
}

export interface ServeGenerateOptions extends GenerateOptions {
  /** milliseconds from the call: past it the request ends with E_TIMEOUT and its blocks are freed */
  timeoutMs?: number;
  /** 'interactive' requests are admitted before 'batch' ones (default 'interactive') */
  priority?: 'interactive' | 'batch';
  /** called once when the request ends (finished, failed, aborted or stopped) with its figures */
  onMetrics?: (m: RequestMetrics) => void;
}

/** One request's figures, in milliseconds (times from its submission). */
export interface RequestMetrics {
  queueMs: number;
  timeToFirstTokenMs: number | null;
  interTokenMs: number[];
  promptTokens: number;
  /** prompt tokens whose KV blocks were shared from an earlier request (not computed) */
  cachedPromptTokens: number;
  outputTokens: number;
  /** the time of the steps it took part in (its device time, shared with the batch's other requests) */
  stepMs: number;
}

export interface ServerMetrics {
  requests: { waiting: number; running: number; finished: number; failed: number; rejected: number };
  steps: number;
  /** tokens generated, and per second since the server was made */
  outputTokens: number;
  outputTokensPerSecond: number;
  /** mean sequences and token rows a step */
  meanBatch: number;
  meanRows: number;
  /** used: held by sequences; free: the rest (some still naming a prompt prefix: shared counts the prefixes kept) */
  kvBlocks: { total: number; used: number; free: number; shared: number };
  /** time to first token and between tokens over the finished requests: p50, p99 (ms) */
  timeToFirstTokenMs: { p50: number; p99: number } | null;
  interTokenMs: { p50: number; p99: number } | null;
  /** the last failed step's error (the requests in it were failed with it), or null */
  lastError: string | null;
  /** the device serving now, and why the fallback serves (null: the model's own device) */
  device: string;
  fallback: string | null;
}

type Item = { token: number; end?: FinishReason } | { error: unknown };

/** A sequence: its tokens, the rows of them whose k and v are in the pools, and its blocks. */
class Seq {
  tokens: number[];
  computed = 0; // tokens[0, computed) have k, v in the pools
  blocks: number[] = [];
  produced = 0;
  done = false;
  cancelled: unknown = null; // the reason it must leave at the next step
  readonly items: Item[] = [];
  wake: (() => void) | null = null;
  readonly submitted = performance.now();
  admitted = 0;
  firstToken = 0;
  lastToken = 0;
  readonly gaps: number[] = [];
  cached = 0;
  stepMs = 0;
  constructor(
    readonly id: number,
    readonly prompt: number[],
    readonly maxNew: number,
    readonly eos: Set<number>,
    readonly stop: Set<number>,
    readonly sample: ((logits: Float32Array, offset: number, n: number) => number) | null, // null: greedy (the graph's argmax)
    readonly priority: number,
    readonly deadline: number,
    readonly needBlocks: number,
    readonly onMetrics: ((m: RequestMetrics) => void) | undefined,
  ) {
    this.tokens = prompt.slice();
  }
  push(x: Item): void {
    this.items.push(x);
    this.wake?.();
  }
  async next(): Promise<Item> {
    while (!this.items.length) await new Promise<void>((r) => (this.wake = r));
    this.wake = null;
    return this.items.shift()!;
  }
}

function quantiles(xs: number[]): { p50: number; p99: number } | null {
  if (!xs.length) return null;
  const s = xs.slice().sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { p50: at(0.5), p99: at(0.99) };
}

/** FNV-1a over a prefix of token ids: the key of a full block's contents in the shared-block map. */
function prefixKey(tokens: number[], end: number): string {
  let h1 = 0x811c9dc5, h2 = 0x01000193;
  for (let i = 0; i < end; i++) {
    h1 = Math.imul(h1 ^ tokens[i], 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ (tokens[i] + i), 0x85ebca6b) >>> 0;
  }
  return `${end}:${h1.toString(36)}:${h2.toString(36)}`;
}

export class Server {
  private readonly free: number[] = []; // blocks no sequence holds and no prefix names
  private readonly refs: Int32Array; // sequences holding each block
  // Full prompt blocks by prefix: the map's key (a hash of the prefix) finds a candidate, and a
  // block is reused only when its parent (the block before it, -1 for the first) is the block
  // matched before it and its own tokens are the prompt's: the whole prefix is compared, never
  // trusted to the hash. A block named here has its parent named too; forgetting one forgets
  // its children.
  private readonly shared = new Map<string, number>();
  private readonly meta = new Map<number, { key: string; parent: number; tokens: number[]; children: Set<number> }>();
  // blocks no sequence holds that still name a prefix, oldest first: reused by a request with
  // that prefix, or taken (the prefix forgotten) when no free block is left
  private readonly cached = new Set<number>();
  private readonly waiting: Seq[] = [];
  private readonly running: Seq[] = [];
  private state: ModelState | null;
  private loop: Promise<void> | null = null;
  private closing = false;
  private nextId = 0;
  private readonly started = performance.now();
  private readonly m = { steps: 0, rows: 0, seqs: 0, outputTokens: 0, finished: 0, failed: 0, rejected: 0, ttft: [] as number[], itl: [] as number[], lastError: null as string | null };
  readonly maxBatch: number;
  readonly maxTokens: number;
  readonly blockSize: number;
  readonly kvBlocks: number;
  readonly maxQueue: number;

  private fellBack: string | null;

  /** @internal use model.createServer() */
  constructor(
    private model: LanguageModel,
    private graph: Model,
    private readonly layout: ServeLayout,
    o: { maxBatch: number; maxTokens: number; maxQueue: number; fallback?: LanguageModel; fellBack?: string | null },
  ) {
    this.maxBatch = o.maxBatch;
    this.maxTokens = o.maxTokens;
    this.maxQueue = o.maxQueue;
    this.blockSize = layout.blockSize;
    this.kvBlocks = layout.blocks;
    this.refs = new Int32Array(layout.blocks);
    for (let b = layout.blocks - 1; b >= 0; b--) this.free.push(b);
    this.state = graph.createState();
    this.fallback = o.fallback;
    this.fellBack = o.fellBack ?? null;
  }
  private fallback: LanguageModel | undefined;

  /** Serves on the fallback from now on: the running sequences' caches computed again there. */
  private async moveToFallback(reason: string): Promise<void> {
    const fb = this.fallback!;
    this.fallback = undefined;
    const graph = await fb._serveGraph('server', this.layout, this.maxTokens, this.maxBatch);
    try {
      this.state?.dispose();
      this.graph.dispose();
    } catch {
      // the lost device's buffers: nothing more to do with them
    }
    this.model = fb;
    this.graph = graph;
    this.state = graph.createState();
    this.fellBack = reason;
    // the pools start empty: every block free, no prefix kept, each sequence's rows fed again
    this.shared.clear();
    this.meta.clear();
    this.cached.clear();
    this.free.length = 0;
    for (let b = this.kvBlocks - 1; b >= 0; b--) this.free.push(b);
    this.refs.fill(0);
    for (const s of this.running) {
      s.blocks = [];
      while (s.blocks.length < s.needBlocks) s.blocks.push(this.take());
      s.computed = 0;
      s.cached = 0;
    }
  }

  /**
   * Generates as model.generate() does (the same pieces, stop strings, EOS, sampling and greedy
   * tokens), with this request's rows batched with every other running request's.
   */
  async *generate(input: GenerateInput, opts?: ServeGenerateOptions): AsyncGenerator<GeneratedPiece, FinishReason, undefined> {
    const op = 'server.generate';
    const o = v.options<ServeGenerateOptions>(op, opts, ['maxNewTokens', 'stop', 'eos', 'signal', 'temperature', 'topK', 'topP', 'seed', 'addSpecialTokens', 'chatTemplate', 'skipSpecialTokens', 'timeoutMs', 'priority', 'onMetrics']);
    const m = this.model;
    const { prompt, stopIds, stopStrings, detok } = m._prepare(op, input, o);
    const seq = this.submit(op, prompt, o, stopIds);
    const steps = this.tokens(seq, o.signal);
    try {
      return yield* m._pieces(steps, detok, stopStrings);
    } finally {
      await steps.return('stop');
    }
  }

  private submit(op: string, prompt: number[], o: ServeGenerateOptions, stopIds: number[]): Seq {
    if (this.closing || !this.state) throw new IgnisError('E_ARGUMENT', `${op}: the server is closed`);
    const m = this.model;
    const { maxNew, eos, params } = m._generation(op, op, o);
    const sampler = samplerFor(params);
    const timeoutMs = o.timeoutMs === undefined ? Infinity : v.number(op, 'timeoutMs', o.timeoutMs, 0, (t) => t > 0, 'a number > 0');
    const priority = v.oneOf(op, 'priority', o.priority, ['interactive', 'batch'] as const, 'interactive') === 'interactive' ? 0 : 1;
    if (prompt.length > m.maxSeq) throw new IgnisError('E_ARGUMENT', `${op}: the prompt (${prompt.length} tokens) does not fit maxSeq ${m.maxSeq}`);
    m._putIds(op, prompt, 0, new Int32Array(prompt.length)); // checks every id
    // the blocks it holds at most: its prompt and every token it may generate, up to maxSeq
    const need = Math.ceil(Math.min(prompt.length + maxNew, m.maxSeq) / this.blockSize);
    if (need > this.kvBlocks) throw new IgnisError('E_ARGUMENT', `${op}: the request needs ${need} KV blocks of ${this.blockSize} rows, the server has ${this.kvBlocks} (kvBlocks)`);
    if (this.waiting.length >= this.maxQueue) {
      this.m.rejected++;
      throw new IgnisError('E_QUEUE_FULL', `${op}: ${this.waiting.length} requests are waiting, the most this server queues (maxQueue ${this.maxQueue})`);
    }
    if (o.onMetrics !== undefined && typeof o.onMetrics !== 'function') throw typeError(`${op}: onMetrics must be a function, got ${describe(o.onMetrics)}`);
    const seq = new Seq(this.nextId++, prompt, maxNew, eos, new Set(stopIds), sampler === argmax ? null : sampler, priority, performance.now() + timeoutMs, need, o.onMetrics);
    if (maxNew === 0) {
      seq.done = true; // nothing to run: tokens() returns at once
      return seq;
    }
    // interactive requests go ahead of batch ones, each kind in arrival order
    let at = this.waiting.length;
    while (at > 0 && this.waiting[at - 1].priority > priority) at--;
    this.waiting.splice(at, 0, seq);
    this.kick();
    return seq;
  }

  /** The token loop of one request, fed by the server's steps. */
  private async *tokens(seq: Seq, signal: AbortSignal | undefined): AsyncGenerator<{ token: number; end?: FinishReason }, FinishReason, undefined> {
    const onAbort = () => this.cancel(seq, signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (seq.done && seq.maxNew === 0) return 'length';
      for (;;) {
        const it = await seq.next();
        if ('error' in it) throw it.error;
        yield it;
        if (it.end) return it.end;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!seq.done) this.cancel(seq, null); // the consumer stopped early: leave at the next step
    }
  }

  /** Ends a sequence at the next step boundary (its blocks freed then); reason: what it throws. */
  private cancel(seq: Seq, reason: unknown): void {
    if (seq.done || seq.cancelled) return;
    seq.cancelled = reason ?? 'stopped';
    if (this.waiting.includes(seq)) this.finish(seq, { error: reason });
    this.kick();
  }

  private finish(seq: Seq, last: Item, failed = false): void {
    if (seq.done) return;
    seq.done = true;
    for (const b of seq.blocks) this.release(b);
    seq.blocks = [];
    for (const list of [this.running, this.waiting]) {
      const at = list.indexOf(seq);
      if (at >= 0) list.splice(at, 1);
    }
    if (failed) this.m.failed++;
    else if (last && !('error' in last)) {
      this.m.finished++;
      if (seq.firstToken) this.m.ttft.push(seq.firstToken - seq.submitted);
      this.m.itl.push(...seq.gaps);
      if (this.m.ttft.length > 10000) this.m.ttft.splice(0, 5000);
      if (this.m.itl.length > 100000) this.m.itl.splice(0, 50000);
    }
    seq.push(last);
    if (seq.onMetrics) {
      const t0 = seq.submitted;
      try {
        seq.onMetrics({
          queueMs: (seq.admitted || performance.now()) - t0,
          timeToFirstTokenMs: seq.firstToken ? seq.firstToken - t0 : null,
          interTokenMs: seq.gaps.slice(),
          promptTokens: seq.prompt.length,
          cachedPromptTokens: seq.cached,
          outputTokens: seq.produced,
          stepMs: seq.stepMs,
        });
      } catch {
        // a caller's callback cannot stop the server's loop
      }
    }
  }

  private release(b: number): void {
    if (--this.refs[b] > 0) return;
    if (this.meta.has(b)) this.cached.add(b);
    else this.free.push(b);
  }

  /** Block b (and its children, whose prefixes run through it) names no prefix any more. */
  private forget(b: number): void {
    const m = this.meta.get(b);
    if (!m) return;
    this.meta.delete(b);
    this.shared.delete(m.key);
    this.meta.get(m.parent)?.children.delete(b);
    for (const c of m.children) this.forget(c);
    if (this.cached.delete(b)) this.free.push(b);
  }

  /** A block for new rows: a free one, else the oldest cached one (its prefix forgotten). */
  private take(): number {
    let b = this.free.pop();
    if (b === undefined) {
      b = this.cached.values().next().value as number;
      this.forget(b); // back to free, with its children that no sequence holds
      b = this.free.pop()!;
    }
    this.refs[b] = 1;
    return b;
  }

  /** Takes a waiting sequence into the batch if its blocks fit: shared prompt blocks first. */
  private admit(seq: Seq): boolean {
    const bs = this.blockSize;
    // full blocks before the prompt's last token may come from the map (that token is computed
    // here: its logits give the first new token)
    const reuse: number[] = [];
    for (let end = bs; end <= seq.prompt.length - 1; end += bs) {
      const b = this.shared.get(prefixKey(seq.prompt, end));
      const m = b === undefined ? undefined : this.meta.get(b);
      if (!m || m.parent !== (reuse.length ? reuse[reuse.length - 1] : -1) || m.tokens.some((t, i) => t !== seq.prompt[end - bs + i])) break;
      reuse.push(b!);
    }
    const revived = reuse.filter((b) => this.cached.has(b)).length; // cached blocks it takes back
    if (seq.needBlocks - reuse.length > this.free.length + this.cached.size - revived) return false;
    for (const b of reuse) {
      this.cached.delete(b);
      this.refs[b]++;
    }
    seq.blocks = reuse.slice();
    while (seq.blocks.length < seq.needBlocks) seq.blocks.push(this.take());
    seq.computed = seq.cached = reuse.length * bs;
    seq.admitted = performance.now();
    return true;
  }

  private kick(): void {
    if (!this.loop) this.loop = this.run().finally(() => (this.loop = null));
  }

  /** Steps while there is work. */
  private async run(): Promise<void> {
    for (;;) {
      const now = performance.now();
      for (const s of [...this.running, ...this.waiting]) {
        if (s.cancelled) {
          this.finish(s, { error: s.cancelled });
        } else if (now > s.deadline) {
          this.finish(s, { error: new IgnisError('E_TIMEOUT', `server.generate: the request passed its timeoutMs (${Math.round(s.deadline - s.submitted)} ms) after ${s.produced} tokens`) }, true);
        }
      }
      while (this.waiting.length && this.running.length < this.maxBatch && this.admit(this.waiting[0])) this.running.push(this.waiting.shift()!);
      if (!this.running.length || !this.state) return;
      await this.step();
      // let the consumers run between steps (their reads of the tokens, new submissions)
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  /** One step: the decoding rows, then prompt chunks, as one batch through the serving graph. */
  private async step(): Promise<void> {
    const bs = this.blockSize, mb = this.layout.maxBlocks;
    const ids: number[] = [], pos: number[] = [], slots: number[] = [], rows: number[] = [], logitRows: number[] = [];
    const inStep: Seq[] = [], fed: number[] = [], wants: Seq[] = [];
    let budget = this.maxTokens;
    // decoding sequences (one row each) before prompts, so a long prompt never holds them back
    const order = [...this.running].sort((a, b) => Number(a.computed < a.prompt.length) - Number(b.computed < b.prompt.length));
    for (const s of order) {
      if (budget <= 0) break;
      const n = Math.min(s.tokens.length - s.computed, budget);
      const si = inStep.length;
      inStep.push(s);
      fed.push(n);
      for (let j = 0; j < n; j++) {
        const p = s.computed + j;
        ids.push(s.tokens[p]);
        pos.push(p);
        slots.push(s.blocks[Math.floor(p / bs)] * bs + (p % bs));
        rows.push(si, p);
      }
      budget -= n;
      if (s.computed + n === s.tokens.length) {
        logitRows.push(ids.length - 1);
        wants.push(s);
      }
    }
    if (!logitRows.length) logitRows.push(0); // every row a prompt's middle: one row's logits, unused
    const tables = new Int32Array(inStep.length * mb);
    inStep.forEach((s, i) => tables.set(s.blocks.slice(0, mb), i * mb));
    const T = ids.length;
    const t0 = performance.now();
    const sampled = wants.some((s) => s.sample);
    try {
      const { next, logits } = await runServeStep(this.graph, this.state!, this.model.device, this.layout, { ids, positions: pos, slots, rows, blockTables: tables, logitRows }, async (out) => ({
        next: (await out.next.data()) as Int32Array,
        logits: sampled ? ((await out.logits.data()) as Float32Array) : null,
      }));
      this.m.steps++;
      this.m.rows += T;
      this.m.seqs += inStep.length;
      inStep.forEach((s, i) => (s.computed += fed[i])); // the rows fed are in the pools now
      this.share(inStep);
      const now = performance.now();
      for (const s of inStep) s.stepMs += now - t0;
      const V = this.model.vocabSize;
      wants.forEach((s, r) => {
        if (s.done) return;
        const token = s.sample ? s.sample(logits!, r * V, V) : next[r];
        s.tokens.push(token);
        s.produced++;
        this.m.outputTokens++;
        if (s.produced === 1) s.firstToken = now;
        else s.gaps.push(now - s.lastToken);
        s.lastToken = now;
        const more = s.produced < s.maxNew && s.tokens.length < this.model.maxSeq;
        const end: FinishReason | undefined = s.eos.has(token) ? 'eos' : s.stop.has(token) ? 'stop' : !more ? 'length' : undefined;
        if (end) this.finish(s, { token, end });
        else s.push({ token });
      });
    } catch (e) {
      this.m.lastError = e instanceof Error ? e.message : String(e);
      if ((e as { code?: string })?.code === 'E_DEVICE_LOST' && this.fallback) {
        // the device is gone: the same sequences go on on the fallback
        try {
          await this.moveToFallback(`${this.model.device} was lost: ${this.m.lastError}`);
          return;
        } catch (e2) {
          e = e2;
        }
      }
      // a failed step fails the requests in it; the pools are reset for the others
      for (const s of inStep) this.finish(s, { error: e }, true);
      this.state?.reset();
    }
  }

  /** Each full prompt block now computed becomes shareable under its prefix. */
  private share(seqs: Seq[]): void {
    const bs = this.blockSize;
    for (const s of seqs) {
      const full = Math.floor(Math.min(s.computed, s.prompt.length) / bs);
      for (let k = s.cached / bs; k < full; k++) {
        const b = s.blocks[k], parent = k ? s.blocks[k - 1] : -1;
        if (this.meta.has(b) || (parent >= 0 && !this.meta.has(parent))) continue;
        const key = prefixKey(s.prompt, (k + 1) * bs);
        if (this.shared.has(key)) continue;
        this.shared.set(key, b);
        this.meta.set(b, { key, parent, tokens: s.prompt.slice(k * bs, (k + 1) * bs), children: new Set() });
        this.meta.get(parent)?.children.add(b);
      }
    }
  }

  /** The server's figures now. */
  metrics(): ServerMetrics {
    const secs = (performance.now() - this.started) / 1000;
    const used = this.kvBlocks - this.free.length - this.cached.size;
    return {
      requests: { waiting: this.waiting.length, running: this.running.length, finished: this.m.finished, failed: this.m.failed, rejected: this.m.rejected },
      steps: this.m.steps,
      outputTokens: this.m.outputTokens,
      outputTokensPerSecond: secs > 0 ? this.m.outputTokens / secs : 0,
      meanBatch: this.m.steps ? this.m.seqs / this.m.steps : 0,
      meanRows: this.m.steps ? this.m.rows / this.m.steps : 0,
      kvBlocks: { total: this.kvBlocks, used, free: this.free.length + this.cached.size, shared: this.shared.size },
      timeToFirstTokenMs: quantiles(this.m.ttft),
      interTokenMs: quantiles(this.m.itl),
      lastError: this.m.lastError,
      device: this.model.device,
      fallback: this.fellBack,
    };
  }

  /** Stops taking requests, lets the running and waiting ones finish, then frees the cache. */
  async close(): Promise<void> {
    this.closing = true;
    while (this.loop) await this.loop;
    this.state?.dispose();
    this.state = null;
    this.graph.dispose();
  }
}

export function serveOptions(op: string, opts: ServeOptions | undefined, maxSeq: number): { maxBatch: number; maxTokens: number; blockSize: number; kvBlocks: number; maxQueue: number } {
  const o = v.options<ServeOptions>(op, opts, ['maxBatch', 'maxTokens', 'blockSize', 'kvBlocks', 'maxQueue', 'fallback']);
  const maxBatch = v.int(op, 'maxBatch', o.maxBatch, 1, 16);
  const maxTokens = v.int(op, 'maxTokens', o.maxTokens, 1, 64);
  const blockSize = v.int(op, 'blockSize', o.blockSize, 1, 16);
  if (blockSize > 1024) throw rangeError(`${op}: blockSize must be at most 1024, got ${blockSize}`);
  const kvBlocks = v.int(op, 'kvBlocks', o.kvBlocks, 1, maxBatch * Math.ceil(maxSeq / blockSize));
  const maxQueue = v.int(op, 'maxQueue', o.maxQueue, 1, 1024);
  return { maxBatch, maxTokens, blockSize, kvBlocks, maxQueue };
}
