// Float64 references of the normalizations over the last dim: rmsnorm
// (x / sqrt(mean(x^2) + eps) * weight) and layernorm ((x - mean) / sqrt(var + eps) * weight
// + bias, biased variance).

import { numel, type Ref, type Shape } from './shape';

export function rmsnorm(x: ArrayLike<number>, shape: Shape, weight: ArrayLike<number>, eps = 1e-5): Ref {
  const D = shape[shape.length - 1];
  const rows = numel(shape) / D;
  const out = new Float64Array(rows * D);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let d = 0; d < D; d++) ss += x[r * D + d] * x[r * D + d];
    const inv = 1 / Math.sqrt(ss / D + eps);
    for (let d = 0; d < D; d++) out[r * D + d] = x[r * D + d] * inv * weight[d];
  }
  return { data: out, shape: [...shape] };
}

export function layernorm(
  x: ArrayLike<number>,
  shape: Shape,
  weight: ArrayLike<number>,
  bias: ArrayLike<number>,
  eps = 1e-5,
): Ref {
  const D = shape[shape.length - 1];
  const rows = numel(shape) / D;
  const out = new Float64Array(rows * D);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let d = 0; d < D; d++) mean += x[r * D + d];
    mean /= D;
    let v = 0;
    for (let d = 0; d < D; d++) v += (x[r * D + d] - mean) ** 2;
    v /= D; // biased
    const inv = 1 / Math.sqrt(v + eps);
    for (let d = 0; d < D; d++) out[r * D + d] = (x[r * D + d] - mean) * inv * weight[d] + bias[d];
  }
  return { data: out, shape: [...shape] };
}
