// The eager ops. Each validates its arguments here (types, options, ranges), then makes one
// call into the native op table (callOp), which checks shapes and dtypes (naming both shapes),
// enqueues the kernel on the device's queue and returns the output with its meta at once.
import { describe, IgnisError, rangeError, typeError } from './errors';
import { DType } from './dtype';
import { KVCache } from './kvcache';
import { ACTIVATIONS, ActivationName } from './native-tables';
import { PackedWeight, packedHandle } from './packed';
import { QuantizedTensor, quantizedHandles } from './quant';
import { callOne, callOp, handle, Tensor } from './tensor';
import * as v from './validate';

export { ACTIVATIONS };
export type { ActivationName };

export interface MatmulOptions {
  transposeB?: boolean;
  bias?: Tensor;
  activation?: ActivationName;
  /** with a QuantizedTensor b, on the CPU: a's rows are quantized per group as b is
   * (max|a| / 127) and every product is an integer one (a decode step then streams the weight at
   * memory speed; more rows, with groups of a multiple of 32, run an AVX-512 VNNI integer GEMM
   * where the CPU has it). Default false (exact f32 a). */
  int8Activations?: boolean;
}

/**
 * a [..., M, K] @ b [..., K, N] (b [..., N, K] with transposeB), batch dims broadcast, plus an
 * optional bias [N] and activation fused into the kernel. With a QuantizedTensor b [N, K] it
 * computes a @ dequantize(b)^T, dequantizing inside the kernel; with a PackedWeight b (from
 * packWeight) it computes a @ B without packing B again.
 */
export function matmul(a: Tensor, b: Tensor | QuantizedTensor | PackedWeight, opts?: MatmulOptions): Tensor {
  const op = 'matmul';
  const ha = handle(op, 'a', a);
  const o = v.options<MatmulOptions>(op, opts, ['transposeB', 'bias', 'activation', 'int8Activations']);
  const bias = o.bias === undefined ? null : handle(op, 'bias', o.bias);
  const act = v.oneOf(op, 'activation', o.activation, [...ACTIVATIONS, 'none'] as const, 'none');
  const int8Activations = v.bool(op, 'int8Activations', o.int8Activations, false);
  if (b instanceof QuantizedTensor) {
    if (o.transposeB !== undefined)
      throw typeError(`${op}: transposeB does not apply to a QuantizedTensor (it is always [N, K])`);
    const [q, s] = quantizedHandles(op, 'b', b);
    return callOne('matmul_q', [ha, q, s, bias], { groupSize: b.groupSize, activation: act, int8Activations });
  }
  if (int8Activations) throw typeError(`${op}: int8Activations applies to a QuantizedTensor b only`);
  if (b instanceof PackedWeight) {
    if (o.transposeB !== undefined)
      throw typeError(`${op}: transposeB does not apply to a PackedWeight (packWeight fixed the layout)`);
    const hp = packedHandle(op, 'b', b);
    return callOne('matmul_packed', [ha, hp, bias], { N: b.shape[1], activation: act });
  }
  const hb = handle(op, 'b', b);
  const transposeB = v.bool(op, 'transposeB', o.transposeB, false);
  return callOne('matmul', [ha, hb, bias], { transposeB, activation: act });
}

export interface AttentionOptions {
  causal?: boolean;
  scale?: number;
  kvCache?: KVCache;
  position?: number;
  /** causal only: the query at position p sees keys (p - window, p], a sliding window; 0 (the
   * default) none. The CPU computes it (keys before the window are skipped, not masked). */
  window?: number;
  /** > 0: each score s (scale q.k) becomes softcap tanh(s / softcap) before the softmax
   * (Gemma 2's attn_logit_softcapping); 0 (the default) none. The CPU computes it. */
  softcap?: number;
}

/**
 * softmax(scale * q k^T) v per head, layout [batch, seq, heads, headDim]; q's heads a multiple of
 * k's (grouped-query). With kvCache, k and v are written at `position` (default: cache.length)
 * and q attends over every cached row up to position + seq.
 */
export function attention(q: Tensor, k: Tensor, vt: Tensor, opts?: AttentionOptions): Tensor {
  const op = 'attention';
  const hq = handle(op, 'q', q);
  const hk = handle(op, 'k', k);
  const hv = handle(op, 'v', vt);
  const o = v.options<AttentionOptions>(op, opts, ['causal', 'scale', 'kvCache', 'position', 'window', 'softcap']);
  const causal = v.bool(op, 'causal', o.causal, false);
  const scale = v.number(op, 'scale', o.scale, 0, (x) => x > 0, 'a positive number');
  const window = v.int(op, 'window', o.window, 0, 0);
  const softcap = v.number(op, 'softcap', o.softcap, 0, (x) => x >= 0, 'a number >= 0');
  if (q.rank !== 4 || k.rank !== 4)
    throw new IgnisError('E_SHAPE', `${op}: q ${v.shapeStr(q.shape)} and k ${v.shapeStr(k.shape)} must both be [batch, seq, heads, headDim]`);
  if (o.kvCache === undefined) {
    if (o.position !== undefined) throw typeError(`${op}: position needs a kvCache`);
    // q attends over all of k, its rows being k's last (kvLen, qPos0 -1: settled natively)
    return callOne(op, [hq, hk, hv], { causal, scale, kvLen: -1, qPos0: -1, window, softcap });
  }
  const cache = o.kvCache;
  if (!(cache instanceof KVCache)) throw typeError(`${op}: kvCache must be a KVCache from ignis.kvCache(), got ${describe(cache)}`);
  const position = v.int(op, 'position', o.position, 0, cache.length);
  const seq = k.shape[1];
  if (position > cache.length)
    throw rangeError(`${op}: position ${position} is past the cache's ${cache.length} written rows`);
  if (position + seq > cache.maxSeq)
    throw rangeError(`${op}: writing ${seq} rows at position ${position} overflows the cache's maxSeq ${cache.maxSeq}`);
  if (q.shape[1] !== seq)
    throw new IgnisError('E_SHAPE', `${op}: with a kvCache q ${v.shapeStr(q.shape)} and k ${v.shapeStr(k.shape)} must have the same seq`);
  const ck = handle(op, 'kvCache.k', cache.k);
  const cv = handle(op, 'kvCache.v', cache.v);
  callOp('kv_append', [ck, cv, hk, hv], { position });
  cache.length = position + seq;
  return callOne(op, [hq, ck, cv], { causal, scale, kvLen: position + seq, qPos0: position, window, softcap });
}

export interface NormOptions {
  eps?: number;
}

/** x / sqrt(mean(x^2) + eps) * weight, over the last dim. */
export function rmsnorm(x: Tensor, weight: Tensor, opts?: NormOptions): Tensor {
  const op = 'rmsnorm';
  const hx = handle(op, 'x', x);
  const hw = handle(op, 'weight', weight);
  const o = v.options<NormOptions>(op, opts, ['eps']);
  return callOne(op, [hx, hw], { eps: v.number(op, 'eps', o.eps, 1e-5, (e) => e >= 0, 'a number >= 0') });
}

/** (x - mean) / sqrt(var + eps) * weight + bias, over the last dim. */
export function layernorm(x: Tensor, weight: Tensor, bias: Tensor, opts?: NormOptions): Tensor {
  const op = 'layernorm';
  const hx = handle(op, 'x', x);
  const hw = handle(op, 'weight', weight);
  const hb = handle(op, 'bias', bias);
  const o = v.options<NormOptions>(op, opts, ['eps']);
  return callOne(op, [hx, hw, hb], { eps: v.number(op, 'eps', o.eps, 1e-5, (e) => e >= 0, 'a number >= 0') });
}

function activation(name: ActivationName, x: Tensor): Tensor {
  return callOne('activation', [handle(name, 'x', x)], { activation: name });
}
/** gelu, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
export const gelu = (x: Tensor): Tensor => activation('gelu', x);
/** x * sigmoid(x) */
export const silu = (x: Tensor): Tensor => activation('silu', x);
export const relu = (x: Tensor): Tensor => activation('relu', x);
/** tanh(x) */
export const tanh = (x: Tensor): Tensor => activation('tanh', x);

export interface SoftmaxOptions {
  axis?: number;
}

export function softmax(x: Tensor, opts?: SoftmaxOptions): Tensor {
  const op = 'softmax';
  const hx = handle(op, 'x', x);
  const o = v.options<SoftmaxOptions>(op, opts, ['axis']);
  const axis = v.int(op, 'axis', o.axis, -Infinity, -1);
  if (axis < -x.rank || axis >= x.rank)
    throw rangeError(`${op}: axis ${axis} is out of range for x ${v.shapeStr(x.shape)}`);
  return callOne(op, [hx], { axis: axis < 0 ? axis + x.rank : axis });
}

/**
 * i32 x.shape[:-1]: the index of the largest element along x's last axis, the first on ties;
 * NaN counts as above every number (numpy's rule). Greedy decoding: argmax of the logits.
 */
export function argmax(x: Tensor): Tensor<'i32'> {
  const op = 'argmax';
  const hx = handle(op, 'x', x);
  if (x.rank < 1 || x.shape[x.rank - 1] === 0) throw new IgnisError('E_SHAPE', `${op}: x ${v.shapeStr(x.shape)} needs a non-empty last axis`);
  return callOne(op, [hx], {}) as Tensor<'i32'>;
}

export interface SampleOptions {
  /** > 0; default 1 */
  temperature?: number;
  /** keep the topK most likely ids (default: all) */
  topK?: number;
  /** then the fewest most likely ids whose probability reaches topP (default 1: all) */
  topP?: number;
  /** the draw is a hash of (seed, counter, row): the same three give the same token */
  seed?: number;
  counter?: number;
}

/**
 * i32 logits.shape[:-1]: a token drawn from each last-axis row of softmax(logits / temperature),
 * kept to topK and the topP nucleus (ranked by logit, ties to the lower id). CPU only. Queued
 * like any op, so a decode loop can feed it straight to the next step without reading logits.
 */
export function sample(logits: Tensor, opts?: SampleOptions): Tensor<'i32'> {
  const op = 'sample';
  const h = handle(op, 'logits', logits);
  const o = v.options<SampleOptions>(op, opts, ['temperature', 'topK', 'topP', 'seed', 'counter']);
  const temperature = v.number(op, 'temperature', o.temperature, 1, (t) => t > 0 && Number.isFinite(t), 'a finite number > 0');
  const topK = o.topK === undefined ? 0 : v.int(op, 'topK', o.topK, 1);
  const topP = v.number(op, 'topP', o.topP, 1, (p) => p > 0 && p <= 1, 'a number in (0, 1]');
  const seed = o.seed === undefined ? 0 : v.int(op, 'seed', o.seed, 0);
  const counter = o.counter === undefined ? 0 : v.int(op, 'counter', o.counter, 0);
  if (logits.rank < 1 || logits.shape[logits.rank - 1] === 0) throw new IgnisError('E_SHAPE', `${op}: logits ${v.shapeStr(logits.shape)} need a non-empty last axis`);
  return callOne(op, [h], { temperature, topK, topP, seed, counter }) as Tensor<'i32'>;
}

export interface RopeOptions {
  position?: number;
  /** i32 [batch, seq]: each token's own position, in place of position + its index (a batch of
   * sequences at different points); CPU only, for now */
  positions?: Tensor;
  /** the base of the default frequencies theta^(-2i/headDim); default 10000 */
  theta?: number;
  /** headDim/2 inverse frequencies (transformers' inv_freq, e.g. of a scaled RoPE) in place of
   * theta's; at most 256 */
  freqs?: readonly number[] | Float64Array;
  /** cos and sin are multiplied by it (transformers' attention_scaling); default 1 */
  scale?: number;
}

/** Rotary position embedding, rotate-half (GPT-NeoX / Llama) form, on x [batch, seq, heads, headDim]. */
export function rope(x: Tensor, opts?: RopeOptions): Tensor {
  const op = 'rope';
  const hx = handle(op, 'x', x);
  const o = v.options<RopeOptions>(op, opts, ['position', 'positions', 'theta', 'freqs', 'scale']);
  const position = v.int(op, 'position', o.position, 0, 0);
  const theta = v.number(op, 'theta', o.theta, 10000, (t) => t > 0, 'a positive number');
  const freqs = v.ropeFreqs(op, o.freqs);
  const scale = v.number(op, 'scale', o.scale, 1, Number.isFinite, 'a finite number');
  if (o.positions !== undefined) {
    if (o.position !== undefined) throw typeError(`${op}: takes position or positions, not both`);
    return callOne(op, [hx, handle(op, 'positions', o.positions)], { position, theta, freqs, scale });
  }
  return callOne(op, [hx], { position, theta, freqs, scale });
}

/** table [V, D] rows picked by ids (i32 [...]) -> [..., D]. An id outside [0, V) fails the read. */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  const op = 'embedding';
  return callOne(op, [handle(op, 'ids', ids), handle(op, 'table', table)], {});
}

/** a + b with numpy broadcasting. */
export function add(a: Tensor, b: Tensor): Tensor {
  return callOne('binary', [handle('add', 'a', a), handle('add', 'b', b)], { op: 'add' });
}
/** a * b with numpy broadcasting. */
export function mul(a: Tensor, b: Tensor): Tensor {
  return callOne('binary', [handle('mul', 'a', a), handle('mul', 'b', b)], { op: 'mul' });
}

/** x converted to another float dtype. */
export function cast<D extends DType>(x: Tensor, dtype: D): Tensor<D> {
  const op = 'cast';
  const hx = handle(op, 'x', x);
  if (dtype === undefined) throw typeError(`${op}: dtype is required`);
  return callOne(op, [hx], { dtype: v.dtype(op, dtype, 'f32') }) as Tensor<D>;
}
