// Comparing a kernel's output with a float64 reference. The metric is the max error scaled by
// the reference's magnitude: max_i |out_i - ref_i| / max(1e-6, max_i |ref_i|). Scaling by the
// max (not per element) keeps the bar meaningful for values near zero, where a per-element
// relative error would blow up on harmless absolute errors. Any NaN or infinity in the output
// where the reference has a finite value fails outright.

export interface Comparison {
  ok: boolean;
  /** max |out - ref| / max(1e-6, max |ref|); Infinity when the output has a bad NaN/inf. */
  error: number;
  /** flat index of the worst element (or the first bad NaN/inf). */
  worst: number;
  maxRef: number;
  message: string;
}

// `floor` is the smallest magnitude the scale may take: 1e-6, or for f16 outputs its smallest
// normal number (6.1e-5), below which f16 keeps a fixed absolute spacing of 6e-8, not a
// relative one.
export function compare(out: ArrayLike<number>, ref: ArrayLike<number>, tol: number, floor = 1e-6): Comparison {
  if (out.length !== ref.length) {
    return {
      ok: false,
      error: Infinity,
      worst: -1,
      maxRef: NaN,
      message: `length ${out.length} != reference length ${ref.length}`,
    };
  }
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = Math.abs(ref[i]);
    if (Number.isFinite(r) && r > maxRef) maxRef = r;
  }
  const scale = Math.max(floor, maxRef);
  let maxDiff = 0;
  let worst = 0;
  for (let i = 0; i < out.length; i++) {
    const o = out[i];
    const r = ref[i];
    if (!Number.isFinite(o) || !Number.isFinite(r)) {
      // non-finite values must agree exactly (inf == inf of the same sign; NaN only where the
      // reference is NaN)
      if (Object.is(o, r) || (Number.isNaN(o) && Number.isNaN(r)) || o === r) continue;
      return {
        ok: false,
        error: Infinity,
        worst: i,
        maxRef,
        message: `non-finite mismatch at [${i}]: out ${o}, ref ${r}`,
      };
    }
    const d = Math.abs(o - r);
    if (d > maxDiff) {
      maxDiff = d;
      worst = i;
    }
  }
  const error = maxDiff / scale;
  const ok = error <= tol;
  return {
    ok,
    error,
    worst,
    maxRef,
    message:
      `max error ${error.toExponential(3)} (tol ${tol.toExponential(1)}) at [${worst}]: ` +
      `out ${out[worst]}, ref ${ref[worst]}, max|ref| ${maxRef.toPrecision(6)}`,
  };
}

/** Exact equality (used for gathers, casts, round trips); +0 and -0 count as equal, NaN == NaN. */
export function compareExact(out: ArrayLike<number>, ref: ArrayLike<number>): Comparison {
  if (out.length !== ref.length) {
    return { ok: false, error: Infinity, worst: -1, maxRef: NaN, message: `length ${out.length} != ${ref.length}` };
  }
  let bad = 0;
  let first = -1;
  for (let i = 0; i < out.length; i++) {
    const o = out[i];
    const r = ref[i];
    if (o === r || (Number.isNaN(o) && Number.isNaN(r))) continue;
    if (first < 0) first = i;
    bad++;
  }
  return {
    ok: bad === 0,
    error: bad,
    worst: first,
    maxRef: NaN,
    message: bad === 0 ? 'exact' : `${bad} of ${out.length} differ; first at [${first}]: out ${out[first]}, ref ${ref[first]}`,
  };
}
