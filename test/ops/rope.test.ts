// rope (rotate-half, GPT-NeoX / Llama form) on x [B, S, H, D] against the float64 reference:
// head dims 2 / 6 / 14 / 64 / 80 / 128, positions 0 and later, custom theta, given frequencies
// and a scale (head dims 6 to 512), every float dtype and device; position 0 of a single token is
// the identity; bad freqs are refused by name.

import { describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { check, FLOAT_DTYPES, forDevices, input, testCase, tolFor } from '../helpers';
import { rope } from '../reference/rope';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/rope.test.ts';

const cases: { shape: [number, number, number, number]; position?: number; theta?: number }[] = [
  { shape: [1, 1, 1, 2] },
  { shape: [1, 7, 3, 6] },
  { shape: [2, 33, 4, 64] },
  { shape: [1, 9, 2, 80] },
  { shape: [1, 5, 8, 128], position: 0 },
  { shape: [2, 3, 2, 14], position: 17 },
  { shape: [1, 1, 8, 128], position: 129 }, // one decode token
  { shape: [1, 4, 2, 64], position: 250, theta: 500000 },
  { shape: [1, 7, 1, 32], theta: 10 },
];

/**
 * f32 bar for rope: the kernel computes the angle p * f in f32, whose absolute error grows
 * with the position (about p * 2^-24 rad per rounding); the float64 reference has none.
 */
function ropeTol(dtype: 'f32' | 'f16' | 'bf16', maxPos: number): number {
  if (dtype !== 'f32') return tolFor(dtype);
  return 1e-5 + 4 * maxPos * 2 ** -24;
}

forDevices((dev) => {
  for (const dtype of FLOAT_DTYPES) {
    describe(dtype, () => {
      for (const rc of cases) {
        const name = `rope ${shapeStr(rc.shape)}${rc.position !== undefined ? ` position ${rc.position}` : ''}${rc.theta !== undefined ? ` theta ${rc.theta}` : ''} ${dtype} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          const x = await input(c, rc.shape, dtype, dev);
          const opts: { position?: number; theta?: number } = {};
          if (rc.position !== undefined) opts.position = rc.position;
          if (rc.theta !== undefined) opts.theta = rc.theta;
          const out = Object.keys(opts).length ? ignis.rope(x.t, opts) : ignis.rope(x.t);
          const ref = rope(x.x, rc.shape, rc.position ?? 0, rc.theta ?? 10000);
          const maxPos = (rc.position ?? 0) + rc.shape[1] - 1;
          await check(out, ref, ropeTol(dtype, maxPos), c.ctx, { dtype, device: dev });
        });
      }
      // a scaled rotation: headDim/2 given frequencies (transformers' inv_freq) and a factor on
      // cos and sin; uneven frequencies, so a kernel that used theta's would fail
      for (const [shape, position] of [[[1, 7, 3, 6], 0], [[2, 33, 4, 64], 5], [[1, 2, 2, 130], 1000], [[1, 3, 1, 512], 40]] as [[number, number, number, number], number][]) {
        const name = `rope ${shapeStr(shape)} given freqs, scale 1.25, position ${position} ${dtype} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          const x = await input(c, shape, dtype, dev);
          const freqs = Array.from({ length: shape[3] / 2 }, (_, i) => Math.pow(10000, -2 * i / shape[3]) * (0.25 + ((i * 7919) % 13) / 8));
          const out = ignis.rope(x.t, { position, freqs, scale: 1.25 });
          const ref = rope(x.x, shape, position, 10000, freqs, 1.25);
          await check(out, ref, 1.25 * ropeTol(dtype, (position + shape[1]) * 2), c.ctx, { dtype, device: dev });
        });
      }
      it(`rope at position 0 of one token is the identity ${dtype} ${dev}`, async () => {
        const name = `rope identity ${dtype} ${dev}`;
        const c = testCase(FILE, name);
        const x = await input(c, [2, 1, 3, 64], dtype, dev);
        await check(ignis.rope(x.t), x.x, 0, c.ctx, { shape: [2, 1, 3, 64], dtype, device: dev });
      });
      it(`rope: a chunk at position p equals the same rows of a longer sequence ${dtype} ${dev}`, async () => {
        const name = `rope chunk consistency ${dtype} ${dev}`;
        const c = testCase(FILE, name);
        const x = await input(c, [1, 4, 2, 64], dtype, dev);
        const out = ignis.rope(x.t, { position: 11 });
        await check(out, rope(x.x, [1, 4, 2, 64], 11), ropeTol(dtype, 14), c.ctx, { dtype, device: dev });
      });
    });
  }
});

describe('rope freqs errors', () => {
  it('refuses freqs of the wrong length, too many, negative, not numbers, and a bad scale', () => {
    const x = ignis.tensor(new Float32Array(2 * 8).fill(0.5), { shape: [1, 2, 1, 8] });
    try {
      expect(() => ignis.rope(x, { freqs: [1, 2, 3] })).toThrow(expect.objectContaining({ code: 'E_SHAPE', message: expect.stringContaining('freqs holds 3 frequencies, x [1, 2, 1, 8] needs headDim/2 = 4') }));
      const big = ignis.tensor(new Float32Array(514).fill(0.5), { shape: [1, 1, 1, 514] });
      try {
        expect(() => ignis.rope(big, { freqs: new Array(257).fill(1) })).toThrow(expect.objectContaining({ code: 'E_SHAPE', message: expect.stringContaining('at most 256') }));
      } finally {
        big.dispose();
      }
      expect(() => ignis.rope(x, { freqs: [1, 2, -3, 4] })).toThrow(RangeError);
      expect(() => ignis.rope(x, { freqs: [1, 2, NaN, 4] })).toThrow(RangeError);
      expect(() => ignis.rope(x, { freqs: [1, '2', 3, 4] as unknown as number[] })).toThrow(TypeError);
      expect(() => ignis.rope(x, { freqs: 'abc' as unknown as number[] })).toThrow(TypeError);
      expect(() => ignis.rope(x, { freqs: [1, 2, 3, 4], scale: Infinity })).toThrow(RangeError);
      expect(() => ignis.rope(x, { freqs: new Float64Array([1, 2, 3, 4]) }).dispose()).not.toThrow();
    } finally {
      x.dispose();
    }
  });
});
