// add and mul with numpy broadcasting against the float64 reference: equal shapes, a row or
// column broadcast, size-1 dims on both sides, ranks that differ, awkward lengths; every float
// dtype and device.

import { describe, it } from 'vitest';
import * as ignis from '../../lib/index';
import { check, FLOAT_DTYPES, forDevices, input, testCase, tolFor } from '../helpers';
import { add, mul } from '../reference/binary';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/binary.test.ts';

const pairs: [number[], number[]][] = [
  [[1], [1]],
  [[7], [7]],
  [[33], [1]],
  [[1], [33]],
  [[3, 129], [3, 129]],
  [[2, 7], [7]], // bias-like row broadcast
  [[7], [2, 7]],
  [[5, 1], [5, 33]], // column broadcast
  [[3, 1, 5], [4, 1]], // -> [3, 4, 5]
  [[4, 1], [3, 1, 5]],
  [[2, 3, 4, 5], [3, 1, 5]],
  [[1, 1, 9], [6, 1]],
  [[2, 4097], [2, 4097]],
  [[2, 1, 4097], [3, 1]],
];

const OPS = { add, mul } as const;

forDevices((dev) => {
  for (const dtype of FLOAT_DTYPES) {
    for (const op of ['add', 'mul'] as const) {
      describe(`${op} ${dtype}`, () => {
        for (const [sa, sb] of pairs) {
          const name = `${op} ${shapeStr(sa)} ${shapeStr(sb)} ${dtype} ${dev}`;
          it(name, async () => {
            const c = testCase(FILE, name);
            const a = await input(c, sa, dtype, dev);
            const b = await input(c, sb, dtype, dev);
            const out = ignis[op](a.t, b.t);
            const ref = OPS[op](a.x, sa, b.x, sb);
            // one rounding of the exact result: half an ulp of the output dtype, relative to
            // the largest value (for add, the sum of two maxima bounds it)
            await check(out, ref, tolFor(dtype), c.ctx, { dtype, device: dev });
          });
        }
        it(`${op} with itself ${dtype} ${dev}`, async () => {
          const name = `${op} self ${dtype} ${dev}`;
          const c = testCase(FILE, name);
          const a = await input(c, [5, 33], dtype, dev);
          await check(ignis[op](a.t, a.t), OPS[op](a.x, [5, 33], a.x, [5, 33]), tolFor(dtype), c.ctx, { dtype, device: dev });
        });
      });
    }
  }
});
