// Rounding float64 values to the precision of a tensor dtype (f32, f16, bf16), so a reference
// computes on exactly the values the kernel sees. Bit-level ports of the native conversions
// (round to nearest even; f16 overflow -> inf; subnormals kept), applied after an f32 rounding.

export type FloatDType = 'f32' | 'f16' | 'bf16';
export type DType = FloatDType | 'i8' | 'i32';

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

function f32Bits(x: number): number {
  f32buf[0] = x;
  return u32buf[0];
}
function bitsF32(u: number): number {
  u32buf[0] = u >>> 0;
  return f32buf[0];
}

/** f32 -> bf16 bits, round to nearest even, NaN kept quiet. */
export function bf16Bits(x: number): number {
  let u = f32Bits(x);
  if ((u & 0x7fffffff) >>> 0 > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  u = (u + 0x7fff + ((u >>> 16) & 1)) >>> 0;
  return u >>> 16;
}
export function bf16BitsToNumber(h: number): number {
  return bitsF32((h & 0xffff) << 16);
}

/** f32 -> f16 bits, round to nearest even, overflow -> inf, NaN kept. */
export function f16Bits(x: number): number {
  const u = f32Bits(x);
  const sign = (u >>> 16) & 0x8000;
  const a = (u & 0x7fffffff) >>> 0;
  if (a > 0x7f800000) return sign | 0x7e00 | ((a >>> 13) & 0x3ff);
  if (a >= 0x477ff000) return sign | 0x7c00;
  if (a < 0x38800000) {
    if (a < 0x33000000) return sign;
    const exp = a >>> 23;
    const man = (a & 0x7fffff) | 0x800000;
    const shift = 126 - exp; // 14..24
    let q = man >>> shift;
    const rem = man & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (q & 1) !== 0)) q++;
    return sign | q;
  }
  const r = a + 0xfff + ((a >>> 13) & 1);
  return (sign | ((r - 0x38000000) >>> 13)) & 0xffff;
}
export function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0x1f) return man ? NaN : sign * Infinity;
  if (exp === 0) return sign * man * 2 ** -24;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

/** One value rounded to dtype (through f32 first, as the native conversion does). */
export function roundScalar(x: number, dtype: DType): number {
  switch (dtype) {
    case 'f32':
      return Math.fround(x);
    case 'bf16':
      return bf16BitsToNumber(bf16Bits(Math.fround(x)));
    case 'f16':
      return f16BitsToNumber(f16Bits(Math.fround(x)));
    default:
      return x;
  }
}

/** A copy of xs with every value rounded to dtype's precision (integers: unchanged). */
export function roundTo(xs: ArrayLike<number>, dtype: DType): Float64Array {
  const out = new Float64Array(xs.length);
  for (let i = 0; i < xs.length; i++) out[i] = roundScalar(xs[i], dtype);
  return out;
}

/** Round half to even, the rounding of the quantizer. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Unit roundoff of each float dtype (half an ulp at 1). */
export const EPS: Record<FloatDType, number> = { f32: 2 ** -24, f16: 2 ** -11, bf16: 2 ** -8 };
