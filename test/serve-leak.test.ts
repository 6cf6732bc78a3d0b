// A server runs for days: in a child process (node --expose-gc, the built dist/), two equal
// windows of requests to one server, finished, aborted, timed out, refused (a full queue, a bad
// id) and stopped early by their consumer, must leave the heap, the RSS and the KV blocks where
// the first window left them.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');

const child = `
const ig = require(${JSON.stringify(path.join(dist, 'index.js'))});
const { writeRandomCheckpoint } = require(${JSON.stringify(path.join(dist, 'models', 'random.js'))});
const os = require('node:os'), fs = require('node:fs'), path = require('node:path');
const N = Number(process.argv[1]);
async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-serve-leak-'));
  await writeRandomCheckpoint(dir, { modelType: 'llama', seed: 3, hidden: 32, layers: 1, heads: 2, kvHeads: 1, intermediate: 64, vocab: 97, maxPositions: 64 });
  const model = await ig.loadModel(dir, { tokenizer: false, maxSeq: 64 });
  const server = await model.createServer({ maxBatch: 4, maxTokens: 16, blockSize: 4, maxQueue: 4 });
  const drain = async (g) => { try { for await (const _ of g); } catch {} };
  const round = async (i) => {
    const jobs = [];
    for (let k = 0; k < 6; k++) jobs.push(drain(server.generate([1 + ((i + k) % 90), 2, 3], { maxNewTokens: 4 + (k % 3), eos: false })));
    const ac = new AbortController();
    jobs.push(drain(server.generate([5, 6], { maxNewTokens: 30, eos: false, signal: ac.signal })));
    setTimeout(() => ac.abort(new Error('gone')), 1);
    jobs.push(drain(server.generate([7], { maxNewTokens: 30, eos: false, timeoutMs: 1 })));
    jobs.push(drain(server.generate([1, 500], { maxNewTokens: 3 })));
    const early = server.generate([8, 9], { maxNewTokens: 30, eos: false });
    jobs.push((async () => { try { await early.next(); await early.return(); } catch {} })());
    await Promise.all(jobs);
  };
  const measure = () => { global.gc(); global.gc(); const m = process.memoryUsage(); return { heap: m.heapUsed, rss: m.rss }; };
  for (let i = 0; i < N; i++) await round(i); // warm-up
  const m0 = measure();
  for (let i = 0; i < N; i++) await round(i);
  const m1 = measure();
  const s = server.metrics();
  await server.close();
  model.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write(JSON.stringify({ heapMiB: (m1.heap - m0.heap) / 2 ** 20, rssMiB: (m1.rss - m0.rss) / 2 ** 20, used: s.kvBlocks.used, running: s.requests.running, waiting: s.requests.waiting, finished: s.requests.finished }));
}
main();
`;

describe('a long-running server', () => {
  it.skipIf(!fs.existsSync(path.join(dist, 'models', 'random.js')))('two windows of 300 rounds of mixed requests: no growth of the heap, the RSS or the KV blocks held', () => {
    const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '-e', child, '300'], { encoding: 'utf8', timeout: 150_000 })) as Record<string, number>;
    expect(out.used, 'KV blocks held after every request ended').toBe(0);
    expect(out.running + out.waiting).toBe(0);
    expect(out.finished, JSON.stringify(out)).toBeGreaterThan(1000);
    expect(out.heapMiB, `heap growth over the second window: ${JSON.stringify(out)}`).toBeLessThan(1);
    expect(out.rssMiB, 'RSS growth over the second window').toBeLessThan(16);
  }, 180_000);
});
