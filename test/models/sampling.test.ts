// The sampler of generate(): its kept set (topK, then the topP nucleus) against a sort-based
// reference on fresh random logits (sizes 1 to 5000, many ties), and its draws against the
// probabilities they should follow.

import { describe, expect, it } from 'vitest';
import { nucleus, samplerFor, samplingParams, topCandidates } from '../../lib/models/sampling';
import { testCase } from '../helpers';

const FILE = 'test/models/sampling.test.ts';

/** ids by descending logit, ties to the lower id */
function ranked(logits: Float32Array): number[] {
  return Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
}

/** The reference kept set: the topK best (all when 0), then the fewest best whose probability reaches topP. */
function keptRef(logits: Float32Array, T: number, topK: number, topP: number): { ids: number[]; p: number[] } {
  const order = ranked(logits).slice(0, topK > 0 ? topK : logits.length);
  const max = logits[order[0]];
  const w = order.map((i) => Math.exp((logits[i] - max) / T));
  const total = w.reduce((a, b) => a + b, 0);
  let cut = order.length, acc = 0;
  if (topP < 1)
    for (let i = 0; i < order.length; i++)
      if ((acc += w[i]) >= topP * total) {
        cut = i + 1;
        break;
      }
  const kept = w.slice(0, cut), sum = kept.reduce((a, b) => a + b, 0);
  return { ids: order.slice(0, cut), p: kept.map((x) => x / sum) };
}

function randomLogits(c: ReturnType<typeof testCase>, n: number, ties: boolean): Float32Array {
  return Float32Array.from({ length: n }, () => (ties ? Math.floor(c.rng.next() * 6) : c.rng.normal() * 3));
}

describe('sampling', () => {
  it('topCandidates: the k best ids, best first (ties to the lower id)', () => {
    const c = testCase(FILE, 'topCandidates');
    for (const n of [1, 7, 33, 129, 5000])
      for (const ties of [false, true])
        for (const k of [1, 3, 40].filter((x) => x <= n)) {
          const logits = randomLogits(c, n, ties);
          const out = new Int32Array(n);
          expect(topCandidates(logits, 0, n, k, out)).toBe(k);
          expect(Array.from(out.subarray(0, k)), `${c.ctx}: n ${n} k ${k} ties ${ties}`).toEqual(ranked(logits).slice(0, k));
        }
  });

  it('nucleus: the same kept set as sorting, at every size and topP, ties included', () => {
    const c = testCase(FILE, 'nucleus');
    for (const n of [1, 2, 7, 17, 33, 129, 5000])
      for (const ties of [false, true])
        for (const topP of [0.05, 0.5, 0.9, 0.999]) {
          const logits = randomLogits(c, n, ties);
          const T = 0.3 + c.rng.next();
          const max = Math.max(...logits);
          const w = new Float64Array(n);
          let total = 0;
          for (let i = 0; i < n; i++) total += (w[i] = Math.exp((logits[i] - max) / T));
          const ids = Int32Array.from({ length: n }, (_, i) => i);
          const m = nucleus(logits, 0, ids, n, w, topP * total);
          const want = keptRef(logits, T, 0, topP).ids;
          expect(new Set(ids.subarray(0, m)), `${c.ctx}: n ${n} topP ${topP} ties ${ties}`).toEqual(new Set(want));
        }
  });

  it('draws follow the kept probabilities and never leave the kept set; a seed repeats its draws', () => {
    const c = testCase(FILE, 'sampler draws');
    const logits = Float32Array.from([1.5, -0.3, 2.2, 2.2, 0.9, -4, 1.1, 0.2, 2.0]);
    for (const o of [{ temperature: 1 }, { temperature: 0.7, topK: 4 }, { temperature: 1.3, topP: 0.8 }, { temperature: 0.9, topK: 6, topP: 0.7 }]) {
      const ref = keptRef(logits, o.temperature, o.topK ?? 0, o.topP ?? 1);
      const seed = Math.floor(c.rng.next() * 2 ** 32);
      const s = samplerFor(samplingParams('test', { ...o, seed }));
      const N = 20000;
      const counts = new Map<number, number>();
      const first: number[] = [];
      for (let i = 0; i < N; i++) {
        const t = s(logits, 0, logits.length);
        if (i < 50) first.push(t);
        counts.set(t, (counts.get(t) ?? 0) + 1);
      }
      for (const t of counts.keys()) expect(ref.ids, `${c.ctx} ${JSON.stringify(o)}: drew ${t}`).toContain(t);
      ref.ids.forEach((id, k) => {
        const p = ref.p[k], got = (counts.get(id) ?? 0) / N;
        expect(Math.abs(got - p), `${c.ctx} ${JSON.stringify(o)}: id ${id} drawn ${got}, p ${p}`).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / N) + 1e-9);
      });
      const again = samplerFor(samplingParams('test', { ...o, seed }));
      expect(Array.from({ length: 50 }, () => again(logits, 0, logits.length)), `${c.ctx}: seed ${seed} repeats`).toEqual(first);
    }
  });
});
