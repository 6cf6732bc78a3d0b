// CPU op microbenchmarks: each row states its work (FLOPs or bytes), so the table shows
// GFLOP/s or GB/s beside the median time. Peers (numpy, onnxruntime-node) join in a later
// issue; until then this measures ignis alone.
import { Bench } from 'tinybench';
import * as ignis from '../lib/index';

export interface Row {
  name: string;
  shape: string;
  medianMs: number;
  rate: string;
}

interface Case {
  name: string;
  shape: string;
  flops?: number;
  bytes?: number;
  run: () => ignis.Tensor;
}

export async function benchOps(quick: boolean): Promise<Row[]> {
  const device = 'cpu';
  const cases: Case[] = [];
  for (const n of quick ? [512] : [512, 1024, 2048]) {
    const a = ignis.randn([n, n], { seed: 1, device });
    const b = ignis.randn([n, n], { seed: 2, device });
    cases.push({ name: 'matmul f32', shape: `${n}^3`, flops: 2 * n ** 3, run: () => ignis.matmul(a, b) });
  }
  const K = 4096, N = 4096;
  const w = ignis.randn([N, K], { seed: 3, device });
  const qw = ignis.quantize(w, { groupSize: 128 });
  for (const M of quick ? [1] : [1, 8, 64]) {
    const x = ignis.randn([M, K], { seed: 4, device });
    cases.push({ name: 'matmul f32 (w^T)', shape: `${M}x${K}x${N}`, flops: 2 * M * K * N, run: () => ignis.matmul(x, w, { transposeB: true }) });
    cases.push({ name: 'matmul int8 g128', shape: `${M}x${K}x${N}`, flops: 2 * M * K * N, bytes: N * K * (1 + 4 / 128), run: () => ignis.matmul(x, qw) });
  }
  const S = quick ? 256 : 1024, H = 12, D = 64;
  const [q, k, v] = [5, 6, 7].map((seed) => ignis.randn([1, S, H, D], { seed, device }));
  cases.push({ name: 'attention causal', shape: `1x${S}x${H}x${D}`, flops: (4 * S * S * D * H) / 2, run: () => ignis.attention(q, k, v, { causal: true }) });
  const xs = ignis.randn([64, 4096], { seed: 8, device });
  const g = ignis.randn([4096], { seed: 9, device });
  cases.push({ name: 'rmsnorm', shape: '64x4096', bytes: 2 * 64 * 4096 * 4, run: () => ignis.rmsnorm(xs, g) });

  const bench = new Bench({ time: quick ? 200 : 1000, warmupTime: quick ? 50 : 200 });
  for (const c of cases) {
    bench.add(`${c.name} ${c.shape}`, async () => {
      const out = c.run();
      await out.data();
      out.dispose();
    });
  }
  await bench.run();
  return cases.map((c, i) => {
    const result = bench.tasks[i].result as { latency?: { p50: number } } | undefined;
    const ms = result?.latency?.p50 ?? NaN;
    const rate = c.bytes && !c.flops ? `${(c.bytes / ms / 1e6).toFixed(1)} GB/s`
      : c.bytes ? `${(c.flops! / ms / 1e6).toFixed(1)} GFLOP/s, ${(c.bytes / ms / 1e6).toFixed(1)} GB/s`
      : `${(c.flops! / ms / 1e6).toFixed(1)} GFLOP/s`;
    return { name: c.name, shape: c.shape, medianMs: ms, rate };
  });
}
