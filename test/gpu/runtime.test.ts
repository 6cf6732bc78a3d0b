// The CUDA runtime seen from JS: the caching allocator's figures, emptyCache, out-of-memory
// that leaves the device working, copies between the CPU and the device, a kernel's bad-data
// fault reported once, a compiled graph on the device, and worker_threads sharing the device.
// Skipped (visibly) without a GPU.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { expectThrows, FLOAT_DTYPES, skipDevice } from '../helpers';

const DEV = 'cuda';

describe.skipIf(skipDevice('cuda'))('cuda runtime', () => {
  it('memory(): allocated grows by a tensor (rounded into its bin), drops on dispose; the block stays reserved until emptyCache()', async () => {
    const before = ignis.memory(DEV);
    expect(before.reserved).toBeGreaterThanOrEqual(before.allocated);
    const n = 3 * (1 << 20) + 12345; // f32: 12 MiB and a bit, in a quarter-power-of-two bin (<= 25% over)
    const bytes = n * 4;
    const t = ignis.zeros([n], { device: DEV });
    await t.ready();
    const mid = ignis.memory(DEV);
    expect(mid.allocated - before.allocated).toBeGreaterThanOrEqual(bytes);
    expect(mid.allocated - before.allocated).toBeLessThanOrEqual(bytes * 1.25);
    expect(mid.peak).toBeGreaterThanOrEqual(mid.allocated);
    t.dispose();
    const after = ignis.memory(DEV);
    expect(after.allocated).toBe(before.allocated);
    expect(after.reserved).toBe(mid.reserved); // cached, not returned
    const again = ignis.zeros([n], { device: DEV }); // the same bin: the cached block, no new reserve
    await again.ready();
    expect(ignis.memory(DEV).reserved).toBe(mid.reserved);
    again.dispose();
    const freed = ignis.emptyCache(DEV);
    expect(freed).toBeGreaterThanOrEqual(bytes);
    expect(ignis.memory(DEV).reserved).toBe(mid.reserved - freed);
  });

  it('an allocation larger than the device is E_OOM naming the bytes; the device keeps working', async () => {
    const total = ignis.info().cuda.devices[0].memoryBytes;
    const n = Math.ceil((total * 2) / 4);
    let err: unknown;
    try {
      ignis.zeros([n], { device: DEV });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'E_OOM', message: expect.stringContaining(String(n * 4)) });
    const x = ignis.full([1000], 2.5, { device: DEV });
    expect((await x.data()).every((v) => v === 2.5)).toBe(true);
  });

  it('to(): CPU -> cuda -> CPU is bit for bit, every dtype, awkward sizes', async () => {
    for (const dtype of [...FLOAT_DTYPES, 'i32', 'i8'] as const)
      for (const n of [1, 7, 33, 129, 100003]) {
        const host = dtype === 'i32' || dtype === 'i8'
          ? ignis.tensor(Array.from({ length: n }, (_, i) => ((i * 37) % 200) - 100), { shape: [n], dtype })
          : ignis.randn([n], { dtype, seed: n });
        const back = host.to(DEV).to('cpu');
        expect(Array.from(await back.data()), `${dtype} [${n}]`).toEqual(Array.from(await host.data()));
      }
  });

  it('randn on cuda gives the CPU samples, element for element', async () => {
    for (const dtype of FLOAT_DTYPES) {
      const a = await ignis.randn([1000, 33], { dtype, seed: 42 }).data();
      const b = await ignis.randn([1000, 33], { dtype, seed: 42, device: DEV }).data();
      expect(Array.from(b), dtype).toEqual(Array.from(a));
    }
  });

  it("an embedding id out of range rejects that op's read with E_INDEX, and no other work's: eager ops and graph replays queued beside it", async () => {
    const table = ignis.randn([10, 8], { seed: 1, device: DEV });
    const bad = ignis.tensor(new Int32Array([1, 99]), { shape: [2], device: DEV });
    const good = ignis.tensor(new Int32Array([3, 4]), { shape: [2], device: DEV });
    const want = Array.from(await ignis.embedding(good.to('cpu'), table.to('cpu')).data());
    const before = ignis.embedding(good, table);
    const e = ignis.embedding(bad, table);
    const beside = ignis.relu(ignis.embedding(good, table));
    const dependent = ignis.relu(e);
    await expect(e.data()).rejects.toMatchObject({ code: 'E_INDEX', message: expect.stringContaining('id 99') });
    await expect(dependent.data()).rejects.toMatchObject({ code: 'E_INDEX' });
    expect(Array.from(await before.data())).toEqual(want);
    expect(Array.from(await beside.data())).toEqual(want.map((v) => Math.max(v, 0)));
    const ok = ignis.embedding(good, table);
    expect(Array.from(await ok.data())).toEqual(want);
    // a recorded graph (CUDA graph replays): the failed replay's outputs only, every time
    const g = ignis.graph();
    g.output('y', g.relu(g.embedding(g.input('ids', { shape: [2], dtype: 'i32' }), g.weight('t', table))));
    const model = await g.compile({ device: DEV });
    for (let r = 0; r < 3; r++) {
      const a = model.enqueue({ ids: good });
      const b = model.enqueue({ ids: bad });
      const c = model.enqueue({ ids: good });
      await expect(b.y.data(), `replay ${r}`).rejects.toMatchObject({ code: 'E_INDEX', message: expect.stringContaining('id 99') });
      expect(Array.from(await a.y.data()), `replay ${r}, before`).toEqual(want.map((v) => Math.max(v, 0)));
      expect(Array.from(await c.y.data()), `replay ${r}, after`).toEqual(want.map((v) => Math.max(v, 0)));
    }
    model.dispose();
  });

  it('a graph compiled for cuda runs and matches the CPU graph', async () => {
    const build = (device: string) => {
      const g = ignis.graph();
      const x = g.input('x', { shape: ['batch', 64] });
      const w = g.weight('w', ignis.randn([64, 48], { seed: 3, device }));
      const nw = g.weight('nw', ignis.randn([48], { seed: 4, device }));
      g.output('y', g.silu(g.rmsnorm(g.matmul(x, w), nw)));
      return g.compile({ device, maxBatch: 9 });
    };
    const [cpu, gpu] = await Promise.all([build('cpu'), build(DEV)]);
    for (const b of [1, 7, 9]) {
      const x = ignis.randn([b, 64], { seed: b });
      const want = await (await cpu.run({ x })).y.data();
      const got = await (await gpu.run({ x: x.to(DEV) })).y.data();
      let err = 0, scale = 0;
      for (let i = 0; i < want.length; i++) {
        err = Math.max(err, Math.abs(got[i] - want[i]));
        scale = Math.max(scale, Math.abs(want[i]));
      }
      expect(err / scale, `batch ${b}`).toBeLessThan(1e-5);
    }
    expectThrows(() => ignis.packWeight(ignis.randn([4, 4], { device: DEV })), 'IgnisError', 'E_DEVICE', 'packWeight on cuda');
  });

  const dist = path.resolve(__dirname, '..', '..', 'dist', 'index.js');
  it.skipIf(!fs.existsSync(dist))('4 worker_threads record and replay CUDA graphs and call eager ops on one device while the main thread uploads, reads and empties the cache: every result matches the CPU', () => {
    const r = spawnSync(process.execPath, [path.resolve(__dirname, '..', 'fixtures', 'cuda-workers.js'), dist, '4', '40'], { encoding: 'utf8', timeout: 120_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    expect(r.signal, out).toBeNull();
    expect(r.status, out).toBe(0);
    expect(r.stdout.trim().split('\n').pop(), out).toBe('ok');
  }, 150_000);
});
