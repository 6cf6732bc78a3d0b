// rmsnorm over the last dim against the float64 reference: awkward widths (1, 7, 33, 129,
// 4096), leading dims of any rank, default and explicit eps, every float dtype and device.

import * as ignis from '../../lib/index';
import { opTests, type OpCase } from '../helpers';
import { rmsnorm } from '../reference/norm';
import { shapeStr } from '../reference/shape';

const FILE = 'test/ops/rmsnorm.test.ts';

// x [..., D] (normal(mean, std)), weight [D] ~ normal(1, 0.5); eps undefined: the default
function rms(shape: number[], eps?: number, x: { mean?: number; std?: number } = {}): OpCase {
  const D = shape[shape.length - 1];
  const what = `${eps !== undefined ? ` eps ${eps}` : ''}${x.mean ? ` mean ${x.mean}` : ''}${x.std ? ` std ${x.std}` : ''}`;
  return {
    name: `rmsnorm ${shapeStr(shape)}${what}`,
    inputs: [{ shape, ...x }, { shape: [D], mean: 1, std: 0.5 }],
    run: (t, w) => (eps === undefined ? ignis.rmsnorm(t, w) : ignis.rmsnorm(t, w, { eps })),
    ref: (t, w) => rmsnorm(t.x, shape, w.x, eps ?? 1e-5),
    long: D >= 1024,
  };
}

opTests(FILE, [
  rms([1, 1]),
  rms([7]),
  rms([3, 33]),
  rms([2, 5, 129]),
  rms([4, 4096]),
  rms([2, 3, 4, 64]),
  rms([9, 80], 1e-6),
  rms([5, 17], 0.5), // eps large enough to matter
  rms([3, 129], 1e-6, { std: 1e-3 }), // tiny inputs: eps dominates the rms
  rms([6, 33], undefined, { mean: 20, std: 5 }),
  rms([2, 7], 0),
]);
