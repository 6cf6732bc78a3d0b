// Next-token choice from a row of logits: greedy (temperature 0, ties to the lowest id), or
// sampling from softmax(logits / temperature) restricted to the topK most likely ids and the
// smallest set whose probability reaches topP, with a seeded generator (same seed, same tokens).
// Nothing sorts the vocabulary: topK keeps a heap of k, topP a quickselect that tracks mass, so a
// token costs O(vocab) (0.2-0.5 ms at 8192 ids, 1-8 ms at 152064, against 3-108 ms sorting).
import { rangeError } from '../errors';
import * as v from '../validate';

export interface SamplingOptions {
  /** 0 (the default) picks the most likely token */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
}

const MASK64 = (1n << 64n) - 1n;

/**
 * The draw in [0, 1) for (seed, counter, row): a splitmix64 hash, so a step's draw needs no
 * state from the step before. native/cpu/sample.cc computes the same 53 bits.
 */
export function sampleUniform(seed: number, counter: number, row = 0): number {
  let z = BigInt(seed) ^ ((BigInt(counter) * 0xd1b54a32d192ed03n) & MASK64) ^ ((BigInt(row) * 0x8cb92ba72f3d8dd7n) & MASK64);
  z = (z + 0x9e3779b97f4a7c15n) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  z ^= z >> 31n;
  return Number(z >> 11n) / 2 ** 53;
}

export interface Sampler {
  (logits: Float32Array, offset: number, n: number): number;
}

/** The first index of the maximum of x [offset, offset + n); NaN above every number (as ignis.argmax). */
export function argmax(x: Float32Array, offset: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) {
    const v = x[offset + i], b = x[offset + best];
    if (b !== b) break; // a NaN: the first one wins
    if (v > b || v !== v) best = i;
  }
  return best;
}

/** The options checked, with their defaults (a random seed when none is given). */
export function samplingParams(op: string, o: SamplingOptions): Required<SamplingOptions> {
  const temperature = v.number(op, 'temperature', o.temperature, 0, (t) => t >= 0, 'a number >= 0');
  const topK = o.topK === undefined ? 0 : v.int(op, 'topK', o.topK, 1);
  const topP = v.number(op, 'topP', o.topP, 1, (p) => p > 0 && p <= 1, 'a number in (0, 1]');
  const seed = o.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : v.int(op, 'seed', o.seed, 0);
  if (temperature === 0 && (o.topK !== undefined || o.topP !== undefined))
    throw rangeError(`${op}: topK and topP need a temperature > 0 (temperature 0 is greedy)`);
  return { temperature, topK, topP, seed };
}

/**
 * A sampler for one generation, for options samplingParams has checked: call k draws with
 * counter k, as ignis.sample(logits, { ..., counter: k }) does on the CPU (the same token for the
 * same logits and seed).
 */
export function samplerFor(params: Required<SamplingOptions>): Sampler {
  if (params.temperature === 0) return argmax;
  let counter = 0; // one draw a call: the token index in generate()
  const scratch = { ids: new Int32Array(0), w: new Float64Array(0) };
  return (logits, offset, n) => drawToken(logits, offset, n, params, counter++, 0, scratch);
}

/**
 * The token ignis.sample draws from logits [offset, offset + n) for (seed, counter, row), with
 * temperature > 0. scratch (candidate ids, weights by id) is reused when large enough.
 */
export function drawToken(
  logits: Float32Array, offset: number, n: number, { temperature, topK, topP, seed }: Required<SamplingOptions>,
  counter: number, row = 0, scratch: { ids: Int32Array; w: Float64Array } = { ids: new Int32Array(0), w: new Float64Array(0) },
): number {
  const { m, total } = keep(logits, offset, n, temperature, topK, topP, scratch);
  const { ids, w } = scratch;
  let r = sampleUniform(seed, counter, row) * total;
  for (let i = 0; i < m; i++) {
    r -= w[ids[i]];
    if (r < 0) return ids[i];
  }
  return ids[m - 1];
}

/**
 * The ids drawToken may draw, scratch.ids[0, m), and their weights by id in scratch.w (total:
 * their sum): the topK best (best first), or all of them in id order; then the nucleus, the
 * fewest best ones whose probability reaches topP (ranked by descending logit, ties to the lower
 * id). Sampling walks the kept ids in the order they are left in.
 */
function keep(
  logits: Float32Array, offset: number, n: number, temperature: number, topK: number, topP: number, scratch: { ids: Int32Array; w: Float64Array },
): { m: number; total: number } {
  if (scratch.ids.length < n) (scratch.ids = new Int32Array(n)), (scratch.w = new Float64Array(n));
  const { ids, w } = scratch;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[offset + i] > max) max = logits[offset + i];
  let m: number;
  if (topK > 0 && topK < n) m = topCandidates(logits, offset, n, topK, ids);
  else for (let i = 0; i < (m = n); i++) ids[i] = i;
  let total = 0;
  for (let i = 0; i < m; i++) total += (w[ids[i]] = Math.exp((logits[offset + ids[i]] - max) / temperature));
  if (topP < 1) {
    m = m < n ? prefixReaching(ids, m, w, topP * total) : nucleus(logits, offset, ids, m, w, topP * total);
    total = 0;
    for (let i = 0; i < m; i++) total += w[ids[i]];
  }
  return { m, total };
}

/** The length of the shortest prefix of ids (best first) whose weights sum to `mass` (all if none). */
function prefixReaching(ids: Int32Array, m: number, w: Float64Array, mass: number): number {
  let acc = 0;
  for (let i = 0; i < m; i++) if ((acc += w[ids[i]]) >= mass) return i + 1;
  return m;
}

/**
 * Rearranges ids[0, m) so that ids[0, c) are the fewest best ids (descending logit, ties to the
 * lower id) whose weights sum to `mass`, and returns c: a quickselect that keeps the mass of the
 * better side, O(m) expected, rather than a sort. Pivots are medians of three, so the result
 * depends on nothing but the logits.
 */
export function nucleus(logits: Float32Array, offset: number, ids: Int32Array, m: number, w: Float64Array, mass: number): number {
  const better = (a: number, b: number) => {
    const la = logits[offset + a], lb = logits[offset + b];
    return la > lb || (la === lb && a < b);
  };
  let lo = 0, hi = m, need = mass;
  while (hi - lo > 16) {
    // median of three as the pivot, moved to lo
    const mid = (lo + hi) >> 1;
    let p = lo;
    const a = ids[lo], b = ids[mid], c = ids[hi - 1];
    if (better(a, b) !== better(a, c)) p = lo;
    else if (better(b, a) !== better(b, c)) p = mid;
    else p = hi - 1;
    const pivot = ids[p];
    ids[p] = ids[lo];
    ids[lo] = pivot;
    // ids[lo + 1, j) better than the pivot, the rest worse (ids are distinct: a total order)
    let j = lo + 1, mb = 0;
    for (let i = lo + 1; i < hi; i++) {
      const id = ids[i];
      if (better(id, pivot)) {
        ids[i] = ids[j];
        ids[j++] = id;
        mb += w[id];
      }
    }
    // the pivot after the better ones: ids[lo, j - 1) better, ids[j - 1] the pivot
    ids[lo] = ids[j - 1];
    ids[j - 1] = pivot;
    if (mb >= need) hi = j - 1;
    else if (mb + w[pivot] >= need) return j;
    else (need -= mb + w[pivot]), (lo = j);
  }
  ids.subarray(lo, hi).sort((a, b) => logits[offset + b] - logits[offset + a] || a - b);
  let acc = 0;
  for (let i = lo; i < hi; i++) if ((acc += w[ids[i]]) >= need) return i + 1;
  return hi;
}

/**
 * The k best ids of logits [offset, offset + n) (descending logit, ties to the lower id) into
 * out[0, k), best first: a heap of the k best so far, O(n log k). Returns k.
 */
export function topCandidates(logits: Float32Array, offset: number, n: number, k: number, out: Int32Array): number {
  // worse(a, b): id a ranks below id b
  const worse = (a: number, b: number) => {
    const la = logits[offset + a], lb = logits[offset + b];
    return la < lb || (la === lb && a > b);
  };
  // min-heap on rank in out[0, size): out[0] is the worst kept
  const down = (i: number, size: number) => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let worst = i;
      if (l < size && worse(out[l], out[worst])) worst = l;
      if (r < size && worse(out[r], out[worst])) worst = r;
      if (worst === i) return;
      const t = out[i];
      out[i] = out[worst];
      out[worst] = t;
      i = worst;
    }
  };
  for (let i = 0; i < k; i++) out[i] = i;
  for (let i = (k >> 1) - 1; i >= 0; i--) down(i, k);
  for (let i = k; i < n; i++) {
    if (worse(out[0], i)) {
      out[0] = i;
      down(0, k);
    }
  }
  out.subarray(0, k).sort((a, b) => logits[offset + b] - logits[offset + a] || a - b);
  return k;
}


/**
 * The distribution drawToken draws from, as probabilities over the n ids (0 outside the kept
 * ones): softmax(logits / temperature) kept to topK and the topP nucleus, renormalized. With
 * temperature 0, all of it on the argmax. Speculative decoding's rejection rule compares two.
 */
export function distribution(logits: Float32Array, offset: number, n: number, { temperature, topK, topP }: Required<SamplingOptions>): Float64Array {
  const p = new Float64Array(n);
  if (temperature === 0) {
    p[argmax(logits, offset, n)] = 1;
    return p;
  }
  const scratch = { ids: new Int32Array(n), w: new Float64Array(n) };
  const { m, total } = keep(logits, offset, n, temperature, topK, topP, scratch);
  const { ids, w } = scratch;
  for (let i = 0; i < m; i++) p[ids[i]] = w[ids[i]] / total;
  return p;
}

/** An id drawn from probabilities p (summing to 1, or to `total`) with the uniform u in [0, 1). */
export function drawFrom(p: Float64Array, u: number, total = 1): number {
  let r = u * total, last = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] <= 0) continue;
    last = i;
    if ((r -= p[i]) < 0) return i;
  }
  return last;
}
