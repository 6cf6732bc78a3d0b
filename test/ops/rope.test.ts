// rope (rotate-half, GPT-NeoX / Llama form) on x [B, S, H, D] against the float64 reference:
// head dims 2 / 6 / 14 / 64 / 80 / 128, positions 0 and later, custom theta, every float
// dtype and device; position 0 of a single token is the identity.

import { describe, it } from 'vitest';
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
