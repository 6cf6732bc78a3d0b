// rmsnorm over the last dim against the float64 reference: awkward widths (1, 7, 33, 129,
// 4096), leading dims of any rank, default and explicit eps, every float dtype and device.

import { describe, it } from 'vitest';
import * as ignis from '../../lib/index';
import { check, FLOAT_DTYPES, forDevices, input, testCase, tolFor } from '../helpers';
import { rmsnorm } from '../reference/norm';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/rmsnorm.test.ts';

const cases: { shape: number[]; eps?: number; mean?: number; std?: number }[] = [
  { shape: [1, 1] },
  { shape: [7] },
  { shape: [3, 33] },
  { shape: [2, 5, 129] },
  { shape: [4, 4096] },
  { shape: [2, 3, 4, 64] },
  { shape: [9, 80], eps: 1e-6 },
  { shape: [5, 17], eps: 0.5 }, // eps large enough to matter
  { shape: [3, 129], std: 1e-3, eps: 1e-6 }, // tiny inputs: eps dominates the rms
  { shape: [6, 33], mean: 20, std: 5 },
  { shape: [2, 7], eps: 0 },
];

forDevices((dev) => {
  for (const dtype of FLOAT_DTYPES) {
    describe(dtype, () => {
      for (const rc of cases) {
        const name = `rmsnorm ${shapeStr(rc.shape)}${rc.eps !== undefined ? ` eps ${rc.eps}` : ''}${rc.mean ? ` mean ${rc.mean}` : ''}${rc.std ? ` std ${rc.std}` : ''} ${dtype} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          const D = rc.shape[rc.shape.length - 1];
          const x = await input(c, rc.shape, dtype, dev, { mean: rc.mean, std: rc.std });
          const w = await input(c, [D], dtype, dev, { mean: 1, std: 0.5 });
          const out = rc.eps === undefined ? ignis.rmsnorm(x.t, w.t) : ignis.rmsnorm(x.t, w.t, { eps: rc.eps });
          const ref = rmsnorm(x.x, rc.shape, w.x, rc.eps ?? 1e-5);
          await check(out, ref, tolFor(dtype, D >= 1024), c.ctx, { dtype, device: dev });
        });
      }
    });
  }
});
