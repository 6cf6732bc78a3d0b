// KVCache: preallocated key and value tensors [batch, maxSeq, heads, headDim] that attention
// appends to, and the count of rows written so far.
import './dispose';
import { native } from './binding';
import { IgnisError, typeError } from './errors';
import { FloatDType, isFloatDType } from './dtype';
import { full, Tensor } from './tensor';
import type { Device } from './device';
import * as v from './validate';

export interface KVCacheOptions {
  batch: number;
  maxSeq: number;
  heads: number;
  headDim: number;
  /** default f32 */
  dtype?: FloatDType;
  device?: Device;
}

/** The key and value tensors of a KV cache (KVCache, PagedKVCache), disposed together. */
export class KVPair {
  readonly k: Tensor;
  readonly v: Tensor;
  constructor(k: Tensor, val: Tensor) {
    this.k = k;
    this.v = val;
  }
  /** The error a failed write left on k and v, cleared in queue order. */
  protected clearErrors(): void {
    if (this.k._h && this.v._h) native().clearErrors([this.k._h, this.v._h]);
  }
  dispose(): void {
    this.k.dispose();
    this.v.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

export class KVCache extends KVPair {
  readonly maxSeq: number;
  /** Rows [0, length) hold keys and values; attention appends at `length` unless told where. */
  length = 0;

  /** @internal use ignis.kvCache() */
  constructor(k: Tensor, val: Tensor) {
    super(k, val);
    this.maxSeq = k.shape[1];
  }
  get shape(): readonly number[] {
    return this.k.shape;
  }
  /**
   * Forget the cached rows (the memory is kept for the next sequence). An append that failed (a
   * k or v from a failed op) leaves the cache failed, so attention over it rejects with that
   * error rather than read rows nobody wrote; reset() clears that too, in queue order: ops
   * queued before it still see the error, ops after it see an empty cache.
   */
  reset(): void {
    this.length = 0;
    this.clearErrors();
  }
}

export function kvCache(opts: KVCacheOptions): KVCache {
  const op = 'kvCache';
  if (opts === undefined) throw typeError(`${op}: options { batch, maxSeq, heads, headDim } are required`);
  const o = v.options<KVCacheOptions>(op, opts, ['batch', 'maxSeq', 'heads', 'headDim', 'dtype', 'device']);
  const shape = [
    v.int(op, 'batch', o.batch, 1),
    v.int(op, 'maxSeq', o.maxSeq, 1),
    v.int(op, 'heads', o.heads, 1),
    v.int(op, 'headDim', o.headDim, 1),
  ];
  const dtype = v.dtype(op, o.dtype, 'f32');
  if (!isFloatDType(dtype)) throw new IgnisError('E_DTYPE', `${op}: dtype must be f32, f16 or bf16, got ${dtype}`);
  const device = v.device(op, o.device);
  // Zero-filled, so rows nobody wrote are finite if a caller ever reads them.
  return new KVCache(full(shape, 0, { dtype, device }), full(shape, 0, { dtype, device }));
}
