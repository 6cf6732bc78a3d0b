// softmax against the float64 reference: the last axis and every other axis (positive and
// negative), widths 1 / 7 / 33 / 129 / 4096, large logits (a kernel that does not subtract
// the max overflows), every float dtype and device.

import { describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { check, FLOAT_DTYPES, forDevices, input, testCase, tolFor } from '../helpers';
import { softmax } from '../reference/softmax';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/softmax.test.ts';

const cases: { shape: number[]; axis?: number; std?: number; mean?: number }[] = [
  { shape: [1] },
  { shape: [7] },
  { shape: [3, 33] },
  { shape: [2, 129] },
  { shape: [2, 4096] },
  { shape: [4, 1] }, // one element per row -> 1
  { shape: [5, 7], axis: 0 },
  { shape: [3, 9, 33], axis: 1 },
  { shape: [3, 9, 33], axis: -2 },
  { shape: [2, 3, 5, 7], axis: 0 },
  { shape: [2, 3, 5, 7], axis: 2 },
  { shape: [2, 3, 5, 7], axis: -1 },
  { shape: [4, 33], std: 30 }, // spread logits: outputs close to one-hot
  { shape: [4, 129], mean: 100, std: 3 }, // exp(100) overflows f32 without the max shift
  { shape: [3, 65], mean: -200, std: 2 },
];

forDevices((dev) => {
  for (const dtype of FLOAT_DTYPES) {
    describe(dtype, () => {
      for (const sc of cases) {
        const name = `softmax ${shapeStr(sc.shape)}${sc.axis !== undefined ? ` axis ${sc.axis}` : ''}${sc.mean ? ` mean ${sc.mean}` : ''}${sc.std ? ` std ${sc.std}` : ''} ${dtype} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          const x = await input(c, sc.shape, dtype, dev, { mean: sc.mean, std: sc.std });
          const out = sc.axis === undefined ? ignis.softmax(x.t) : ignis.softmax(x.t, { axis: sc.axis });
          const ref = softmax(x.x, sc.shape, sc.axis ?? -1);
          await check(out, ref, tolFor(dtype, sc.shape[sc.shape.length - 1] >= 1024), c.ctx, { dtype, device: dev });
        });
      }
      it(`softmax rows sum to 1 ${dtype} ${dev}`, async () => {
        const name = `softmax sums ${dtype} ${dev}`;
        const c = testCase(FILE, name);
        const x = await input(c, [17, 257], dtype, dev, { std: 4 });
        const got = await ignis.softmax(x.t).data();
        for (let r = 0; r < 17; r++) {
          let s = 0;
          for (let j = 0; j < 257; j++) s += got[r * 257 + j];
          expect(Math.abs(s - 1), `${c.ctx}: row ${r} sums to ${s}`).toBeLessThan(dtype === 'f32' ? 1e-5 : 3e-2);
        }
      });
    });
  }
});
