// The event loop while kernels run (npm run bench -- --only=loop): the tight figure behind
// test/eventloop.test.ts. A 1 ms interval records the gaps between its ticks while about 600 ms
// of 1024^3 f32 matmuls run: on ignis enqueued as one chain and awaited once, on ignis awaited
// one by one, and on onnxruntime-node awaited one by one (session.run); and in an idle period of
// the same length. A loop that stays free shows gaps near 1 ms; a blocked one, gaps as long as the
// work it waited on. Each figure is the median over the rounds.
import * as ignis from '../lib/index';
import { matmulModel } from './onnx';
import { onnxruntime, ortRunner } from './peers';

interface Gaps {
  ticks: number;
  ms: number;
  max: number;
  p99: number;
}

/** Gaps of a 1 ms interval while `work` runs. */
async function gaps(work: () => Promise<unknown>): Promise<Gaps> {
  const seen: number[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    seen.push(now - last);
    last = now;
  }, 1);
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  clearInterval(timer);
  seen.push(performance.now() - last); // the gap still open when the work ended
  const sorted = [...seen].sort((a, b) => a - b);
  return { ticks: seen.length - 1, ms, max: sorted[sorted.length - 1], p99: sorted[Math.min(sorted.length - 1, Math.floor(0.99 * sorted.length))] };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchLoop(quick: boolean, progress: (s: string) => void): Promise<void> {
  const n = 1024;
  const a = ignis.randn([n, n], { seed: 1 });
  const b = ignis.mul(ignis.randn([n, n], { seed: 2 }), ignis.full([1], 1 / Math.sqrt(n)));
  await Promise.all([a.data(), b.data()]);
  let one = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await ignis.matmul(a, b).ready();
    one = Math.min(one, performance.now() - t0);
  }
  const count = Math.min(400, Math.max(4, Math.ceil(600 / Math.max(0.5, one))));

  const chain = async () => {
    let c = ignis.matmul(a, b);
    for (let i = 1; i < count; i++) {
      const next = ignis.matmul(c, b);
      c.dispose();
      c = next;
    }
    await c.ready();
    c.dispose();
  };
  const oneByOne = async () => {
    for (let i = 0; i < count; i++) {
      const c = ignis.matmul(a, b);
      await c.ready();
      c.dispose();
    }
  };
  const cases: [string, () => Promise<unknown>][] = [['ignis, the chain enqueued at once', chain], ['ignis, awaited one by one', oneByOne]];
  let release = () => {};
  if (onnxruntime()) {
    const ort = await ortRunner(matmulModel(n, n, n), { a: { data: (await a.data()) as Float32Array, dims: [n, n] }, b: { data: (await b.data()) as Float32Array, dims: [n, n] } });
    release = () => void ort.release();
    cases.push(['onnxruntime-node, awaited one by one', async () => {
      for (let i = 0; i < count; i++) await ort.run();
    }]);
  }
  const rounds = quick ? 1 : 3;
  const results = new Map<string, Gaps[]>();
  let workMs = 0;
  for (let r = 0; r < rounds; r++) {
    for (const [name, work] of cases) {
      progress(`loop: ${name}, round ${r + 1}/${rounds}`);
      const g = await gaps(work);
      workMs = Math.max(workMs, g.ms);
      results.set(name, [...(results.get(name) ?? []), g]);
    }
    progress(`loop: idle, round ${r + 1}/${rounds}`);
    const idle = await gaps(() => new Promise((res) => setTimeout(res, workMs)));
    results.set('idle, as long as the longest run', [...(results.get('idle, as long as the longest run') ?? []), idle]);
  }
  release();
  progress('');
  console.log(`\nThe event loop while kernels run: a 1 ms interval's gaps during ${count} f32 ${n}^3 matmuls (about 600 ms`);
  console.log(`on ignis), median of ${rounds} round(s). A free loop ticks about once a ms; a blocked one waits out each run.`);
  console.log('| | work ms | ticks | ticks per 100 ms | max gap ms | p99 gap ms |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const [name, gs] of results) {
    const rate = median(gs.map((g) => (100 * g.ticks) / g.ms));
    console.log(`| ${name} | ${median(gs.map((g) => g.ms)).toFixed(0)} | ${median(gs.map((g) => g.ticks))} | ${rate.toFixed(0)} | ${median(gs.map((g) => g.max)).toFixed(1)} | ${median(gs.map((g) => g.p99)).toFixed(1)} |`);
  }
}
