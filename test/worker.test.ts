// worker.terminate() is safe: workers that load ignis, call ops, await reads or run a model are
// terminated at random moments, 100 times each, in a child process (an abort in a dying
// environment would end it with a signal); every terminated worker's memory comes back.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist', 'index.js');

describe('worker threads', () => {
  it.skipIf(!fs.existsSync(dist))('terminated while loading, calling ops, awaiting reads and generating, 100 times each: no crash, nothing left', () => {
    const r = spawnSync(process.execPath, [path.join(root, 'test', 'fixtures', 'terminate.js'), dist, '100'], { encoding: 'utf8', timeout: 240_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    expect(r.signal, out).toBeNull();
    expect(r.status, out).toBe(0);
    for (const kind of ['load', 'ops', 'reads', 'generate']) expect(out).toContain(`${kind}: 100 workers terminated`);
    expect(out).toContain('live host bytes after: 0');
    expect(r.stdout.trim().split('\n').pop()).toBe('ok');
  }, 300_000);
});
