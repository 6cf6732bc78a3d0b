// layernorm over the last dim (biased variance) against the float64 reference: awkward widths,
// inputs far from zero mean (a one-pass variance loses them), default and explicit eps, every
// float dtype and device.

import * as ignis from '../../lib/index';
import { opTests, type OpCase } from '../helpers';
import { layernorm } from '../reference/norm';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/layernorm.test.ts';

// x [..., D] (normal(mean, std)), weight [D] ~ normal(1, 0.5), bias [D] ~ normal(0, 0.5). f32
// with a mean >> std: the inputs carry only ~24 - log2(mean/std) bits of the deviation; the
// reference sees the same rounded inputs, so only the kernel's own arithmetic counts. Long rows
// and shifted means get the long-reduction bar.
function ln(shape: number[], eps?: number, x: { mean?: number; std?: number } = {}): OpCase {
  const D = shape[shape.length - 1];
  const what = `${eps !== undefined ? ` eps ${eps}` : ''}${x.mean ? ` mean ${x.mean} std ${x.std}` : ''}`;
  return {
    name: `layernorm ${shapeStr(shape)}${what}`,
    inputs: [{ shape, ...x }, { shape: [D], mean: 1, std: 0.5 }, { shape: [D], std: 0.5 }],
    run: (t, w, b) => (eps === undefined ? ignis.layernorm(t, w, b) : ignis.layernorm(t, w, b, { eps })),
    ref: (t, w, b) => layernorm(t.x, shape, w.x, b.x, eps ?? 1e-5),
    long: D >= 512 || (x.mean ?? 0) !== 0,
  };
}

opTests(FILE, [
  ln([1, 2]),
  ln([7]),
  ln([3, 33]),
  ln([2, 5, 129]),
  ln([4, 4096]),
  ln([2, 3, 4, 64]),
  ln([9, 80], 1e-6),
  ln([5, 17], 0.5),
  ln([6, 33], undefined, { mean: 30, std: 1 }), // mean >> std
  ln([3, 768], undefined, { mean: -4, std: 0.1 }),
  ln([4, 1]), // one element per row: output = bias
]);
