// Next-token choice from a row of logits: greedy (temperature 0, ties to the lowest id), or
// sampling from softmax(logits / temperature) restricted to the topK most likely ids and the
// smallest set whose probability reaches topP, with a seeded generator (same seed, same tokens).
import { rangeError } from '../errors';
import * as v from '../validate';

export interface SamplingOptions {
  /** 0 (the default) picks the most likely token */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
}

/** xoshiro128** seeded through splitmix32: floats in [0, 1) from 53 random bits. */
export class Rng {
  private s = new Uint32Array(4);
  constructor(seed: number) {
    let x = (seed >>> 0) ^ Math.floor(seed / 2 ** 32);
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }
  private u32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }
  next(): number {
    return ((this.u32() >>> 5) * 2 ** 26 + (this.u32() >>> 6)) / 2 ** 53;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
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

export function makeSampler(op: string, o: SamplingOptions): Sampler {
  const temperature = v.number(op, 'temperature', o.temperature, 0, (t) => t >= 0, 'a number >= 0');
  const topK = o.topK === undefined ? 0 : v.int(op, 'topK', o.topK, 1);
  const topP = v.number(op, 'topP', o.topP, 1, (p) => p > 0 && p <= 1, 'a number in (0, 1]');
  const seed = o.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : v.int(op, 'seed', o.seed, 0);
  if (temperature === 0) {
    if (o.topK !== undefined || o.topP !== undefined) throw rangeError(`${op}: topK and topP need a temperature > 0 (temperature 0 is greedy)`);
    return argmax;
  }
  const rng = new Rng(seed);
  return (logits, offset, n) => {
    // candidates by descending logit (ties: lower id first), cut to topK
    const ids = Array.from({ length: n }, (_, i) => i);
    ids.sort((a, b) => logits[offset + b] - logits[offset + a] || a - b);
    const keep = topK > 0 ? Math.min(topK, n) : n;
    const max = logits[offset + ids[0]];
    const p = new Float64Array(keep);
    let sum = 0;
    for (let i = 0; i < keep; i++) {
      p[i] = Math.exp((logits[offset + ids[i]] - max) / temperature);
      sum += p[i];
    }
    // nucleus: the smallest prefix whose probability reaches topP
    let cut = keep, acc = 0;
    for (let i = 0; i < keep; i++) {
      acc += p[i] / sum;
      if (acc >= topP) {
        cut = i + 1;
        break;
      }
    }
    let total = 0;
    for (let i = 0; i < cut; i++) total += p[i];
    let r = rng.next() * total;
    for (let i = 0; i < cut; i++) {
      r -= p[i];
      if (r < 0) return ids[i];
    }
    return ids[cut - 1];
  };
}
