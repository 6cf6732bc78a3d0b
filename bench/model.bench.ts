// The model table against llama.cpp (area 'llama'): one random Llama written as safetensors (f32,
// f16, bf16) and as GGUF (F32, F16, BF16, Q8_0, bench/gguf.ts), checked to agree, then prefill and
// decode timed at 1 and 2 threads, engines alternated, each in a process of its own
// (bench/model-peer.ts), with the read bandwidth measured before every round.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../lib/binding';
import { writeRandomCheckpoint } from '../lib/models/random';
import { GgufType, writeLlamaGguf } from './gguf';
import type { PeerJob, PeerResult, Precision } from './model-peer';
import { measureBandwidth } from './peak';
import { median, printTable } from './table';

/** The model: hidden 2048, 16 layers, 32 heads / 8 KV heads, intermediate 5632, vocab 32000 (852M parameters). */
const FULL = { hidden: 2048, layers: 16, heads: 32, kvHeads: 8, intermediate: 5632, vocab: 32000, maxPositions: 2048 };
/** --quick: the same layout at 1/8 of the weights */
const QUICK = { hidden: 1024, layers: 6, heads: 16, kvHeads: 4, intermediate: 2816, vocab: 32000, maxPositions: 2048 };
const PRECISIONS: Precision[] = ['f32', 'f16', 'bf16', 'int8'];
const GGUF_OF: Record<Precision, GgufType> = { f32: 'f32', f16: 'f16', bf16: 'bf16', int8: 'q8_0' };
const LAYOUT = 2; // bump when the files' layout changes: the cache key

type Shape = typeof FULL;

export function llamaCppStatus(): string | undefined {
  const pkg = path.join(packageRoot, 'bench', 'node_modules', 'node-llama-cpp', 'package.json');
  if (!fs.existsSync(pkg)) return 'node-llama-cpp is not installed in bench/node_modules (scripts/bench-deps.js)';
  return undefined;
}

/** The files, written once per shape into the temp directory and reused by later runs. */
async function modelFiles(shape: Shape, log: (s: string) => void): Promise<{ ckpt: Record<'f32' | 'f16' | 'bf16', string>; gguf: Record<Precision, string> }> {
  const key = createHash('sha256').update(JSON.stringify({ shape, LAYOUT })).digest('hex').slice(0, 12);
  const root = path.join(os.tmpdir(), `ignis-bench-llama-${key}`);
  const ckpt = { f32: path.join(root, 'f32'), f16: path.join(root, 'f16'), bf16: path.join(root, 'bf16') };
  const gguf = Object.fromEntries(PRECISIONS.map((p) => [p, path.join(root, `model-${GGUF_OF[p]}.gguf`)])) as Record<Precision, string>;
  const done = path.join(root, 'complete');
  if (!fs.existsSync(done)) {
    fs.rmSync(root, { recursive: true, force: true });
    for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      log(`  llama: writing the ${dtype} checkpoint`);
      await writeRandomCheckpoint(ckpt[dtype], { modelType: 'llama', seed: 7, dtype, ...shape });
    }
    for (const p of PRECISIONS) {
      log(`  llama: writing ${path.basename(gguf[p])}`);
      await writeLlamaGguf(ckpt.f32, gguf[p], GGUF_OF[p]);
    }
    fs.writeFileSync(done, '');
  }
  return { ckpt, gguf };
}

function runPeer(spec: Omit<PeerJob, 'out'>): PeerResult {
  const job: PeerJob = { ...spec, out: path.join(os.tmpdir(), `ignis-model-peer-${process.pid}.json`) };
  fs.rmSync(job.out, { force: true });
  const script = path.join(__dirname, 'model-peer.js');
  const r = spawnSync(process.execPath, [script, JSON.stringify(job)], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    env: { ...process.env, IGNIS_THREADS: String(job.threads) },
  });
  if (r.status !== 0) throw new Error(`${job.engine} ${job.precision} x${job.threads} failed: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(fs.readFileSync(job.out, 'utf8')) as PeerResult;
}

/** Bytes a decode step streams at least: every linear weight once (the LM head included; one embedding row, no norms). */
function stepBytes(shape: Shape, p: Precision): number {
  const { hidden: H, layers: L, heads, kvHeads, intermediate: I, vocab: V } = shape;
  const D = H / heads;
  const params = L * (2 * H * heads * D + 2 * H * kvHeads * D + 3 * H * I) + V * H;
  // int8: int8 values + one f16 scale per 32 (ignis's default on the CPU, as Q8_0's)
  const perParam = p === 'f32' ? 4 : p === 'int8' ? 1 + 2 / 32 : 2;
  return params * perParam;
}

interface Cell {
  engine: 'ignis' | 'llama.cpp';
  precision: Precision;
  threads: number;
  results: PeerResult[];
}

/** Runs the 'llama' area and prints its tables. */
export async function benchLlama(quick: boolean, log: (s: string) => void): Promise<void> {
  const why = llamaCppStatus();
  if (why) {
    console.log(`\nllama: skipped (${why})`);
    return;
  }
  // --precision=f16,int8: only those rows (a kernel's turn-around; the table says which ran)
  const precArg = process.argv.find((a) => a.startsWith('--precision='));
  const precisions = precArg ? (precArg.slice('--precision='.length).split(',') as Precision[]) : PRECISIONS;
  for (const p of precisions) if (!PRECISIONS.includes(p)) throw new Error(`llama: unknown --precision '${p}' (known: ${PRECISIONS.join(', ')})`);
  const shape = quick ? QUICK : FULL;
  const threadCounts = quick ? [2] : [1, 2];
  const prompts = quick ? [128] : [128, 512];
  const rounds = 2;
  const { ckpt, gguf } = await modelFiles(shape, log);
  const model = (engine: 'ignis' | 'llama.cpp', p: Precision) => (engine === 'llama.cpp' ? gguf[p] : ckpt[p === 'int8' ? 'f32' : p]);
  const base = { vocab: shape.vocab, prompts, prefillReps: quick ? 2 : 3, decode: quick ? 32 : 64 };

  // 1. Agreement: logits after a 32-token prompt and 16 greedy tokens, llama.cpp's attention in f32.
  const checks: string[][] = [];
  // accuracy: each engine's logits against the f32 ones (ignis f32, which agrees with llama.cpp's)
  const rel = (x: ArrayLike<number>, ref: ArrayLike<number>) => {
    let maxDiff = 0, maxAbs = 0;
    for (let i = 0; i < ref.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(x[i] - ref[i]));
      maxAbs = Math.max(maxAbs, Math.abs(ref[i]));
    }
    return maxDiff / maxAbs;
  };
  let f32Logits: number[] | undefined;
  for (const p of precisions.includes('f32') ? precisions : (['f32', ...precisions] as Precision[])) {
    log(`  llama: checking ${p}`);
    const job = { ...base, precision: p, threads: os.availableParallelism(), check: { prompt: 32 }, decode: 16 };
    const a = runPeer({ ...job, engine: 'ignis', model: model('ignis', p) });
    const b = runPeer({ ...job, engine: 'llama.cpp', model: model('llama.cpp', p) });
    const agree = rel(a.logits!, b.logits!);
    if (!Number.isFinite(agree)) throw new Error(`llama: ${p} logits are not finite`);
    const same = a.tokens!.filter((t, i) => t === b.tokens![i]).length;
    if (same !== a.tokens!.length) log(`  llama: ${p} greedy tokens differ: ignis [${a.tokens!.join(' ')}], llama.cpp [${b.tokens!.join(' ')}]`);
    if (p === 'f32') {
      if (agree > 1e-4 || same !== a.tokens!.length)
        throw new Error(`llama: the f32 models disagree (max |logit diff| / max |logit| ${agree.toExponential(2)}, ${same}/${a.tokens!.length} greedy tokens): the GGUF is not the same model`);
      f32Logits = a.logits!;
      if (!precisions.includes('f32')) continue;
    }
    checks.push([p, `${GGUF_OF[p].toUpperCase()}`, agree.toExponential(2), `${same}/${a.tokens!.length}`, rel(a.logits!, f32Logits!).toExponential(2), rel(b.logits!, f32Logits!).toExponential(2)]);
  }

  // 2. Timing: rounds x threads x precisions, engines alternated (their order flips each round).
  const cells: Cell[] = [];
  const bw: Record<number, number[]> = {};
  const cell = (engine: Cell['engine'], precision: Precision, threads: number) => {
    let c = cells.find((x) => x.engine === engine && x.precision === precision && x.threads === threads);
    if (!c) cells.push((c = { engine, precision, threads, results: [] }));
    return c;
  };
  for (let r = 0; r < rounds; r++)
    for (const threads of threadCounts) {
      const m = measureBandwidth(threads);
      if (m) (bw[threads] ??= []).push(m.readGBs);
      for (const p of precisions) {
        const order: Cell['engine'][] = r % 2 ? ['llama.cpp', 'ignis'] : ['ignis', 'llama.cpp'];
        for (const engine of order) {
          log(`  llama: round ${r + 1}/${rounds}, ${threads} thread(s), ${p}, ${engine}`);
          cell(engine, p, threads).results.push(runPeer({ ...base, engine, precision: p, threads, model: model(engine, p) }));
        }
      }
    }
  log('');

  const { hidden, layers, heads, kvHeads, intermediate, vocab } = shape;
  const engineInfo = (e: Cell['engine']) => cells.find((c) => c.engine === e)!.results[0].engineInfo;
  printTable(
    `llama: ignis against ${engineInfo('llama.cpp')}: agreement on a random Llama (hidden ${hidden}, ${layers} layers, ${heads} heads / ${kvHeads} kv, ` +
      `intermediate ${intermediate}, vocab ${vocab}), 32-token prompt; llama.cpp's attention in f32 (F32 KV cache, no flash attention); 'vs f32': each engine's logits against the f32 model's (ignis f32), max |diff| / max |logit|`,
    ['ignis', 'llama.cpp', 'max |logit diff| / max |logit|', 'greedy tokens equal', 'ignis vs f32', 'llama.cpp vs f32'],
    checks,
  );
  const stat = (c: Cell, f: (r: PeerResult) => number[]) => median(c.results.map((r) => median(f(r))));
  const body: string[][] = [];
  for (const threads of threadCounts) {
    const gbs = bw[threads] ? median(bw[threads]) : undefined;
    for (const p of precisions) {
      const a = cell('ignis', p, threads), b = cell('llama.cpp', p, threads);
      const row = [p === 'int8' ? 'int8 g32 / Q8_0' : p, String(threads)];
      for (const n of prompts) {
        const ta = stat(a, (r) => r.prefillMs[n]), tb = stat(b, (r) => r.prefillMs[n]);
        row.push(((n / ta) * 1000).toFixed(0), ((n / tb) * 1000).toFixed(0), `${(tb / ta).toFixed(2)}x`);
      }
      const da = stat(a, (r) => r.decodeMs), db = stat(b, (r) => r.decodeMs);
      const pct = (ms: number) => (gbs ? `${((stepBytes(shape, p) / ms / 1e6 / gbs) * 100).toFixed(0)}%` : '-');
      row.push((1000 / da).toFixed(1), (1000 / db).toFixed(1), `${(db / da).toFixed(2)}x`, pct(da), pct(db));
      row.push(`${(median(a.results.map((r) => r.loadMs)) / 1000).toFixed(2)} / ${(median(b.results.map((r) => r.loadMs)) / 1000).toFixed(2)}`);
      row.push(`${(median(a.results.map((r) => r.rssBytes)) / 2 ** 30).toFixed(2)} / ${(median(b.results.map((r) => r.rssBytes)) / 2 ** 30).toFixed(2)}`);
      body.push(row);
    }
  }
  printTable(
    `llama: tokens/s, batch 1, medians of ${rounds} alternated rounds (${engineInfo('ignis')}; llama.cpp with its defaults: F16 KV cache, flash attention auto)`,
    ['precision', 'threads', ...prompts.flatMap((n) => [`prefill ${n} ignis`, 'llama.cpp', 'ratio']), 'decode ignis', 'llama.cpp', 'ratio', 'ignis % read BW', 'llama.cpp % BW', 'load s', 'RSS GiB'],
    body,
  );
  const bwText = threadCounts.map((t) => `${t} thread(s) ${bw[t] ? median(bw[t]).toFixed(1) : '?'} GB/s`).join(', ');
  console.log(`ratio: llama.cpp time / ignis time (>1: ignis faster). decode: ${base.decode} tokens after a ${prompts[0]}-token prompt, the median gap`);
  console.log(`between generated tokens. % read BW: the weights a step streams (linear layers and LM head once; int8: f16 scales,`);
  console.log(`ignis's and Q8_0's) over the time, against the read bandwidth measured before each round (${bwText}).`);
  console.log('load s and RSS: ignis / llama.cpp. ignis reads safetensors stored in f32, f16, bf16 (int8: quantized at load from f32);');
  console.log('llama.cpp maps its GGUF (RSS counts the mapped pages it touched).');
}
