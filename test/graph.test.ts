// Compiled graphs (ignis.graph): one plan, run at several bindings of its symbolic dimensions,
// gives bit for bit what the same eager ops give and, op by op, what the float64 references
// give; KV-cache state across prefill and decode; the arena's size and liveness reuse; queued
// runs sharing one arena; outputs that are inputs or weights; and every build, compile and
// run error, with its code and the names it must spell.

import { describe, expect, it } from 'vitest';
import * as ignis from '../lib/index';
import { assertError, check, cudaAvailable, expectFails, expectThrows, input, intInput, testCase, tolFor, type Case, type Input, type Tensor } from './helpers';
import * as ref from './reference/index';
import type { FloatDType } from './reference/round';

const FILE = 'test/graph.test.ts';
const DEV = 'cpu';

type Node = ignis.GraphNode;

/** got must equal want exactly: same shape, dtype and every value (graph vs eager). */
async function same(got: Tensor, want: Tensor | Float64Array, ctx: string): Promise<void> {
  const w = want instanceof Float64Array ? want : Float64Array.from(await want.data());
  if (!(want instanceof Float64Array)) {
    expect(got.shape, `${ctx}: shape`).toEqual(want.shape);
    expect(got.dtype, `${ctx}: dtype`).toBe(want.dtype);
  }
  const cmp = ref.compareExact(await got.data(), w);
  if (!cmp.ok) expect.fail(`${ctx}: ${cmp.message}`);
}

async function values(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.data());
}

/** Rows [s0, s1) along axis 1 of x [B, S, ...row]. */
function seqSlice(x: ArrayLike<number>, B: number, S: number, row: number, s0: number, s1: number): Float64Array {
  const out = new Float64Array(B * (s1 - s0) * row);
  for (let b = 0; b < B; b++)
    for (let s = s0; s < s1; s++)
      for (let i = 0; i < row; i++) out[(b * (s1 - s0) + s - s0) * row + i] = x[(b * S + s) * row + i];
  return out;
}

function tensorOf(x: ArrayLike<number>, shape: number[], dtype: FloatDType): Tensor {
  return ignis.tensor(Float32Array.from(x), { shape, dtype, device: DEV });
}

const OTHER: Record<FloatDType, FloatDType> = { f32: 'bf16', bf16: 'f32', f16: 'f32' };

// --- 1. every builder op, against eager and the references ----------------------------------

// A block that uses every op once: embedding + rows (positions from a scalar) + input, the
// norms, three projections (plain transposed with bias, int8 quantized, packed with bias and
// silu), reshapes with -1 and symbols, rope (scalar + offset, and a number), causal GQA
// attention, the output projection (bias + gelu), a broadcast mul, the three activations,
// softmax over two axes, a cast and last().
const D = 33; // model dim
const V = 50; // vocabulary
const P = 20; // rows of the position table
const HQ = 4, HK = 2, HD = 6;
const MAX_B = 3, MAX_S = 8;
const RUNS = [
  { B: 1, S: 7, pos: 0 },
  { B: 3, S: 7, pos: 5 },
  { B: 2, S: 1, pos: 12 },
  { B: 3, S: 8, pos: 3 },
  { B: 1, S: 2, pos: 17 },
];
const ROWS_OFFSET = 1; // rows start at pos + 1
const Q_ROPE_OFFSET = 3; // q's rope at pos + 3
const K_ROPE_POS = 2; // k's rope at the fixed position 2

interface BlockWeights {
  table: Input; // [V, D]
  posTable: Input; // [P, D]
  lnW: Input;
  lnB: Input;
  rmsW: Input;
  wq: Input; // [HQ*HD, D], used transposed
  bq: Input; // [HQ*HD]
  wkRaw: Input; // [HK*HD, D], quantized per channel
  wk: ignis.QuantizedTensor;
  wkQ: Float64Array;
  wkScales: Float64Array;
  wvRaw: Input; // [D, HK*HD], packed
  wv: ignis.PackedWeight;
  bv: Input;
  wo: Input; // [HQ*HD, D]
  bo: Input; // [D]
  gamma: Input; // [D]
}

async function blockWeights(c: Case, dtype: FloatDType): Promise<BlockWeights> {
  const w = (shape: number[], std = 0.3, mean = 0) => input(c, shape, dtype, DEV, { std, mean });
  const wkRaw = await w([HK * HD, D]);
  const wk = ignis.quantize(wkRaw.t);
  const wvRaw = await w([D, HK * HD]);
  return {
    table: await w([V, D], 1),
    posTable: await w([P, D], 0.5),
    lnW: await w([D], 0.2, 1),
    lnB: await w([D], 0.2),
    rmsW: await w([D], 0.2, 1),
    wq: await w([HQ * HD, D]),
    bq: await w([HQ * HD], 0.1),
    wkRaw,
    wk,
    wkQ: await values(wk.q),
    wkScales: await values(wk.scales),
    wvRaw,
    wv: ignis.packWeight(wvRaw.t),
    bv: await w([HK * HD], 0.1),
    wo: await w([HQ * HD, D]),
    bo: await w([D], 0.1),
    gamma: await w([D], 0.5, 1),
  };
}

const STAGES = ['emb', 'pe', 'h', 'ln', 'rn', 'q', 'k', 'v', 'qr', 'kr', 'att', 'o', 'm', 'act', 'sm', 'sm1', 'y', 'last', 'am'] as const;
type Stage = (typeof STAGES)[number];

/** The block as a graph; every stage an output (taps) or only y and last (all else in the arena). */
function blockGraph(w: BlockWeights, dtype: FloatDType, taps: boolean): ignis.GraphBuilder {
  const g = ignis.graph();
  const x = g.input('x', { shape: ['batch', 'seq', D], dtype });
  const ids = g.input('ids', { shape: ['batch', 'seq'], dtype: 'i32' });
  const pos = g.scalar('pos');
  const W = (name: string, t: Input) => g.weight(name, t.t);
  const emb = g.embedding(ids, W('table', w.table)); // [batch, seq, D]
  const pe = g.rows(W('posTable', w.posTable), { start: pos, offset: ROWS_OFFSET, count: 'seq' }); // [seq, D]
  const h = g.add(g.add(emb, pe), x);
  const ln = g.layernorm(h, W('lnW', w.lnW), W('lnB', w.lnB));
  const rn = g.rmsnorm(ln, W('rmsW', w.rmsW));
  const q = g.matmul(rn, W('wq', w.wq), { transposeB: true, bias: W('bq', w.bq) }); // [batch, seq, HQ*HD]
  const k = g.matmul(rn, g.weight('wk', w.wk)); // [batch, seq, HK*HD]
  const v = g.matmul(rn, g.weight('wv', w.wv), { bias: W('bv', w.bv), activation: 'silu' });
  const qr = g.rope(g.reshape(q, ['batch', 'seq', HQ, -1]), { position: pos, offset: Q_ROPE_OFFSET });
  const kr = g.rope(g.reshape(k, ['batch', 'seq', HK, HD]), { position: K_ROPE_POS });
  const v4 = g.reshape(v, ['batch', 'seq', -1, HD]);
  const att = g.attention(qr, kr, v4, { causal: true }); // [batch, seq, HQ, HD]
  const a2 = g.reshape(g.reshape(att, ['batch', 'seq', HQ * HD, 1]), ['batch', 'seq', -1]); // a view of a view
  const o = g.matmul(a2, W('wo', w.wo), { bias: W('bo', w.bo), activation: 'gelu' });
  const m = g.mul(o, W('gamma', w.gamma));
  const act = g.add(g.relu(m), g.add(g.silu(h), g.gelu(ln)));
  const sm = g.softmax(act);
  const sm1 = g.softmax(act, { axis: 1 });
  const y = g.cast(sm, OTHER[dtype]);
  const last = g.last(sm1); // [batch, 1, D]
  const am = g.argmax(act); // [batch, seq] i32
  const nodes: Record<Stage, Node> = { emb, pe, h, ln, rn, q, k, v: v4, qr, kr, att, o, m, act, sm, sm1, y, last, am };
  for (const s of STAGES) if (taps || s === 'y' || s === 'last') g.output(s, nodes[s]);
  return g;
}

/** The same block, eagerly: the stages as tensors. */
async function blockEager(w: BlockWeights, dtype: FloatDType, x: Tensor, ids: Tensor, pos: number, B: number, S: number): Promise<Record<Stage, Tensor>> {
  const emb = ignis.embedding(ids, w.table.t);
  const p0 = pos + ROWS_OFFSET;
  const pe = tensorOf(w.posTable.x.subarray(p0 * D, (p0 + S) * D), [S, D], dtype);
  const h = ignis.add(ignis.add(emb, pe), x);
  const ln = ignis.layernorm(h, w.lnW.t, w.lnB.t);
  const rn = ignis.rmsnorm(ln, w.rmsW.t);
  const q = ignis.matmul(rn, w.wq.t, { transposeB: true, bias: w.bq.t });
  const k = ignis.matmul(rn, w.wk);
  const v = ignis.matmul(rn, w.wv, { bias: w.bv.t, activation: 'silu' }).reshape([B, S, HK, HD]);
  const qr = ignis.rope(q.reshape([B, S, HQ, HD]), { position: pos + Q_ROPE_OFFSET });
  const kr = ignis.rope(k.reshape([B, S, HK, HD]), { position: K_ROPE_POS });
  const att = ignis.attention(qr, kr, v, { causal: true });
  const o = ignis.matmul(att.reshape([B, S, HQ * HD]), w.wo.t, { bias: w.bo.t, activation: 'gelu' });
  const m = ignis.mul(o, w.gamma.t);
  const act = ignis.add(ignis.relu(m), ignis.add(ignis.silu(h), ignis.gelu(ln)));
  const sm = ignis.softmax(act);
  const sm1 = ignis.softmax(act, { axis: 1 });
  const y = ignis.cast(sm, OTHER[dtype]);
  const last = tensorOf(seqSlice(await sm1.data(), B, S, D, S - 1, S), [B, 1, D], dtype);
  const am = ignis.argmax(act);
  return { emb, pe, h, ln, rn, q, k, v, qr, kr, att, o, m, act, sm, sm1, y, last, am };
}

/**
 * Each stage against its float64 reference, computed from the graph's own values of that
 * stage's operands (so each op is held to its own tolerance, however deep in the block).
 */
async function checkStages(out: Record<string, Tensor>, w: BlockWeights, dtype: FloatDType, xs: Float64Array, ids: Int32Array, B: number, S: number, pos: number, ctx: string) {
  const gv = {} as Record<Stage, Float64Array>;
  for (const s of STAGES) gv[s] = await values(out[s]);
  const tol = tolFor(dtype);
  const BSD = [B, S, D];
  const meta = { dtype, device: 'cpu' as const };
  const p0 = pos + ROWS_OFFSET;
  await check(out.emb, ref.embedding(ids, [B, S], w.table.x, V, D), 0, `${ctx} emb`, meta);
  await check(out.pe, { data: w.posTable.x.slice(p0 * D, (p0 + S) * D), shape: [S, D] }, 0, `${ctx} pe`, meta);
  await check(out.h, ref.add(ref.add(gv.emb, BSD, gv.pe, [S, D]).data, BSD, xs, BSD), tol, `${ctx} h`, meta);
  await check(out.ln, ref.layernorm(gv.h, BSD, w.lnW.x, w.lnB.x), tol, `${ctx} layernorm`, meta);
  await check(out.rn, ref.rmsnorm(gv.ln, BSD, w.rmsW.x), tol, `${ctx} rmsnorm`, meta);
  await check(out.q, ref.matmul(gv.rn, BSD, w.wq.x, [HQ * HD, D], { transposeB: true, bias: w.bq.x }), tol, `${ctx} matmul q`, meta);
  await check(out.k, ref.qmatmul(gv.rn, BSD, w.wkQ, w.wkScales, HK * HD, D, D), tol, `${ctx} matmul quantized k`, meta);
  const vRef = ref.matmul(gv.rn, BSD, w.wvRaw.x, [D, HK * HD], { bias: w.bv.x, activation: 'silu' });
  await check(out.v, { data: vRef.data, shape: [B, S, HK, HD] }, tol, `${ctx} matmul packed v`, meta);
  await check(out.qr, ref.rope(gv.q, [B, S, HQ, HD], pos + Q_ROPE_OFFSET), tol, `${ctx} rope q`, meta);
  await check(out.kr, ref.rope(gv.k, [B, S, HK, HD], K_ROPE_POS), tol, `${ctx} rope k`, meta);
  await check(out.att, ref.attention(gv.qr, gv.kr, gv.v, B, S, S, HQ, HK, HD, { causal: true }), tol, `${ctx} attention`, meta);
  await check(out.o, ref.matmul(gv.att, [B, S, HQ * HD], w.wo.x, [HQ * HD, D], { bias: w.bo.x, activation: 'gelu' }), tol, `${ctx} matmul o`, meta);
  await check(out.m, ref.mul(gv.o, BSD, w.gamma.x, [D]), tol, `${ctx} mul`, meta);
  const act = ref.add(ref.relu(gv.m), BSD, ref.add(ref.silu(gv.h), BSD, ref.gelu(gv.ln), BSD).data, BSD);
  await check(out.act, act, tol, `${ctx} relu + silu + gelu`, meta);
  await check(out.sm, ref.softmax(gv.act, BSD), tol, `${ctx} softmax`, meta);
  await check(out.sm1, ref.softmax(gv.act, BSD, 1), tol, `${ctx} softmax axis 1`, meta);
  await check(out.y, { data: ref.roundTo(gv.sm, OTHER[dtype]), shape: BSD }, 0, `${ctx} cast`, { dtype: OTHER[dtype] });
  await check(out.last, { data: seqSlice(gv.sm1, B, S, D, S - 1, S), shape: [B, 1, D] }, 0, `${ctx} last`, meta);
  const am = new Float64Array(B * S);
  for (let r = 0; r < B * S; r++) for (let i = 1; i < D; i++) if (gv.act[r * D + i] > gv.act[r * D + am[r]]) am[r] = i;
  await check(out.am, { data: am, shape: [B, S] }, 0, `${ctx} argmax`, { dtype: 'i32' });
}

describe('graph: every op', () => {
  for (const dtype of ['f32', 'bf16'] as const) {
    const name = `graph block of every op, ${dtype}: equals eager bit for bit and the references op by op`;
    it(name, async () => {
      const c = testCase(FILE, name);
      const w = await blockWeights(c, dtype);
      const tapped = await blockGraph(w, dtype, true).compile({ maxBatch: MAX_B, max: { seq: MAX_S } });
      const lean = await blockGraph(w, dtype, false).compile({ max: { batch: MAX_B, seq: MAX_S } });
      expect(tapped.max).toEqual({ batch: MAX_B, seq: MAX_S });
      expect(tapped.inputs).toEqual([
        { name: 'x', dims: ['batch', 'seq', D], dtype },
        { name: 'ids', dims: ['batch', 'seq'], dtype: 'i32' },
      ]);
      expect(tapped.scalars).toEqual(['pos']);
      expect(tapped.outputs).toEqual([...STAGES]);
      expect(lean.outputs).toEqual(['y', 'last']);
      // with every stage an output, only the values the outputs do not hold need the arena
      expect(lean.memory().arena, `${c.ctx}: arena of the lean model`).toBeGreaterThan(tapped.memory().arena);

      for (const { B, S, pos } of RUNS) {
        const ctx = `${c.ctx} (batch ${B}, seq ${S}, pos ${pos})`;
        const x = await input(c, [B, S, D], dtype, DEV);
        const idv = c.rng.ints(B * S, 0, V - 1);
        const ids = intInput(idv, [B, S], DEV);
        const out = await tapped.run({ x: x.t, ids, pos });
        const eager = await blockEager(w, dtype, x.t, ids, pos, B, S);
        for (const s of STAGES) await same(out[s], eager[s], `${ctx}: stage ${s}, graph vs eager`);
        await checkStages(out, w, dtype, x.x, idv, B, S, pos, ctx);
        const small = await lean.run({ ids, pos, x: x.t });
        expect(Object.keys(small).sort()).toEqual(['last', 'y']);
        await same(small.y, eager.y, `${ctx}: y of the lean model`);
        await same(small.last, eager.last, `${ctx}: last of the lean model`);
      }
      tapped.dispose();
      lean.dispose();
    });
  }
});

describe('graph: every activation', () => {
  it('each activation of ACTIVATIONS, as its own node (g.<name>, g.activation) and fused into matmul, equals the eager op bit for bit', async () => {
    const c = testCase(FILE, 'graph every activation');
    const x = await input(c, [3, 5, 16], 'f32', DEV, { std: 2 });
    const w = await input(c, [16, 9], 'f32', DEV);
    for (const act of ignis.ACTIVATIONS) {
      const g = ignis.graph();
      const gx = g.input('x', { shape: ['batch', 5, 16] });
      g.output('own', g[act](gx));
      g.output('named', g.activation(gx, act));
      g.output('fused', g.matmul(gx, g.weight('w', w.t), { activation: act }));
      const model = await g.compile({ maxBatch: 4 });
      const out = await model.run({ x: x.t });
      await same(out.own, ignis[act](x.t), `${act} node`);
      await same(out.named, ignis[act](x.t), `${act} by name`);
      await same(out.fused, ignis.matmul(x.t, w.t, { activation: act }), `${act} fused`);
      model.dispose();
    }
  });
});

// --- 2. KV cache -----------------------------------------------------------------------------

const KD_MODEL = 20, KQ = 4, KH = 2, KHD = 6, KMAX = 8;

interface DecoderWeights {
  wq: Input;
  wk: Input;
  wv: Input;
}

function decoderGraph(w: DecoderWeights, dtype: FloatDType): ignis.GraphBuilder {
  const g = ignis.graph();
  const x = g.input('x', { shape: ['batch', 'seq', KD_MODEL], dtype });
  const position = g.scalar('position');
  const cache = g.kvCache('layer0', { batch: 'batch', maxSeq: KMAX, heads: KH, headDim: KHD, dtype });
  const proj = (name: string, t: Input, heads: number) => g.reshape(g.matmul(x, g.weight(name, t.t)), ['batch', 'seq', heads, KHD]);
  const q = g.rope(proj('wq', w.wq, KQ), { position });
  const k = g.rope(proj('wk', w.wk, KH), { position });
  const v = proj('wv', w.wv, KH);
  g.output('y', g.reshape(g.attention(q, k, v, { cache, position, causal: true }), ['batch', 'seq', KQ * KHD]));
  return g;
}

/** Eager q, k, v of x [B, S, model] at positions [pos, pos + S). */
function decoderQKV(w: DecoderWeights, x: Tensor, B: number, S: number, pos: number) {
  const proj = (t: Input, heads: number) => ignis.matmul(x, t.t).reshape([B, S, heads, KHD]);
  return { q: ignis.rope(proj(w.wq, KQ), { position: pos }), k: ignis.rope(proj(w.wk, KH), { position: pos }), v: proj(w.wv, KH) };
}

describe('graph: KV cache', () => {
  for (const dtype of ['f32', 'bf16'] as const) {
    const name = `graph KV cache, ${dtype}: prefill 5 then 3 single-token steps equal causal attention over all 8, two states interleaved`;
    it(name, async () => {
      const c = testCase(FILE, name);
      const w: DecoderWeights = {
        wq: await input(c, [KD_MODEL, KQ * KHD], dtype, DEV, { std: 0.3 }),
        wk: await input(c, [KD_MODEL, KH * KHD], dtype, DEV, { std: 0.3 }),
        wv: await input(c, [KD_MODEL, KH * KHD], dtype, DEV, { std: 0.3 }),
      };
      const model = await decoderGraph(w, dtype).compile({ maxBatch: 2, maxSeq: KMAX });
      const bytes = dtype === 'f32' ? 4 : 2;
      expect(model.memory().state, `${c.ctx}: state bytes`).toBe(2 * 2 * KMAX * KH * KHD * bytes);
      expect(model.scalars).toEqual(['position']);

      // Two sequences batches: A with batch 2, B with batch 1 (a prefix of the same-sized state).
      const seqs = [];
      for (const B of [2, 1]) {
        const x = await input(c, [B, KMAX, KD_MODEL], dtype, DEV);
        const full = decoderQKV(w, x.t, B, KMAX, 0);
        const whole = ignis.attention(full.q, full.k, full.v, { causal: true });
        const refAll = ref.attention(await values(full.q), await values(full.k), await values(full.v), B, KMAX, KMAX, KQ, KH, KHD, { causal: true }).data;
        await check(whole, refAll, tolFor(dtype), `${c.ctx}: eager whole, batch ${B}`);
        // the same steps eagerly through an ignis.kvCache: the graph runs these kernels
        const cache = ignis.kvCache({ batch: B, maxSeq: KMAX, heads: KH, headDim: KHD, dtype });
        seqs.push({ B, x, whole, refAll, cache, state: model.createState(), outs: [] as Tensor[], eager: [] as Tensor[] });
      }
      const chunks = [[0, 5], [5, 6], [6, 7], [7, 8]];
      // everything enqueued, interleaved between the two states, before anything is awaited
      for (const [s0, s1] of chunks) {
        for (const s of seqs) {
          const xs = tensorOf(seqSlice(s.x.x, s.B, KMAX, KD_MODEL, s0, s1), [s.B, s1 - s0, KD_MODEL], dtype);
          s.outs.push(model.enqueue({ x: xs, position: s0 }, { state: s.state }).y);
          const e = decoderQKV(w, xs, s.B, s1 - s0, s0);
          s.eager.push(ignis.attention(e.q, e.k, e.v, { kvCache: s.cache, position: s0, causal: true }).reshape([s.B, s1 - s0, KQ * KHD]));
        }
      }
      for (const s of seqs) {
        const wholeRows = await values(s.whole);
        for (let i = 0; i < chunks.length; i++) {
          const [s0, s1] = chunks[i];
          const ctx = `${c.ctx} (batch ${s.B}, rows [${s0}, ${s1}))`;
          expect(s.outs[i].shape, `${ctx}: shape`).toEqual([s.B, s1 - s0, KQ * KHD]);
          await same(s.outs[i], s.eager[i], `${ctx}: graph vs eager kvCache`);
          const row = KQ * KHD;
          await check(s.outs[i], seqSlice(wholeRows, s.B, KMAX, row, s0, s1), tolFor(dtype), `${ctx}: vs eager attention over all ${KMAX}`);
          await check(s.outs[i], seqSlice(s.refAll, s.B, KMAX, row, s0, s1), tolFor(dtype), `${ctx}: vs reference`);
        }
      }

      // Positions past the cache: IgnisError naming the scalar and the cache's rows.
      const fresh = model.createState();
      const x3 = tensorOf(seqSlice(seqs[0].x.x, 2, KMAX, KD_MODEL, 0, 3), [2, 3, KD_MODEL], dtype);
      const x1 = tensorOf(seqSlice(seqs[0].x.x, 2, KMAX, KD_MODEL, 0, 1), [2, 1, KD_MODEL], dtype);
      for (const [x, position] of [[x3, 6], [x1, 8], [x1, 1000]] as const) {
        let err: unknown;
        try {
          model.enqueue({ x, position }, { state: fresh });
        } catch (e) {
          err = e;
        }
        assertError(err, 'IgnisError', 'E_ARGUMENT', `position ${position} + ${x.shape[1]} rows`);
        expect((err as Error).message).toContain(`position ${position}`);
        expect((err as Error).message).toContain(`overflow the KV cache's ${KMAX} rows`);
      }
      expect((await model.run({ x: x1, position: 7 }, { state: fresh })).y.shape).toEqual([2, 1, KQ * KHD]);

      // A state from another model (even one compiled from the same graph), or none at all.
      const other = await decoderGraph(w, dtype).compile({ maxBatch: 2, maxSeq: KMAX });
      const foreign = other.createState();
      expectThrows(() => model.enqueue({ x: x1, position: 0 }, { state: foreign }), 'TypeError', 'E_TYPE', 'a state of another model');
      expectThrows(() => model.enqueue({ x: x1, position: 0 }, { state: {} as ignis.ModelState }), 'TypeError', 'E_TYPE', 'not a state');
      expectThrows(() => model.enqueue({ x: x1, position: 0 }), 'IgnisError', 'E_ARGUMENT', 'no state');
      foreign.dispose();
      fresh.dispose();
      expectThrows(() => model.enqueue({ x: x1, position: 0 }, { state: fresh }), 'IgnisError', 'E_DISPOSED', 'a disposed state');
      other.dispose();
      model.dispose();
    });
  }
});

// --- 3. memory -------------------------------------------------------------------------------

describe('graph: memory', () => {
  it('memory().weights is the bytes of the weight tensors (Tensor, QuantizedTensor, PackedWeight); state 0 without caches', async () => {
    const name = 'graph memory weights';
    const c = testCase(FILE, name);
    const w = await input(c, [33, 17], 'f32', DEV);
    const bias = await input(c, [17], 'f32', DEV);
    const qt = ignis.quantize((await input(c, [12, 64], 'f32', DEV)).t, { groupSize: 32 });
    const pw = ignis.packWeight((await input(c, [17, 20], 'f32', DEV)).t);
    const g = ignis.graph();
    const x = g.input('x', { shape: ['batch', 33] });
    const h = g.matmul(x, g.weight('w', w.t), { bias: g.weight('bias', bias.t), activation: 'relu' }); // [batch, 17]
    const p = g.matmul(h, g.weight('pw', pw)); // [batch, 20]
    g.output('p', p);
    g.output('q', g.matmul(g.input('z', { shape: ['batch', 64] }), g.weight('qt', qt))); // [batch, 12]
    const model = await g.compile({ maxBatch: 4 });
    const expected = 33 * 17 * 4 + 17 * 4 + (12 * 64 + 12 * 2 * 4) + Math.ceil(20 / 16) * 17 * 16 * 4;
    const mem = model.memory();
    expect(mem.weights, `${c.ctx}: weights`).toBe(expected);
    expect(mem.state).toBe(0);
    // one intermediate, h [batch, 17] at batch 4 (rounded up to an alignment, no more)
    expect(mem.arena).toBeGreaterThanOrEqual(4 * 17 * 4);
    expect(mem.arena).toBeLessThan(2 * 4 * 17 * 4);
    const xi = await input(c, [3, 33], 'f32', DEV);
    const zi = await input(c, [3, 64], 'f32', DEV);
    const out = await model.run({ x: xi.t, z: zi.t });
    await same(out.p, ignis.matmul(ignis.matmul(xi.t, w.t, { bias: bias.t, activation: 'relu' }), pw), `${c.ctx}: p`);
    await same(out.q, ignis.matmul(zi.t, qt), `${c.ctx}: q`);
    model.dispose();
  });

  it('the arena of a chain of 10 same-sized ops holds at most 2 of its buffers (liveness reuse)', async () => {
    const name = 'graph memory chain';
    const c = testCase(FILE, name);
    const N = 1024, maxB = 4;
    const g = ignis.graph();
    let y: Node = g.input('x', { shape: ['batch', N] });
    for (let i = 0; i < 10; i++) y = g.gelu(y);
    g.output('y', y);
    const model = await g.compile({ maxBatch: maxB });
    const buffer = maxB * N * 4;
    const { arena } = model.memory();
    expect(arena, `${c.ctx}: arena ${arena} for 9 intermediates of ${buffer} bytes`).toBeLessThanOrEqual(2 * buffer);
    expect(arena).toBeGreaterThanOrEqual(buffer);
    for (const B of [1, 3, 4]) {
      const x = await input(c, [B, N], 'f32', DEV);
      let want = x.t;
      for (let i = 0; i < 10; i++) want = ignis.gelu(want);
      const out = (await model.run({ x: x.t })).y;
      await same(out, want, `${c.ctx}: batch ${B}`);
      let r: Float64Array = x.x;
      for (let i = 0; i < 10; i++) r = ref.roundTo(ref.gelu(r), 'f32');
      await check(out, r, tolFor('f32'), `${c.ctx}: batch ${B} vs reference`, { shape: [B, N] });
    }
    model.dispose();
  });

  it('reuse never overwrites a value still needed: skips over a chain, a value read by many later ops', async () => {
    const name = 'graph memory skips';
    const c = testCase(FILE, name);
    const N = 96;
    const g = ignis.graph();
    const x = g.input('x', { shape: ['batch', N] });
    const s0 = g.gelu(x); // read again at the end
    let y: Node = s0;
    const kept: Node[] = [];
    for (let i = 0; i < 6; i++) {
      y = g.silu(g.add(g.relu(y), y)); // y read twice per step
      if (i % 2 === 0) kept.push(y);
    }
    for (const k of kept) y = g.add(y, k);
    g.output('y', g.mul(g.add(y, s0), s0));
    g.output('mid', kept[1]); // an output that later ops also read
    const model = await g.compile({ maxBatch: 3 });
    for (const B of [3, 1]) {
      const xi = await input(c, [B, N], 'f32', DEV);
      const e0 = ignis.gelu(xi.t);
      let e: Tensor = e0;
      const ek: Tensor[] = [];
      for (let i = 0; i < 6; i++) {
        e = ignis.silu(ignis.add(ignis.relu(e), e));
        if (i % 2 === 0) ek.push(e);
      }
      for (const k of ek) e = ignis.add(e, k);
      const want = ignis.mul(ignis.add(e, e0), e0);
      const out = await model.run({ x: xi.t });
      await same(out.y, want, `${c.ctx}: batch ${B} y`);
      await same(out.mid, ek[1], `${c.ctx}: batch ${B} mid`);
    }
    model.dispose();
  });

  it("outputs are fresh tensors each run: disposing one run's outputs leaves another's intact", async () => {
    const name = 'graph memory fresh outputs';
    const c = testCase(FILE, name);
    const g = ignis.graph();
    const x = g.input('x', { shape: ['batch', 7] });
    const w = await input(c, [7, 7], 'f32', DEV);
    g.output('y', g.softmax(g.matmul(g.gelu(x), g.weight('w', w.t))));
    const model = await g.compile({ maxBatch: 2 });
    const xs = [await input(c, [2, 7], 'f32', DEV), await input(c, [1, 7], 'f32', DEV), await input(c, [2, 7], 'f32', DEV)];
    const runs = [];
    for (const xi of xs) runs.push(await model.run({ x: xi.t }));
    expect(runs[0].y).not.toBe(runs[2].y);
    runs[1].y.dispose();
    runs[2].y.dispose();
    const again = await model.run({ x: xs[1].t });
    for (const [i, out] of [[0, runs[0].y], [1, again.y]] as const)
      await same(out, ignis.softmax(ignis.matmul(ignis.gelu(xs[i].t), w.t)), `${c.ctx}: run ${i}`);
    // outputs outlive the model; the weights it holds outlive the tensors given
    w.t.dispose();
    const late = model.enqueue({ x: xs[0].t });
    model.dispose();
    await same(late.y, runs[0].y, `${c.ctx}: a run queued before dispose(), weights disposed after compile`);
    expect((await runs[0].y.data()).length).toBe(14);
  });
});

// --- 4. concurrent runs ---------------------------------------------------------------------

describe('graph: queued runs', () => {
  it('20 runs enqueued back to back, inputs disposed at once: each output is its own input\'s result', async () => {
    const name = 'graph queued runs';
    const c = testCase(FILE, name);
    const F = 33, H = 40;
    const w1 = await input(c, [F, H], 'f32', DEV, { std: 0.3 });
    const b1 = await input(c, [H], 'f32', DEV);
    const w2 = await input(c, [F, H], 'f32', DEV, { std: 0.3 });
    const lnW = await input(c, [H], 'f32', DEV, { mean: 1, std: 0.1 });
    const lnB = await input(c, [H], 'f32', DEV, { std: 0.1 });
    const g = ignis.graph();
    const x = g.input('x', { shape: ['batch', 'seq', F] });
    const h = g.layernorm(g.matmul(x, g.weight('w1', w1.t), { bias: g.weight('b1', b1.t), activation: 'gelu' }), g.weight('lnW', lnW.t), g.weight('lnB', lnB.t));
    const z = g.matmul(h, g.weight('w2', w2.t), { transposeB: true }); // [batch, seq, F]
    g.output('y', g.add(g.softmax(z), x));
    const model = await g.compile({ maxBatch: 3, maxSeq: 7 });
    const xs: Input[] = [];
    for (let i = 0; i < 20; i++) xs.push(await input(c, [1 + (i % 3), 1 + ((i * 5) % 7), F], 'f32', DEV));
    const outs = xs.map((xi) => {
      const out = model.enqueue({ x: xi.t }).y;
      xi.t.dispose();
      return out;
    });
    model.dispose(); // queued runs keep what they use
    for (let i = 0; i < 20; i++) {
      const xi = ignis.tensor(Float32Array.from(xs[i].x), { shape: [...xs[i].t.shape] });
      const e = ignis.matmul(ignis.layernorm(ignis.matmul(xi, w1.t, { bias: b1.t, activation: 'gelu' }), lnW.t, lnB.t), w2.t, { transposeB: true });
      await same(outs[i], ignis.add(ignis.softmax(e), xi), `${c.ctx}: run ${i} ${xs[i].t.shape.join('x')}`);
    }
  });
});

// --- 5. errors -------------------------------------------------------------------------------

function msg(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  return '(no error)';
}

/** embedding -> cached causal attention (one scalar, one KV cache), with good and bad (id 99) ids. */
async function cachedAttention(c: Case) {
  const table = await input(c, [10, 8], 'f32', DEV);
  const g = ignis.graph();
  const ids = g.input('ids', { shape: ['batch', 'seq'], dtype: 'i32' });
  const position = g.scalar('position');
  const cache = g.kvCache('c', { batch: 'batch', maxSeq: 6, heads: 2, headDim: 4 });
  const e = g.reshape(g.embedding(ids, g.weight('table', table.t)), ['batch', 'seq', 2, 4]);
  g.output('y', g.attention(e, e, e, { causal: true, cache, position }));
  const model = await g.compile({ maxBatch: 1, maxSeq: 6 });
  const good = ignis.tensor(new Int32Array([1, 2]), { shape: [1, 2] });
  const bad = ignis.tensor(new Int32Array([3, 99]), { shape: [1, 2] });
  return { table, model, good, bad };
}

describe('graph: errors', () => {
  it('build: shapes, dtypes, foreign nodes, reshape symbols, cache without position, duplicate outputs', () => {
    const g = ignis.graph();
    const x = g.input('x', { shape: ['batch', 'seq', 33] });
    const w = g.weight('w', ignis.zeros([40, 17]));
    expectThrows(() => g.matmul(x, w), 'IgnisError', 'E_SHAPE', 'matmul K mismatch');
    const m = msg(() => g.matmul(x, w));
    for (const s of ['[batch, seq, 33]', '[40, 17]', "input 'x'", "weight 'w'", 'graph.matmul']) expect(m).toContain(s);
    const wt = g.weight('wt', ignis.zeros([17, 40]));
    expect(msg(() => g.matmul(x, wt, { transposeB: true }))).toContain('(transposed)');
    const qw = g.weight('qw', ignis.quantize(ignis.zeros([8, 32])));
    expectThrows(() => g.matmul(x, qw), 'IgnisError', 'E_SHAPE', 'quantized K mismatch');
    // an f32 a takes a 16-bit b (f32 out); the other way round is refused
    expect(g.matmul(x, g.weight('b16', ignis.zeros([33, 4], { dtype: 'bf16' }))).dtype).toBe('f32');
    const x16 = g.input('x16', { shape: ['batch', 33], dtype: 'bf16' });
    expectThrows(() => g.matmul(x16, g.weight('w32', ignis.zeros([33, 4]))), 'IgnisError', 'E_DTYPE', 'matmul dtypes');
    const xb = g.input('xb', { shape: ['batch', 'seq', 33], dtype: 'bf16' });
    expectThrows(() => g.add(x, xb), 'IgnisError', 'E_DTYPE', 'add dtypes');
    expect(msg(() => g.add(x, xb))).toMatch(/input 'x' is f32 but input 'xb' is bf16/);
    expectThrows(() => g.add(x, g.input('y', { shape: ['seq', 32] })), 'IgnisError', 'E_SHAPE', 'add broadcast');
    expectThrows(() => g.add(x, g.input('z', { shape: ['batch', 'len', 33] })), 'IgnisError', 'E_SHAPE', 'different symbols');
    const ids = g.input('ids', { shape: ['batch', 'seq'], dtype: 'i32' });
    expectThrows(() => g.embedding(x, w), 'IgnisError', 'E_DTYPE', 'embedding of float ids');
    expectThrows(() => g.gelu(ids), 'IgnisError', 'E_DTYPE', 'gelu of i32');

    const h = ignis.graph();
    const hx = h.input('x', { shape: [4, 4] });
    expectThrows(() => g.gelu(hx), 'IgnisError', 'E_ARGUMENT', 'a node of another graph');
    expect(msg(() => g.gelu(hx))).toContain('another graph');
    expectThrows(() => g.add(x, hx), 'IgnisError', 'E_ARGUMENT', 'b of another graph');
    expectThrows(() => g.matmul(x, h.weight('hw', ignis.quantize(ignis.zeros([8, 33])))), 'IgnisError', 'E_ARGUMENT', 'a weight of another graph');
    expectThrows(() => g.rope(g.reshape(x, ['batch', 'seq', 3, 11]), { position: h.scalar('p') }), 'IgnisError', 'E_SHAPE', 'rope of odd headDim');
    expectThrows(() => g.rows(w, { start: h.scalar('p2'), count: 'seq' }), 'IgnisError', 'E_ARGUMENT', 'rows with a scalar of another graph');
    expectThrows(() => g.output('o', hx), 'IgnisError', 'E_ARGUMENT', 'output of another graph');
    expectThrows(() => g.gelu({} as Node), 'TypeError', 'E_TYPE', 'not a node');

    expectThrows(() => g.reshape(x, ['batch', 'len', 33]), 'IgnisError', 'E_SHAPE', 'reshape to another symbol');
    expectThrows(() => g.reshape(x, ['batch', -1]), 'IgnisError', 'E_SHAPE', 'reshape dropping a symbol');
    expectThrows(() => g.reshape(x, ['batch', 'seq', 4, -1]), 'IgnisError', 'E_SHAPE', 'reshape -1 not dividing');
    expectThrows(() => g.reshape(x, ['batch', 'seq', 3, 10]), 'IgnisError', 'E_SHAPE', 'reshape sizes differ');
    expectThrows(() => g.reshape(x, ['batch', 'seq', -1, -1]), 'IgnisError', 'E_SHAPE', 'two -1');
    expect(msg(() => g.reshape(x, ['batch', 'len', 33]))).toContain("input 'x'");

    const q = g.reshape(x, ['batch', 'seq', 3, 11]);
    const cache = g.kvCache('c', { batch: 'batch', maxSeq: 16, heads: 3, headDim: 11 });
    expectThrows(() => g.attention(q, q, q, { cache }), 'TypeError', 'E_TYPE', 'cache without position');
    expectThrows(() => g.attention(q, q, q, { cache, position: h.scalar('p3') }), 'TypeError', 'E_TYPE', 'position of another graph');
    expectThrows(() => g.attention(q, q, q, { position: g.scalar('p') }), 'TypeError', 'E_TYPE', 'position without cache');
    const k1 = g.reshape(g.input('k1', { shape: ['batch', 'seq', 11] }), ['batch', 'seq', 1, 11]);
    expectThrows(() => g.attention(q, k1, k1, { cache, position: g.scalar('p4') }), 'IgnisError', 'E_SHAPE', 'k not fitting the cache');
    expect(msg(() => g.attention(q, k1, k1, { cache, position: g.scalar('p5') }))).toContain("cache 'c'");
    const q2 = g.reshape(g.input('q2', { shape: ['batch', 9, 66] }), ['batch', 9, 2, 33]);
    const k9 = g.reshape(g.input('k9', { shape: ['batch', 4, 33] }), ['batch', 4, 1, 33]);
    expectThrows(() => g.attention(q2, k9, k9, { causal: true }), 'IgnisError', 'E_SHAPE', 'causal with q longer than k');
    expectThrows(() => g.attention(q2, g.reshape(x, ['batch', 'seq', 1, 33]), k9), 'IgnisError', 'E_SHAPE', 'k and v differ');

    g.output('y', x);
    expectThrows(() => g.output('y', w), 'IgnisError', 'E_ARGUMENT', 'duplicate output');
    expect(msg(() => g.output('y', w))).toContain("'y'");
    expectThrows(() => g.input('x', { shape: [1] }), 'IgnisError', 'E_ARGUMENT', 'duplicate input');
    expectThrows(() => g.weight('w', ignis.zeros([1])), 'IgnisError', 'E_ARGUMENT', 'duplicate weight');
    expectThrows(() => g.input('bad', { shape: ['batch', 2.5] }), 'TypeError', 'E_TYPE', 'fractional dim');
    const gone = ignis.zeros([3]);
    gone.dispose();
    expectThrows(() => g.weight('gone', gone), 'IgnisError', 'E_DISPOSED', 'disposed weight');
  });

  it('compile: missing maxima (naming the symbol), no outputs, unknown options', async () => {
    const g = ignis.graph();
    const x = g.input('x', { shape: ['batch', 'seq', 8] });
    g.output('y', g.gelu(x));
    await expectFails(() => g.compile({ maxBatch: 2 }), 'RangeError', 'E_RANGE', 'no max for seq');
    await expect(g.compile({ maxBatch: 2 })).rejects.toThrow(/'seq'/);
    await expect(g.compile({ max: { seq: 4 } })).rejects.toThrow(/'batch'/);
    await expectFails(() => g.compile({ maxBatch: 2, maxSeq: 0 }), 'RangeError', 'E_RANGE', 'max 0');
    await expectFails(() => g.compile({ maxBatch: 2, maxSeq: 2, bogus: 1 } as ignis.CompileOptions), 'TypeError', 'E_TYPE', 'unknown option');
    await expect(g.compile({ maxBatch: 2, maxSeq: 2, bogus: 1 } as ignis.CompileOptions)).rejects.toThrow(/'bogus'/);
    await expectFails(() => g.compile({ maxBatch: 2, maxSeq: 2, device: 'gpu' }), 'IgnisError', 'E_DEVICE', 'unknown device');
    // a device that is not usable is refused at compile, saying why
    if (!cudaAvailable) await expectFails(() => g.compile({ maxBatch: 2, maxSeq: 2, device: 'cuda' }), 'IgnisError', 'E_DEVICE', 'cuda');
    await expectFails(() => g.compile({ maxBatch: 2, maxSeq: 2, device: 'cuda:7' }), 'IgnisError', 'E_DEVICE', 'cuda:7');
    await expectFails(() => ignis.graph().compile(), 'IgnisError', 'E_ARGUMENT', 'no outputs');

    // a symbol no input binds, and a cache whose symbolic maxSeq has no maximum
    const h = ignis.graph();
    const hx = h.input('x', { shape: ['batch', 4] });
    h.output('r', h.rows(h.weight('t', ignis.zeros([9, 4])), { start: 0, count: 'n' }));
    h.output('x', hx);
    await expectFails(() => h.compile({ maxBatch: 2, maxN: 3 }), 'RangeError', 'E_RANGE', 'unbound symbol');
    await expect(h.compile({ maxBatch: 2, maxN: 3 })).rejects.toThrow(/'n'/);
    // rows whose symbolic count, at its maximum, runs past the table
    const r = ignis.graph();
    const rx = r.input('x', { shape: ['seq', 4] });
    r.output('y', r.add(rx, r.rows(r.weight('t', ignis.zeros([6, 4])), { start: r.scalar('pos'), offset: 2, count: 'seq' })));
    await expectFails(() => r.compile({ maxSeq: 5 }), 'RangeError', 'E_RANGE', 'rows past the table at the maximum');
    await expect(r.compile({ maxSeq: 5 })).rejects.toThrow(/'seq'.*weight 't' \[6, 4\]/);
    (await r.compile({ maxSeq: 4 })).dispose();
    const k = ignis.graph();
    const kx = k.input('x', { shape: ['batch', 'seq', 1, 4] });
    const cache = k.kvCache('c', { batch: 'batch', maxSeq: 'ctx', heads: 1, headDim: 4 });
    k.output('y', k.attention(kx, kx, kx, { cache, position: k.scalar('pos') }));
    await expectFails(() => k.compile({ maxBatch: 1, maxSeq: 4 }), 'RangeError', 'E_RANGE', 'cache maxSeq without a max');
    await expect(k.compile({ maxBatch: 1, maxSeq: 4 })).rejects.toThrow(/'ctx'/);
    const km = await k.compile({ maxBatch: 1, maxSeq: 4, maxCtx: 6 });
    expect(km.memory().state).toBe(2 * 6 * 4 * 4);
    km.dispose();
  });

  it('run: missing, unknown, mistyped and misshapen inputs; symbols past their max; bad scalars; disposed model or input', async () => {
    const g = ignis.graph();
    const x = g.input('x', { shape: ['batch', 'seq', 8] });
    const ids = g.input('ids', { shape: ['batch', 'seq'], dtype: 'i32' });
    const pos = g.scalar('pos');
    const t = g.weight('t', ignis.randn([12, 8], { seed: 3 }));
    g.output('y', g.add(g.add(x, g.embedding(ids, t)), g.rows(t, { start: pos, count: 'seq' })));
    const model = await g.compile({ maxBatch: 2, maxSeq: 4 });
    const xt = ignis.zeros([2, 3, 8]);
    const it3 = ignis.tensor(new Int32Array(6), { shape: [2, 3] });
    const ok = { x: xt, ids: it3, pos: 1 };
    expect((await model.run(ok)).y.shape).toEqual([2, 3, 8]);

    expectThrows(() => model.enqueue({ ids: it3, pos: 1 }), 'IgnisError', 'E_ARGUMENT', 'missing input');
    expect(msg(() => model.enqueue({ ids: it3, pos: 1 }))).toContain("missing input 'x'");
    expectThrows(() => model.enqueue({ x: xt, ids: it3 }), 'IgnisError', 'E_ARGUMENT', 'missing scalar');
    expectThrows(() => model.enqueue({ ...ok, extra: xt }), 'IgnisError', 'E_ARGUMENT', 'unknown input');
    expect(msg(() => model.enqueue({ ...ok, extra: xt }))).toContain("'extra'");
    expectThrows(() => model.enqueue({ ...ok, x: ignis.zeros([2, 3, 8], { dtype: 'bf16' }) }), 'IgnisError', 'E_DTYPE', 'wrong dtype');
    expectThrows(() => model.enqueue({ ...ok, ids: ignis.zeros([2, 3]) }), 'IgnisError', 'E_DTYPE', 'float ids');
    expectThrows(() => model.enqueue({ ...ok, x: 3 }), 'TypeError', 'E_TYPE', 'a number for a tensor');
    expectThrows(() => model.enqueue({ ...ok, pos: xt }), 'TypeError', 'E_TYPE', 'a tensor for a scalar');

    const shapeErr = (x: Tensor, ids: Tensor, label: string, ...parts: string[]) => {
      expectThrows(() => model.enqueue({ x, ids, pos: 0 }), 'IgnisError', 'E_SHAPE', label);
      const m = msg(() => model.enqueue({ x, ids, pos: 0 }));
      for (const p of parts) expect(m, label).toContain(p);
    };
    shapeErr(ignis.zeros([2, 3, 7]), it3, 'last dim', "input 'x'", '[2, 3, 7]', '[batch, seq, 8]');
    shapeErr(ignis.zeros([2, 3]), it3, 'rank', "input 'x'");
    shapeErr(xt, ignis.tensor(new Int32Array(4), { shape: [2, 2] }), 'seq differs between inputs', "input 'ids'", '[2, 2]');
    shapeErr(ignis.zeros([2, 5, 8]), ignis.tensor(new Int32Array(10), { shape: [2, 5] }), 'seq past its max', 'seq = 5', '[1, 4]');
    shapeErr(ignis.zeros([3, 1, 8]), ignis.tensor(new Int32Array(3), { shape: [3, 1] }), 'batch past its max', 'batch = 3', '[1, 2]');
    shapeErr(ignis.zeros([2, 0, 8]), ignis.tensor(new Int32Array(0), { shape: [2, 0] }), 'a symbol bound to 0', 'seq = 0');

    expectThrows(() => model.enqueue({ ...ok, pos: -1 }), 'RangeError', 'E_RANGE', 'negative scalar');
    expect(msg(() => model.enqueue({ ...ok, pos: -1 }))).toContain('pos');
    expectThrows(() => model.enqueue({ ...ok, pos: 1.5 }), 'RangeError', 'E_RANGE', 'fractional scalar');
    expectThrows(() => model.enqueue({ ...ok, pos: 10 }), 'IgnisError', 'E_ARGUMENT', 'rows past the table');
    expect(msg(() => model.enqueue({ ...ok, pos: 10 }))).toContain("table's 12");
    expect((await model.run({ ...ok, pos: 9 })).y.shape).toEqual([2, 3, 8]);

    const gone = ignis.zeros([2, 3, 8]);
    gone.dispose();
    expectThrows(() => model.enqueue({ ...ok, x: gone }), 'IgnisError', 'E_DISPOSED', 'disposed input');
    expect(msg(() => model.enqueue({ ...ok, x: gone }))).toContain("input 'x'");

    model.dispose();
    model.dispose(); // idempotent
    expectThrows(() => model.enqueue(ok), 'IgnisError', 'E_DISPOSED', 'enqueue on a disposed model');
    await expectFails(() => model.run(ok), 'IgnisError', 'E_DISPOSED', 'run on a disposed model');
    expectThrows(() => model.memory(), 'IgnisError', 'E_DISPOSED', 'memory of a disposed model');
    expectThrows(() => model.createState(), 'IgnisError', 'E_DISPOSED', 'createState of a disposed model');
  });

  it("causal attention over two sequence symbols compiles, runs where q's seq <= k's, and refuses the rest at run (E_SHAPE)", async () => {
    const name = 'graph causal attention two symbols';
    const c = testCase(FILE, name);
    const g = ignis.graph();
    const q = g.input('q', { shape: ['batch', 'a', 4, 8] });
    const k = g.input('k', { shape: ['batch', 'b', 2, 8] });
    g.output('y', g.attention(q, k, k, { causal: true }));
    const model = await g.compile({ maxBatch: 2, maxA: 5, maxB: 5 });
    for (const [B, A, Bk] of [[2, 5, 5], [1, 2, 5], [2, 1, 1], [1, 3, 4]]) {
      const qi = await input(c, [B, A, 4, 8], 'f32', DEV);
      const ki = await input(c, [B, Bk, 2, 8], 'f32', DEV);
      const out = (await model.run({ q: qi.t, k: ki.t })).y;
      await same(out, ignis.attention(qi.t, ki.t, ki.t, { causal: true }), `${c.ctx}: q seq ${A}, k seq ${Bk}`);
      await check(out, ref.attention(qi.x, ki.x, ki.x, B, A, Bk, 4, 2, 8, { causal: true }), tolFor('f32'), `${c.ctx}: q seq ${A}, k seq ${Bk} vs reference`);
    }
    const qi = ignis.zeros([1, 4, 4, 8]), ki = ignis.zeros([1, 2, 2, 8]);
    expectThrows(() => model.enqueue({ q: qi, k: ki }), 'IgnisError', 'E_SHAPE', 'q longer than k', [qi.shape, ki.shape]);
    model.dispose();
  });

  it("a kernel error inside a run (embedding id out of range) rejects that run's outputs and no other call's; later runs work", async () => {
    const name = 'graph kernel error';
    const c = testCase(FILE, name);
    const table = await input(c, [10, 8], 'f32', DEV);
    const nw = await input(c, [8], 'f32', DEV, { mean: 1, std: 0.1 });
    const g = ignis.graph();
    const ids = g.input('ids', { shape: ['batch', 'seq'], dtype: 'i32' });
    const x = g.input('x', { shape: ['batch', 8] });
    g.output('e', g.rmsnorm(g.embedding(ids, g.weight('table', table.t)), g.weight('w', nw.t)));
    g.output('g', g.gelu(x)); // independent of the embedding, but of the same run
    const model = await g.compile({ maxBatch: 2, maxSeq: 3 });
    const good = ignis.tensor(new Int32Array([1, 2, 9, 0]), { shape: [2, 2] });
    const bad = ignis.tensor(new Int32Array([1, 99, 3, 4]), { shape: [2, 2] });
    const xt = ignis.zeros([2, 8]);
    const failed = model.enqueue({ ids: bad, x: xt });
    const next = model.enqueue({ ids: good, x: xt });
    await expect(failed.e.data()).rejects.toMatchObject({ code: 'E_INDEX', message: expect.stringContaining('id 99') });
    await expect(failed.g.ready()).rejects.toMatchObject({ code: 'E_INDEX' });
    const after = model.enqueue({ ids: good, x: xt });
    const want = ignis.rmsnorm(ignis.embedding(good, table.t), nw.t);
    await same(next.e, want, `${c.ctx}: the run after the failed one`);
    await same(after.e, want, `${c.ctx}: a later run`);
    await same(after.g, ignis.gelu(xt), `${c.ctx}: a later run, g`);
    model.dispose();
  });

  it('a run that fails mid-way leaves its state (KV caches) failed: later runs with it reject until state.reset(); a fresh state works', async () => {
    const c = testCase(FILE, 'graph kernel error with state');
    const { model, good, bad } = await cachedAttention(c);
    const state = model.createState();
    const failed = model.enqueue({ ids: bad, position: 0 }, { state });
    await expect(failed.y.ready()).rejects.toMatchObject({ code: 'E_INDEX' });
    const again = model.enqueue({ ids: good, position: 2 }, { state });
    await expect(again.y.ready(), `${c.ctx}: the failed state`).rejects.toMatchObject({ code: 'E_INDEX' });
    // reset() clears it in queue order: the same state runs a sequence from position 0 again
    state.reset();
    const reused = await model.run({ ids: good, position: 0 }, { state });
    const want = await model.run({ ids: good, position: 0 }, { state: model.createState() });
    await same(reused.y, want.y, `${c.ctx}: the reset state`);
    const fresh = model.createState();
    const ok = model.enqueue({ ids: good, position: 0 }, { state: fresh });
    const d = await ok.y.data();
    expect(d.every(Number.isFinite), c.ctx).toBe(true);
    model.dispose();
  });

  it('run() rejects with the error of a failed run, of a failed state, and of an input a failed op made; resolves after', async () => {
    const c = testCase(FILE, 'graph run rejects');
    const { table, model, good, bad } = await cachedAttention(c);
    const state = model.createState();
    await expect(model.run({ ids: bad, position: 0 }, { state }), c.ctx).rejects.toMatchObject({ code: 'E_INDEX', message: expect.stringContaining('id 99') });
    await expect(model.run({ ids: good, position: 2 }, { state }), `${c.ctx}: the failed state`).rejects.toMatchObject({ code: 'E_INDEX' });
    // An input whose producing op failed: the run skips its steps and rejects with that error.
    const poisoned = ignis.embedding(bad, table.t); // [1, 2, 8]: fails on the device
    const g2 = ignis.graph();
    g2.output('z', g2.gelu(g2.input('x', { shape: [1, 2, 8] })));
    const m2 = await g2.compile({ device: 'cpu' });
    await expect(m2.run({ x: poisoned }), `${c.ctx}: poisoned input`).rejects.toMatchObject({ code: 'E_INDEX' });
    // Fresh runs resolve with correct outputs: no call was given another's error.
    const fresh = model.createState();
    const { y } = await model.run({ ids: good, position: 0 }, { state: fresh });
    const eg = ignis.embedding(good, table.t).reshape([1, 2, 2, 4]);
    await same(y, ignis.attention(eg, eg, eg, { causal: true }), `${c.ctx}: a fresh state`);
    model.dispose();
    m2.dispose();
  });
});

// --- 6. outputs that are inputs or weights ---------------------------------------------------

describe('graph: outputs that are inputs or weights', () => {
  it('an input, a weight, reshapes of them (a view of a view too) and one node under two names come back as copies', async () => {
    const name = 'graph outputs of inputs and weights';
    const c = testCase(FILE, name);
    const w = await input(c, [2, 6], 'bf16', DEV);
    const g = ignis.graph();
    const x = g.input('x', { shape: ['batch', 4] });
    const wn = g.weight('w', w.t);
    g.output('x', x);
    g.output('x again', x);
    g.output('xr', g.reshape(x, ['batch', 2, 2]));
    g.output('xrr', g.reshape(g.reshape(x, ['batch', 2, 2]), ['batch', -1, 1]));
    g.output('w', wn);
    g.output('wr', g.reshape(wn, [3, -1]));
    g.output('g', g.gelu(x));
    const model = await g.compile({ maxBatch: 3 });
    expect(model.memory().weights).toBe(2 * 6 * 2);
    const runs = [];
    for (const B of [3, 1]) {
      const xi = await input(c, [B, 4], 'f32', DEV);
      const out = await model.run({ x: xi.t });
      expect(out.x).not.toBe(xi.t);
      expect(out.w).not.toBe(w.t);
      await check(out.x, { data: xi.x, shape: [B, 4] }, 0, `${c.ctx}: x`, { dtype: 'f32' });
      await check(out['x again'], { data: xi.x, shape: [B, 4] }, 0, `${c.ctx}: x again`, { dtype: 'f32' });
      await check(out.xr, { data: xi.x, shape: [B, 2, 2] }, 0, `${c.ctx}: xr`, { dtype: 'f32' });
      await check(out.xrr, { data: xi.x, shape: [B, 4, 1] }, 0, `${c.ctx}: xrr`, { dtype: 'f32' });
      await check(out.w, { data: w.x, shape: [2, 6] }, 0, `${c.ctx}: w`, { dtype: 'bf16' });
      await check(out.wr, { data: w.x, shape: [3, 4] }, 0, `${c.ctx}: wr`, { dtype: 'bf16' });
      xi.t.dispose(); // the copy outlives the input
      await check(out.x, { data: xi.x, shape: [B, 4] }, 0, `${c.ctx}: x after its input was disposed`);
      runs.push({ out, xi });
    }
    // disposing one run's copies leaves the weight, the model and the other run's copies intact
    runs[0].out.w.dispose();
    runs[0].out.wr.dispose();
    await same(runs[1].out.w, w.x, `${c.ctx}: the other run's w`);
    await same(w.t, w.x, `${c.ctx}: the weight itself`);
    const third = await model.run({ x: ignis.zeros([2, 4]) });
    await same(third.wr, w.x, `${c.ctx}: w after a run's copy was disposed`);
    model.dispose();
  });
});

// --- 7. outputs the caller gives -------------------------------------------------------------

describe('graph: given outputs', () => {
  /** y = softmax(gelu(x) @ w) [batch, 7] f32, and z = cast(x, bf16) [batch, 7]. */
  async function twoOutputs(c: Case) {
    const w = await input(c, [7, 7], 'f32', DEV);
    const g = ignis.graph();
    const x = g.input('x', { shape: ['batch', 7] });
    g.output('y', g.softmax(g.matmul(g.gelu(x), g.weight('w', w.t))));
    g.output('z', g.cast(g.mul(x, x), 'bf16'));
    const model = await g.compile({ maxBatch: 3 });
    const eager = (xt: Tensor) => ({ y: ignis.softmax(ignis.matmul(ignis.gelu(xt), w.t)), z: ignis.cast(ignis.mul(xt, xt), 'bf16') });
    return { w, model, eager };
  }
  const poisoned = (shape: number[], dtype: 'f32' | 'bf16' = 'f32') => ignis.full(shape, NaN, { dtype, device: DEV });

  it('runs write into the given tensors (poisoned first) and return them; a subset is given, the rest is fresh', async () => {
    const c = testCase(FILE, 'graph given outputs');
    const { model, eager } = await twoOutputs(c);
    for (const B of [3, 1, 2]) {
      const xi = await input(c, [B, 7], 'f32', DEV);
      const y = poisoned([B, 7]), z = poisoned([B, 7], 'bf16');
      const both = await model.run({ x: xi.t }, { outputs: { y, z } });
      expect(both.y, `${c.ctx}: B=${B}, the same y object`).toBe(y);
      expect(both.z).toBe(z);
      const want = eager(xi.t);
      await same(y, want.y, `${c.ctx}: B=${B}, given y`);
      await same(z, want.z, `${c.ctx}: B=${B}, given z`);
      const y2 = poisoned([B, 7]);
      const some = await model.run({ x: xi.t }, { outputs: { y: y2 } });
      expect(some.y).toBe(y2);
      expect(some.z).not.toBe(z);
      await same(y2, want.y, `${c.ctx}: B=${B}, y given alone`);
      await same(some.z, want.z, `${c.ctx}: B=${B}, z fresh beside a given y`);
      const none = await model.run({ x: xi.t }, { outputs: {} });
      await same(none.y, want.y, `${c.ctx}: B=${B}, outputs {}`);
    }
    model.dispose();
  });

  it('runs queued into one output tensor, each read queued after its run, see their own results (queue order)', async () => {
    const c = testCase(FILE, 'graph given outputs queued');
    const { model, eager } = await twoOutputs(c);
    const y = poisoned([2, 7]);
    const xs: Input[] = [];
    for (let i = 0; i < 6; i++) xs.push(await input(c, [2, 7], 'f32', DEV));
    const reads = xs.map((xi) => {
      model.enqueue({ x: xi.t }, { outputs: { y } });
      return y.data();
    });
    for (let i = 0; i < xs.length; i++) await same(ignis.tensor(await reads[i], { shape: [2, 7] }), eager(xs[i].t).y, `${c.ctx}: run ${i}`);
    // A given output outlives the model and a disposed weight.
    model.dispose();
    await same(y, eager(xs[5].t).y, `${c.ctx}: after dispose`);
  });

  it('bad outputs throw naming the output, and leave the tensor given untouched', async () => {
    const c = testCase(FILE, 'graph given outputs errors');
    const { w, model } = await twoOutputs(c);
    const xi = await input(c, [2, 7], 'f32', DEV);
    const x = xi.t;
    const keep = await input(c, [2, 7], 'f32', DEV);
    const run = (outputs: unknown) => () => model.enqueue({ x }, { outputs: outputs as Record<string, Tensor> });
    const err = (outputs: unknown, kind: 'IgnisError' | 'TypeError', code: string, label: string, ...parts: string[]) => {
      expectThrows(run(outputs), kind, code, label);
      const m = msg(run(outputs));
      for (const p of parts) expect(m, label).toContain(p);
    };
    err({ y: ignis.zeros([1, 7]) }, 'IgnisError', 'E_SHAPE', 'shape', "output 'y'", '[1, 7]', '[2, 7]');
    err({ y: ignis.zeros([2, 7, 1]) }, 'IgnisError', 'E_SHAPE', 'rank', "output 'y'", '[2, 7, 1]');
    err({ z: ignis.zeros([2, 7]) }, 'IgnisError', 'E_DTYPE', 'dtype', "output 'z'", 'f32', 'bf16');
    err({ y: 3 }, 'TypeError', 'E_TYPE', 'a number', "output 'y'");
    err([keep.t], 'TypeError', 'E_TYPE', 'an array');
    err(null, 'TypeError', 'E_TYPE', 'null');
    err({ q: keep.t }, 'IgnisError', 'E_ARGUMENT', 'unknown output', "'q'", 'y, z');
    err({ y: x }, 'IgnisError', 'E_ARGUMENT', 'the input itself', "output 'y'", "input 'x'");
    err({ y: x.reshape([7, 2]).reshape([2, 7]) }, 'IgnisError', 'E_ARGUMENT', 'a reshape of the input', "input 'x'");
    const x3 = ignis.zeros([3, 7]);
    expectThrows(() => model.enqueue({ x: x3 }, { outputs: { y: w.t.reshape([7, 7]).reshape([49]).reshape([7, 7]) } }), 'IgnisError', 'E_SHAPE', 'a weight of another shape');
    const w3 = await input(c, [3, 7], 'f32', DEV);
    const g3 = ignis.graph();
    g3.output('y', g3.add(g3.input('x', { shape: [3, 7] }), g3.weight('w', w3.t)));
    const m3 = await g3.compile();
    expectThrows(() => m3.enqueue({ x: x3 }, { outputs: { y: w3.t } }), 'IgnisError', 'E_ARGUMENT', 'a weight');
    expect(msg(() => m3.enqueue({ x: x3 }, { outputs: { y: w3.t } }))).toContain('weights');
    await same(w3.t, w3.x, `${c.ctx}: the weight given as an output`);
    m3.dispose();
    err({ y: keep.t, z: keep.t }, 'IgnisError', 'E_DTYPE', 'one tensor for two outputs of two dtypes');
    const gone = ignis.zeros([2, 7]);
    gone.dispose();
    err({ y: gone }, 'IgnisError', 'E_DISPOSED', 'disposed', "output 'y'");
    expectThrows(() => model.enqueue({ x }, { outputs: { y: keep.t }, other: 1 } as never), 'TypeError', 'E_TYPE', 'unknown option');
    await same(keep.t, keep.x, `${c.ctx}: the tensor given to failed calls`);
    await same(x, xi.x, `${c.ctx}: the input`);
    await same(w.t, w.x, `${c.ctx}: the weight`);

    // Two outputs of one dtype: one tensor for both is refused; so is an output that is a
    // reshape of another (they share one buffer).
    const g = ignis.graph();
    const xin = g.input('x', { shape: [2, 6] });
    const d = g.mul(xin, xin);
    g.output('a', g.gelu(xin));
    g.output('b', g.silu(xin));
    g.output('d', d);
    g.output('dr', g.reshape(d, [3, 4]));
    const m2 = await g.compile();
    const x6 = ignis.randn([2, 6], { seed: 5 });
    const shared = ignis.zeros([2, 6]);
    expectThrows(() => m2.enqueue({ x: x6 }, { outputs: { a: shared, b: shared } }), 'IgnisError', 'E_ARGUMENT', 'one tensor for two outputs');
    expect(msg(() => m2.enqueue({ x: x6 }, { outputs: { a: shared, b: shared } }))).toContain('another given output');
    expectThrows(() => m2.enqueue({ x: x6 }, { outputs: { d: ignis.zeros([2, 6]) } }), 'IgnisError', 'E_ARGUMENT', 'an output a reshape shares');
    expect(msg(() => m2.enqueue({ x: x6 }, { outputs: { dr: ignis.zeros([3, 4]) } }))).toContain("output 'd'");
    // an output that is a reshape (of a node no other output shares) can be given
    const gv = ignis.graph();
    gv.output('r', gv.reshape(gv.gelu(gv.input('x', { shape: [2, 6] })), [3, 4]));
    const mv = await gv.compile();
    const rGiven = ignis.full([3, 4], NaN);
    expect((await mv.run({ x: x6 }, { outputs: { r: rGiven } })).r).toBe(rGiven);
    await same(rGiven, ignis.gelu(x6).reshape([3, 4]), `${c.ctx}: a given reshape output`);
    mv.dispose();
    const a = ignis.full([2, 6], NaN), b = ignis.full([2, 6], NaN);
    const r = await m2.run({ x: x6 }, { outputs: { a, b } });
    await same(a, ignis.gelu(x6), `${c.ctx}: a given`);
    await same(b, ignis.silu(x6), `${c.ctx}: b given`);
    await same(r.dr, ignis.mul(x6, x6).reshape([3, 4]), `${c.ctx}: dr beside given a and b`);
    model.dispose();
    m2.dispose();
  });

  it('a run that fails writes its error onto the given output; the next run that writes it clears it; a fresh one works too', async () => {
    const c = testCase(FILE, 'graph given outputs kernel error');
    const table = await input(c, [10, 8], 'f32', DEV);
    const g = ignis.graph();
    const ids = g.input('ids', { shape: ['batch', 'seq'], dtype: 'i32' });
    g.output('e', g.gelu(g.embedding(ids, g.weight('table', table.t))));
    const model = await g.compile({ maxBatch: 1, maxSeq: 2 });
    const good = ignis.tensor(new Int32Array([1, 2]), { shape: [1, 2] });
    const bad = ignis.tensor(new Int32Array([3, 99]), { shape: [1, 2] });
    const e = poisoned([1, 2, 8]);
    await expect(model.run({ ids: bad }, { outputs: { e } }), c.ctx).rejects.toMatchObject({ code: 'E_INDEX', message: expect.stringContaining('id 99') });
    await expect(e.data(), `${c.ctx}: the given output`).rejects.toMatchObject({ code: 'E_INDEX' });
    // the error's scope is the contents a run replaces: a good run into e clears it
    await model.enqueue({ ids: good }, { outputs: { e } }).e.ready();
    await same(e, ignis.gelu(ignis.embedding(good, table.t)), `${c.ctx}: the failed output, rewritten`);
    const fresh = poisoned([1, 2, 8]);
    await model.run({ ids: good }, { outputs: { e: fresh } });
    await same(fresh, ignis.gelu(ignis.embedding(good, table.t)), `${c.ctx}: a fresh output`);
    model.dispose();
  });
});

// --- 8. profiling ----------------------------------------------------------------------------

describe('graph: profiling', () => {
  it('profile(true): each run records its steps in order; profileTotal() sums the runs since; profile(false) stops', async () => {
    const c = testCase(FILE, 'graph profiling');
    const w = await input(c, [9, 5], 'f32', DEV);
    const g = ignis.graph();
    g.output('y', g.softmax(g.matmul(g.gelu(g.input('x', { shape: ['batch', 9] })), g.weight('w', w.t))));
    const model = await g.compile({ maxBatch: 4 });
    const x = (await input(c, [3, 9], 'f32', DEV)).t;
    await model.run({ x });
    expect(model.profile(), 'before profiling').toEqual([]);
    expect(model.profileTotal()).toEqual({ runs: 0, ns: 0 });
    model.profile(true);
    let sum = 0;
    for (let i = 0; i < 5; i++) {
      (await model.run({ x })).y.dispose();
      const p = model.profile();
      expect(p.map((s) => s.op)).toEqual(['activation', 'matmul', 'softmax']);
      for (const s of p) expect(s.ns, c.ctx).toBeGreaterThan(0);
      sum += p.reduce((a, s) => a + s.ns, 0);
    }
    expect(model.profileTotal(), c.ctx).toEqual({ runs: 5, ns: sum });
    const queued = [];
    for (let i = 0; i < 4; i++) queued.push(model.enqueue({ x }).y);
    await queued[3].ready();
    const after = model.profileTotal();
    expect(after.runs).toBe(9);
    expect(after.ns).toBeGreaterThan(sum);
    model.profile(false);
    await model.run({ x });
    expect(model.profileTotal(), 'an unprofiled run adds nothing').toEqual(after);
    model.profile(true);
    expect(model.profileTotal(), 'turned on again: from zero').toEqual({ runs: 0, ns: 0 });
    expectThrows(() => model.profile(1 as never), 'TypeError', 'E_TYPE', 'profile(1)');
    model.dispose();
    expectThrows(() => model.profileTotal(), 'IgnisError', 'E_DISPOSED', 'profileTotal of a disposed model');
  });
});
