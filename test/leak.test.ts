// Failed calls cost nothing: in a child process (node --expose-gc, the built dist/), each entry
// point is called many times with arguments it refuses, and the heap and RSS after a full GC
// must not grow between two equal windows of calls past the warm-up (a refused model.run used to
// keep its promise for ever: 4.6 MiB of heap and 28 MiB of RSS per 100k).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist', 'index.js');

const child = `
const ig = require(process.env.LEAK_DIST || ${JSON.stringify(dist)});
const N = Number(process.argv[1]);
async function main() {
  const g = ig.graph();
  const x = g.input('x', { shape: ['batch', 16] });
  g.output('y', g.matmul(x, g.weight('w', ig.randn([16, 8], { seed: 1 }))));
  const model = await g.compile({ maxBatch: 4 });
  const bad = ig.zeros([2, 15]), a = ig.zeros([2, 3]), b = ig.zeros([4, 5]), q = ig.zeros([1, 2, 4, 8]);
  const gone = ig.zeros([1]);
  gone.dispose();
  const entries = {
    'model.run, a refused input': async () => { try { await model.run({ x: bad }); } catch {} },
    'model.enqueue, a refused input': () => { try { model.enqueue({ x: bad }); } catch {} },
    'model.run, a missing input': async () => { try { await model.run({}); } catch {} },
    'matmul, shapes that do not fit': () => { try { ig.matmul(a, b); } catch {} },
    'attention, a refused shape': () => { try { ig.attention(q, a, a); } catch {} },
    'data() of a disposed tensor': async () => { try { await gone.data(); } catch {} },
    'a graph that does not compile': async () => { try { const h = ig.graph(); h.output('y', h.input('x', { shape: ['s'] })); await h.compile(); } catch {} },
  };
  const out = {};
  const measure = () => { global.gc(); global.gc(); const m = process.memoryUsage(); return { heap: m.heapUsed, rss: m.rss }; };
  for (const [name, fn] of Object.entries(entries)) {
    for (let i = 0; i < N; i++) await fn(); // warm-up: caches, code, allocator arenas
    const m0 = measure();
    for (let i = 0; i < N; i++) await fn();
    const m1 = measure();
    out[name] = { heapMiB: (m1.heap - m0.heap) / 2 ** 20, rssMiB: (m1.rss - m0.rss) / 2 ** 20 };
  }
  process.stdout.write(JSON.stringify(out));
}
main();
`;

describe('no leak on failure', () => {
  it.skipIf(!fs.existsSync(dist))('50k refused calls of each entry point leave the heap and RSS where they were', () => {
    const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '-e', child, '50000'], { encoding: 'utf8', timeout: 120_000 })) as Record<string, { heapMiB: number; rssMiB: number }>;
    for (const [name, m] of Object.entries(out)) {
      // a leak of the old kind: 2.3 MiB of heap and 14 MiB of RSS per 50k calls
      expect(m.heapMiB, `${name}: heap growth over 50k calls`).toBeLessThan(0.5);
      expect(m.rssMiB, `${name}: RSS growth over 50k calls`).toBeLessThan(8);
    }
  }, 180_000);
});
