// The CPU caching allocator behind every host tensor: freed buffers are reused by the next
// tensor of their size class, counted in memory(), and returned by emptyCache().
import { describe, expect, it } from 'vitest';
import * as ignis from '../lib/index';
import { cudaAvailable, expectThrows } from './helpers';

const settle = () => new Promise((r) => setTimeout(r, 20));

describe('memory', () => {
  it('counts live tensors, reuses freed buffers and empties the cache', async () => {
    ignis.emptyCache();
    const base = ignis.memory();
    const bytes = 300 * 1024 * 4; // 1.2 MB: cached size class
    const t = ignis.randn([300, 1024], { seed: 1 });
    await t.data();
    const live = ignis.memory();
    expect(live.allocated - base.allocated).toBeGreaterThanOrEqual(bytes);
    expect(live.allocated - base.allocated).toBeLessThanOrEqual(bytes * 1.125 + 64);
    t.dispose();
    await settle();
    const freed = ignis.memory();
    expect(freed.allocated).toBe(base.allocated);
    expect(freed.reserved - freed.allocated).toBeGreaterThanOrEqual(bytes); // kept
    // Ten more tensors of the same size, one at a time: served from the cache, reserved stays
    for (let i = 0; i < 10; i++) {
      const u = ignis.randn([300, 1024], { seed: i + 2 });
      const d = await u.data();
      expect(Number.isFinite(d[12345])).toBe(true);
      u.dispose();
      await settle();
    }
    expect(ignis.memory().reserved).toBe(freed.reserved);
    expect(ignis.memory().peak).toBeGreaterThanOrEqual(live.allocated);
    expect(ignis.emptyCache()).toBeGreaterThanOrEqual(bytes);
    const after = ignis.memory();
    expect(after.reserved).toBe(after.allocated);
  });

  it('a reused buffer is fully rewritten: an op on recycled memory gives its own result', async () => {
    const a = ignis.full([256, 256], 7);
    await a.data();
    a.dispose();
    await settle();
    const z = ignis.zeros([256, 256]); // same size class: gets a's old buffer
    const d = await z.data();
    expect(d.every((x) => x === 0)).toBe(true);
    z.dispose();
  });

  it('rejects devices it does not have and bad arguments', () => {
    if (!cudaAvailable) expectThrows(() => ignis.memory('cuda'), 'IgnisError', 'E_DEVICE', 'memory cuda');
    expectThrows(() => ignis.emptyCache('cuda:7'), 'IgnisError', 'E_DEVICE', 'emptyCache cuda:7');
    expectThrows(() => ignis.memory('gpu'), 'IgnisError', 'E_DEVICE', 'memory gpu');
    expectThrows(() => ignis.memory(3 as unknown as string), 'TypeError', 'E_TYPE', 'memory 3');
  });
});
