#!/usr/bin/env node
// The soak (npm run soak; bounded: --seconds=N, default 600): 64 concurrent callers in one process
// mix eager ops, compiled-model runs, greedy generation (f32 and int8) and bad requests on a small
// random Llama. Every result must equal the one a single caller got for the same request; every bad
// request must fail with its coded error. Every --every seconds (default 30) a line: requests/s,
// p50/p99 latency, RSS, memory() and the process's active resources (handles, timers, requests).
// The bar, checked at the end: RSS and memory().reserved flat after the warm-up (the first
// report), allocated back to where it started once the callers stop, no mismatch. Exit status 1
// when a bar fails.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const ig = require(path.join(root, 'dist', 'index.js'));
const { writeRandomCheckpoint } = require(path.join(root, 'dist', 'models', 'random.js'));

const arg = (name, fallback) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.slice(name.length + 3)) : fallback;
};
const SECONDS = arg('seconds', Number(process.env.SOAK_SECONDS || 600));
const EVERY = arg('every', Math.min(30, Math.max(5, Math.floor(SECONDS / 4))));
const CALLERS = arg('callers', 64);

// memory() once the tensors nobody holds are gone: the requests leave theirs to the GC, so a full
// collection (node --expose-gc, as npm run soak runs it) and its finalizers come first.
async function settled() {
  for (let i = 0; i < 3; i++) {
    if (global.gc) global.gc();
    await new Promise((r) => setTimeout(r, 50));
  }
  return ig.memory();
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-soak-'));
  await writeRandomCheckpoint(dir, { modelType: 'llama', hidden: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 512, maxPositions: 128, seed: 7 });
  const f32 = await ig.loadModel(dir, { maxSeq: 64, maxBatch: 4 });
  const int8 = await ig.loadModel(dir, { maxSeq: 64, maxBatch: 4, quantize: 'int8' });
  const a = ig.randn([48, 96], { seed: 1 }), b = ig.randn([96, 40], { seed: 2 }), w = ig.randn([96], { seed: 3 });

  // The request kinds: each returns a comparable value (numbers), or throws.
  const prompt = (k) => [1 + (k % 50), 7, 13 + (k % 5), 2];
  const kinds = {
    matmul: async (k) => Array.from(await ig.gelu(ig.matmul(a, b, { activation: k % 2 ? 'silu' : 'relu' })).data()),
    rmsnorm: async () => Array.from(await ig.rmsnorm(a, w).data()),
    forward: async (k) => Array.from(await (k % 2 ? f32 : int8).forward([prompt(k)]).data()).slice(-512),
    generate: async (k) => {
      const out = [];
      for await (const { token } of (k % 2 ? f32 : int8).generate(prompt(k), { maxNewTokens: 8 })) out.push(token);
      return out;
    },
    bad: async (k) => {
      const bad = [() => ig.matmul(a, w), () => f32.forward([[600]]), () => ig.zeros([2 ** 41, 0]), () => ig.softmax(a, { axis: 5 })][k % 4];
      try {
        await bad().data();
      } catch (e) {
        return [e.code];
      }
      throw new Error('a bad request succeeded');
    },
  };
  const weights = [['matmul', 3], ['rmsnorm', 2], ['forward', 3], ['generate', 2], ['bad', 2]];
  const table = weights.flatMap(([k, n]) => new Array(n).fill(k));
  const VARIANTS = 8;

  // Single-caller results, the reference every concurrent result must equal.
  const ref = new Map();
  for (const kind of Object.keys(kinds)) for (let v = 0; v < VARIANTS; v++) ref.set(`${kind}/${v}`, JSON.stringify(await kinds[kind](v)));
  const start = await settled();

  let done = 0, mismatches = 0, failures = 0;
  let lat = [];
  const reports = [];
  const t0 = Date.now();
  const deadline = t0 + SECONDS * 1000;
  let seq = 0;
  async function caller(c) {
    while (Date.now() < deadline) {
      const n = seq++;
      const kind = table[(n * 7 + c) % table.length], v = (n * 13 + c) % VARIANTS;
      const s = performance.now();
      try {
        const got = JSON.stringify(await kinds[kind](v));
        if (got !== ref.get(`${kind}/${v}`)) {
          mismatches++;
          if (mismatches <= 3) console.log(`MISMATCH ${kind}/${v}: ${got.slice(0, 120)} vs ${ref.get(`${kind}/${v}`).slice(0, 120)}`);
        }
      } catch (e) {
        failures++;
        if (failures <= 3) console.log(`FAILURE ${kind}/${v}: ${e && e.stack}`);
      }
      lat.push(performance.now() - s);
      done++;
    }
  }
  let last = t0, lastDone = 0;
  const timer = setInterval(() => {
    const now = Date.now();
    const sorted = lat.sort((x, y) => x - y);
    const q = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : NaN);
    const m = ig.memory(), rss = process.memoryUsage().rss;
    const r = { t: Math.round((now - t0) / 1000), rps: ((done - lastDone) * 1000) / (now - last), p50: q(0.5), p99: q(0.99), rss, m, handles: process.getActiveResourcesInfo().length };
    reports.push(r);
    console.log(`${String(r.t).padStart(5)} s  ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50.toFixed(1)} ms  p99 ${r.p99.toFixed(1)} ms  RSS ${(rss / 2 ** 20).toFixed(0)} MiB  memory() allocated ${(m.allocated / 2 ** 20).toFixed(1)} reserved ${(m.reserved / 2 ** 20).toFixed(1)} MiB  handles ${r.handles}  mismatches ${mismatches}  failures ${failures}`);
    lat = [];
    last = now;
    lastDone = done;
  }, EVERY * 1000);
  console.log(`soak: ${CALLERS} callers for ${SECONDS} s, a line every ${EVERY} s (ignis ${ig.info().version}, cpu ${ig.info().cpu.simd} x${ig.info().cpu.threads})`);
  await Promise.all(Array.from({ length: CALLERS }, (_, c) => caller(c)));
  clearInterval(timer);
  const end = await settled();

  // The bars.
  const fails = [];
  if (mismatches) fails.push(`${mismatches} results differed from the single caller's`);
  if (failures) fails.push(`${failures} requests failed unexpectedly`);
  if (end.allocated !== start.allocated) fails.push(`memory().allocated ${end.allocated} after, ${start.allocated} before`);
  if (reports.length >= 3) {
    const warm = reports[0], tail = reports[reports.length - 1];
    if (tail.rss > warm.rss * 1.15 + 32 * 2 ** 20) fails.push(`RSS grew from ${warm.rss} to ${tail.rss} after the warm-up`);
    if (tail.m.reserved > warm.m.reserved * 1.15 + 16 * 2 ** 20) fails.push(`memory().reserved grew from ${warm.m.reserved} to ${tail.m.reserved}`);
  }
  console.log(`soak: ${done} requests in ${((Date.now() - t0) / 1000).toFixed(0)} s; ${fails.length ? `FAILED: ${fails.join('; ')}` : 'every bar held'}`);
  f32.dispose();
  int8.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
  process.exitCode = fails.length ? 1 : 0;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
