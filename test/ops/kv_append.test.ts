// attention with a KV cache: a prefill then token-by-token decode gives, row for row, the
// same result as one causal attention over the whole sequence; the cache holds the rows
// written; length, reset() and an explicit position (rewind) behave as documented.

import { describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { check, deviceName, FLOAT_DTYPES, forDevices, input, testCase, tolFor, type Device } from '../helpers';
import { attention } from '../reference/attention';
import type { FloatDType } from '../reference/round';

const FILE = 'test/ops/kv_append.test.ts';

/** Rows [s0, s1) along the seq axis of x [B, S, H, D]. */
function sliceSeq(x: Float64Array, B: number, S: number, H: number, D: number, s0: number, s1: number): Float64Array {
  const row = H * D;
  const out = new Float64Array(B * (s1 - s0) * row);
  for (let b = 0; b < B; b++) out.set(x.subarray((b * S + s0) * row, (b * S + s1) * row), b * (s1 - s0) * row);
  return out;
}

function tensorOf(x: Float64Array, shape: number[], dtype: FloatDType, dev: Device) {
  return ignis.tensor(Float32Array.from(x), { shape, dtype, device: dev });
}

interface KvCase {
  B: number;
  S: number;
  prefill: number;
  Hq: number;
  Hk: number;
  D: number;
}

const cases: KvCase[] = [
  { B: 1, S: 20, prefill: 13, Hq: 8, Hk: 2, D: 64 },
  { B: 2, S: 12, prefill: 5, Hq: 4, Hk: 1, D: 80 },
  { B: 1, S: 9, prefill: 1, Hq: 2, Hk: 2, D: 128 },
  { B: 1, S: 8, prefill: 3, Hq: 8, Hk: 2, D: 7 },
];

forDevices((dev) => {
  for (const dtype of FLOAT_DTYPES) {
    describe(dtype, () => {
      for (const kc of cases) {
        const { B, S, prefill, Hq, Hk, D } = kc;
        const maxSeq = S + 3;
        const name = `kvCache prefill ${prefill} + decode ${S - prefill} q heads ${Hq} kv heads ${Hk} headDim ${D} batch ${B} ${dtype} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          const q = await input(c, [B, S, Hq, D], dtype, dev);
          const k = await input(c, [B, S, Hk, D], dtype, dev);
          const v = await input(c, [B, S, Hk, D], dtype, dev);
          const full = attention(q.x, k.x, v.x, B, S, S, Hq, Hk, D, { causal: true }).data;
          const tol = tolFor(dtype);

          // the same, from ignis without a cache
          const whole = ignis.attention(q.t, k.t, v.t, { causal: true });
          await check(whole, full, tol, `${c.ctx} (no cache)`, { shape: [B, S, Hq, D], dtype, device: dev });

          const cache = ignis.kvCache({ batch: B, maxSeq, heads: Hk, headDim: D, dtype, device: dev });
          expect(cache.length).toBe(0);
          expect(cache.k.shape).toEqual([B, maxSeq, Hk, D]);
          expect(cache.v.shape).toEqual([B, maxSeq, Hk, D]);
          expect(cache.k.dtype).toBe(dtype);
          expect(cache.k.device).toBe(deviceName(dev));

          const steps: [number, number][] = [[0, prefill]];
          for (let s = prefill; s < S; s++) steps.push([s, s + 1]);
          for (const [s0, s1] of steps) {
            const n = s1 - s0;
            const qs = tensorOf(sliceSeq(q.x, B, S, Hq, D, s0, s1), [B, n, Hq, D], dtype, dev);
            const ks = tensorOf(sliceSeq(k.x, B, S, Hk, D, s0, s1), [B, n, Hk, D], dtype, dev);
            const vs = tensorOf(sliceSeq(v.x, B, S, Hk, D, s0, s1), [B, n, Hk, D], dtype, dev);
            const out = ignis.attention(qs, ks, vs, { causal: true, kvCache: cache });
            expect(cache.length, `${c.ctx}: length after rows [${s0}, ${s1})`).toBe(s1);
            await check(out, sliceSeq(full, B, S, Hq, D, s0, s1), tol, `${c.ctx}: rows [${s0}, ${s1})`, {
              shape: [B, n, Hq, D],
              dtype,
              device: dev,
            });
            qs.dispose();
            ks.dispose();
            vs.dispose();
          }

          // the cache holds the rows written, at their positions
          const ck = await cache.k.data();
          const cv = await cache.v.data();
          for (let b = 0; b < B; b++) {
            const got = Float64Array.from(ck.subarray(b * maxSeq * Hk * D, (b * maxSeq + S) * Hk * D));
            const gotv = Float64Array.from(cv.subarray(b * maxSeq * Hk * D, (b * maxSeq + S) * Hk * D));
            const want = sliceSeq(k.x, B, S, Hk, D, 0, S).subarray(b * S * Hk * D, (b + 1) * S * Hk * D);
            const wantv = sliceSeq(v.x, B, S, Hk, D, 0, S).subarray(b * S * Hk * D, (b + 1) * S * Hk * D);
            expect(Array.from(got), `${c.ctx}: cache.k batch ${b}`).toEqual(Array.from(want));
            expect(Array.from(gotv), `${c.ctx}: cache.v batch ${b}`).toEqual(Array.from(wantv));
          }
          cache.dispose();
        });
      }

      it(`kvCache reset() and an explicit position (rewind) ${dtype} ${dev}`, async () => {
        const name = `kvCache reset/rewind ${dtype} ${dev}`;
        const c = testCase(FILE, name);
        const [B, Hq, Hk, D, maxSeq] = [1, 4, 2, 64, 16];
        const tol = tolFor(dtype);
        const cache = ignis.kvCache({ batch: B, maxSeq, heads: Hk, headDim: D, dtype, device: dev });
        // mirror of the cache's content, float64 [B, maxSeq, Hk, D]
        const mk = new Float64Array(B * maxSeq * Hk * D);
        const mv = new Float64Array(B * maxSeq * Hk * D);
        const step = async (n: number, position: number | undefined, causal: boolean) => {
          const q = await input(c, [B, n, Hq, D], dtype, dev);
          const k = await input(c, [B, n, Hk, D], dtype, dev);
          const v = await input(c, [B, n, Hk, D], dtype, dev);
          const pos = position ?? cache.length;
          const opts = position === undefined ? { causal, kvCache: cache } : { causal, kvCache: cache, position };
          const out = ignis.attention(q.t, k.t, v.t, opts);
          mk.set(k.x, pos * Hk * D);
          mv.set(v.x, pos * Hk * D);
          const ref = attention(q.x, mk, mv, B, n, maxSeq, Hq, Hk, D, { causal, offset: pos, kvLen: pos + n });
          expect(cache.length, c.ctx).toBe(pos + n);
          await check(out, ref, tol, `${c.ctx}: ${n} rows at ${pos}${causal ? ' causal' : ''}`, { shape: [B, n, Hq, D], dtype, device: dev });
        };
        await step(10, undefined, true); // prefill 10
        await step(1, undefined, false); // decode at 10: a single query sees all 11 rows either way
        await step(3, 5, true); // rewind: rows 5..7 overwritten, length 8
        await step(2, undefined, true); // continues at 8
        cache.reset();
        expect(cache.length).toBe(0);
        mk.fill(0);
        mv.fill(0);
        await step(4, undefined, true);
        await step(5, 4, false); // non-causal chunk: every query sees rows [0, 9)
        cache.dispose();
      });
    });
  }
});

