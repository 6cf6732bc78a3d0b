// `npm start`: a short tour on the best device present. Runs a few representative ops (the
// kernels a transformer layer spends its time in), checks one result against a plain JS
// computation, and prints what ran and how fast.
import * as ignis from './index';

interface Row {
  op: string;
  shape: string;
  ms: number;
  rate: string;
}

async function time(run: () => ignis.Tensor, reps: number): Promise<number> {
  await run().data(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const out = run();
    await out.data();
    times.push(performance.now() - t0);
    out.dispose();
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const gflops = (flops: number, ms: number) => `${(flops / ms / 1e6).toFixed(1)} GFLOP/s`;
const gbps = (bytes: number, ms: number) => `${(bytes / ms / 1e6).toFixed(1)} GB/s`;

async function main() {
  const info = ignis.info();
  const device = ignis.defaultDevice();
  console.log(`ignis ${info.version}  device: ${device}  cpu: ${info.cpu.simd}, ${info.cpu.threads} threads`);
  console.log(`cuda: ${info.cuda.available ? info.cuda.devices.map((d) => d.name).join(', ') : `not used (${info.cuda.reason})`}`);

  // A correctness check first: a small matmul against plain JS.
  const a = ignis.randn([7, 33], { seed: 1, device });
  const b = ignis.randn([33, 5], { seed: 2, device });
  const [av, bv, cv] = await Promise.all([a.data(), b.data(), ignis.matmul(a, b).data()]);
  let maxErr = 0;
  for (let i = 0; i < 7; i++)
    for (let j = 0; j < 5; j++) {
      let s = 0;
      for (let k = 0; k < 33; k++) s += av[i * 33 + k] * bv[k * 5 + j];
      maxErr = Math.max(maxErr, Math.abs(s - cv[i * 5 + j]));
    }
  console.log(`check: matmul [7, 33] x [33, 5] matches plain JS (max abs error ${maxErr.toExponential(1)})\n`);

  const rows: Row[] = [];
  const n = 1024;
  const x = ignis.randn([n, n], { seed: 3, device });
  const w = ignis.randn([n, n], { seed: 4, device });
  rows.push({ op: 'matmul f32', shape: `${n}x${n}x${n}`, ms: 0, rate: '' });
  rows[rows.length - 1].ms = await time(() => ignis.matmul(x, w), 5);
  rows[rows.length - 1].rate = gflops(2 * n ** 3, rows[rows.length - 1].ms);

  const K = 4096, N = 4096;
  const wBig = ignis.randn([N, K], { seed: 5, device });
  const x1 = ignis.randn([1, K], { seed: 6, device });
  const msF32 = await time(() => ignis.matmul(x1, wBig, { transposeB: true }), 10);
  rows.push({ op: 'gemv f32', shape: `1x${K} · [${N}, ${K}]ᵀ`, ms: msF32, rate: gbps(N * K * 4, msF32) });
  const q = ignis.quantize(wBig, { groupSize: 128 });
  const msQ = await time(() => ignis.matmul(x1, q), 10);
  rows.push({ op: 'gemv int8 (g128)', shape: `1x${K} · [${N}, ${K}]ᵀ`, ms: msQ, rate: gbps(N * K * (1 + 4 / 128), msQ) });

  const S = 512, H = 12, D = 64;
  const qkv = [7, 8, 9].map((seed) => ignis.randn([1, S, H, D], { seed, device }));
  const msAttn = await time(() => ignis.attention(qkv[0], qkv[1], qkv[2], { causal: true }), 5);
  rows.push({ op: 'attention causal', shape: `1x${S}x${H}x${D}`, ms: msAttn, rate: gflops((4 * S * S * D * H) / 2, msAttn) });

  const h = ignis.randn([64, 4096], { seed: 10, device });
  const g = ignis.randn([4096], { seed: 11, device });
  const msNorm = await time(() => ignis.rmsnorm(h, g), 20);
  rows.push({ op: 'rmsnorm', shape: '64x4096', ms: msNorm, rate: gbps(64 * 4096 * 8, msNorm) });

  const widths = [18, 24, 10, 14];
  const line = (c: string[]) => c.map((s, i) => (i >= 2 ? s.padStart(widths[i]) : s.padEnd(widths[i]))).join('  ');
  console.log(line(['op', 'shape', 'median ms', 'rate']));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line([r.op, r.shape, r.ms.toFixed(3), r.rate]));
  console.log(`\nint8 GEMV is ${(msF32 / msQ).toFixed(1)}x the f32 GEMV on the same weight (it reads a quarter of the bytes).`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
