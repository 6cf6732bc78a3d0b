// Shape arithmetic shared by the references: element counts, row-major strides, numpy
// broadcasting, and the "[2, 3, 4]" spelling the error messages use.

export type Shape = readonly number[];

/** A reference result: flat row-major float64 values and their shape. */
export interface Ref {
  data: Float64Array;
  shape: number[];
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function strides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** Numpy broadcast of two shapes; throws if they do not fit. */
export function broadcastShapes(a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da !== db && da !== 1 && db !== 1) throw new Error(`cannot broadcast ${shapeStr(a)} and ${shapeStr(b)}`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/**
 * For each flat index of `out` (row-major), the flat index into a tensor of shape `src`
 * broadcast to `out` (src right-aligned, size-1 dims repeated).
 */
export function broadcastIndex(src: Shape, out: Shape): Int32Array {
  const n = numel(out);
  const idx = new Int32Array(n);
  const off = out.length - src.length;
  const ss = strides(src);
  const coord = new Array<number>(out.length).fill(0);
  for (let i = 0; i < n; i++) {
    let j = 0;
    for (let d = 0; d < src.length; d++) if (src[d] !== 1) j += coord[d + off] * ss[d];
    idx[i] = j;
    for (let d = out.length - 1; d >= 0; d--) {
      if (++coord[d] < out[d]) break;
      coord[d] = 0;
    }
  }
  return idx;
}
