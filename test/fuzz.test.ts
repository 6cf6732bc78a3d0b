// The property-based fuzz of the public API (test/fixtures/fuzz.js, fast-check) in a child
// process: 10,000 generated calls (every op and option, zero dims beside huge ones, forged and
// disposed tensors, other devices), each a correct result or a coded error. A crash ends the
// child with a signal and is reported with the seed that reproduces it:
//   node test/fixtures/fuzz.js dist/index.js <runs> <seed>      (npm run fuzz: 200,000 runs)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist', 'index.js');
const seed = Number(process.env.IGNIS_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));

describe('fuzz', () => {
  it.skipIf(!fs.existsSync(dist))(`10,000 generated calls: each a correct result or a coded error, no crash (seed ${seed})`, () => {
    const r = spawnSync(process.execPath, [path.join(root, 'test', 'fixtures', 'fuzz.js'), dist, '10000', String(seed)], { encoding: 'utf8', timeout: 300_000 });
    const out = `${r.stdout}\n${r.stderr}`.trim();
    const rerun = `rerun: node test/fixtures/fuzz.js dist/index.js 10000 ${seed} (FUZZ_TRACE=1 prints each call)`;
    expect(r.signal, `the fuzz child crashed (${r.signal}); ${rerun}\n${out.slice(-2000)}`).toBeNull();
    expect(r.status, `${rerun}\n${out.slice(-3000)}`).toBe(0);
    expect(out).toMatch(/^ok 10000/m);
  }, 360_000);
});
