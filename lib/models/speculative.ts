// Speculative decoding: a small draft model proposes k tokens one by one, and the target checks
// all of them in one forward of k + 1 rows (its serving graph, llama.ts buildLlamaServe, over a
// paged KV cache of its own). Greedy: the draft's tokens are kept while they are the target's
// argmax; the first that is not is replaced by the target's, and when all k are kept the target's
// next token comes free. Sampled: the standard rejection rule (Leviathan et al., Chen et al.),
// which keeps the target's distribution exactly: draft token d, drawn from the draft's q, is kept
// with probability min(1, p(d) / q(d)); at the first rejection a token is drawn from the
// normalized max(0, p - q); after k kept ones, from the target's p. The rows past what was kept
// are left in the caches and written over by the next rows.
import { IgnisError } from '../errors';
import type { Model, ModelState } from '../graph';
import type { Device } from '../device';
import { runServeStep, type ServeLayout } from './servegraph';
import { argmax, distribution, drawFrom, sampleUniform, SamplingOptions } from './sampling';
import type { FinishReason } from './index';

/** One sequence through a serving graph: feeds tokens from where the cache ends, gives logits. */
export class SeqRunner {
  private readonly state: ModelState;
  /** tokens [0, computed) have their keys and values in the cache */
  computed = 0;
  constructor(private readonly graph: Model, private readonly layout: ServeLayout, readonly vocab: number, private readonly device: Device) {
    this.state = graph.createState();
  }

  /** Feeds tokens [computed, end) and returns the logits of the last `want` of those rows ([want, vocab]). */
  async feed(tokens: readonly number[], end: number, want: number): Promise<Float32Array> {
    const from = this.computed, T = end - from;
    if (T < want || want < 1) throw new IgnisError('E_INTERNAL', `speculative: ${T} rows to feed, ${want} wanted`);
    const pos = Int32Array.from({ length: T }, (_, i) => from + i);
    const rows = new Int32Array(2 * T);
    for (let i = 0; i < T; i++) rows[2 * i + 1] = from + i;
    const logits = await runServeStep(this.graph, this.state, this.device, this.layout, {
      ids: tokens.slice(from, end),
      positions: pos,
      slots: pos, // block b holds rows [b bs, (b + 1) bs): the identity table
      rows,
      blockTables: Int32Array.from({ length: this.layout.maxBlocks }, (_, b) => b),
      logitRows: Int32Array.from({ length: want }, (_, i) => T - want + i),
    }, async (out) => (await out.logits.data()) as Float32Array);
    this.computed = end;
    return logits;
  }

  dispose(): void {
    this.state.dispose();
  }
}

export interface SpeculativeSetup {
  target: SeqRunner;
  draft: SeqRunner;
  k: number;
  params: Required<SamplingOptions>;
  maxNew: number;
  maxSeq: number;
  eos: Set<number>;
  stop: Set<number>;
  signal?: AbortSignal;
  /** called after each round with the draft tokens proposed and kept (the acceptance rate) */
  onRound?: (proposed: number, kept: number) => void;
}

/** The token loop of speculative decoding (the shape of LanguageModel's steps()). */
export async function* speculativeSteps(prompt: number[], s: SpeculativeSetup): AsyncGenerator<{ token: number; end?: FinishReason }, FinishReason, undefined> {
  const { target, draft, params } = s;
  const V = target.vocab;
  const greedy = params.temperature === 0;
  const tokens = prompt.slice();
  let produced = 0;
  // uniforms of a draw: (seed, the token's index, a stream per use)
  const u = (n: number, stream: number) => sampleUniform(params.seed, n, stream);
  try {
    for (;;) {
      s.signal?.throwIfAborted();
      const n0 = tokens.length;
      // at most what maxNewTokens and maxSeq leave, and at least one token a round
      const k = Math.max(0, Math.min(s.k, s.maxNew - produced - 1, s.maxSeq - n0 - 1));
      const drafts: number[] = [], qs: Float64Array[] = [];
      for (let i = 0; i < k; i++) {
        const ctx = [...tokens, ...drafts];
        const lg = await draft.feed(ctx, ctx.length, 1);
        const q = distribution(lg, 0, V, params);
        const d = greedy ? argmax(lg, 0, V) : drawFrom(q, u(produced + i, 1));
        drafts.push(d);
        qs.push(q);
      }
      // the target's rows for positions n0 - 1 .. n0 - 1 + k: each checks the draft token after it
      const all = [...tokens, ...drafts];
      const lg = await target.feed(all, all.length, k + 1);
      const out: number[] = [];
      let kept = 0;
      for (let j = 0; j <= k; j++) {
        const off = j * V;
        if (j === k) {
          out.push(greedy ? argmax(lg, off, V) : drawFrom(distribution(lg, off, V, params), u(produced + j, 3)));
          break;
        }
        const d = drafts[j];
        if (greedy) {
          const t = argmax(lg, off, V);
          out.push(t);
          if (t !== d) break;
          kept++;
          continue;
        }
        const p = distribution(lg, off, V, params), q = qs[j];
        if (u(produced + j, 2) * q[d] < p[d]) {
          out.push(d);
          kept++;
          continue;
        }
        const r = new Float64Array(V);
        let total = 0;
        for (let i = 0; i < V; i++) total += r[i] = Math.max(0, p[i] - q[i]);
        out.push(drawFrom(r, u(produced + j, 3), total));
        break;
      }
      s.onRound?.(k, kept);
      // the caches keep what was kept: the target's rows up to the last kept draft token, the
      // draft's as far as it fed and was kept
      target.computed = n0 + kept;
      draft.computed = Math.min(draft.computed, n0 + kept);
      for (const token of out) {
        tokens.push(token);
        produced++;
        const more = produced < s.maxNew && tokens.length < s.maxSeq;
        const end: FinishReason | undefined = s.eos.has(token) ? 'eos' : s.stop.has(token) ? 'stop' : !more ? 'length' : undefined;
        yield end ? { token, end } : { token };
        if (end) return end;
      }
    }
  } finally {
    target.dispose();
    draft.dispose();
  }
}
