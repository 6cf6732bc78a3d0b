// PagedKVCache: key and value pools of fixed-size blocks [blocks, blockSize, heads, headDim], the
// layout of vLLM's paged attention. A sequence's rows live in the blocks its block table lists,
// in order, so sequences of any lengths share one pool, a finished one frees its blocks at once,
// and sequences with a common prefix can share its blocks. kvWrite puts new rows at slots
// (block * blockSize + offset); pagedAttention runs each query row against its own sequence.
import './dispose';
import { IgnisError, typeError } from './errors';
import { KVPair } from './kvcache';
import { FloatDType, isFloatDType } from './dtype';
import { callOne, callOp, full, handle, Tensor } from './tensor';
import type { Device } from './device';
import * as v from './validate';

export interface PagedKVCacheOptions {
  blocks: number;
  blockSize: number;
  heads: number;
  headDim: number;
  /** default f32 */
  dtype?: FloatDType;
  device?: Device;
}

export class PagedKVCache extends KVPair {
  readonly blocks: number;
  readonly blockSize: number;

  /** @internal use ignis.pagedKvCache() */
  constructor(k: Tensor, val: Tensor) {
    super(k, val);
    this.blocks = k.shape[0];
    this.blockSize = k.shape[1];
  }
  get shape(): readonly number[] {
    return this.k.shape;
  }
  /** Clears the error a failed kvWrite left on the pools (in queue order; the rows stay). */
  clearError(): void {
    this.clearErrors();
  }
}

/** Zero-filled pools [blocks, blockSize, heads, headDim] for k and v. */
export function pagedKvCache(opts: PagedKVCacheOptions): PagedKVCache {
  const op = 'pagedKvCache';
  if (opts === undefined) throw typeError(`${op}: options { blocks, blockSize, heads, headDim } are required`);
  const o = v.options<PagedKVCacheOptions>(op, opts, ['blocks', 'blockSize', 'heads', 'headDim', 'dtype', 'device']);
  const shape = [v.int(op, 'blocks', o.blocks, 1), v.int(op, 'blockSize', o.blockSize, 1), v.int(op, 'heads', o.heads, 1), v.int(op, 'headDim', o.headDim, 1)];
  const dtype = v.dtype(op, o.dtype, 'f32');
  if (!isFloatDType(dtype)) throw new IgnisError('E_DTYPE', `${op}: dtype must be f32, f16 or bf16, got ${dtype}`);
  const device = v.device(op, o.device);
  return new PagedKVCache(full(shape, 0, { dtype, device }), full(shape, 0, { dtype, device }));
}

function pools(op: string, cache: PagedKVCache) {
  if (!(cache instanceof PagedKVCache)) throw typeError(`${op}: cache must be a PagedKVCache (ignis.pagedKvCache)`);
  return [handle(op, 'cache.k', cache.k), handle(op, 'cache.v', cache.v)] as const;
}

/**
 * Writes rows k, v [T, heads, headDim] into the cache at slots (i32 [T]: block * blockSize +
 * offset; a slot < 0 skips its row). A slot past the pool fails the write (E_INDEX, at the read
 * of what depends on it) and leaves the pools unwritten and failed until clearError().
 */
export function kvWrite(cache: PagedKVCache, k: Tensor, val: Tensor, slots: Tensor): void {
  const op = 'kvWrite';
  const [ck, cv] = pools(op, cache);
  callOp('kv_write', [ck, cv, handle(op, 'k', k), handle(op, 'v', val), handle(op, 'slots', slots)], {});
}

export interface PagedAttentionOptions {
  /** softmax(scale q k^T); default 1/sqrt(headDim) */
  scale?: number;
  /** a row at position p sees its sequence's keys (p - window, p] only; 0 (default): all of them */
  window?: number;
  /** each score s becomes softcap tanh(s / softcap) (Gemma 2); 0 (default): none */
  softcap?: number;
}

/**
 * q [T, heads, headDim], each row attending to its own sequence's rows [0, position] of the
 * cache: blockTables i32 [sequences, maxBlocks] (row j of a sequence is in block
 * blockTables[s][j / blockSize]), rows i32 [T, 2] (each query row's sequence, -1 for a padding
 * row, which gives zeros; and its position). q's heads are a multiple of the cache's (grouped
 * queries). A sequence, position or block outside its bounds fails the output with E_INDEX.
 * CPU only, for now.
 */
export function pagedAttention(q: Tensor, cache: PagedKVCache, blockTables: Tensor, rows: Tensor, opts?: PagedAttentionOptions): Tensor {
  const op = 'pagedAttention';
  const hq = handle(op, 'q', q);
  const [ck, cv] = pools(op, cache);
  const o = v.options<PagedAttentionOptions>(op, opts, ['scale', 'window', 'softcap']);
  const scale = v.number(op, 'scale', o.scale, 0, (s) => s > 0 && Number.isFinite(s), 'a positive finite number');
  const window = v.int(op, 'window', o.window, 0, 0);
  const softcap = v.number(op, 'softcap', o.softcap, 0, (s) => s >= 0 && Number.isFinite(s), 'a finite number >= 0');
  return callOne('paged_attention', [hq, ck, cv, handle(op, 'blockTables', blockTables), handle(op, 'rows', rows)], { scale, window, softcap });
}
