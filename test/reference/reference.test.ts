// Unit tests of the float64 references themselves, on tiny hand-computed cases, so a failing
// op test can be trusted to point at the kernel and not at the reference.

import { describe, expect, it } from 'vitest';
import * as R from './index';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-12) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i]), `[${i}] ${a[i]} vs ${b[i]}`).toBeLessThanOrEqual(tol);
};

describe('rounding', () => {
  it('f32 / bf16 / f16 round to nearest even', () => {
    expect(R.roundScalar(0.1, 'f32')).toBe(Math.fround(0.1));
    // bf16 has 8 significant bits: 1 + 2^-8 is a tie -> 1 (even); 1 + 3*2^-8 -> 1 + 2^-6
    expect(R.roundScalar(1 + 2 ** -8, 'bf16')).toBe(1);
    expect(R.roundScalar(1 + 3 * 2 ** -8, 'bf16')).toBe(1 + 2 ** -6);
    expect(R.roundScalar(1 + 2 ** -8 + 2 ** -20, 'bf16')).toBe(1 + 2 ** -7);
    // f16 has 11 significant bits
    expect(R.roundScalar(1 + 2 ** -11, 'f16')).toBe(1);
    expect(R.roundScalar(1 + 3 * 2 ** -11, 'f16')).toBe(1 + 2 ** -9);
    expect(R.roundScalar(65504, 'f16')).toBe(65504);
    expect(R.roundScalar(65519, 'f16')).toBe(65504);
    expect(R.roundScalar(65520, 'f16')).toBe(Infinity);
    expect(R.roundScalar(-70000, 'f16')).toBe(-Infinity);
    expect(R.roundScalar(2 ** -24, 'f16')).toBe(2 ** -24); // smallest subnormal
    expect(R.roundScalar(2 ** -25, 'f16')).toBe(0); // tie -> even (0)
    expect(R.roundScalar(3 * 2 ** -25, 'f16')).toBe(2 ** -23); // tie between 1 and 2 ulps -> 2
    expect(R.roundScalar(1.5 * 2 ** -14, 'f16')).toBe(1.5 * 2 ** -14);
    expect(Number.isNaN(R.roundScalar(NaN, 'f16'))).toBe(true);
    expect(Number.isNaN(R.roundScalar(NaN, 'bf16'))).toBe(true);
    expect(Object.is(R.roundScalar(-0, 'bf16'), -0)).toBe(true);
    expect(R.roundScalar(3.4e38, 'bf16')).toBe(Infinity);
  });

  it('f16 bit port agrees with an arithmetic rounding on random values', () => {
    const rng = new R.Rng(1234);
    for (let i = 0; i < 20000; i++) {
      const x = Math.fround(rng.normal() * 2 ** rng.int(-26, 16));
      const e = Math.max(-14, Math.floor(Math.log2(Math.abs(x)) + 1e-12));
      const ulp = 2 ** (e - 10);
      let want = R.roundHalfEven(x / ulp) * ulp;
      if (Math.abs(want) > 65504) want = Math.sign(x) * Infinity;
      const got = R.roundScalar(x, 'f16');
      if (got !== want && !(got === 0 && want === 0)) throw new Error(`f16(${x}) = ${got}, want ${want}`);
    }
  });

  it('roundHalfEven', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, 2.6, -2.6].map((x) => R.roundHalfEven(x) + 0)).toEqual([0, 2, 2, 0, -2, -2, 2, 3, -3]);
  });
});

describe('rng', () => {
  it('is reproducible and roughly standard normal', () => {
    const a = new R.Rng(7).normals(1000);
    const b = new R.Rng(7).normals(1000);
    expect(a).toEqual(b);
    const x = new R.Rng(8).normals(100000);
    let m = 0;
    for (const v of x) m += v;
    m /= x.length;
    let s = 0;
    for (const v of x) s += (v - m) ** 2;
    s /= x.length;
    expect(Math.abs(m)).toBeLessThan(0.02);
    expect(Math.abs(s - 1)).toBeLessThan(0.03);
    const ints = new R.Rng(9).ints(1000, 0, 4);
    expect(Math.min(...ints)).toBe(0);
    expect(Math.max(...ints)).toBe(4);
  });
});

describe('compare', () => {
  it('scales by the max reference magnitude and fails on NaN', () => {
    expect(R.compare([1, 2.001], [1, 2], 1e-3).ok).toBe(true);
    expect(R.compare([1, 2.01], [1, 2], 1e-3).ok).toBe(false);
    expect(R.compare([NaN, 2], [1, 2], 1).ok).toBe(false);
    expect(R.compare([Infinity, 2], [Infinity, 2], 0).ok).toBe(true);
    expect(R.compare([Infinity, 2], [-Infinity, 2], 1).ok).toBe(false);
    expect(R.compare([1, 2], [1, 2, 3], 1).ok).toBe(false);
    expect(R.compareExact([1, -0, NaN], [1, 0, NaN]).ok).toBe(true);
    expect(R.compareExact([1, 2], [1, 3]).ok).toBe(false);
  });
});

describe('shape helpers', () => {
  it('broadcast', () => {
    expect(R.broadcastShapes([3, 1, 5], [4, 1])).toEqual([3, 4, 5]);
    expect(R.broadcastShapes([], [2])).toEqual([2]);
    expect(() => R.broadcastShapes([2, 3], [4])).toThrow();
    expect(Array.from(R.broadcastIndex([2, 1], [2, 3]))).toEqual([0, 0, 0, 1, 1, 1]);
    expect(Array.from(R.broadcastIndex([3], [2, 3]))).toEqual([0, 1, 2, 0, 1, 2]);
    expect(R.shapeStr([2, 3, 4])).toBe('[2, 3, 4]');
  });
});

describe('matmul', () => {
  it('2x2', () => {
    const r = R.matmul([1, 2, 3, 4], [2, 2], [5, 6, 7, 8], [2, 2]);
    expect(Array.from(r.data)).toEqual([19, 22, 43, 50]);
    expect(r.shape).toEqual([2, 2]);
  });
  it('transposeB, bias, relu', () => {
    // a [1, 3], b^T = [[1, 0, -1], [2, 2, 2]] so b [2, 3] with transposeB
    const r = R.matmul([1, 2, 3], [1, 3], [1, 0, -1, 2, 2, 2], [2, 3], { transposeB: true, bias: [0.5, -20], activation: 'relu' });
    expect(Array.from(r.data)).toEqual([0, 0]); // [-2 + 0.5, 12 - 20] -> relu
    const r2 = R.matmul([1, 2, 3], [1, 3], [1, 0, -1, 2, 2, 2], [2, 3], { transposeB: true, bias: [0.5, -2] });
    expect(Array.from(r2.data)).toEqual([-1.5, 10]);
  });
  it('broadcasts batch dims (b 2-D, and b [1, K, N] against a [2, 1, M, K])', () => {
    const a = [1, 0, 0, 1, 2, 0, 0, 2]; // [2, 2, 2]: I and 2I
    const b = [1, 2, 3, 4];
    const r = R.matmul(a, [2, 2, 2], b, [2, 2]);
    expect(r.shape).toEqual([2, 2, 2]);
    expect(Array.from(r.data)).toEqual([1, 2, 3, 4, 2, 4, 6, 8]);
    const r2 = R.matmul(a, [2, 1, 2, 2], [1, 2, 3, 4, 0, 1, 1, 0], [2, 2, 2]);
    expect(r2.shape).toEqual([2, 2, 2, 2]);
    expect(Array.from(r2.data)).toEqual([1, 2, 3, 4, 0, 1, 1, 0, 2, 4, 6, 8, 0, 2, 2, 0]);
  });
  it('gelu / silu epilogue', () => {
    const r = R.matmul([1], [1, 1], [1], [1, 1], { activation: 'gelu' });
    close(r.data, [0.8411919906082768], 1e-12);
    const s = R.matmul([1], [1, 1], [2], [1, 1], { activation: 'silu' });
    close(s.data, [2 / (1 + Math.exp(-2))]);
  });
});

describe('quant', () => {
  it('quantizes by groups, all-zero group gets scale 1', () => {
    // N = 2, K = 4, groupSize 2
    const w = [1.27, -0.635, 0, 0, 0.5, 0.25, -3, 1.5];
    const r = R.quantize(w, 2, 4, 2);
    const s0 = Math.fround(1.27 / 127);
    expect(Array.from(r.scales)).toEqual([s0, 1, Math.fround(0.5 / 127), Math.fround(3 / 127)]);
    expect(Array.from(r.q)).toEqual([127, R.roundHalfEven(Math.fround(-0.635 / s0)), 0, 0, 127, 64, -127, 64]);
    // 0.25 / (0.5/127) = 63.5 -> tie -> 64 (even); 1.5/(3/127) = 63.5 -> 64
    expect(r.nearTie[5]).toBe(1);
    const d = R.dequantize(r.q, r.scales, 2, 4, 2);
    close(d, [1.27, r.q[1] * s0, 0, 0, 0.5, 64 * Math.fround(0.5 / 127), -3, 64 * Math.fround(3 / 127)], 1e-6);
  });
  it('qmatmul is x @ dequantize(q)^T', () => {
    const q = [1, -1, 2, 0];
    const scales = [0.5, 2]; // per channel, N = 2, K = 2
    const r = R.qmatmul([3, 4], [1, 2], q, scales, 2, 2, 2, { bias: [1, 0] });
    // w = [[0.5, -0.5], [4, 0]] -> [3*0.5 - 4*0.5 + 1, 12]
    expect(Array.from(r.data)).toEqual([0.5, 12]);
    expect(r.shape).toEqual([1, 2]);
  });
});

describe('attention', () => {
  it('one key -> output is v', () => {
    const r = R.attention([1, 2], [3, 4], [5, 6], 1, 1, 1, 1, 1, 2);
    close(r.data, [5, 6]);
  });
  it('two keys, equal scores -> mean of v; causal masks the future', () => {
    // D = 1, q = [1, 1], k = [0, 0] -> uniform
    const r = R.attention([1, 1], [0, 0], [2, 4], 1, 2, 2, 1, 1, 1);
    close(r.data, [3, 3]);
    const c = R.attention([1, 1], [0, 0], [2, 4], 1, 2, 2, 1, 1, 1, { causal: true });
    close(c.data, [2, 3]);
    // bottom-right alignment: 1 query over 2 keys sees both
    const br = R.attention([1], [0, 0], [2, 4], 1, 1, 2, 1, 1, 1, { causal: true });
    close(br.data, [3]);
  });
  it('softmax weights with scale, and GQA head mapping', () => {
    // q . k = [0, ln 2] with scale 1 -> weights [1/3, 2/3]
    const r = R.attention([1], [0, Math.LN2], [0, 3], 1, 1, 2, 1, 1, 1, { scale: 1 });
    close(r.data, [2]);
    // Hq = 4, Hk = 2: heads 0,1 use kv head 0 (v = 10), heads 2,3 use kv head 1 (v = 20)
    const g = R.attention([1, 1, 1, 1], [0, 0], [10, 20], 1, 1, 1, 4, 2, 1);
    close(g.data, [10, 10, 20, 20]);
  });
});

describe('norms, activations, softmax, rope, embedding, binary', () => {
  it('rmsnorm', () => {
    const r = R.rmsnorm([3, 4], [1, 2], [1, 2], 0);
    const rms = Math.sqrt(12.5);
    close(r.data, [3 / rms, 8 / rms]);
  });
  it('layernorm', () => {
    const r = R.layernorm([1, 3], [1, 2], [1, 1], [0, 10], 0);
    close(r.data, [-1, 11]);
  });
  it('activations', () => {
    close(R.relu([-1, 0, 2]), [0, 0, 2]);
    close(R.silu([0]), [0]);
    close(R.gelu([0, 100, -100]), [0, 100, 0]);
    close(R.gelu([1]), [0.8411919906082768], 1e-12);
  });
  it('softmax of [0, ln 2] is [1/3, 2/3]; any axis', () => {
    close(R.softmax([0, Math.LN2], [2]).data, [1 / 3, 2 / 3]);
    close(R.softmax([0, 5, Math.LN2, 5], [2, 2], 0).data, [1 / 3, 0.5, 2 / 3, 0.5]);
    close(R.softmax([1000, 1000], [2]).data, [0.5, 0.5]);
  });
  it('rope at position 0 is the identity; position 1 rotates pair 0 by 1 rad', () => {
    const x = [1, 2, 3, 4];
    close(R.rope(x, [1, 1, 1, 4]).data, x);
    const r = R.rope([1, 0, 0, 0], [1, 1, 1, 4], 1);
    close(r.data, [Math.cos(1), 0, Math.sin(1), 0]);
    // second pair: f = theta^(-2/4) = 0.01 with theta 10000
    const r2 = R.rope([0, 1, 0, 0], [1, 1, 1, 4], 100);
    close(r2.data, [0, Math.cos(1), 0, Math.sin(1)], 1e-12);
    // seq index adds to position
    const r3 = R.rope([1, 2, 3, 4, 1, 0, 0, 0], [1, 2, 1, 4], 0);
    close(r3.data, [1, 2, 3, 4, Math.cos(1), 0, Math.sin(1), 0]);
  });
  it('embedding', () => {
    const r = R.embedding([2, 0], [2], [1, 2, 3, 4, 5, 6], 3, 2);
    expect(Array.from(r.data)).toEqual([5, 6, 1, 2]);
    expect(r.shape).toEqual([2, 2]);
    expect(() => R.embedding([3], [1], [1, 2, 3, 4, 5, 6], 3, 2)).toThrow();
  });
  it('add / mul broadcast', () => {
    const r = R.add([1, 2, 3, 4, 5, 6], [2, 3], [10, 20, 30], [3]);
    expect(Array.from(r.data)).toEqual([11, 22, 33, 14, 25, 36]);
    const m = R.mul([1, 2], [2, 1], [1, 10, 100], [1, 3]);
    expect(m.shape).toEqual([2, 3]);
    expect(Array.from(m.data)).toEqual([1, 10, 100, 2, 20, 200]);
  });
});
