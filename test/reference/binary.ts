// Float64 references of the elementwise binary ops with numpy broadcasting: add, mul.

import { broadcastIndex, broadcastShapes, type Ref, type Shape } from './shape';

export function binary(
  a: ArrayLike<number>,
  aShape: Shape,
  b: ArrayLike<number>,
  bShape: Shape,
  f: (x: number, y: number) => number,
): Ref {
  const shape = broadcastShapes(aShape, bShape);
  const ia = broadcastIndex(aShape, shape);
  const ib = broadcastIndex(bShape, shape);
  const out = new Float64Array(ia.length);
  for (let i = 0; i < out.length; i++) out[i] = f(a[ia[i]], b[ib[i]]);
  return { data: out, shape };
}

export const add = (a: ArrayLike<number>, aShape: Shape, b: ArrayLike<number>, bShape: Shape) =>
  binary(a, aShape, b, bShape, (x, y) => x + y);
export const mul = (a: ArrayLike<number>, aShape: Shape, b: ArrayLike<number>, bShape: Shape) =>
  binary(a, aShape, b, bShape, (x, y) => x * y);
