// CPU op benchmarks, one area per table, each row timed on ignis and on its peers in this run:
// onnxruntime-node in this process, numpy in one python3 child. Each row states its work
// (FLOPs, minimal bytes moved) so the table shows GFLOP/s or GB/s and % of the machine's limit.
import { Bench } from 'tinybench';
import * as ignis from '../lib/index';
import * as onnx from './onnx';
import { measureBandwidth } from './peak';
import { NumpyCase, NumpyPeer, onnxruntime, OrtInputs, ortRunner } from './peers';
import { median } from './table';

export interface Row {
  area: string;
  shape: string;
  flops: number;
  /** the least memory traffic the op needs (inputs read once, output written once) */
  bytes: number;
  ignisMs: number;
  ortMs?: number;
  numpyMs?: number;
  /** the copy bandwidth measured beside this row's rounds (median), where the row asks for it */
  copyGBs?: number;
}

interface Case {
  area: string;
  shape: string;
  flops: number;
  bytes: number;
  /** makes the inputs, returns the op (enqueue only) and a cleanup */
  ignis: () => { run: () => ignis.Tensor; dispose: () => void };
  ort?: () => { model: Uint8Array; inputs: OrtInputs };
  numpy?: NumpyCase;
  /** measure the copy bandwidth before each round: the row is held to it rather than to the run's start */
  copyEachRound?: boolean;
}

export const AREAS = {
  mm: 'matmul f32, a [M, K] @ b [K, N] (ORT: MatMul, both fed)',
  decode: 'matmul f32 against a fixed weight, x [M, K] @ w^T (ignis: packWeight(w [N, K], transposeB) once; ORT: MatMul, w [K, N] initializer)',
  int8: 'matmul int8 weight, group 128 (ignis: in-kernel dequant, f32 math; ORT: DequantizeLinear(block 128) + MatMul, which it fuses into MatMulNBits with int8 activations; numpy: dequantize, then matmul)',
  attn: 'attention, 12 heads, headDim 64 (ignis: [1, S, H, D]; ORT and numpy: head-major q k^T * scale + mask, softmax, @ v)',
  small: 'small ops (ORT: rmsnorm and rope from primitives, Softmax, Gelu tanh, Add)',
} as const;

let seed = 1;
function rand(n: number): Float32Array {
  // xorshift32 into [-1, 1): inputs only need to be finite and not all equal.
  const a = new Float32Array(n);
  let s = seed++ * 2654435761 >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}
const feed = (dims: number[]) => ({ data: rand(dims.reduce((a, b) => a * b, 1)), dims });

function cases(quick: boolean): Case[] {
  const out: Case[] = [];
  const randn = (shape: number[]) => ignis.randn(shape, { seed: seed++, device: 'cpu' });
  const disposeAll = (...ts: { dispose(): void }[]) => () => ts.forEach((t) => t.dispose());

  for (const n of quick ? [256, 1024] : [256, 512, 1024, 2048]) {
    out.push({
      area: 'mm', shape: `${n}^3`, flops: 2 * n ** 3, bytes: 3 * n * n * 4,
      ignis: () => {
        const a = randn([n, n]), b = randn([n, n]);
        return { run: () => ignis.matmul(a, b), dispose: disposeAll(a, b) };
      },
      ort: () => ({ model: onnx.matmulModel(n, n, n), inputs: { a: feed([n, n]), b: feed([n, n]) } }),
      numpy: { kind: 'matmul', M: n, K: n, N: n },
    });
  }

  const decodeKN = quick ? [4096] : [768, 2048, 4096];
  for (const KN of decodeKN)
    // M = 1..64 at K = N = 4096 is a bar: 16 and 32 stand for the batches between.
    for (const M of KN === 4096 && !quick ? [1, 8, 16, 32, 64] : [1, 8, 64]) {
      const K = KN, N = KN;
      out.push({
        area: 'decode', shape: `${M}x${K}x${N}`, flops: 2 * M * K * N, bytes: 4 * (N * K + M * K + M * N),
        ignis: () => {
          // Packed once, as ORT prepacks its initializer at session creation.
          const x = randn([M, K]), w = randn([N, K]);
          const pw = ignis.packWeight(w, { transposeB: true });
          w.dispose();
          return { run: () => ignis.matmul(x, pw), dispose: disposeAll(x, pw) };
        },
        ort: () => ({ model: onnx.matmulConstModel(M, K, N, rand(K * N)), inputs: { x: feed([M, K]) } }),
        numpy: { kind: 'matmul_wt', M, K, N },
      });
    }

  const G = 128;
  for (const M of quick ? [1, 64] : [1, 8, 64]) {
    const K = 4096, N = 4096;
    out.push({
      area: 'int8', shape: `${M}x${K}x${N}`, flops: 2 * M * K * N, bytes: N * K * (1 + 4 / G) + 4 * (M * K + M * N),
      ignis: () => {
        const x = randn([M, K]), w = randn([N, K]);
        const qw = ignis.quantize(w, { groupSize: G });
        w.dispose();
        return { run: () => ignis.matmul(x, qw), dispose: disposeAll(x, qw) };
      },
      ort: () => {
        const q = new Int8Array(K * N);
        const r = rand(K * N);
        for (let i = 0; i < q.length; i++) q[i] = Math.round(r[i] * 127);
        const scales = rand((K / G) * N).map((s) => 0.01 * Math.abs(s) + 1e-4);
        return { model: onnx.matmulDQModel(M, K, N, q, scales, G), inputs: { x: feed([M, K]) } };
      },
      numpy: { kind: 'matmul_int8', M, K, N, groupSize: G },
    });
  }

  // The same GEMV over four weights in turn (66 MB > the 32 MB L3): each call reads its weight
  // from memory, the case the bandwidth bar is about; with f32 activations, then with int8 ones
  // (x quantized per group, integer dot products: VNNI where the CPU has it, the decode path of
  // an int8 model on the CPU). ignis only: the peers' rows above reuse one weight.
  for (const int8Activations of [false, true]) {
    const K = 4096, N = 4096;
    out.push({
      area: 'int8', shape: `1x${K}x${N}, 4 weights rotated${int8Activations ? ', int8 activations' : ''}`, flops: 2 * K * N, bytes: N * K * (1 + 4 / G) + 4 * (K + N), copyEachRound: true,
      ignis: () => {
        const x = randn([1, K]);
        const qs = [0, 1, 2, 3].map(() => {
          const w = randn([N, K]);
          const q = ignis.quantize(w, { groupSize: G });
          w.dispose();
          return q;
        });
        let i = 0;
        return { run: () => ignis.matmul(x, qs[i++ % 4], { int8Activations }), dispose: disposeAll(x, ...qs) };
      },
    });
  }

  const H = 12, D = 64;
  for (const S of quick ? [256] : [256, 512, 1024]) {
    out.push({
      area: 'attn', shape: `prefill causal S=${S}`, flops: (4 * S * S * D * H) / 2, bytes: 4 * 4 * S * H * D,
      ignis: () => {
        const [q, k, v] = [0, 1, 2].map(() => randn([1, S, H, D]));
        return { run: () => ignis.attention(q, k, v, { causal: true }), dispose: disposeAll(q, k, v) };
      },
      ort: () => ({ model: onnx.attentionModel(H, S, S, D, true), inputs: { q: feed([1, H, S, D]), k: feed([1, H, S, D]), v: feed([1, H, S, D]) } }),
      numpy: { kind: 'attention', H, Sq: S, Skv: S, D, causal: true },
    });
  }
  for (const S of quick ? [1024] : [512, 2048]) {
    out.push({
      area: 'attn', shape: `decode 1 query, ${S} keys`, flops: 4 * S * D * H, bytes: 4 * (2 * S * H * D + 2 * H * D),
      ignis: () => {
        const q = randn([1, 1, H, D]), k = randn([1, S, H, D]), v = randn([1, S, H, D]);
        return { run: () => ignis.attention(q, k, v, { causal: true }), dispose: disposeAll(q, k, v) };
      },
      ort: () => ({ model: onnx.attentionModel(H, 1, S, D, true), inputs: { q: feed([1, H, 1, D]), k: feed([1, H, S, D]), v: feed([1, H, S, D]) } }),
      numpy: { kind: 'attention', H, Sq: 1, Skv: S, D, causal: true },
    });
  }

  const R = 64, C = 4096;
  const rows2d = `${R}x${C}`;
  out.push({
    area: 'small', shape: `rmsnorm ${rows2d}`, flops: 4 * R * C, bytes: 4 * (2 * R * C + C),
    ignis: () => {
      const x = randn([R, C]), g = randn([C]);
      return { run: () => ignis.rmsnorm(x, g), dispose: disposeAll(x, g) };
    },
    ort: () => ({ model: onnx.rmsnormModel(R, C, rand(C)), inputs: { x: feed([R, C]) } }),
    numpy: { kind: 'rmsnorm', R, C },
  });
  for (const op of ['softmax', 'gelu'] as const) {
    out.push({
      area: 'small', shape: `${op} ${rows2d}`, flops: 0, bytes: 4 * 2 * R * C,
      ignis: () => {
        const x = randn([R, C]);
        return { run: () => (op === 'softmax' ? ignis.softmax(x) : ignis.gelu(x)), dispose: disposeAll(x) };
      },
      ort: () => ({ model: onnx.unaryModel(op === 'softmax' ? 'Softmax' : 'Gelu', [R, C]), inputs: { x: feed([R, C]) } }),
      numpy: { kind: op, R, C },
    });
  }
  out.push({
    area: 'small', shape: `add ${rows2d}`, flops: 0, bytes: 4 * 3 * R * C,
    ignis: () => {
      const a = randn([R, C]), b = randn([R, C]);
      return { run: () => ignis.add(a, b), dispose: disposeAll(a, b) };
    },
    ort: () => ({ model: onnx.unaryModel('Add', [R, C]), inputs: { x: feed([R, C]), b: feed([R, C]) } }),
    numpy: { kind: 'add', R, C },
  });
  const S = 256;
  out.push({
    area: 'small', shape: `rope 1x${S}x${H}x${D}`, flops: 0, bytes: 4 * 2 * S * H * D,
    ignis: () => {
      const x = randn([1, S, H, D]);
      return { run: () => ignis.rope(x), dispose: disposeAll(x) };
    },
    ort: () => ({ model: onnx.ropeModel(S, H, D), inputs: { x: feed([1, S, H, D]) } }),
    numpy: { kind: 'rope', S, H, D },
  });
  return out;
}

async function medianMs(name: string, fn: () => Promise<unknown>, quick: boolean): Promise<number> {
  // Each sample runs to the result (ignis: until data() resolves), so times are comparable.
  const bench = new Bench(quick
    ? { time: 100, warmupTime: 20, iterations: 3, warmupIterations: 1 }
    : { time: 500, warmupTime: 100, iterations: 10, warmupIterations: 2 });
  bench.add(name, fn);
  await bench.run();
  const r = bench.tasks[0].result as { latency?: { p50: number }; error?: unknown } | undefined;
  if (r?.error) throw r.error;
  return r?.latency?.p50 ?? NaN;
}

// Lets a peer's idle worker threads stop spinning before the next one runs: ORT's briefly,
// OpenBLAS's for 2^28 cycles (its default thread timeout, ~0.1 s here) after numpy's last call.
const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Times every case on ignis, onnxruntime-node and numpy in rounds that alternate the three
 * (ignis, ORT, numpy, ignis, ...): this machine's speed drifts with its neighbours, and
 * alternating keeps each ratio a comparison made under the same conditions. A row's time is
 * the median of its rounds' medians.
 */
export async function benchOps(quick: boolean, log: (s: string) => void, only?: string[]): Promise<{ rows: Row[]; numpyStatus: string }> {
  const list = cases(quick).filter((c) => !only || only.includes(c.area));
  const numpy = new NumpyPeer();
  await numpy.start();
  const ort = onnxruntime();
  const rows: Row[] = [];
  for (const c of list) {
    // The square f32 matmuls hold the numpy bar, where this VM's drift moves a 3-round ratio
    // by 10% or more between runs: they get more rounds.
    const rounds = quick ? 2 : c.area === 'mm' && c.flops >= 2 * 1024 ** 3 ? 6 : 3;
    const label = `${c.area} ${c.shape}`;
    const op = c.ignis();
    const runner = ort && c.ort ? await (async () => { const { model, inputs } = c.ort!(); return ortRunner(model, inputs); })() : undefined;
    const npId = c.numpy ? await numpy.build(c.numpy) : undefined;
    const times: { ignis: number[]; ort: number[]; numpy: number[] } = { ignis: [], ort: [], numpy: [] };
    const copies: number[] = [];
    for (let r = 0; r < rounds; r++) {
      if (c.copyEachRound) {
        const bw = measureBandwidth();
        if (bw) copies.push(bw.copyGBs);
        await settle(60);
      }
      times.ignis.push(await medianMs(`ignis ${label}`, async () => {
        const out = op.run();
        await out.ready();
        out.dispose();
      }, quick));
      if (runner) {
        await settle(60);
        times.ort.push(await medianMs(`ort ${label}`, runner.run, quick));
      }
      if (runner) await settle(60); // ORT's threads spin a while after its last run
      const np = await numpy.run(npId, quick);
      if (np !== undefined) times.numpy.push(np);
      await settle(np === undefined ? 60 : 200);
    }
    op.dispose();
    await runner?.release();
    await numpy.drop(npId);
    const ortMs = times.ort.length ? median(times.ort) : undefined;
    const numpyMs = times.numpy.length ? median(times.numpy) : undefined;
    rows.push({ area: c.area, shape: c.shape, flops: c.flops, bytes: c.bytes, ignisMs: median(times.ignis), ortMs, numpyMs, copyGBs: copies.length ? median(copies) : undefined });
    log(`  ${label}: ${median(times.ignis).toFixed(3)} ms`);
  }
  numpy.close();
  return { rows, numpyStatus: numpy.status };
}
