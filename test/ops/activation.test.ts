// gelu (tanh form), silu and relu against the float64 reference: awkward lengths (1, 7, 33,
// 129, 4097, not multiples of the vector width), wide value ranges and the tails, every float
// dtype and device.

import { describe, it } from 'vitest';
import * as ignis from '../../lib/index';
import { check, FLOAT_DTYPES, forDevices, input, testCase, tolFor } from '../helpers';
import { activation, type ActivationName } from '../reference/activation';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/activation.test.ts';

const NAMES: ActivationName[] = ['gelu', 'silu', 'relu'];
const shapes: number[][] = [[1], [7], [3, 33], [129], [2, 3, 4097], [16, 16]];
const special = [-30, -10, -5, -3, -1, -0.5, -1e-3, 0, 1e-3, 0.5, 1, 3, 5, 10, 30];

forDevices((dev) => {
  for (const dtype of FLOAT_DTYPES) {
    for (const act of NAMES) {
      describe(`${act} ${dtype}`, () => {
        for (const shape of shapes) {
          const name = `${act} ${shapeStr(shape)} ${dtype} ${dev}`;
          it(name, async () => {
            const c = testCase(FILE, name);
            const x = await input(c, shape, dtype, dev, { std: 3 });
            const out = ignis[act](x.t);
            await check(out, { data: activation(x.x, act), shape }, tolFor(dtype), c.ctx, { dtype, device: dev });
          });
        }
        it(`${act} at special values ${dtype} ${dev}`, async () => {
          const name = `${act} special ${dtype} ${dev}`;
          const c = testCase(FILE, name);
          const x = await input(c, [special.length], dtype, dev, { values: special });
          const out = ignis[act](x.t);
          // special values include large |x| where the output is ~x or ~0: check relative to
          // the max, and separately that the small outputs are right to an absolute 1e-6 (f32)
          await check(out, { data: activation(x.x, act), shape: [special.length] }, tolFor(dtype), c.ctx, { dtype, device: dev });
          const got = await out.data();
          const ref = activation(x.x, act);
          const abs = dtype === 'f32' ? 1e-6 : 1e-2;
          for (let i = 0; i < ref.length; i++) {
            const bound = abs * Math.max(1, Math.abs(ref[i]));
            if (!(Math.abs(got[i] - ref[i]) <= bound)) throw new Error(`${c.ctx}: ${act}(${x.x[i]}) = ${got[i]}, ref ${ref[i]}`);
          }
        });
      });
    }
  }
});
