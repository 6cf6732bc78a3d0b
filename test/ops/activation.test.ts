// Every activation of ignis.ACTIVATIONS (gelu in its tanh form, silu, relu, ...) against its
// float64 reference: awkward lengths (1, 7, 33, 129, 4097, not multiples of the vector width),
// wide value ranges and the tails, and special values checked to an absolute bound too; every
// float dtype and device. An activation without a reference fails here.

import { expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { opTests, type OpCase } from '../helpers';
import { activations, type ActivationName } from '../reference/activation';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/activation.test.ts';

const shapes: number[][] = [[1], [7], [3, 33], [129], [2, 3, 4097], [16, 16]];
const special = [-30, -10, -5, -3, -1, -0.5, -1e-3, 0, 1e-3, 0.5, 1, 3, 5, 10, 30];

it('every activation the addon has has a float64 reference', () => {
  expect(Object.keys(activations).sort()).toEqual([...ignis.ACTIVATIONS].sort());
});

// special values include large |x| where the output is ~x or ~0: besides the bound relative to
// the max, the small outputs must be right to an absolute 1e-6 (f32)
const absolute = (act: ActivationName) => (got: ArrayLike<number>, ref: Float64Array, dtype: string, ctx: string) => {
  const abs = dtype === 'f32' ? 1e-6 : 1e-2;
  for (let i = 0; i < ref.length; i++)
    if (!(Math.abs(got[i] - ref[i]) <= abs * Math.max(1, Math.abs(ref[i])))) throw new Error(`${ctx}: ${act} at ${special[i]} = ${got[i]}, ref ${ref[i]}`);
};

const cases: OpCase[] = [];
for (const act of ignis.ACTIVATIONS) {
  const f = activations[act as ActivationName];
  const run = (x: ignis.Tensor) => ignis[act](x);
  const ref = ({ x }: { x: Float64Array }) => x.map(f);
  for (const shape of shapes) cases.push({ name: `${act} ${shapeStr(shape)}`, inputs: [{ shape, std: 3 }], run, ref });
  cases.push({ name: `${act} at special values`, inputs: [{ shape: [special.length], values: special }], run, ref, also: absolute(act as ActivationName) });
}
opTests(FILE, cases);
