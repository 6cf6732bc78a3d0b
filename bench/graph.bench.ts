// Compiled-graph benchmarks (area 'graph'): a random Llama-shaped model's decode and prefill
// tokens/s in f32 and int8 against the machine's bandwidth and FMA peaks, and the fixed cost
// of one model.run() (wall time minus the steps' own time) beside the same ops run eagerly.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Bench } from 'tinybench';
import * as ignis from '../lib/index';
import { writeRandomCheckpoint } from '../lib/models/random';
import type { Peak } from './peak';
import { printTable } from './table';

/** The demo's model: Llama-shaped, 32 M parameters, 122 MB in f32 (past the L3). */
const SHAPE = { hidden: 512, layers: 8, heads: 8, kvHeads: 4, intermediate: 1408, vocab: 8192, maxPositions: 1024 };
const PROMPT = 128;

async function medianMs(fn: () => Promise<unknown>, quick: boolean): Promise<number> {
  const bench = new Bench(quick
    ? { time: 250, warmupTime: 50, iterations: 5, warmupIterations: 2 }
    : { time: 1000, warmupTime: 150, iterations: 20, warmupIterations: 3 });
  bench.add('graph', fn);
  await bench.run();
  const r = bench.tasks[0].result as { latency?: { p50: number }; error?: unknown } | undefined;
  if (r?.error) throw r.error;
  return r?.latency?.p50 ?? NaN;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const ids = (n: number, vocab: number) =>
  ignis.tensor(Int32Array.from({ length: n }, (_, i) => (i * 7919 + 13) % vocab), { shape: [1, n], dtype: 'i32' });

interface ModelRow {
  name: string;
  ms: number;
  tokens: number;
  flops: number;
  /** the least bytes the step reads: every weight once (one embedding row), the KV cache rows */
  bytes: number;
}

const median = (xs: number[]) => percentile(xs, 50);

/**
 * Decode: one token over a KV cache holding PROMPT rows (the step graph at position PROMPT,
 * rewriting that row each sample, so every sample attends over PROMPT + 1 rows). Prefill: the
 * step graph over PROMPT tokens at position 0, the prompt run of generate() (last logits only).
 * f32 and int8 are timed in alternating rounds, as the op tables are, so that their ratio is
 * taken under the same conditions on a machine whose speed drifts; a row is the median of its
 * rounds' medians.
 */
async function benchModel(quick: boolean, log: (s: string) => void): Promise<{ rows: ModelRow[]; decodeCost: OverheadRow[]; generation: GenerateRow[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-bench-'));
  const { hidden: H, layers: L, heads, kvHeads, intermediate: I, vocab: V } = SHAPE;
  const D = H / heads;
  const linearParams = L * (2 * H * heads * D + 2 * H * kvHeads * D + 3 * H * I); // q, o; k, v; gate, up, down
  const attnFlops = (q: number, kv: number) => L * 4 * heads * D * q * kv; // S = q k^T, O = P V (causal: kv ~ half)
  const kvRow = L * 2 * kvHeads * D * 4; // f32 cache: k and v of one position, every layer
  const prompt = ids(PROMPT, V), one = ids(1, V);
  const loaded: { name: string; model: ignis.LanguageModel; state: ignis.ModelState }[] = [];
  try {
    log('  graph: writing the random checkpoint');
    await writeRandomCheckpoint(dir, { modelType: 'llama', seed: 1, ...SHAPE });
    for (const quantize of [undefined, 'int8'] as const) {
      const model = await ignis.loadModel(dir, { quantize, maxSeq: 256 });
      const state = model.step.createState();
      loaded.push({ name: quantize ? 'int8 (g128)' : 'f32', model, state });
      disposeAll(await model.step.run({ ids: prompt, position: 0 }, { state })); // the cache holds the prompt
    }
    const decode = loaded.map(() => [] as number[]), prefill = loaded.map(() => [] as number[]);
    const rounds = quick ? 2 : 3;
    for (let r = 0; r < rounds; r++)
      for (const [i, { name, model, state }] of loaded.entries()) {
        log(`  graph: ${name}, round ${r + 1} of ${rounds}`);
        decode[i].push(await medianMs(async () => disposeAll(await model.step.run({ ids: one, position: PROMPT }, { state })), quick));
        prefill[i].push(await medianMs(async () => disposeAll(await model.step.run({ ids: prompt, position: 0 }, { state })), quick));
      }
    const rows: ModelRow[] = [], decodeCost: OverheadRow[] = [], generation: GenerateRow[] = [];
    for (const [i, { name, model, state }] of loaded.entries()) {
      const weights = model.memory().weights - V * H * 4 + H * 4; // the embedding table is read one row a token
      rows.push({
        name: `decode ${name}, position ${PROMPT}`, ms: median(decode[i]), tokens: 1,
        flops: 2 * (linearParams + V * H) + attnFlops(1, PROMPT + 1), bytes: weights + kvRow * (PROMPT + 1),
      });
      rows.push({
        name: `prefill ${name}, ${PROMPT} tokens`, ms: median(prefill[i]), tokens: PROMPT,
        flops: 2 * PROMPT * linearParams + 2 * V * H + attnFlops(PROMPT, (PROMPT + 1) / 2), bytes: weights + kvRow * PROMPT,
      });
      // The fixed cost of the tiny graphs below, for a real decode step.
      log(`  graph: ${name}, fixed cost of a decode step`);
      const outs = await model.step.run({ ids: one, position: PROMPT }, { state });
      const [fresh, given] = await fixedCost(model.step, { ids: one, position: PROMPT }, state, quick ? 40 : 300, [undefined, outs]);
      disposeAll(outs);
      decodeCost.push({ name: `decode step, Llama ${name}`, ...fresh });
      decodeCost.push({ name: `decode step, Llama ${name}, outputs given`, ...given });
      log(`  graph: ${name}, greedy generation, pipelined and step by step`);
      generation.push({ name, ...(await generateCost(model, quick)) });
    }
    return { rows, decodeCost, generation };
  } finally {
    for (const { model, state } of loaded) {
      state.dispose();
      model.dispose();
    }
    prompt.dispose();
    one.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const disposeAll = (outs: Record<string, ignis.Tensor>) => {
  for (const t of Object.values(outs)) t.dispose();
};

interface GenerateRow {
  name: string;
  /** median microseconds between tokens: generate() (greedy, each step queued before the last one's token is read) */
  pipelinedUs: number;
  /** the same tokens step by step: await each run, read the logits, argmax in JS, the next ids tensor */
  stepwiseUs: number;
  /** per token in the steady state (tokens 8 to the last), medians over the rounds: wall time minus the steps' time */
  pipelinedOverUs: number;
  stepwiseOverUs: number;
}

/**
 * Greedy generation of n tokens after a PROMPT-token prompt, two ways in alternating rounds:
 * generate(), whose steps pick their token on the device and are queued one ahead, and the
 * loop a caller of run() would write (what generate() did before), one step at a time. The
 * step graph is profiled throughout, so each round's kernel time is known exactly.
 */
async function generateCost(model: ignis.LanguageModel, quick: boolean): Promise<Omit<GenerateRow, 'name'>> {
  const n = quick ? 32 : 96;
  const prompt = Array.from({ length: PROMPT }, (_, i) => (i * 7919 + 13) % SHAPE.vocab);
  const gaps = (ts: number[]) => ts.slice(1).map((t, i) => (t - ts[i]) * 1e3);
  // ts: the time of each token; ks: the profiled steps' total (ns) then
  const pipelined = async (ts: number[], ks: number[]) => {
    for await (const _piece of model.generate(prompt, { maxNewTokens: n })) ts.push(performance.now()), ks.push(model.step.profileTotal().ns);
  };
  const stepwise = async (ts: number[], ks: number[]) => {
    const state = model.step.createState();
    let ids = ignis.tensor(Int32Array.from(prompt), { shape: [1, PROMPT], dtype: 'i32' });
    let position = 0;
    try {
      for (let k = 0; k < n; k++) {
        const outs = await model.step.run({ ids, position }, { state });
        position += ids.shape[1];
        ids.dispose();
        const row = (await outs.logits.data()) as Float32Array;
        disposeAll(outs);
        let best = 0;
        for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
        ts.push(performance.now()), ks.push(model.step.profileTotal().ns);
        ids = ignis.tensor(new Int32Array([best]), { shape: [1, 1], dtype: 'i32' });
      }
    } finally {
      ids.dispose();
      state.dispose();
    }
  };
  const ways = { pipelined, stepwise };
  const acc = { pipelined: { gaps: [] as number[], over: [] as number[] }, stepwise: { gaps: [] as number[], over: [] as number[] } };
  model.step.profile(true);
  try {
    for (let r = 0; r < (quick ? 2 : 6); r++)
      for (const way of (r % 2 ? ['stepwise', 'pipelined'] : ['pipelined', 'stepwise']) as (keyof typeof ways)[]) {
        const ts: number[] = [], ks: number[] = [];
        await ways[way](ts, ks);
        const a = 8, b = n - 1;
        acc[way].gaps.push(...gaps(ts));
        acc[way].over.push(((ts[b] - ts[a]) * 1e3 - (ks[b] - ks[a]) / 1e3) / (b - a));
      }
  } finally {
    model.step.profile(false);
  }
  return {
    pipelinedUs: median(acc.pipelined.gaps), stepwiseUs: median(acc.stepwise.gaps),
    pipelinedOverUs: median(acc.pipelined.over), stepwiseOverUs: median(acc.stepwise.over),
  };
}

interface FixedCost {
  steps: number;
  /** medians over the samples, microseconds: a profiled run's wall time, its steps' sum, the difference (per sample) */
  wallUs: number;
  stepsUs: number;
  fixedUs: number;
  fixedP90Us: number;
  /** the part of the wall time before run() returns its promise (JS checks, the native call, output tensors) */
  enqueueUs: number;
  /** runs enqueued back to back (the next queued while one runs): wall time per run minus the steps' sum */
  queuedUs: number;
}

interface OverheadRow extends FixedCost {
  name: string;
  /** an unprofiled run, and the same ops called eagerly then one await ready() (tinybench medians) */
  runUs?: number;
  eagerUs?: number;
}

/**
 * A run's fixed cost: with model.profile(true) each run records its steps' times; the wall time
 * of a run minus their sum is what the run costs besides its kernels (JS checks, the queue
 * hand-off, waking the worker, resolving the promise). Paired per sample. One result per
 * variant: undefined makes fresh outputs each run (disposed after), an object gives outputs to
 * write into; the variants alternate run by run, so each sees the same machine.
 */
async function fixedCost(model: ignis.Model, inputs: ignis.RunInputs, state: ignis.ModelState | undefined, n: number,
                         variants: (Record<string, ignis.Tensor> | undefined)[] = [undefined]): Promise<FixedCost[]> {
  const once = async (outputs: Record<string, ignis.Tensor> | undefined) => {
    // run()'s synchronous part (checks, the plan enqueued, the output tensors made), then the wait.
    const t0 = performance.now();
    const done = model.run(inputs, outputs ? { state, outputs } : { state });
    const t1 = performance.now();
    const outs = await done;
    const t2 = performance.now();
    for (const [k, t] of Object.entries(outs)) if (!outputs || outputs[k] !== t) t.dispose();
    return { wall: (t2 - t0) * 1e3, enqueue: (t1 - t0) * 1e3 };
  };
  model.profile(true);
  try {
    for (let i = 0; i < Math.ceil(n / 10); i++) for (const o of variants) await once(o); // warm-up
    const acc = variants.map(() => ({ wall: [] as number[], steps: [] as number[], fixed: [] as number[], enqueue: [] as number[], nSteps: 0 }));
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < variants.length; k++) {
        const r = await once(variants[k]);
        const prof = model.profile();
        const sum = prof.reduce((a, s) => a + s.ns, 0) / 1e3;
        const a = acc[k];
        a.nSteps = prof.length;
        a.wall.push(r.wall);
        a.enqueue.push(r.enqueue);
        a.steps.push(sum);
        a.fixed.push(r.wall - sum);
      }
    }
    // Back to back: K runs enqueued at once, the last one awaited; the wall time minus the K
    // runs' steps (profileTotal()), per run.
    const K = 20;
    const queued = variants.map(() => [] as number[]);
    for (let r = 0; r < Math.max(3, Math.ceil(n / 60)); r++)
      for (let k = 0; k < variants.length; k++) {
        const outputs = variants[k];
        const k0 = model.profileTotal().ns, t0 = performance.now();
        const runs: Record<string, ignis.Tensor>[] = [];
        for (let i = 0; i < K; i++) runs.push(model.enqueue(inputs, outputs ? { state, outputs } : { state }));
        await Object.values(runs[K - 1])[0].ready();
        const wallUs = (performance.now() - t0) * 1e3;
        queued[k].push((wallUs - (model.profileTotal().ns - k0) / 1e3) / K);
        for (const o of runs) for (const [name, t] of Object.entries(o)) if (!outputs || outputs[name] !== t) t.dispose();
      }
    return acc.map((a, k) => ({
      steps: a.nSteps, wallUs: percentile(a.wall, 50), stepsUs: percentile(a.steps, 50),
      fixedUs: percentile(a.fixed, 50), fixedP90Us: percentile(a.fixed, 90), enqueueUs: percentile(a.enqueue, 50),
      queuedUs: percentile(queued[k], 50),
    }));
  } finally {
    model.profile(false);
  }
}

/** Two tiny graphs, each beside the same ops called eagerly. */
async function benchOverhead(quick: boolean, log: (s: string) => void): Promise<OverheadRow[]> {
  const C = 64;
  const x = ignis.randn([1, C], { seed: 101 });
  const out: OverheadRow[] = [];

  const chain = async () => {
    // 32 x (add a bias, gelu) = 64 steps on [1, 64]: each kernel takes well under a microsecond.
    const bs = Array.from({ length: 32 }, (_, i) => ignis.randn([C], { seed: 200 + i }));
    const g = ignis.graph();
    let h = g.input('x', { shape: [1, C] });
    bs.forEach((b, i) => (h = g.gelu(g.add(h, g.weight(`b${i}`, b)))));
    g.output('y', h);
    const eager = () => {
      let t: ignis.Tensor = x;
      for (const b of bs) {
        const a = ignis.add(t, b);
        if (t !== x) t.dispose();
        t = ignis.gelu(a);
        a.dispose();
      }
      return t;
    };
    return { name: `64 steps: 32 x (add, gelu) [1, ${C}]`, model: await g.compile(), eager, dispose: () => bs.forEach((b) => b.dispose()) };
  };
  const matmul = async () => {
    const w = ignis.randn([C, C], { seed: 300 });
    const g = ignis.graph();
    g.output('y', g.matmul(g.input('x', { shape: [1, C] }), g.weight('w', w)));
    return { name: `1 step: matmul [1, ${C}] @ [${C}, ${C}]`, model: await g.compile(), eager: () => ignis.matmul(x, w), dispose: () => w.dispose() };
  };

  for (const make of [chain, matmul]) {
    const c = await make();
    log(`  graph: ${c.name}`);
    try {
      const run = async () => {
        const { y } = await c.model.run({ x });
        y.dispose();
      };
      const runEager = async () => {
        const y = c.eager();
        await y.ready();
        y.dispose();
      };
      // The graph must compute what the eager ops do before its time means anything.
      const { y } = await c.model.run({ x });
      const ye = c.eager();
      const [gv, ev] = await Promise.all([y.data(), ye.data()]);
      y.dispose();
      ye.dispose();
      for (let i = 0; i < gv.length; i++)
        if (Math.abs(gv[i] - ev[i]) > 1e-4 * (1 + Math.abs(ev[i]))) throw new Error(`graph bench: ${c.name}: the graph and the eager ops differ at ${i}: ${gv[i]} vs ${ev[i]}`);

      const runUs = (await medianMs(run, quick)) * 1e3;
      const eagerUs = (await medianMs(runEager, quick)) * 1e3;
      out.push({ name: c.name, ...(await fixedCost(c.model, { x }, undefined, quick ? 400 : 3000))[0], runUs, eagerUs });
    } finally {
      c.model.dispose();
      c.dispose();
    }
  }
  x.dispose();
  return out;
}

/** Runs the 'graph' area and prints its two tables; `peak` is what run.ts measured. */
export async function benchGraph(quick: boolean, peak: Peak, log: (s: string) => void): Promise<void> {
  const { rows: models, decodeCost, generation } = await benchModel(quick, log);
  const overhead = [...(await benchOverhead(quick, log)), ...decodeCost];
  log('');

  const { hidden, layers, heads, kvHeads, intermediate, vocab } = SHAPE;
  printTable(
    `graph: random Llama (hidden ${hidden}, ${layers} layers, ${heads} heads / ${kvHeads} kv, intermediate ${intermediate}, vocab ${vocab}), batch 1, ` +
      `the compiled step graph through model.run (ignis only)`,
    ['case', 'ms', 'tokens/s', 'rate', '% peak', 'bytes/token'],
    models.map((r) => {
      // Decode is held to bandwidth (bytes / time), prefill to the FMA peak (flops / time).
      const decode = r.tokens === 1;
      const gbs = r.bytes / r.ms / 1e6, gflops = r.flops / r.ms / 1e6;
      const pct = decode ? `${((gbs / peak.bwGBs) * 100).toFixed(0)}% BW` : peak.fmaGflops ? `${((gflops / peak.fmaGflops) * 100).toFixed(0)}% FMA` : '-';
      return [
        r.name, r.ms >= 100 ? r.ms.toFixed(1) : r.ms.toFixed(2), ((r.tokens / r.ms) * 1000).toFixed(r.tokens === 1 ? 1 : 0),
        decode ? `${gbs.toFixed(1)} GB/s` : `${gflops.toFixed(1)} GFLOP/s`, pct, decode ? `${(r.bytes / 2 ** 20).toFixed(1)} MiB` : '-',
      ];
    }),
  );
  console.log('decode bytes: every linear weight once (int8: + scales), one embedding row, the KV cache rows read; prefill: FLOPs of');
  console.log(`the ${PROMPT} tokens' matmuls and causal attention, the LM head on the last one.`);

  printTable(
    'graph: fixed cost per run (CPU), microseconds: a profiled run\'s wall time (await model.run) minus its steps\' sum, paired per sample',
    ['graph', 'steps', 'wall', 'steps sum', 'fixed', 'fixed p90', 'of it sync', 'queued', 'run (no profile)', 'eager', 'eager/run'],
    overhead.map((r) => [
      r.name, String(r.steps), r.wallUs.toFixed(1), r.stepsUs.toFixed(1), r.fixedUs.toFixed(1), r.fixedP90Us.toFixed(1), r.enqueueUs.toFixed(1), r.queuedUs.toFixed(1),
      r.runUs?.toFixed(1) ?? '-', r.eagerUs?.toFixed(1) ?? '-', r.runUs && r.eagerUs ? `${(r.eagerUs / r.runUs).toFixed(2)}x` : '-',
    ]),
  );
  console.log('of it sync: the synchronous part, until model.run() returns its promise; the rest of the fixed cost is waiting: the queue');
  console.log('hand-off to the device worker and the run\'s trip back to the event loop. queued: 20 runs enqueued back to back, one');
  console.log('await for the last: wall time minus the 20 runs\' steps (profileTotal()), per run; the JS side of a run overlaps the run');
  console.log('before it. run (no profile): tinybench median of await model.run(). eager: the same ops called one by one (each');
  console.log('validates, allocates its output and enqueues), then one await ready().');

  printTable(
    `graph: greedy generation after a ${PROMPT}-token prompt, microseconds a token (median gap between tokens), the two ways alternated`,
    ['model', 'generate()', 'step by step', 'saved', 'beyond kernels: generate()', 'step by step'],
    generation.map((r) => [
      r.name, r.pipelinedUs.toFixed(0), r.stepwiseUs.toFixed(0), `${(r.stepwiseUs - r.pipelinedUs).toFixed(0)} (${(((r.stepwiseUs - r.pipelinedUs) / r.stepwiseUs) * 100).toFixed(1)}%)`,
      r.pipelinedOverUs.toFixed(1), r.stepwiseOverUs.toFixed(1),
    ]),
  );
  console.log('generate(): each greedy step picks its token on the device (argmax) and is queued, reading the previous step\'s token');
  console.log('tensor, before that token is read back. step by step: await model.run, read the logits, argmax in JS, a new ids tensor.');
  console.log('beyond kernels: per token from the 8th to the last, wall time minus the steps\' time between them (the step graph');
  console.log('profiled throughout, model.profileTotal()), median of the rounds.');
}
