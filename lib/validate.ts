// Argument validation for every public function: small is.* predicates and checks that throw
// what the caller did wrong (TypeError E_TYPE, RangeError E_RANGE, IgnisError with a code).
// Shape rules that need the tensors' shapes are checked again natively, which names both shapes.
import { describe, IgnisError, rangeError, typeError } from './errors';
import { DType, isDType } from './dtype';
import type { Device } from './device';
import { limits } from './native-tables';

export const is = {
  object: (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v),
  int: (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v),
  finite: (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v),
  string: (v: unknown): v is string => typeof v === 'string',
  bool: (v: unknown): v is boolean => typeof v === 'boolean',
};


// The options object of a call: undefined or a plain object whose keys are all known.
export function options<T extends object>(op: string, v: unknown, known: readonly string[]): Partial<T> {
  if (v === undefined) return {};
  if (!is.object(v)) throw typeError(`${op}: options must be an object, got ${describe(v)}`);
  for (const k of Object.keys(v)) {
    if (!known.includes(k))
      throw typeError(`${op}: unknown option '${k}' (known: ${known.join(', ') || 'none'})`);
  }
  return v as Partial<T>;
}

export function shape(op: string, v: unknown, what = 'shape'): number[] {
  if (!Array.isArray(v)) throw typeError(`${op}: ${what} must be an array of sizes, got ${describe(v)}`);
  if (v.length > limits.maxRank) throw rangeError(`${op}: ${what} has ${v.length} dimensions; at most ${limits.maxRank} are supported`);
  for (const d of v) {
    if (typeof d !== 'number') throw typeError(`${op}: ${what} must be an array of sizes, got ${describe(d)} in it`);
    if (!Number.isInteger(d) || d < 0)
      throw rangeError(`${op}: ${what} sizes must be whole numbers >= 0, got [${v.join(', ')}]`);
  }
  if (checkedNumel(v) < 0) throw rangeError(`${op}: ${what} [${v.join(', ')}] has too many elements (at most 2^40)`);
  return v.slice();
}

/**
 * The element count, -1 past the addon's limit (core/limits.h checked_numel): a dimension past
 * it, or the product of the non-zero dimensions (a zero does not excuse a huge sibling, whose
 * strides and products would overflow).
 */
export function checkedNumel(shape: readonly number[]): number {
  let n = 1, zero = false;
  for (const d of shape) {
    if (d > limits.maxElements) return -1;
    if (d === 0) zero = true;
    else if ((n *= d) > limits.maxElements) return -1;
  }
  return zero ? 0 : n;
}

export function dtype(op: string, v: unknown, fallback: DType): DType {
  if (v === undefined) return fallback;
  if (typeof v !== 'string') throw typeError(`${op}: dtype must be a string, got ${describe(v)}`);
  if (!isDType(v)) throw new IgnisError('E_DTYPE', `${op}: unknown dtype '${v}' (use f32, f16, bf16, i8 or i32)`);
  return v;
}

const DEVICE_RE = /^(cpu|cuda|cuda:\d{1,3})$/;
export function device(op: string, v: unknown, fallback: Device = 'cpu'): Device {
  if (v === undefined) return fallback;
  if (typeof v !== 'string') throw typeError(`${op}: device must be a string, got ${describe(v)}`);
  if (!DEVICE_RE.test(v)) throw new IgnisError('E_DEVICE', `${op}: unknown device '${v}': use 'cpu', 'cuda' or 'cuda:N'`);
  return v as Device;
}

export function int(op: string, name: string, v: unknown, min: number, fallback?: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number') throw typeError(`${op}: ${name} must be a number, got ${describe(v)}`);
  if (!Number.isSafeInteger(v) || v < min)
    throw rangeError(`${op}: ${name} must be a whole number >= ${min}, got ${v}`);
  return v;
}

export function number(op: string, name: string, v: unknown, fallback: number, check?: (x: number) => boolean, want?: string): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number') throw typeError(`${op}: ${name} must be a number, got ${describe(v)}`);
  if (!Number.isFinite(v) || (check && !check(v)))
    throw rangeError(`${op}: ${name} must be ${want ?? 'a finite number'}, got ${v}`);
  return v;
}

export function bool(op: string, name: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw typeError(`${op}: ${name} must be a boolean, got ${describe(v)}`);
  return v;
}

export function oneOf<T extends string>(op: string, name: string, v: unknown, allowed: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  if (typeof v !== 'string') throw typeError(`${op}: ${name} must be a string, got ${describe(v)}`);
  if (!(allowed as readonly string[]).includes(v))
    throw rangeError(`${op}: unknown ${name} '${v}' (use ${allowed.join(', ')})`);
  return v as T;
}

export function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

/** rope's freqs: a list of finite numbers >= 0, as a Float64Array (empty when not given); its
 * length is checked against headDim by the op's shape rule. */
export function ropeFreqs(op: string, v: unknown): Float64Array {
  if (v === undefined) return new Float64Array(0);
  if (!(v instanceof Float64Array) && !Array.isArray(v)) throw typeError(`${op}: freqs must be an array of numbers or a Float64Array, got ${describe(v)}`);
  const list = v as ArrayLike<unknown>;
  const out = new Float64Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const f = list[i];
    if (typeof f !== 'number') throw typeError(`${op}: freqs[${i}] must be a number, got ${describe(f)}`);
    if (!Number.isFinite(f) || f < 0) throw rangeError(`${op}: freqs[${i}] must be a finite number >= 0, got ${f}`);
    out[i] = f;
  }
  return out;
}
