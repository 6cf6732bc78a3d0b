// One engine, one precision, one thread count, in a process of its own (model.bench.ts spawns it):
// llama.cpp's threads spin between calls, so each engine gets the machine alone while it runs and
// leaves nothing behind. Writes one JSON file (job.out): load time, prefill and decode times, RSS, or (with
// check) the last position's logits and the greedy tokens after a prompt.
//
//   node dist-bench/bench/model-peer.js '{"engine":"ignis","precision":"f32","dir":...,"threads":2,...}'
//
// ignis reads its thread count from IGNIS_THREADS, which the parent sets.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ignis from '../lib/index';
import { packageRoot } from '../lib/binding';

export type Precision = 'f32' | 'f16' | 'bf16' | 'int8';

export interface PeerJob {
  engine: 'ignis' | 'llama.cpp';
  precision: Precision;
  /** ignis: the checkpoint directory; llama.cpp: the .gguf file */
  model: string;
  threads: number;
  vocab: number;
  /** prompt lengths to time prefill at, and the samples per length */
  prompts: number[];
  prefillReps: number;
  /** tokens to decode after a prompts[0]-token prompt */
  decode: number;
  /** where the result's JSON goes (not stdout: llama.cpp prints there too, and a pipe write may
   * not finish before the process exits) */
  out: string;
  /** instead of timing: the logits after `checkPrompt` tokens, and `decode` greedy tokens */
  check?: { prompt: number };
}

export interface PeerResult {
  loadMs: number;
  /** prompt length -> ms per prefill sample */
  prefillMs: Record<number, number[]>;
  /** ms between consecutive generated tokens */
  decodeMs: number[];
  rssBytes: number;
  logits?: number[];
  tokens?: number[];
  engineInfo: string;
}

/** Deterministic token ids spread over the vocabulary (the same prompt for both engines). */
export function promptIds(n: number, vocab: number): number[] {
  return Array.from({ length: n }, (_, i) => 3 + ((i * 7919 + 13) % (vocab - 3)));
}

async function runIgnis(job: PeerJob): Promise<PeerResult> {
  const t0 = performance.now();
  const model = await ignis.loadModel(job.model, {
    tokenizer: false,
    maxSeq: 1024,
    ...(job.precision === 'int8' ? { quantize: 'int8' as const, groupSize: 32 } : { dtype: job.precision }),
  });
  const loadMs = performance.now() - t0;
  const res: PeerResult = { loadMs, prefillMs: {}, decodeMs: [], rssBytes: 0, engineInfo: `ignis ${ignis.info().version}, cpu ${ignis.info().cpu.simd}` };
  const greedy = async (prompt: number[], n: number) => {
    const stamps: number[] = [], tokens: number[] = [];
    for await (const p of model.generate(prompt, { maxNewTokens: n, eos: false })) {
      stamps.push(performance.now());
      tokens.push(p.token);
    }
    return { stamps, tokens };
  };
  if (job.check) {
    const prompt = promptIds(job.check.prompt, job.vocab);
    const logits = model.forward(prompt);
    const d = await logits.data();
    logits.dispose();
    res.logits = Array.from(d.subarray((prompt.length - 1) * job.vocab));
    res.tokens = (await greedy(prompt, job.decode)).tokens;
  } else {
    const state = model.step.createState();
    for (const n of job.prompts) {
      const ids = ignis.tensor(Int32Array.from(promptIds(n, job.vocab)), { shape: [1, n], dtype: 'i32' });
      const times: number[] = [];
      for (let r = 0; r <= job.prefillReps; r++) {
        const t = performance.now();
        const out = await model.step.run({ ids, position: 0 }, { state });
        for (const v of Object.values(out)) (v as ignis.Tensor).dispose();
        if (r > 0) times.push(performance.now() - t); // the first is a warm-up
      }
      ids.dispose();
      res.prefillMs[n] = times;
    }
    state.dispose();
    const { stamps } = await greedy(promptIds(job.prompts[0], job.vocab), job.decode + 1);
    for (let i = 1; i < stamps.length; i++) res.decodeMs.push(stamps[i] - stamps[i - 1]);
  }
  res.rssBytes = process.memoryUsage().rss;
  model.dispose();
  return res;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- node-llama-cpp is ESM and loaded untyped */
async function runLlamaCpp(job: PeerJob): Promise<PeerResult> {
  const entry = path.join(packageRoot, 'bench', 'node_modules', 'node-llama-cpp', 'dist', 'index.js');
  // a real import(): tsc's CommonJS output would turn a plain import() into require()
  const importEsm = new Function('u', 'return import(u)') as (u: string) => Promise<any>;
  const nlc = await importEsm(pathToFileURL(entry).href);
  const llama = await nlc.getLlama({ gpu: false, build: 'never', logLevel: 'error', maxThreads: job.threads });
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: job.model, useMmap: true });
  const loadMs = performance.now() - t0;
  // the check runs attention in f32 (KV cache F32, no flash attention), so that f32 logits can
  // agree to ~1e-5; the timed runs take llama.cpp's defaults (F16 KV cache, flash attention auto)
  const ctx = await model.createContext({
    contextSize: 1024,
    batchSize: 512,
    threads: { ideal: job.threads, min: job.threads },
    ...(job.check ? { flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' } : {}),
  });
  const seq = ctx.getSequence();
  const res: PeerResult = { loadMs, prefillMs: {}, decodeMs: [], rssBytes: 0, engineInfo: `node-llama-cpp ${nlc.getModuleVersion ? await nlc.getModuleVersion() : ''} (its llama.cpp: ggml ${llama.llamaCppRelease?.release ?? '?'}, ${llama.buildType ?? ''} CPU build)` };
  const greedy = async (prompt: number[], n: number) => {
    const stamps: number[] = [], tokens: number[] = [];
    for await (const t of seq.evaluate(prompt, { temperature: 0 })) {
      stamps.push(performance.now());
      tokens.push(t as number);
      if (tokens.length === n) break;
    }
    return { stamps, tokens };
  };
  if (job.check) {
    const prompt = promptIds(job.check.prompt, job.vocab);
    const out = await seq.controlledEvaluate(prompt.map((t, i) => (i === prompt.length - 1 ? [t, { generateNext: { logits: true } }] : t)));
    const map = out[prompt.length - 1].next.logits as Map<number, number>;
    const logits = new Array<number>(job.vocab).fill(NaN);
    for (const [k, v] of map) logits[k] = v;
    res.logits = logits;
    await seq.clearHistory();
    res.tokens = (await greedy(prompt, job.decode)).tokens;
  } else {
    for (const n of job.prompts) {
      const ids = promptIds(n, job.vocab);
      const times: number[] = [];
      for (let r = 0; r <= job.prefillReps; r++) {
        await seq.clearHistory();
        const t = performance.now();
        await seq.evaluateWithoutGeneratingNewTokens(ids);
        if (r > 0) times.push(performance.now() - t);
      }
      res.prefillMs[n] = times;
    }
    await seq.clearHistory();
    const { stamps } = await greedy(promptIds(job.prompts[0], job.vocab), job.decode + 1);
    for (let i = 1; i < stamps.length; i++) res.decodeMs.push(stamps[i] - stamps[i - 1]);
  }
  res.rssBytes = process.memoryUsage().rss;
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  return res;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

if (require.main === module) {
  const job = JSON.parse(process.argv[2]) as PeerJob;
  (job.engine === 'ignis' ? runIgnis(job) : runLlamaCpp(job))
    .then((r) => {
      fs.writeFileSync(job.out, JSON.stringify(r));
      process.exit(0);
    })
    .catch((e) => {
      process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    });
}
