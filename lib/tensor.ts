// Tensor: a handle to native storage on one device, with its shape, dtype and device. Ops
// return Tensors at once; `await t.data()` is where JS waits for the device queue.
// dispose() frees deterministically (queued ops keep their own reference); the GC is the net.
import './dispose';
import { Handle, Meta, native } from './binding';
import { describe, IgnisError, rangeError, typeError } from './errors';
import { DataOf, DType, FloatDType, isFloatDType, TensorData } from './dtype';
import { Device, deviceName } from './device';
import { limits, OpName, ParamsOf } from './native-tables';
import * as v from './validate';

export type NestedArray = number | NestedArray[];

export class Tensor<D extends DType = DType> {
  // The brand: only objects this constructor made have it (not one made with Tensor.prototype).
  readonly #brand = true;
  readonly shape: readonly number[];
  readonly dtype: D;
  /** 'cpu' or 'cuda:N' */
  readonly device: Device;
  readonly size: number;
  /** @internal */ _h: Handle | null;

  /** @internal Tensors are made by ignis.tensor/zeros/full/randn and by ops, with the meta the binding returns. */
  constructor(h: Handle, meta: Meta) {
    const [shape, dtype, device] = meta;
    this._h = h;
    this.shape = Object.freeze(shape);
    this.dtype = dtype as D;
    this.device = device as Device;
    this.size = shape.reduce((a, b) => a * b, 1);
  }

  /** Whether x is a tensor this module made: a brand check, which an object that only looks like one fails. */
  static is(x: unknown): x is Tensor {
    return typeof x === 'object' && x !== null && #brand in x;
  }

  get rank(): number {
    return this.shape.length;
  }

  get disposed(): boolean {
    return this._h === null;
  }

  /**
   * The elements, row-major, in a fresh TypedArray: Float32Array for f32/f16/bf16. Rejects with
   * the error of the op that made the tensor (or of one it depends on), its stack this call's.
   */
  data(): Promise<DataOf<D>> {
    return atCaller(native().read(handle('data', 'tensor', this), false) as Promise<DataOf<D>>);
  }

  /**
   * Resolves (with this tensor) once the op that produces it has run, copying nothing; rejects
   * with that op's error (its stack the caller's). For timing, or to wait for a result that
   * stays on the device.
   */
  async ready(): Promise<this> {
    await atCaller(native().read(handle('ready', 'tensor', this), true));
    return this;
  }

  /**
   * The elements as nested arrays of numbers, shaped like the tensor. At most 2^24 arrays are
   * built (E_RANGE past that, as for [1e9, 0]: use data()).
   */
  async toArray(): Promise<NestedArray> {
    let arrays = 0;
    for (let d = 0, rows = 1; d < this.shape.length; d++) {
      arrays += rows;
      rows *= this.shape[d];
    }
    if (arrays > 2 ** 24)
      throw rangeError(`toArray: ${v.shapeStr(this.shape)} would build ${arrays} nested arrays (at most 2^24); read it with data()`);
    const flat = await this.data();
    const build = (dim: number, offset: number): NestedArray => {
      if (dim === this.shape.length) return flat[offset];
      const stride = this.shape.slice(dim + 1).reduce((a, b) => a * b, 1);
      const out: NestedArray[] = [];
      for (let i = 0; i < this.shape[dim]; i++) out.push(build(dim + 1, offset + i * stride));
      return out;
    };
    return build(0, 0);
  }

  /** A copy on another device (the same tensor when it is already there). */
  to(device: Device): Tensor<D> {
    const d = v.device('to', device);
    return new Tensor<D>(native().to(handle('to', 'tensor', this), d), [this.shape.slice(), this.dtype, deviceName(d)]);
  }

  /** A view of the same storage with another shape; one dimension may be -1. */
  reshape(...shape: number[] | [number[]]): Tensor<D> {
    const h = handle('reshape', 'tensor', this); // first: `this` may be an object that only looks like a tensor
    const s = resolveReshape(this, Array.isArray(shape[0]) ? (shape[0] as number[]) : (shape as number[]));
    return new Tensor<D>(native().reshape(h, s), [s, this.dtype, this.device]);
  }

  /** Frees this tensor's reference to its storage now. Safe to call twice. */
  dispose(): void {
    if (this._h) {
      this._h.dispose();
      this._h = null;
    }
  }

  /** dispose(), for `using t = ignis.randn(...)`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `Tensor(${v.shapeStr(this.shape)}, ${this.dtype}, ${this.device}${this._h ? '' : ', disposed'})`;
  }
}

// A kernel-time error is raised on a device worker and delivered by a native callback, with no JS
// frame of the call that waits for it. atCaller awaits the read inside an async function, so a
// rejection's stack, captured again there, gets V8's async frames: the awaiting caller's line.
// Nothing is captured unless the read rejects.
async function atCaller<T>(read: Promise<T>): Promise<T> {
  try {
    return await read;
  } catch (e) {
    if (e instanceof Error) Error.captureStackTrace(e, atCaller);
    throw e;
  }
}

function resolveReshape(t: Tensor, shape: number[]): number[] {
  let infer = -1;
  let known = 1;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (typeof d !== 'number') throw typeError(`reshape: sizes must be numbers, got ${describe(d)}`);
    if (d === -1 && infer < 0) infer = i;
    else if (!Number.isInteger(d) || d < 0) throw rangeError(`reshape: sizes must be whole numbers >= 0 (one may be -1), got [${shape.join(', ')}]`);
    else known *= d;
  }
  const out = shape.slice();
  if (infer >= 0) {
    if (known === 0 || t.size % known !== 0)
      throw new IgnisError('E_SHAPE', `reshape: cannot view ${v.shapeStr(t.shape)} as [${shape.join(', ')}]`);
    out[infer] = t.size / known;
  }
  return v.shape('reshape', out);
}

/**
 * @internal Runs an op of the native op table on the operands (absent optional ones null, at
 * the end): one call into the addon, which checks the op's rules, enqueues its kernel and
 * returns each output's handle with its meta.
 */
export function callOp<O extends OpName>(op: O, operands: (Handle | null)[], params: ParamsOf<O>): Tensor[] {
  const r = native().call(op, operands, params);
  const out: Tensor[] = new Array(r.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = new Tensor(r[2 * i] as Handle, r[2 * i + 1] as Meta);
  return out;
}

/** @internal callOp for an op with one output: that output. */
export function callOne<O extends OpName>(op: O, operands: (Handle | null)[], params: ParamsOf<O>): Tensor {
  const r = native().call(op, operands, params);
  return new Tensor(r[0] as Handle, r[1] as Meta);
}

/** @internal The live handle of a tensor argument; throws what the caller did wrong. */
export function handle(op: string, name: string, t: unknown): Handle {
  if (!Tensor.is(t)) throw typeError(`${op}: ${name} must be a Tensor, got ${describe(t)}`);
  if (t._h === null) throw new IgnisError('E_DISPOSED', `${op}: ${name} was disposed`);
  return t._h;
}

export function isTensor(x: unknown): x is Tensor {
  return Tensor.is(x);
}

export interface TensorOptions<D extends DType = DType> {
  shape?: number[];
  dtype?: D;
  device?: Device;
}

type TensorInput = ArrayLike<number> | NestedArray;

/** The dtype tensor() gives data when no dtype is asked for. */
export type DefaultDTypeOf<T> = T extends Int8Array ? 'i8' : T extends Int32Array ? 'i32' : 'f32';

/**
 * A tensor from a TypedArray, a nested array, a flat array plus `shape`, or a number.
 * Default dtype: i8 for Int8Array, i32 for Int32Array, f32 otherwise.
 */
export function tensor<T extends TensorInput, D extends DType = DefaultDTypeOf<T>>(data: T, opts?: TensorOptions<D>): Tensor<D> {
  const op = 'tensor';
  const o = v.options<TensorOptions>(op, opts, ['shape', 'dtype', 'device']);
  let flat: ArrayLike<number>;
  let inferred: number[];
  if (ArrayBuffer.isView(data)) {
    if (data instanceof DataView || typeof (data as unknown as { length?: unknown }).length !== 'number' || data instanceof BigInt64Array || data instanceof BigUint64Array)
      throw typeError(`${op}: data must be a numeric TypedArray, an array or a number, got ${describe(data)}`);
    flat = data as ArrayLike<number>;
    inferred = [flat.length];
  } else if (Array.isArray(data)) {
    ({ flat, shape: inferred } = flatten(data));
  } else if (typeof data === 'number') {
    flat = [data];
    inferred = [];
  } else {
    throw typeError(`${op}: data must be a TypedArray, an array or a number, got ${describe(data)}`);
  }
  const fallback: DType = data instanceof Int8Array ? 'i8' : data instanceof Int32Array ? 'i32' : 'f32';
  const dtype = v.dtype(op, o.dtype, fallback);
  const device = v.device(op, o.device);
  const shape = o.shape === undefined ? inferred : v.shape(op, o.shape);
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== flat.length)
    throw new IgnisError('E_SHAPE', `${op}: data has ${flat.length} elements but shape ${v.shapeStr(shape)} needs ${n}`);
  return new Tensor<D>(native().fromData(toSource(op, flat, dtype), dtype, shape, device), [shape.slice(), dtype, deviceName(device)]);
}

function flatten(data: NestedArray[]): { flat: number[]; shape: number[] } {
  const shape: number[] = [];
  let level: unknown = data;
  while (Array.isArray(level)) {
    // deeper than a tensor may be: refused before walking it (a walk would overflow the stack)
    if (shape.length === limits.maxRank)
      throw new IgnisError('E_SHAPE', `tensor: a nested array deeper than ${limits.maxRank} levels (the most dimensions a tensor has)`);
    shape.push(level.length);
    level = level[0];
  }
  const flat: number[] = [];
  const walk = (x: unknown, dim: number, where: string) => {
    if (dim === shape.length) {
      if (typeof x !== 'number') throw typeError(`tensor: element ${where} must be a number, got ${describe(x)}`);
      flat.push(x);
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[dim])
      throw new IgnisError('E_SHAPE', `tensor: nested array is ragged at ${where || 'the top'}: expected ${shape[dim]} items, got ${Array.isArray(x) ? x.length : describe(x)}`);
    for (let i = 0; i < x.length; i++) walk(x[i], dim + 1, `${where}[${i}]`);
  };
  walk(data, 0, '');
  return { flat, shape };
}

// The TypedArray handed to native: Float32Array for float dtypes (converted natively), Int8Array
// or Int32Array for the integer ones, after checking every value fits.
function toSource(op: string, flat: ArrayLike<number>, dtype: DType): Float32Array | Int8Array | Int32Array {
  // a view of a SharedArrayBuffer is copied (N-API reads only plain ArrayBuffers)
  if (ArrayBuffer.isView(flat) && flat.buffer instanceof SharedArrayBuffer) flat = Array.from(flat as ArrayLike<number>);
  if (isFloatDType(dtype)) return flat instanceof Float32Array ? flat : Float32Array.from(flat);
  const [lo, hi, Ctor] = dtype === 'i8' ? [-128, 127, Int8Array] : [-(2 ** 31), 2 ** 31 - 1, Int32Array];
  if (flat instanceof Ctor) return flat;
  const out = new Ctor(flat.length);
  for (let i = 0; i < flat.length; i++) {
    const x = flat[i];
    if (!Number.isInteger(x) || x < lo || x > hi)
      throw rangeError(`${op}: element ${i} (${x}) is not a whole number in the ${dtype} range [${lo}, ${hi}]`);
    out[i] = x;
  }
  return out;
}

export interface FillOptions<D extends DType = DType> {
  /** default f32 */
  dtype?: D;
  device?: Device;
}

/** A tensor of `shape` with every element `value` (f32 unless `dtype` is given). */
export function full<D extends DType = 'f32'>(shape: number[], value: number, opts?: FillOptions<D>): Tensor<D> {
  const op = 'full';
  const o = v.options<FillOptions>(op, opts, ['dtype', 'device']);
  const s = v.shape(op, shape);
  const dtype = v.dtype(op, o.dtype, 'f32');
  if (typeof value !== 'number') throw typeError(`${op}: value must be a number, got ${describe(value)}`);
  if (!isFloatDType(dtype) && !Number.isInteger(value))
    throw rangeError(`${op}: value ${value} is not a whole number, as ${dtype} needs`);
  const [lo, hi] = dtype === 'i8' ? [-128, 127] : dtype === 'i32' ? [-(2 ** 31), 2 ** 31 - 1] : [-Infinity, Infinity];
  if (value < lo || value > hi) throw rangeError(`${op}: value ${value} is outside the ${dtype} range [${lo}, ${hi}]`);
  const device = v.device(op, o.device);
  return new Tensor<D>(native().full(s, dtype, device, value), [s.slice(), dtype, deviceName(device)]);
}

/** full(shape, 0, opts) */
export function zeros<D extends DType = 'f32'>(shape: number[], opts?: FillOptions<D>): Tensor<D> {
  return full(shape, 0, opts);
}

export interface RandnOptions<D extends FloatDType = FloatDType> {
  seed?: number;
  /** default f32 */
  dtype?: D;
  device?: Device;
}

/** Standard normal samples; the same seed gives the same values on every machine. */
export function randn<D extends FloatDType = 'f32'>(shape: number[], opts?: RandnOptions<D>): Tensor<D> {
  const op = 'randn';
  const o = v.options<RandnOptions>(op, opts, ['seed', 'dtype', 'device']);
  const s = v.shape(op, shape);
  const dtype = v.dtype(op, o.dtype, 'f32');
  if (!isFloatDType(dtype)) throw new IgnisError('E_DTYPE', `${op}: dtype must be f32, f16 or bf16, got ${dtype}`);
  const seed = v.int(op, 'seed', o.seed, 0, Math.floor(Math.random() * 2 ** 32));
  const device = v.device(op, o.device);
  return new Tensor<D>(native().randn(s, dtype, device, seed), [s.slice(), dtype, deviceName(device)]);
}

export type { TensorData };
