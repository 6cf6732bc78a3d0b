// The execution model's promise: an op returns at once and the event loop keeps running while
// the kernel works on the device queue. A long CPU matmul runs while a 5 ms interval ticks;
// no gap between ticks may exceed 50 ms, though the kernels take far longer than that.
import { describe, expect, it } from 'vitest';
import * as ignis from '../lib/index';

describe('event loop', () => {
  it('keeps ticking while a long CPU matmul runs', async () => {
    const n = 1024;
    const a = ignis.randn([n, n], { seed: 1 });
    // Scaled by 1/sqrt(n) so the chained products stay finite.
    const b = ignis.mul(ignis.randn([n, n], { seed: 2 }), ignis.full([1], 1 / Math.sqrt(n)));
    // Calibrate: enough chained matmuls for ~800 ms on this machine (2 cores or 16).
    await Promise.all([a.data(), b.data()]); // inputs made before timing
    let oneMs = Infinity;
    for (let i = 0; i < 3; i++) {
      const c0 = performance.now();
      await ignis.matmul(a, b).data();
      oneMs = Math.min(oneMs, performance.now() - c0);
    }
    oneMs = Math.max(0.5, oneMs);
    const count = Math.min(400, Math.max(4, Math.ceil(800 / oneMs)));

    const gaps: number[] = [];
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      gaps.push(now - last);
      last = now;
    }, 5);

    const t0 = performance.now();
    let c = ignis.matmul(a, b);
    for (let i = 1; i < count; i++) {
      const next = ignis.matmul(c, b, { activation: 'relu' });
      c.dispose();
      c = next;
    }
    const enqueueMs = performance.now() - t0;
    const out = await c.data();
    const kernelMs = performance.now() - t0;
    clearInterval(timer);

    expect(out.length).toBe(n * n);
    expect(enqueueMs).toBeLessThan(50); // the calls themselves returned at once
    expect(kernelMs).toBeGreaterThan(250); // long enough for the check to mean something
    expect(gaps.length).toBeGreaterThan(kernelMs / 50);
    expect(Math.max(...gaps)).toBeLessThan(50);
  });
});
