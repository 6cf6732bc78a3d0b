// layernorm over the last dim (biased variance) against the float64 reference: awkward widths,
// inputs far from zero mean (a one-pass variance loses them), default and explicit eps, every
// float dtype and device.

import { describe, it } from 'vitest';
import * as ignis from '../../lib/index';
import { check, FLOAT_DTYPES, forDevices, input, testCase, tolFor } from '../helpers';
import { layernorm } from '../reference/norm';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/layernorm.test.ts';

const cases: { shape: number[]; eps?: number; mean?: number; std?: number }[] = [
  { shape: [1, 2] },
  { shape: [7] },
  { shape: [3, 33] },
  { shape: [2, 5, 129] },
  { shape: [4, 4096] },
  { shape: [2, 3, 4, 64] },
  { shape: [9, 80], eps: 1e-6 },
  { shape: [5, 17], eps: 0.5 },
  { shape: [6, 33], mean: 30, std: 1 }, // mean >> std
  { shape: [3, 768], mean: -4, std: 0.1 },
  { shape: [4, 1] }, // one element per row: output = bias
];

forDevices((dev) => {
  for (const dtype of FLOAT_DTYPES) {
    describe(dtype, () => {
      for (const lc of cases) {
        const name = `layernorm ${shapeStr(lc.shape)}${lc.eps !== undefined ? ` eps ${lc.eps}` : ''}${lc.mean ? ` mean ${lc.mean} std ${lc.std}` : ''} ${dtype} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          const D = lc.shape[lc.shape.length - 1];
          const x = await input(c, lc.shape, dtype, dev, { mean: lc.mean, std: lc.std });
          const w = await input(c, [D], dtype, dev, { mean: 1, std: 0.5 });
          const b = await input(c, [D], dtype, dev, { std: 0.5 });
          const out = lc.eps === undefined ? ignis.layernorm(x.t, w.t, b.t) : ignis.layernorm(x.t, w.t, b.t, { eps: lc.eps });
          const ref = layernorm(x.x, lc.shape, w.x, b.x, lc.eps ?? 1e-5);
          // f32 with a mean >> std: the inputs carry only ~24 - log2(mean/std) bits of the
          // deviation; the reference sees the same rounded inputs, so only the kernel's own
          // arithmetic counts. Long rows get the long-reduction bar.
          await check(out, ref, tolFor(dtype, D >= 512 || (lc.mean ?? 0) !== 0), c.ctx, { dtype, device: dev });
        });
      }
    });
  }
});
