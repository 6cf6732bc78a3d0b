// Tensor creation and life cycle: round trips of every dtype (f16/bf16 rounded to nearest
// even, exactly), nested arrays, flat arrays with a shape, toArray, reshape (with -1),
// dispose semantics (flag, idempotent, Symbol.dispose, use after dispose), to(device),
// zeros/full, randn reproducibility and moments; and info().

import { describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { cudaAvailable, deviceName, expectFails, expectThrows, forDevices, testCase, info } from '../helpers';
import { compareExact } from '../reference/compare';
import { roundScalar, roundTo } from '../reference/round';

const FILE = 'test/ops/tensor.test.ts';

function exact(got: ArrayLike<number>, want: ArrayLike<number>, ctx: string) {
  const c = compareExact(got, want);
  if (!c.ok) expect.fail(`${ctx}: ${c.message}`);
}

// f32-exact values that exercise the f16 / bf16 roundings
const SPECIAL = [
  0, -0, 1, -2.5, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, 65504, 65519,
  65520, -1e5, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 6e-8, 1e-30, 3.4e38, Math.fround(0.1), Math.fround(-1 / 3), Infinity,
  -Infinity,
];

describe('info()', () => {
  it('describes the build and the machine', () => {
    expect(typeof info.version).toBe('string');
    expect(typeof info.napi).toBe('number');
    expect(typeof info.cpu.simd).toBe('string');
    expect(info.cpu.threads).toBeGreaterThanOrEqual(1);
    expect(typeof info.cuda.compiled).toBe('boolean');
    expect(typeof info.cuda.available).toBe('boolean');
    expect(Array.isArray(info.cuda.devices)).toBe(true);
    if (info.cuda.available) {
      expect(info.cuda.devices.length).toBeGreaterThan(0);
      for (const d of info.cuda.devices) {
        expect(typeof d.name).toBe('string');
        expect(typeof d.computeCapability).toBe('string');
        expect(d.memoryBytes).toBeGreaterThan(0);
      }
    } else {
      expect(typeof info.cuda.reason).toBe('string');
    }
  });
});

forDevices((dev) => {
  const opts = { device: dev };
  describe('round trips', () => {
    it(`f32 from Float32Array ${dev}`, async () => {
      const c = testCase(FILE, `f32 round trip ${dev}`);
      const x = Float32Array.from(c.rng.normals(1031, 100));
      const t = ignis.tensor(x, opts);
      expect(t.dtype).toBe('f32');
      expect(t.shape).toEqual([1031]);
      expect(t.size).toBe(1031);
      expect(t.device).toBe(deviceName(dev));
      const got = await t.data();
      expect(got).toBeInstanceOf(Float32Array);
      exact(got, x, c.ctx);
    });
    it(`Float64Array is stored as f32 ${dev}`, async () => {
      const c = testCase(FILE, `f64 input ${dev}`);
      const x = c.rng.normals(77);
      const t = ignis.tensor(x, { ...opts, shape: [7, 11] });
      expect(t.dtype).toBe('f32');
      expect(t.shape).toEqual([7, 11]);
      exact(await t.data(), roundTo(x, 'f32'), c.ctx);
    });
    it(`i32 from Int32Array ${dev}`, async () => {
      const x = Int32Array.from([0, 1, -1, 2147483647, -2147483648, 123456789, -7]);
      const t = ignis.tensor(x, opts);
      expect(t.dtype).toBe('i32');
      const got = await t.data();
      expect(got).toBeInstanceOf(Int32Array);
      expect(Array.from(got)).toEqual(Array.from(x));
    });
    it(`i8 from Int8Array ${dev}`, async () => {
      const x = Int8Array.from([0, 1, -1, 127, -128, 55, -3, 9, 10]);
      const t = ignis.tensor(x, { ...opts, shape: [3, 3] });
      expect(t.dtype).toBe('i8');
      expect(t.shape).toEqual([3, 3]);
      const got = await t.data();
      expect(got).toBeInstanceOf(Int8Array);
      expect(Array.from(got)).toEqual(Array.from(x));
      expect(await t.toArray()).toEqual([
        [0, 1, -1],
        [127, -128, 55],
        [-3, 9, 10],
      ]);
    });
    for (const dtype of ['f16', 'bf16'] as const) {
      it(`${dtype}: values rounded to nearest even, widened by data() ${dev}`, async () => {
        const c = testCase(FILE, `${dtype} rounding ${dev}`);
        const x = Float32Array.from([...SPECIAL, ...c.rng.normals(500, 3)]);
        const t = ignis.tensor(x, { ...opts, dtype });
        expect(t.dtype).toBe(dtype);
        const got = await t.data();
        expect(got).toBeInstanceOf(Float32Array);
        exact(got, roundTo(x, dtype), `${c.ctx} ${dtype}`);
      });
      it(`${dtype} from a number array ${dev}`, async () => {
        const t = ignis.tensor([0.1, -1 / 3, 1 + 3 * 2 ** -11, 70000], { ...opts, dtype });
        exact(await t.data(), roundTo([0.1, -1 / 3, 1 + 3 * 2 ** -11, 70000], dtype), `${dtype} numbers ${dev}`);
      });
    }
  });

  describe('nested and flat arrays', () => {
    it(`nested arrays infer the shape ${dev}`, async () => {
      const nested = [
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
        [
          [7, 8, 9],
          [10, 11, 12.5],
        ],
      ];
      const t = ignis.tensor(nested, opts);
      expect(t.shape).toEqual([2, 2, 3]);
      expect(t.dtype).toBe('f32');
      expect(t.size).toBe(12);
      expect(Array.from(await t.data())).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12.5]);
      expect(await t.toArray()).toEqual(nested);
    });
    it(`nested arrays with an integer dtype ${dev}`, async () => {
      const t = ignis.tensor([[1, -2], [3, 4]], { ...opts, dtype: 'i32' });
      expect(t.dtype).toBe('i32');
      expect(await t.data()).toBeInstanceOf(Int32Array);
      expect(await t.toArray()).toEqual([[1, -2], [3, 4]]);
      const u = ignis.tensor([[1, -2, 127]], { ...opts, dtype: 'i8' });
      expect(u.dtype).toBe('i8');
      expect(await u.toArray()).toEqual([[1, -2, 127]]);
    });
    it(`a flat number array with a shape ${dev}`, async () => {
      const t = ignis.tensor([1, 2, 3, 4, 5, 6], { ...opts, shape: [2, 3] });
      expect(t.shape).toEqual([2, 3]);
      expect(await t.toArray()).toEqual([
        [1, 2, 3],
        [4, 5, 6],
      ]);
      const f = ignis.tensor([0.1, 0.2], { ...opts, shape: [2, 1], dtype: 'bf16' });
      expect(await f.toArray()).toEqual([[roundScalar(0.1, 'bf16')], [roundScalar(0.2, 'bf16')]]);
    });
    it(`a flat array without a shape is 1-D ${dev}`, async () => {
      const t = ignis.tensor([3, 1, 2], opts);
      expect(t.shape).toEqual([3]);
      expect(await t.toArray()).toEqual([3, 1, 2]);
    });
  });

  describe('reshape', () => {
    it(`reshape keeps the values, infers one -1 ${dev}`, async () => {
      const c = testCase(FILE, `reshape ${dev}`);
      const x = Float32Array.from(c.rng.normals(24));
      const t = ignis.tensor(x, { ...opts, shape: [2, 3, 4] });
      const r = t.reshape([4, -1]);
      expect(r.shape).toEqual([4, 6]);
      expect(r.dtype).toBe('f32');
      expect(r.device).toBe(deviceName(dev));
      exact(await r.data(), x, c.ctx);
      expect(t.reshape([-1]).shape).toEqual([24]);
      expect(t.reshape([1, 24, 1]).shape).toEqual([1, 24, 1]);
      expect(t.reshape([-1, 2, 3]).shape).toEqual([4, 2, 3]);
      expect(t.shape).toEqual([2, 3, 4]); // the original is unchanged
      exact(await t.data(), x, c.ctx);
    });
    it(`reshape then an op ${dev}`, async () => {
      const t = ignis.tensor([1, 2, 3, 4, 5, 6], { ...opts, shape: [6] }).reshape([2, 3]);
      const s = ignis.add(t, ignis.tensor([10, 20, 30], opts));
      expect(await s.toArray()).toEqual([
        [11, 22, 33],
        [14, 25, 36],
      ]);
    });
  });

  describe('dispose', () => {
    it(`dispose(): flag, idempotent, use after dispose throws E_DISPOSED ${dev}`, async () => {
      const t = ignis.tensor([1, 2, 3, 4], { ...opts, shape: [2, 2] });
      expect(t.disposed).toBe(false);
      t.dispose();
      expect(t.disposed).toBe(true);
      t.dispose(); // idempotent
      expect(t.disposed).toBe(true);
      await expectFails(() => t.data(), 'IgnisError', 'E_DISPOSED', 'data() after dispose');
      await expectFails(() => t.toArray(), 'IgnisError', 'E_DISPOSED', 'toArray() after dispose');
      expectThrows(() => t.reshape([4]), 'IgnisError', 'E_DISPOSED', 'reshape after dispose');
      expectThrows(() => t.to('cpu'), 'IgnisError', 'E_DISPOSED', 'to after dispose');
      expectThrows(() => ignis.relu(t), 'IgnisError', 'E_DISPOSED', 'relu after dispose');
    });
    it(`[Symbol.dispose]() disposes ${dev}`, async () => {
      const t = ignis.tensor([1, 2], opts);
      expect(typeof t[Symbol.dispose]).toBe('function');
      t[Symbol.dispose]();
      expect(t.disposed).toBe(true);
      await expectFails(() => t.data(), 'IgnisError', 'E_DISPOSED', 'data() after Symbol.dispose');
    });
    it(`disposing a reshaped view leaves the original usable ${dev}`, async () => {
      const t = ignis.tensor([1, 2, 3, 4], { ...opts, shape: [2, 2] });
      const r = t.reshape([4]);
      r.dispose();
      expect(t.disposed).toBe(false);
      expect(Array.from(await t.data())).toEqual([1, 2, 3, 4]);
    });
    it(`many tensors created and disposed ${dev}`, async () => {
      for (let i = 0; i < 2000; i++) ignis.full([64, 64], i, opts).dispose();
      const t = ignis.full([3], 5, opts);
      expect(Array.from(await t.data())).toEqual([5, 5, 5]);
    });
  });

  describe('to(device)', () => {
    it(`to('cpu') ${dev}`, async () => {
      const c = testCase(FILE, `to cpu ${dev}`);
      for (const dtype of ['f32', 'f16', 'bf16'] as const) {
        const x = Float32Array.from(c.rng.normals(33));
        const t = ignis.tensor(x, { ...opts, dtype });
        const u = t.to('cpu');
        expect(u.device).toBe('cpu');
        expect(u.dtype).toBe(dtype);
        expect(u.shape).toEqual([33]);
        exact(await u.data(), roundTo(x, dtype), `${c.ctx} ${dtype}`);
      }
      const i = ignis.tensor(Int32Array.from([5, -6, 7]), opts).to('cpu');
      expect(Array.from(await i.data())).toEqual([5, -6, 7]);
    });
    it.skipIf(!cudaAvailable)(`to('cuda') and back ${dev}`, async () => {
      const c = testCase(FILE, `to cuda ${dev}`);
      const x = Float32Array.from(c.rng.normals(129));
      const t = ignis.tensor(x, { ...opts, dtype: 'bf16' });
      const g = t.to('cuda');
      expect(g.device).toBe('cuda:0');
      expect(g.dtype).toBe('bf16');
      const g0 = t.to('cuda:0');
      expect(g0.device).toBe('cuda:0');
      const back = g.to('cpu');
      exact(await back.data(), roundTo(x, 'bf16'), c.ctx);
      exact(await g.data(), roundTo(x, 'bf16'), c.ctx);
    });
  });

  describe('zeros / full', () => {
    for (const dtype of ['f32', 'f16', 'bf16', 'i8', 'i32'] as const) {
      it(`zeros and full ${dtype} ${dev}`, async () => {
        const z = ignis.zeros([3, 7], { ...opts, dtype });
        expect(z.shape).toEqual([3, 7]);
        expect(z.dtype).toBe(dtype);
        expect(z.device).toBe(deviceName(dev));
        expect(Array.from(await z.data()).every((v) => v === 0)).toBe(true);
        const value = dtype === 'i8' || dtype === 'i32' ? -7 : 0.1;
        const f = ignis.full([2, 129], value, { ...opts, dtype });
        expect(f.shape).toEqual([2, 129]);
        expect(f.dtype).toBe(dtype);
        const want = roundScalar(value, dtype);
        expect(Array.from(await f.data()).every((v) => v === want), `full(${value}) as ${dtype} should be ${want}`).toBe(true);
      });
    }
    it(`zeros/full default to f32 ${dev}`, async () => {
      expect(ignis.zeros([2], opts).dtype).toBe('f32');
      const f = ignis.full([2, 2], 2.5, opts);
      expect(f.dtype).toBe('f32');
      expect(await f.toArray()).toEqual([
        [2.5, 2.5],
        [2.5, 2.5],
      ]);
    });
  });

  describe('randn', () => {
    it(`same seed -> same values; another seed -> other values ${dev}`, async () => {
      const a = await ignis.randn([1000], { ...opts, seed: 42 }).data();
      const b = await ignis.randn([1000], { ...opts, seed: 42 }).data();
      const c = await ignis.randn([1000], { ...opts, seed: 43 }).data();
      exact(a, b, 'randn seed 42 twice');
      let same = 0;
      for (let i = 0; i < 1000; i++) if (a[i] === c[i]) same++;
      expect(same).toBeLessThan(10);
    });
    it(`roughly standard normal ${dev}`, async () => {
      const n = 200_000;
      const t = ignis.randn([400, 500], { ...opts, seed: Date.now() % 100000 });
      expect(t.shape).toEqual([400, 500]);
      expect(t.dtype).toBe('f32');
      const x = await t.data();
      let m = 0;
      for (const v of x) m += v;
      m /= n;
      let v2 = 0;
      let big = 0;
      for (const v of x) {
        v2 += (v - m) ** 2;
        if (Math.abs(v) > 3) big++;
      }
      v2 /= n;
      // standard errors: mean 1/sqrt(n) = 0.0022, variance sqrt(2/n) = 0.0032
      expect(Math.abs(m)).toBeLessThan(0.015);
      expect(Math.abs(v2 - 1)).toBeLessThan(0.02);
      // P(|x| > 3) = 0.0027: 540 expected
      expect(big).toBeGreaterThan(400);
      expect(big).toBeLessThan(700);
    });
    for (const dtype of ['f16', 'bf16'] as const) {
      it(`randn ${dtype}: representable values, same seed same values ${dev}`, async () => {
        const t = ignis.randn([4, 129], { ...opts, seed: 7, dtype });
        expect(t.dtype).toBe(dtype);
        const x = await t.data();
        exact(x, roundTo(x, dtype), `randn ${dtype}`);
        exact(await ignis.randn([4, 129], { ...opts, seed: 7, dtype }).data(), x, `randn ${dtype} seed 7 twice`);
        expect(new Set(x).size).toBeGreaterThan(100);
      });
    }
  });
});
