// Float64 reference of the embedding gather: ids [...] (integers in [0, V)) and table [V, D]
// -> [..., D], row ids[i] of the table for each id.

import type { Ref, Shape } from './shape';

export function embedding(ids: ArrayLike<number>, idsShape: Shape, table: ArrayLike<number>, V: number, D: number): Ref {
  const out = new Float64Array(ids.length * D);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`embedding reference: id ${id} outside [0, ${V})`);
    for (let d = 0; d < D; d++) out[i * D + d] = table[id * D + d];
  }
  return { data: out, shape: [...idsShape, D] };
}
