// cast between the float dtypes: the result is the input's value rounded (to nearest even) to
// the target dtype, exactly, including overflow to infinity in f16 and subnormals; a cast to
// the same dtype is the identity. Every device.

import { describe, it } from 'vitest';
import * as ignis from '../../lib/index';
import { check, FLOAT_DTYPES, forDevices, input, testCase } from '../helpers';
import { roundTo } from '../reference/round';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/cast.test.ts';

// f32-exact values that exercise the roundings: ties, f16 overflow, f16 subnormals, signed zero
const special = [
  0, -0, 1, -1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 65504, 65519, 65520, -1e5, 2 ** -24,
  2 ** -25, 3 * 2 ** -25, 1e-6, -1e-7, 1e-30, 3e38, -3e38, Math.fround(Math.PI), Math.fround(1 / 3),
];

forDevices((dev) => {
  for (const from of FLOAT_DTYPES) {
    for (const to of FLOAT_DTYPES) {
      describe(`${from} -> ${to}`, () => {
        for (const shape of [[1], [7], [3, 33], [2, 129, 5]]) {
          const name = `cast ${shapeStr(shape)} ${from} -> ${to} ${dev}`;
          it(name, async () => {
            const c = testCase(FILE, name);
            const x = await input(c, shape, from, dev, { std: 10 });
            const out = ignis.cast(x.t, to);
            await check(out, { data: roundTo(x.x, to), shape }, 0, c.ctx, { dtype: to, device: dev });
          });
        }
        it(`cast special values ${from} -> ${to} ${dev}`, async () => {
          const name = `cast special ${from} -> ${to} ${dev}`;
          const c = testCase(FILE, name);
          const x = await input(c, [special.length], from, dev, { values: special });
          await check(ignis.cast(x.t, to), roundTo(x.x, to), 0, c.ctx, { shape: [special.length], dtype: to, device: dev });
        });
      });
    }
  }
});
