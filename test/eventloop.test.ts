// The execution model's promise: an op returns at once and the event loop keeps running while
// the kernel works on the device queue. A long CPU matmul runs while a 5 ms interval ticks;
// no gap between ticks may exceed 50 ms, though the kernels take far longer than that.
import { describe, expect, it } from 'vitest';
import * as ignis from '../lib/index';

describe('event loop', () => {
  it('keeps ticking while a long CPU matmul runs', async () => {
    const n = 1536;
    const a = ignis.randn([n, n], { seed: 1 });
    const b = ignis.randn([n, n], { seed: 2 });
    await a.data(); // creation done before timing

    const gaps: number[] = [];
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      gaps.push(now - last);
      last = now;
    }, 5);

    const t0 = performance.now();
    let c = ignis.matmul(a, b);
    const enqueueMs = performance.now() - t0;
    for (let i = 0; i < 5; i++) {
      const next = ignis.matmul(c, b, { activation: 'relu' });
      c.dispose();
      c = next;
    }
    const out = await c.data();
    const kernelMs = performance.now() - t0;
    clearInterval(timer);

    expect(out.length).toBe(n * n);
    expect(enqueueMs).toBeLessThan(50); // the call itself returned at once
    expect(kernelMs).toBeGreaterThan(250); // long enough for the check to mean something
    expect(gaps.length).toBeGreaterThan(kernelMs / 50);
    expect(Math.max(...gaps)).toBeLessThan(50);
  });
});
