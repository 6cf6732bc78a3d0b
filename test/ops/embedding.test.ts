// embedding (row gather) against the float64 reference: ids of any rank, vocabularies of 1 to
// 5000 rows, widths 1 / 7 / 64 / 129, the first and last rows, repeated ids; the output is an
// exact copy of the table's rows (same dtype). The out-of-range id error is in errors.test.ts.

import { describe, it } from 'vitest';
import * as ignis from '../../lib/index';
import { check, FLOAT_DTYPES, forDevices, input, intInput, testCase } from '../helpers';
import { embedding } from '../reference/embedding';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/embedding.test.ts';

const cases: { ids: number[]; V: number; D: number }[] = [
  { ids: [1], V: 1, D: 1 },
  { ids: [7], V: 50, D: 7 },
  { ids: [2, 33], V: 1000, D: 64 },
  { ids: [3, 1, 5], V: 5000, D: 129 },
  { ids: [129], V: 3, D: 80 }, // many repeats
  { ids: [1, 1], V: 2, D: 4096 },
];

forDevices((dev) => {
  for (const dtype of FLOAT_DTYPES) {
    describe(dtype, () => {
      for (const ec of cases) {
        const name = `embedding ids ${shapeStr(ec.ids)} table [${ec.V}, ${ec.D}] ${dtype} ${dev}`;
        it(name, async () => {
          const c = testCase(FILE, name);
          const n = ec.ids.reduce((a, b) => a * b, 1);
          const idv = c.rng.ints(n, 0, ec.V - 1);
          idv[0] = ec.V - 1; // the last row
          if (n > 1) idv[n - 1] = 0; // the first row
          const ids = intInput(idv, ec.ids, dev);
          const table = await input(c, [ec.V, ec.D], dtype, dev);
          const out = ignis.embedding(ids, table.t);
          await check(out, embedding(idv, ec.ids, table.x, ec.V, ec.D), 0, c.ctx, { dtype, device: dev });
        });
      }
    });
  }
});
