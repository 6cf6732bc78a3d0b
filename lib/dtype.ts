// dtype names, what TypedArray each reads back as, and f32 -> f16/bf16 bits in JS (bit-exact
// with the native conversions: round to nearest even), for writing checkpoints.

export const DTYPES = ['f32', 'f16', 'bf16', 'i8', 'i32'] as const;
export type DType = (typeof DTYPES)[number];
export type FloatDType = 'f32' | 'f16' | 'bf16';

export const FLOAT_DTYPES: readonly FloatDType[] = ['f32', 'f16', 'bf16'];
export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f16: 2, bf16: 2, i8: 1, i32: 4 };

export function isDType(v: unknown): v is DType {
  return typeof v === 'string' && (DTYPES as readonly string[]).includes(v);
}
export function isFloatDType(v: unknown): v is FloatDType {
  return v === 'f32' || v === 'f16' || v === 'bf16';
}

// What `await t.data()` gives for each dtype: floats widen to f32.
export type DataOf<D extends DType> = D extends 'i8' ? Int8Array : D extends 'i32' ? Int32Array : Float32Array;
export type TensorData = Float32Array | Int8Array | Int32Array;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0];
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00 | ((a >>> 13) & 0x3ff);
  if (a >= 0x477ff000) return sign | 0x7c00;
  if (a < 0x38800000) {
    if (a < 0x33000000) return sign;
    const exp = a >>> 23;
    const man = (a & 0x7fffff) | 0x800000;
    const shift = 126 - exp;
    let q = man >>> shift;
    const rem = man & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && q & 1)) q++;
    return sign | q;
  }
  const r = a + 0xfff + ((a >>> 13) & 1);
  return sign | (((r - 0x38000000) >>> 13) & 0x7fff);
}
