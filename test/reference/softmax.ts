// Float64 reference of softmax along one axis (negative axes count from the end).

import { numel, type Ref, type Shape } from './shape';

export function softmax(x: ArrayLike<number>, shape: Shape, axis = -1): Ref {
  const ax = axis < 0 ? shape.length + axis : axis;
  if (ax < 0 || ax >= shape.length) throw new Error('softmax reference: axis out of range');
  const n = shape[ax];
  const inner = numel(shape.slice(ax + 1));
  const outer = numel(shape.slice(0, ax));
  const out = new Float64Array(numel(shape));
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let mx = -Infinity;
      for (let j = 0; j < n; j++) mx = Math.max(mx, x[base + j * inner]);
      let sum = 0;
      for (let j = 0; j < n; j++) {
        const e = Math.exp(x[base + j * inner] - mx);
        out[base + j * inner] = e;
        sum += e;
      }
      for (let j = 0; j < n; j++) out[base + j * inner] /= sum;
    }
  }
  return { data: out, shape: [...shape] };
}
