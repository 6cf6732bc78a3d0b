// The paged KV cache: kvWrite (rows into pool slots) and pagedAttention (each query row against
// its own sequence's rows through a block table), against float64 references. Sequences of
// awkward lengths (1, 7, 13, 33) in shuffled, non-contiguous blocks of an odd size, grouped
// queries, decode rows and prefill chunks in one batch, padding rows; the pools start poisoned
// (NaN), so a read of a slot nobody wrote fails the comparison. Bad indices fail the outputs
// with E_INDEX and leave the pools unwritten. CUDA refuses the ops by name until their kernels
// have run on a GPU (IGNIS_CUDA_UNVERIFIED_ATTENTION=1, as the device check sets, runs them).

import { describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { check, FLOAT_DTYPES, forDevices, input, testCase, tolFor } from '../helpers';
import { rope } from '../reference/rope';
import type { Ref } from '../reference/shape';

const FILE = 'test/ops/paged.test.ts';
const refusedOn = (dev: string) => dev !== 'cpu' && process.env.IGNIS_CUDA_UNVERIFIED_ATTENTION !== '1';

/** softmax(scale q k^T) v for one query row of heads H against keys [0, len) of k, v [L, Hk, D]. */
function attendRef(q: ArrayLike<number>, qOff: number, k: Float64Array, v: Float64Array, len: number, H: number, Hk: number, D: number, scale: number, out: Float64Array, oOff: number, window = 0, softcap = 0) {
  const g = H / Hk;
  const j0 = window > 0 ? Math.max(0, len - window) : 0;
  for (let h = 0; h < H; h++) {
    const kh = Math.floor(h / g);
    const s = new Float64Array(len).fill(-Infinity);
    let m = -Infinity;
    for (let j = j0; j < len; j++) {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += q[qOff + h * D + d] * k[(j * Hk + kh) * D + d];
      s[j] = softcap > 0 ? softcap * Math.tanh((dot * scale) / softcap) : dot * scale;
      m = Math.max(m, s[j]);
    }
    let sum = 0;
    for (let j = j0; j < len; j++) sum += (s[j] = Math.exp(s[j] - m));
    for (let d = 0; d < D; d++) {
      let acc = 0;
      for (let j = j0; j < len; j++) acc += (s[j] / sum) * v[(j * Hk + kh) * D + d];
      out[oOff + h * D + d] = acc;
    }
  }
}

forDevices((dev) => {
  describe('paged KV cache', () => {
    for (const dtype of FLOAT_DTYPES) {
      for (const [H, Hk, D, BS] of [[6, 2, 33, 5], [4, 4, 16, 3], [8, 1, 64, 16]] as const) {
        const name = `kvWrite + pagedAttention heads ${H}/${Hk} headDim ${D} blockSize ${BS} ${dtype} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          const lens = [1, 7, 13, 33];
          const maxBlocks = Math.ceil(33 / BS) + 1;
          const NB = lens.reduce((a, l) => a + Math.ceil(l / BS), 0) + 3;
          // shuffled blocks: each sequence's table lists scattered blocks, not in order
          const order = Array.from({ length: NB }, (_, i) => i).sort((a, b) => ((a * 7919) % 101) - ((b * 7919) % 101));
          const tables = new Int32Array(lens.length * maxBlocks).fill(-1);
          let next = 0;
          lens.forEach((l, s) => {
            for (let b = 0; b < Math.ceil(l / BS); b++) tables[s * maxBlocks + b] = order[next++];
          });
          const slotOf = (s: number, j: number) => tables[s * maxBlocks + Math.floor(j / BS)] * BS + (j % BS);
          if (refusedOn(dev)) {
            const cache = ignis.pagedKvCache({ blocks: NB, blockSize: BS, heads: Hk, headDim: D, dtype, device: dev });
            const k = ignis.zeros([1, Hk, D], { dtype, device: dev });
            expect(() => ignis.kvWrite(cache, k, k, ignis.tensor(new Int32Array([0]), { device: dev }))).toThrow(expect.objectContaining({ code: 'E_DEVICE', message: expect.stringContaining('CPU only') }));
            return;
          }
          const cache = ignis.pagedKvCache({ blocks: NB, blockSize: BS, heads: Hk, headDim: D, dtype, device: dev });
          // poison the pools: a slot read that nobody wrote turns the output NaN
          const poison = ignis.full([NB, BS, Hk, D], NaN, { dtype, device: dev });
          ignis.kvWrite(cache, poison.reshape([NB * BS, Hk, D]), poison.reshape([NB * BS, Hk, D]), ignis.tensor(Int32Array.from({ length: NB * BS }, (_, i) => i), { device: dev }));
          // each sequence's rows, written in two kvWrite calls with rows of all sequences mixed
          const kin = await Promise.all(lens.map((l) => input(c, [l, Hk, D], dtype, dev)));
          const vin = await Promise.all(lens.map((l) => input(c, [l, Hk, D], dtype, dev)));
          for (const half of [0, 1]) {
            const rowsK: number[] = [], rowsV: number[] = [], slots: number[] = [];
            lens.forEach((l, s) => {
              for (let j = 0; j < l; j++) {
                if ((j % 2) !== half) continue;
                for (let e = 0; e < Hk * D; e++) {
                  rowsK.push(kin[s].x[j * Hk * D + e]);
                  rowsV.push(vin[s].x[j * Hk * D + e]);
                }
                slots.push(slotOf(s, j));
              }
            });
            slots.push(-1); // a padding row: skipped
            for (let e = 0; e < Hk * D; e++) rowsK.push(1e30), rowsV.push(1e30);
            const T = slots.length;
            ignis.kvWrite(cache, ignis.tensor(Float32Array.from(rowsK), { shape: [T, Hk, D], dtype, device: dev }), ignis.tensor(Float32Array.from(rowsV), { shape: [T, Hk, D], dtype, device: dev }), ignis.tensor(Int32Array.from(slots), { device: dev }));
          }
          // the batch: sequence 0 decodes its one row, 1 its last row, 2 a prefill chunk of rows
          // 4..12, 3 rows 0, 16 and 32; a padding row between
          const rowList: [number, number][] = [[0, 0], [1, 6], ...Array.from({ length: 9 }, (_, i) => [2, 4 + i] as [number, number]), [-1, 0], [3, 0], [3, 16], [3, 32]];
          const T = rowList.length;
          const q = await input(c, [T, H, D], dtype, dev);
          const scale = 1 / Math.sqrt(D);
          const out = ignis.pagedAttention(q.t, cache, ignis.tensor(tables, { shape: [lens.length, maxBlocks], device: dev }), ignis.tensor(Int32Array.from(rowList.flat()), { shape: [T, 2], device: dev }));
          const ref = new Float64Array(T * H * D);
          rowList.forEach(([s, pos], t) => {
            if (s < 0) return; // zeros
            attendRef(q.x, t * H * D, Float64Array.from(kin[s].x), Float64Array.from(vin[s].x), pos + 1, H, Hk, D, scale, ref, t * H * D);
          });
          await check(out, { data: ref, shape: [T, H, D] }, tolFor(dtype), c.ctx, { dtype, device: dev });
          // a sliding window of 6 keys and scores capped at 1.5 (Gemma 2's soft-capping)
          const capped = ignis.pagedAttention(q.t, cache, ignis.tensor(tables, { shape: [lens.length, maxBlocks], device: dev }), ignis.tensor(Int32Array.from(rowList.flat()), { shape: [T, 2], device: dev }), { window: 6, softcap: 1.5 });
          const ref2 = new Float64Array(T * H * D);
          rowList.forEach(([s, pos], t) => {
            if (s >= 0) attendRef(q.x, t * H * D, Float64Array.from(kin[s].x), Float64Array.from(vin[s].x), pos + 1, H, Hk, D, scale, ref2, t * H * D, 6, 1.5);
          });
          await check(capped, { data: ref2, shape: [T, H, D] }, tolFor(dtype), `${c.ctx}: window 6, softcap 1.5`, { dtype, device: dev });
          // the pools hold the rows at their slots (and the poison elsewhere)
          const pk = await cache.k.data();
          lens.forEach((l, s) => {
            for (let j = 0; j < l; j++)
              for (let e = 0; e < Hk * D; e++) expect(pk[slotOf(s, j) * Hk * D + e], `${c.ctx}: pool row ${s}:${j}`).toBe(kin[s].x[j * Hk * D + e]);
          });
          const unused = order[next];
          expect(Number.isNaN(pk[unused * BS * Hk * D]), `${c.ctx}: an unused block keeps the poison`).toBe(true);
        });
      }
    }

    it(`bad indices fail the outputs with E_INDEX and leave the pools unwritten ${dev}`, async () => {
      if (refusedOn(dev)) return;
      const device = dev;
      const i32 = (v: number[], shape?: number[]) => ignis.tensor(Int32Array.from(v), { shape, device });
      const cache = ignis.pagedKvCache({ blocks: 2, blockSize: 4, heads: 1, headDim: 8, device });
      const k = ignis.full([2, 1, 8], 1, { device });
      ignis.kvWrite(cache, k, k, i32([0, 8]));
      await expect(cache.k.data()).rejects.toMatchObject({ code: 'E_INDEX', message: expect.stringContaining('slot 8 of row 1 is outside the pool\'s 8 slots') });
      cache.clearError();
      expect(Array.from(await cache.k.data()).every((x) => x === 0), 'the failed write wrote nothing').toBe(true);
      ignis.kvWrite(cache, k, k, i32([0, 7]));
      const q = ignis.full([1, 1, 8], 1, { device });
      const tables = i32([0, 1, 1, 5], [2, 2]);
      const cases: [number[], string][] = [
        [[2, 0], "row 0's sequence 2 is outside the 2 block tables"],
        [[0, 8], "row 0's position 8 is outside [0, 8)"],
        [[1, 5], 'reads block 5'],
        [[-2, 0], "row 0's sequence -2"],
      ];
      for (const [row, msg] of cases) {
        const o = ignis.pagedAttention(q, cache, tables, i32(row, [1, 2]));
        await expect(o.data(), msg).rejects.toMatchObject({ code: 'E_INDEX', message: expect.stringContaining(msg) });
      }
      const ok = ignis.pagedAttention(q, cache, tables, i32([0, 0], [1, 2]));
      expect(Array.from(await ok.data())).toEqual(new Array(8).fill(1));
      // shapes and dtypes at the call
      expect(() => ignis.pagedAttention(ignis.full([1, 1, 4], 1, { device }), cache, tables, i32([0, 0], [1, 2]))).toThrow(expect.objectContaining({ code: 'E_SHAPE', message: expect.stringContaining('headDim') }));
      expect(() => ignis.pagedAttention(q, cache, tables, i32([0, 0, 0], [1, 3]))).toThrow(expect.objectContaining({ code: 'E_SHAPE', message: expect.stringContaining("q's rows, 2") }));
      expect(() => ignis.pagedAttention(q, cache, ignis.full([2, 2], 0, { device }), i32([0, 0], [1, 2]))).toThrow(expect.objectContaining({ code: 'E_DTYPE' }));
      expect(() => ignis.kvWrite(cache, k, k, i32([0]))).toThrow(expect.objectContaining({ code: 'E_SHAPE', message: expect.stringContaining('one slot per row') }));
      expect(() => ignis.kvWrite({} as ignis.PagedKVCache, k, k, i32([0, 1]))).toThrow(TypeError);
    });

    for (const dtype of FLOAT_DTYPES) {
      it(`rope with per-token positions equals rope at each token's position ${dtype} ${dev}`, async () => {
        const name = `rope positions ${dtype} ${dev}`;
        const c = testCase(FILE, name);
        const shape = [2, 5, 3, 14] as const;
        const x = await input(c, shape, dtype, dev);
        const pos = [0, 9, 1, 300, 4, 7, 7, 2, 1000, 33];
        const positions = ignis.tensor(Int32Array.from(pos), { shape: [2, 5], device: dev });
        if (refusedOn(dev)) {
          expect(() => ignis.rope(x.t, { positions })).toThrow(expect.objectContaining({ code: 'E_DEVICE', message: expect.stringContaining('positions') }));
          return;
        }
        const out = ignis.rope(x.t, { positions });
        const tok = 3 * 14;
        const ref = new Float64Array(x.x.length);
        for (let t = 0; t < 10; t++) {
          const r: Ref = rope(x.x.slice(t * tok, (t + 1) * tok), [1, 1, 3, 14], pos[t]);
          ref.set(r.data, t * tok);
        }
        await check(out, { data: ref, shape: [...shape] }, dtype === 'f32' ? 1e-5 + 4 * 1000 * 2 ** -24 : tolFor(dtype), c.ctx, { dtype, device: dev });
        expect(() => ignis.rope(x.t, { positions, position: 3 })).toThrow(TypeError);
        expect(() => ignis.rope(x.t, { positions: ignis.tensor(new Int32Array(5), { shape: [1, 5], device: dev }) })).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
      });
    }
  });
});
