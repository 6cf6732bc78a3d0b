// Float64 reference of matmul: a [..., M, K] x b [..., K, N] (or b [..., N, K] with
// transposeB), batch dims broadcast numpy-style, then + bias [N], then the activation.

import { activations, type ActivationName } from './activation';
import { broadcastIndex, broadcastShapes, numel, type Ref, type Shape } from './shape';

export interface MatmulOptions {
  transposeB?: boolean;
  bias?: ArrayLike<number>;
  activation?: ActivationName;
}

export function matmul(
  a: ArrayLike<number>,
  aShape: Shape,
  b: ArrayLike<number>,
  bShape: Shape,
  opts: MatmulOptions = {},
): Ref {
  if (aShape.length < 2 || bShape.length < 2) throw new Error('matmul reference: rank must be >= 2');
  const M = aShape[aShape.length - 2];
  const K = aShape[aShape.length - 1];
  const tb = !!opts.transposeB;
  const bR = bShape[bShape.length - 2];
  const bC = bShape[bShape.length - 1];
  const N = tb ? bR : bC;
  const Kb = tb ? bC : bR;
  if (Kb !== K) throw new Error(`matmul reference: K mismatch ${K} vs ${Kb}`);
  const aBatch = aShape.slice(0, -2);
  const bBatch = bShape.slice(0, -2);
  const batch = broadcastShapes(aBatch, bBatch);
  const nb = numel(batch);
  const ai = broadcastIndex(aBatch, batch);
  const bi = broadcastIndex(bBatch, batch);
  const act = opts.activation ? activations[opts.activation] : null;
  const bias = opts.bias;
  if (bias && bias.length !== N) throw new Error('matmul reference: bias must be [N]');
  const out = new Float64Array(nb * M * N);
  for (let t = 0; t < nb; t++) {
    const ao = ai[t] * M * K;
    const bo = bi[t] * K * N;
    const oo = t * M * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        if (tb) for (let k = 0; k < K; k++) s += a[ao + m * K + k] * b[bo + n * K + k];
        else for (let k = 0; k < K; k++) s += a[ao + m * K + k] * b[bo + k * N + n];
        if (bias) s += bias[n];
        out[oo + m * N + n] = act ? act(s) : s;
      }
    }
  }
  return { data: out, shape: [...batch, M, N] };
}

/** x [..., K] @ w^T for w [N, K] -> [..., N]; the shape of a linear layer. */
export function linear(
  x: ArrayLike<number>,
  xShape: Shape,
  w: ArrayLike<number>,
  N: number,
  K: number,
  opts: Omit<MatmulOptions, 'transposeB'> = {},
): Ref {
  const lead = xShape.slice(0, -1);
  const rows = numel(lead);
  const r = matmul(x, [rows, K], w, [N, K], { ...opts, transposeB: true });
  return { data: r.data, shape: [...lead, N] };
}
