// Malformed calls: a few hundred generated cases (for each op: wrong shapes, wrong or mixed
// dtypes, disposed inputs, non-tensor arguments, bad options, bad sizes, unknown devices, kv
// cache overflow), each checked for its error class and code, and for E_SHAPE that the message
// spells the shapes. Then the process must still compute correctly, and a kernel-time error
// (embedding with an id out of range) must surface once and leave the device usable.

import { describe, expect, it } from 'vitest';
import * as ignis from '../lib/index';
import { check, cudaAvailable, devices, expectThrows, forDevices, input, testCase, type ErrorKind } from './helpers';
import { matmul as refMatmul } from './reference/matmul';
import { embedding as refEmbedding } from './reference/embedding';

const FILE = 'test/errors.test.ts';

type T = ReturnType<typeof ignis.tensor>;

interface Bad {
  label: string;
  fn: () => unknown;
  kind: ErrorKind;
  code: string;
  /** shapes the message must spell, like [2, 3] */
  shapes?: number[][];
}

const NON_TENSORS: [string, unknown][] = [
  ['a string', 'x'],
  ['null', null],
  ['undefined', undefined],
  ['a number', 3],
  ['a plain object', {}],
  ['a tensor-like object', { shape: [2, 3], dtype: 'f32', device: 'cpu' }],
  ['a Float32Array', new Float32Array(6)],
];

const f = (shape: number[], dtype: 'f32' | 'f16' | 'bf16' = 'f32', device = 'cpu'): T =>
  ignis.full(shape, 0.5, { dtype, device });
const ids = (values: number[], device = 'cpu'): T => ignis.tensor(Int32Array.from(values), { device });
const i32 = (shape: number[]): T => ignis.full(shape, 1, { dtype: 'i32' });

/** Every op with valid arguments, as a function of its tensor arguments. */
interface OpSig {
  name: string;
  args: () => T[];
  call: (...ts: T[]) => unknown;
}
const OPS: OpSig[] = [
  { name: 'matmul', args: () => [f([2, 3]), f([3, 4])], call: (a, b) => ignis.matmul(a, b) },
  { name: 'matmul bias', args: () => [f([2, 3]), f([3, 4]), f([4])], call: (a, b, c) => ignis.matmul(a, b, { bias: c }) },
  { name: 'quantize', args: () => [f([4, 64])], call: (w) => ignis.quantize(w, { groupSize: 32 }) },
  { name: 'attention', args: () => [f([1, 3, 4, 8]), f([1, 3, 2, 8]), f([1, 3, 2, 8])], call: (q, k, v) => ignis.attention(q, k, v) },
  { name: 'rmsnorm', args: () => [f([2, 8]), f([8])], call: (x, w) => ignis.rmsnorm(x, w) },
  { name: 'layernorm', args: () => [f([2, 8]), f([8]), f([8])], call: (x, w, b) => ignis.layernorm(x, w, b) },
  { name: 'gelu', args: () => [f([5])], call: (x) => ignis.gelu(x) },
  { name: 'silu', args: () => [f([5])], call: (x) => ignis.silu(x) },
  { name: 'relu', args: () => [f([5])], call: (x) => ignis.relu(x) },
  { name: 'softmax', args: () => [f([2, 5])], call: (x) => ignis.softmax(x) },
  { name: 'rope', args: () => [f([1, 2, 2, 8])], call: (x) => ignis.rope(x) },
  { name: 'embedding', args: () => [ids([0, 1]), f([4, 8])], call: (i, t) => ignis.embedding(i, t) },
  { name: 'add', args: () => [f([2, 3]), f([3])], call: (a, b) => ignis.add(a, b) },
  { name: 'mul', args: () => [f([2, 3]), f([3])], call: (a, b) => ignis.mul(a, b) },
  { name: 'cast', args: () => [f([4])], call: (x) => ignis.cast(x, 'f16') },
];

function buildCases(): Bad[] {
  const cases: Bad[] = [];
  const add = (label: string, kind: ErrorKind, code: string, fn: () => unknown, shapes?: number[][]) =>
    cases.push({ label, kind, code, fn, shapes });

  // --- every tensor argument of every op: non-tensors (E_TYPE) and disposed tensors ---------------
  for (const op of OPS) {
    const arity = op.args().length;
    for (let pos = 0; pos < arity; pos++) {
      add(`${op.name}: argument ${pos} disposed`, 'IgnisError', 'E_DISPOSED', () => {
        const a = op.args();
        a[pos].dispose();
        return op.call(...a);
      });
      for (const [what, val] of NON_TENSORS) {
        // an optional tensor (the bias) may be left undefined
        if (op.name === 'matmul bias' && pos === 2 && val === undefined) continue;
        add(`${op.name}: argument ${pos} is ${what}`, 'TypeError', 'E_TYPE', () => {
          const a = op.args() as unknown[];
          a[pos] = val;
          return op.call(...(a as T[]));
        });
      }
    }
  }

  // --- matmul ---------------------------------------------------------------------------------
  add('matmul: K mismatch', 'IgnisError', 'E_SHAPE', () => ignis.matmul(f([2, 3]), f([4, 5])), [[2, 3], [4, 5]]);
  add('matmul: K mismatch, awkward', 'IgnisError', 'E_SHAPE', () => ignis.matmul(f([7, 33]), f([32, 129])), [[7, 33], [32, 129]]);
  add('matmul: transposeB K mismatch', 'IgnisError', 'E_SHAPE', () => ignis.matmul(f([2, 3]), f([5, 4]), { transposeB: true }), [[2, 3], [5, 4]]);
  add('matmul: batch mismatch', 'IgnisError', 'E_SHAPE', () => ignis.matmul(f([2, 3, 4]), f([3, 4, 5])), [[2, 3, 4], [3, 4, 5]]);
  add('matmul: batch mismatch 4-D', 'IgnisError', 'E_SHAPE', () => ignis.matmul(f([2, 3, 2, 4]), f([4, 4, 5])), [[2, 3, 2, 4], [4, 4, 5]]);
  add('matmul: a 1-D', 'IgnisError', 'E_SHAPE', () => ignis.matmul(f([3]), f([3, 4])), [[3]]);
  add('matmul: b 1-D', 'IgnisError', 'E_SHAPE', () => ignis.matmul(f([2, 3]), f([3])), [[3]]);
  add('matmul: bias wrong length', 'IgnisError', 'E_SHAPE', () => ignis.matmul(f([2, 3]), f([3, 4]), { bias: f([5]) }), [[5]]);
  add('matmul: bias 2-D', 'IgnisError', 'E_SHAPE', () => ignis.matmul(f([2, 3]), f([3, 4]), { bias: f([2, 4]) }), [[2, 4]]);
  // (an f32 a with an f16/bf16 b is a 16-bit weight under f32 activations: computed, not refused)
  for (const [da, db] of [['f16', 'bf16'], ['bf16', 'f16'], ['bf16', 'f32'], ['f16', 'f32']] as const)
    add(`matmul: mixed dtypes ${da} ${db}`, 'IgnisError', 'E_DTYPE', () => ignis.matmul(f([2, 3], da), f([3, 4], db)));
  add('matmul: f32 x bf16 with a bf16 bias (the bias is the output\'s f32)', 'IgnisError', 'E_DTYPE', () => ignis.matmul(f([2, 3]), f([3, 4], 'bf16'), { bias: f([4], 'bf16') }));
  add('matmul: bias dtype differs', 'IgnisError', 'E_DTYPE', () => ignis.matmul(f([2, 3]), f([3, 4]), { bias: f([4], 'f16') }));
  add('matmul: i32 inputs', 'IgnisError', 'E_DTYPE', () => ignis.matmul(i32([2, 3]), i32([3, 4])));
  add('matmul: i8 input', 'IgnisError', 'E_DTYPE', () => ignis.matmul(ignis.zeros([2, 3], { dtype: 'i8' }), ignis.zeros([3, 4], { dtype: 'i8' })));
  for (const act of ['mish', '', 'GELU', 'sigmoid'])
    add(`matmul: unknown activation '${act}'`, 'RangeError', 'E_RANGE', () => ignis.matmul(f([2, 3]), f([3, 4]), { activation: act as 'gelu' }));
  add('matmul: activation a number', 'TypeError', 'E_TYPE', () => ignis.matmul(f([2, 3]), f([3, 4]), { activation: 1 as unknown as 'gelu' }));
  for (const [what, o] of [['a number', 5], ['a string', 'gelu'], ['true', true], ['an array', [1]]] as [string, unknown][])
    add(`matmul: options ${what}`, 'TypeError', 'E_TYPE', () => ignis.matmul(f([2, 3]), f([3, 4]), o as object));
  add('matmul: transposeB a string', 'TypeError', 'E_TYPE', () => ignis.matmul(f([2, 3]), f([4, 3]), { transposeB: 'yes' as unknown as boolean }));
  add('matmul: unknown option', 'TypeError', 'E_TYPE', () => ignis.matmul(f([2, 3]), f([3, 4]), { transpose: true } as object));

  // --- quantize / dequantize / qmatmul --------------------------------------------------------
  for (const [K, g] of [[96, 64], [96, 48], [64, 128], [160, 128], [64, 16], [128, 96], [64, 33]] as [number, number][])
    add(`quantize: K ${K} groupSize ${g}`, 'RangeError', 'E_RANGE', () => ignis.quantize(f([4, K]), { groupSize: g }));
  for (const g of [0, -32, NaN, 32.5, Infinity])
    add(`quantize: groupSize ${g}`, 'RangeError', 'E_RANGE', () => ignis.quantize(f([4, 64]), { groupSize: g }));
  add("quantize: groupSize '32'", 'TypeError', 'E_TYPE', () => ignis.quantize(f([4, 64]), { groupSize: '32' as unknown as number }));
  add('quantize: options a number', 'TypeError', 'E_TYPE', () => ignis.quantize(f([4, 64]), 32 as unknown as { groupSize: number }));
  add('quantize: w 1-D', 'IgnisError', 'E_SHAPE', () => ignis.quantize(f([64]), { groupSize: 32 }), [[64]]);
  add('quantize: w 3-D', 'IgnisError', 'E_SHAPE', () => ignis.quantize(f([2, 4, 64]), { groupSize: 32 }), [[2, 4, 64]]);
  add('quantize: w i32', 'IgnisError', 'E_DTYPE', () => ignis.quantize(i32([4, 64]), { groupSize: 32 }));
  const qt = () => ignis.quantize(f([8, 64]), { groupSize: 32 });
  add('qmatmul: K mismatch', 'IgnisError', 'E_SHAPE', () => ignis.matmul(f([2, 32]), qt()), [[2, 32], [8, 64]]);
  add('qmatmul: K mismatch batched', 'IgnisError', 'E_SHAPE', () => ignis.matmul(f([3, 2, 65]), qt()), [[3, 2, 65], [8, 64]]);
  add('qmatmul: bias wrong length', 'IgnisError', 'E_SHAPE', () => ignis.matmul(f([2, 64]), qt(), { bias: f([7]) }), [[7]]);
  add('qmatmul: x i32', 'IgnisError', 'E_DTYPE', () => ignis.matmul(i32([2, 64]), qt()));
  add('qmatmul: bias dtype differs from x', 'IgnisError', 'E_DTYPE', () => ignis.matmul(f([2, 64], 'bf16'), qt(), { bias: f([8], 'f32') }));
  add('qmatmul: unknown activation', 'RangeError', 'E_RANGE', () => ignis.matmul(f([2, 64]), qt(), { activation: 'swish' as 'silu' }));
  add('qmatmul: disposed QuantizedTensor', 'IgnisError', 'E_DISPOSED', () => {
    const w = qt();
    w.dispose();
    return ignis.matmul(f([2, 64]), w);
  });
  add('dequantize: disposed QuantizedTensor', 'IgnisError', 'E_DISPOSED', () => {
    const w = qt();
    w.dispose();
    return ignis.dequantize(w);
  });
  for (const [what, val] of NON_TENSORS)
    add(`dequantize: argument is ${what}`, 'TypeError', 'E_TYPE', () => ignis.dequantize(val as ReturnType<typeof qt>));
  add('dequantize: a plain Tensor', 'TypeError', 'E_TYPE', () => ignis.dequantize(f([8, 64]) as unknown as ReturnType<typeof qt>));
  add('dequantize: unknown dtype', 'IgnisError', 'E_DTYPE', () => ignis.dequantize(qt(), { dtype: 'f64' as 'f32' }));
  add('dequantize: dtype i8', 'IgnisError', 'E_DTYPE', () => ignis.dequantize(qt(), { dtype: 'i8' as 'f32' }));
  add('dequantize: options a string', 'TypeError', 'E_TYPE', () => ignis.dequantize(qt(), 'f16' as unknown as { dtype: 'f16' }));

  // --- attention -------------------------------------------------------------------------------
  const q4 = () => f([1, 3, 4, 8]);
  const kv2 = () => f([1, 3, 2, 8]);
  add('attention: q heads not a multiple of k heads', 'IgnisError', 'E_SHAPE', () => ignis.attention(q4(), f([1, 3, 3, 8]), f([1, 3, 3, 8])), [[1, 3, 4, 8], [1, 3, 3, 8]]);
  add('attention: k heads > q heads', 'IgnisError', 'E_SHAPE', () => ignis.attention(f([1, 3, 2, 8]), f([1, 3, 4, 8]), f([1, 3, 4, 8])), [[1, 3, 2, 8], [1, 3, 4, 8]]);
  add('attention: headDim mismatch', 'IgnisError', 'E_SHAPE', () => ignis.attention(q4(), f([1, 3, 2, 16]), f([1, 3, 2, 16])), [[1, 3, 4, 8], [1, 3, 2, 16]]);
  add('attention: batch mismatch', 'IgnisError', 'E_SHAPE', () => ignis.attention(f([2, 3, 4, 8]), kv2(), kv2()), [[2, 3, 4, 8], [1, 3, 2, 8]]);
  add('attention: k and v differ in seq', 'IgnisError', 'E_SHAPE', () => ignis.attention(q4(), kv2(), f([1, 4, 2, 8])), [[1, 3, 2, 8], [1, 4, 2, 8]]);
  add('attention: k and v differ in heads', 'IgnisError', 'E_SHAPE', () => ignis.attention(q4(), kv2(), f([1, 3, 1, 8])), [[1, 3, 2, 8], [1, 3, 1, 8]]);
  add('attention: q 3-D', 'IgnisError', 'E_SHAPE', () => ignis.attention(f([3, 4, 8]), kv2(), kv2()), [[3, 4, 8]]);
  add('attention: k 5-D', 'IgnisError', 'E_SHAPE', () => ignis.attention(q4(), f([1, 1, 3, 2, 8]), f([1, 1, 3, 2, 8])), [[1, 1, 3, 2, 8]]);
  add('attention: causal with more queries than keys', 'IgnisError', 'E_SHAPE', () => ignis.attention(f([1, 5, 4, 8]), kv2(), kv2(), { causal: true }), [[1, 5, 4, 8], [1, 3, 2, 8]]);
  add('attention: q f16, k f32', 'IgnisError', 'E_DTYPE', () => ignis.attention(f([1, 3, 4, 8], 'f16'), kv2(), kv2()));
  add('attention: v bf16', 'IgnisError', 'E_DTYPE', () => ignis.attention(q4(), kv2(), f([1, 3, 2, 8], 'bf16')));
  add('attention: i32 q, k, v', 'IgnisError', 'E_DTYPE', () => ignis.attention(i32([1, 3, 4, 8]), i32([1, 3, 2, 8]), i32([1, 3, 2, 8])));
  for (const s of [NaN, -1, 0, Infinity])
    add(`attention: scale ${s}`, 'RangeError', 'E_RANGE', () => ignis.attention(q4(), kv2(), kv2(), { scale: s }));
  add("attention: scale '1'", 'TypeError', 'E_TYPE', () => ignis.attention(q4(), kv2(), kv2(), { scale: '1' as unknown as number }));
  add('attention: causal a string', 'TypeError', 'E_TYPE', () => ignis.attention(q4(), kv2(), kv2(), { causal: 'yes' as unknown as boolean }));
  add('attention: options true', 'TypeError', 'E_TYPE', () => ignis.attention(q4(), kv2(), kv2(), true as unknown as object));
  add('attention: kvCache not a KVCache', 'TypeError', 'E_TYPE', () => ignis.attention(q4(), kv2(), kv2(), { kvCache: {} as ReturnType<typeof ignis.kvCache> }));

  // --- kv cache ---------------------------------------------------------------------------------
  const cache = (maxSeq = 8, heads = 2, headDim = 8, dtype: 'f32' | 'f16' = 'f32') => ignis.kvCache({ batch: 1, maxSeq, heads, headDim, dtype });
  const step = (c: ReturnType<typeof cache>, seq: number, position?: number) => {
    const o = position === undefined ? { kvCache: c, causal: true } : { kvCache: c, causal: true, position };
    return ignis.attention(f([1, seq, 4, 8]), f([1, seq, 2, 8]), f([1, seq, 2, 8]), o);
  };
  add('kvCache: prefill longer than maxSeq', 'RangeError', 'E_RANGE', () => step(cache(8), 9));
  add('kvCache: overflow after prefill', 'RangeError', 'E_RANGE', () => {
    const c = cache(8);
    step(c, 6);
    return step(c, 3);
  });
  add('kvCache: decode one past the end', 'RangeError', 'E_RANGE', () => {
    const c = cache(4);
    step(c, 4);
    return step(c, 1);
  });
  add('kvCache: explicit position overflows', 'RangeError', 'E_RANGE', () => {
    const c = cache(8);
    step(c, 7);
    return step(c, 2, 7);
  });
  add('kvCache: position -1', 'RangeError', 'E_RANGE', () => step(cache(8), 1, -1));
  add('kvCache: position 1.5', 'RangeError', 'E_RANGE', () => step(cache(8), 1, 1.5));
  add('kvCache: position NaN', 'RangeError', 'E_RANGE', () => step(cache(8), 1, NaN));
  add('kvCache: k heads differ from the cache', 'IgnisError', 'E_SHAPE', () =>
    ignis.attention(f([1, 2, 4, 8]), f([1, 2, 4, 8]), f([1, 2, 4, 8]), { kvCache: cache(8, 2) }), [[1, 2, 4, 8]]);
  add('kvCache: headDim differs from the cache', 'IgnisError', 'E_SHAPE', () =>
    ignis.attention(f([1, 2, 4, 16]), f([1, 2, 2, 16]), f([1, 2, 2, 16]), { kvCache: cache(8, 2, 8) }), [[1, 2, 2, 16]]);
  add('kvCache: dtype differs from the cache', 'IgnisError', 'E_DTYPE', () =>
    ignis.attention(f([1, 2, 4, 8]), f([1, 2, 2, 8]), f([1, 2, 2, 8]), { kvCache: cache(8, 2, 8, 'f16') }));
  add('kvCache: disposed cache', 'IgnisError', 'E_DISPOSED', () => {
    const c = cache(8);
    c.dispose();
    return step(c, 1);
  });
  for (const [what, o] of [
    ['batch -1', { batch: -1, maxSeq: 8, heads: 2, headDim: 8 }],
    ['maxSeq 2.5', { batch: 1, maxSeq: 2.5, heads: 2, headDim: 8 }],
    ['heads NaN', { batch: 1, maxSeq: 8, heads: NaN, headDim: 8 }],
    ['headDim -8', { batch: 1, maxSeq: 8, heads: 2, headDim: -8 }],
    ['maxSeq Infinity', { batch: 1, maxSeq: Infinity, heads: 2, headDim: 8 }],
  ] as [string, object][])
    add(`kvCache({ ${what} })`, 'RangeError', 'E_RANGE', () => ignis.kvCache(o as Parameters<typeof ignis.kvCache>[0]));
  add("kvCache({ heads: '2' })", 'TypeError', 'E_TYPE', () => ignis.kvCache({ batch: 1, maxSeq: 8, heads: '2', headDim: 8 } as unknown as Parameters<typeof ignis.kvCache>[0]));
  add('kvCache() without options', 'TypeError', 'E_TYPE', () => (ignis.kvCache as unknown as () => unknown)());
  add("kvCache('x')", 'TypeError', 'E_TYPE', () => ignis.kvCache('x' as unknown as Parameters<typeof ignis.kvCache>[0]));
  add('kvCache: unknown device', 'IgnisError', 'E_DEVICE', () => ignis.kvCache({ batch: 1, maxSeq: 8, heads: 2, headDim: 8, device: 'gpu' }));
  add('kvCache: dtype i32', 'IgnisError', 'E_DTYPE', () => ignis.kvCache({ batch: 1, maxSeq: 8, heads: 2, headDim: 8, dtype: 'i32' }));

  // --- norms ------------------------------------------------------------------------------------
  add('rmsnorm: weight length differs', 'IgnisError', 'E_SHAPE', () => ignis.rmsnorm(f([2, 8]), f([7])), [[2, 8], [7]]);
  add('rmsnorm: weight 2-D', 'IgnisError', 'E_SHAPE', () => ignis.rmsnorm(f([2, 8]), f([2, 8])), [[2, 8]]);
  add('rmsnorm: x f32, weight f16', 'IgnisError', 'E_DTYPE', () => ignis.rmsnorm(f([2, 8]), f([8], 'f16')));
  add('rmsnorm: i32', 'IgnisError', 'E_DTYPE', () => ignis.rmsnorm(i32([2, 8]), i32([8])));
  for (const e of [-1, -1e-9, NaN, Infinity]) add(`rmsnorm: eps ${e}`, 'RangeError', 'E_RANGE', () => ignis.rmsnorm(f([2, 8]), f([8]), { eps: e }));
  add("rmsnorm: eps 'a'", 'TypeError', 'E_TYPE', () => ignis.rmsnorm(f([2, 8]), f([8]), { eps: 'a' as unknown as number }));
  add('rmsnorm: options a number', 'TypeError', 'E_TYPE', () => ignis.rmsnorm(f([2, 8]), f([8]), 1e-5 as unknown as object));
  add('layernorm: weight length differs', 'IgnisError', 'E_SHAPE', () => ignis.layernorm(f([2, 8]), f([9]), f([8])), [[2, 8], [9]]);
  add('layernorm: bias length differs', 'IgnisError', 'E_SHAPE', () => ignis.layernorm(f([2, 8]), f([8]), f([7])), [[7]]);
  add('layernorm: bias dtype differs', 'IgnisError', 'E_DTYPE', () => ignis.layernorm(f([2, 8]), f([8]), f([8], 'bf16')));
  add('layernorm: i32', 'IgnisError', 'E_DTYPE', () => ignis.layernorm(i32([2, 8]), i32([8]), i32([8])));
  for (const e of [-1e-5, NaN]) add(`layernorm: eps ${e}`, 'RangeError', 'E_RANGE', () => ignis.layernorm(f([2, 8]), f([8]), f([8]), { eps: e }));
  add('layernorm: eps null', 'TypeError', 'E_TYPE', () => ignis.layernorm(f([2, 8]), f([8]), f([8]), { eps: null as unknown as number }));

  // --- elementwise, softmax, rope ------------------------------------------------------------------
  for (const act of ['gelu', 'silu', 'relu'] as const) {
    add(`${act}: i32`, 'IgnisError', 'E_DTYPE', () => ignis[act](i32([4])));
    add(`${act}: i8`, 'IgnisError', 'E_DTYPE', () => ignis[act](ignis.zeros([4], { dtype: 'i8' })));
  }
  add('softmax: i32', 'IgnisError', 'E_DTYPE', () => ignis.softmax(i32([2, 4])));
  for (const axis of [2, -3, 1.5, NaN, 100])
    add(`softmax: axis ${axis} of a 2-D x`, 'RangeError', 'E_RANGE', () => ignis.softmax(f([2, 4]), { axis }));
  add("softmax: axis '1'", 'TypeError', 'E_TYPE', () => ignis.softmax(f([2, 4]), { axis: '1' as unknown as number }));
  add('softmax: options a number', 'TypeError', 'E_TYPE', () => ignis.softmax(f([2, 4]), 1 as unknown as object));
  add('rope: x 3-D', 'IgnisError', 'E_SHAPE', () => ignis.rope(f([2, 3, 8])), [[2, 3, 8]]);
  add('rope: odd headDim', 'IgnisError', 'E_SHAPE', () => ignis.rope(f([1, 2, 2, 7])), [[1, 2, 2, 7]]);
  add('rope: i32', 'IgnisError', 'E_DTYPE', () => ignis.rope(i32([1, 2, 2, 8])));
  for (const p of [-1, 1.5, NaN]) add(`rope: position ${p}`, 'RangeError', 'E_RANGE', () => ignis.rope(f([1, 2, 2, 8]), { position: p }));
  for (const t of [0, -10000, NaN]) add(`rope: theta ${t}`, 'RangeError', 'E_RANGE', () => ignis.rope(f([1, 2, 2, 8]), { theta: t }));
  add("rope: theta '1e4'", 'TypeError', 'E_TYPE', () => ignis.rope(f([1, 2, 2, 8]), { theta: '1e4' as unknown as number }));

  // --- embedding ---------------------------------------------------------------------------------
  add('embedding: float ids', 'IgnisError', 'E_DTYPE', () => ignis.embedding(f([3]), f([4, 8])));
  add('embedding: f16 ids', 'IgnisError', 'E_DTYPE', () => ignis.embedding(f([3], 'f16'), f([4, 8])));
  add('embedding: i8 ids', 'IgnisError', 'E_DTYPE', () => ignis.embedding(ignis.zeros([3], { dtype: 'i8' }), f([4, 8])));
  add('embedding: table 1-D', 'IgnisError', 'E_SHAPE', () => ignis.embedding(ids([0, 1]), f([8])), [[8]]);
  add('embedding: table 3-D', 'IgnisError', 'E_SHAPE', () => ignis.embedding(ids([0, 1]), f([2, 4, 8])), [[2, 4, 8]]);

  // --- add / mul ----------------------------------------------------------------------------------
  for (const op of ['add', 'mul'] as const) {
    for (const [sa, sb] of [[[2, 3], [4]], [[2, 3], [3, 2]], [[7], [8]], [[2, 3, 4], [3, 3, 4]], [[5, 2], [2, 5, 3]]])
      add(`${op}: ${JSON.stringify(sa)} with ${JSON.stringify(sb)}`, 'IgnisError', 'E_SHAPE', () => ignis[op](f(sa), f(sb)), [sa, sb]);
    for (const [da, db] of [['f32', 'f16'], ['bf16', 'f16'], ['f32', 'bf16']] as const)
      add(`${op}: ${da} with ${db}`, 'IgnisError', 'E_DTYPE', () => ignis[op](f([2, 3], da), f([2, 3], db)));
    add(`${op}: f32 with i32`, 'IgnisError', 'E_DTYPE', () => ignis[op](f([2, 3]), i32([2, 3])));
  }

  // --- cast ---------------------------------------------------------------------------------------
  add("cast: dtype 'f64'", 'IgnisError', 'E_DTYPE', () => ignis.cast(f([4]), 'f64' as 'f32'));
  add("cast: dtype 'float32'", 'IgnisError', 'E_DTYPE', () => ignis.cast(f([4]), 'float32' as 'f32'));
  add('cast: dtype a number', 'TypeError', 'E_TYPE', () => ignis.cast(f([4]), 5 as unknown as 'f32'));
  add('cast: dtype missing', 'TypeError', 'E_TYPE', () => (ignis.cast as unknown as (x: T) => unknown)(f([4])));

  // --- creation: tensor / zeros / full / randn / reshape ------------------------------------------
  const badSizes: [string, number[]][] = [
    ['negative', [2, -1]],
    ['fractional', [2.5]],
    ['NaN', [NaN, 2]],
    ['Infinity', [Infinity]],
    ['-3', [-3]],
    ['0.1', [4, 0.1]],
  ];
  for (const [what, shape] of badSizes) {
    add(`zeros: ${what} size ${JSON.stringify(shape)}`, 'RangeError', 'E_RANGE', () => ignis.zeros(shape));
    add(`full: ${what} size`, 'RangeError', 'E_RANGE', () => ignis.full(shape, 1));
    add(`randn: ${what} size`, 'RangeError', 'E_RANGE', () => ignis.randn(shape, { seed: 1 }));
    add(`tensor: ${what} size in shape`, 'RangeError', 'E_RANGE', () => ignis.tensor([1, 2, 3, 4], { shape }));
    // (reshape allows one -1)
    if (!shape.includes(-1)) add(`reshape: ${what} size`, 'RangeError', 'E_RANGE', () => f([2, 3]).reshape(shape));
  }
  for (const [what, shape] of [['a string', 'abc'], ['a number', 5], ['a string size', [2, 'a']], ['null', null], ['an object', { 0: 2 }]] as [string, unknown][]) {
    add(`zeros: shape ${what}`, 'TypeError', 'E_TYPE', () => ignis.zeros(shape as number[]));
    add(`full: shape ${what}`, 'TypeError', 'E_TYPE', () => ignis.full(shape as number[], 0));
    add(`randn: shape ${what}`, 'TypeError', 'E_TYPE', () => ignis.randn(shape as number[]));
  }
  add('reshape: two -1', 'RangeError', 'E_RANGE', () => f([2, 3]).reshape([-1, -1]));
  add('reshape: -2', 'RangeError', 'E_RANGE', () => f([2, 3]).reshape([-2, -3]));
  add('reshape: a string', 'TypeError', 'E_TYPE', () => f([2, 3]).reshape('6' as unknown as number[]));
  add('reshape: different size', 'IgnisError', 'E_SHAPE', () => f([2, 3]).reshape([4, 2]), [[2, 3], [4, 2]]);
  add('reshape: -1 that does not divide', 'IgnisError', 'E_SHAPE', () => f([2, 3]).reshape([4, -1]), [[2, 3]]);
  add('reshape: bigger', 'IgnisError', 'E_SHAPE', () => f([7, 33]).reshape([7, 34]), [[7, 33], [7, 34]]);
  add('tensor: flat array shorter than the shape', 'IgnisError', 'E_SHAPE', () => ignis.tensor([1, 2, 3, 4, 5], { shape: [2, 3] }), [[2, 3]]);
  add('tensor: flat array longer than the shape', 'IgnisError', 'E_SHAPE', () => ignis.tensor([1, 2, 3, 4, 5, 6, 7], { shape: [2, 3] }), [[2, 3]]);
  add('tensor: Float32Array length vs shape', 'IgnisError', 'E_SHAPE', () => ignis.tensor(new Float32Array(5), { shape: [2, 3] }), [[2, 3]]);
  add('tensor: Int32Array length vs shape', 'IgnisError', 'E_SHAPE', () => ignis.tensor(new Int32Array(8), { shape: [3, 3] }), [[3, 3]]);
  add('tensor: ragged nested array', 'IgnisError', 'E_SHAPE', () => ignis.tensor([[1, 2], [3]]));
  add('tensor: ragged nested depth', 'IgnisError', 'E_SHAPE', () => ignis.tensor([[1, 2], 3] as unknown as number[][]));
  add('tensor: data a string', 'TypeError', 'E_TYPE', () => ignis.tensor('abc' as unknown as number[]));
  add('tensor: data null', 'TypeError', 'E_TYPE', () => ignis.tensor(null as unknown as number[]));
  add('tensor: data an object', 'TypeError', 'E_TYPE', () => ignis.tensor({ length: 2 } as unknown as number[]));
  add('tensor: an element a string', 'TypeError', 'E_TYPE', () => ignis.tensor([1, 'a', 3] as unknown as number[]));
  add('tensor: options a string', 'TypeError', 'E_TYPE', () => ignis.tensor([1, 2], 'f16' as unknown as object));
  add("tensor: dtype 'f64'", 'IgnisError', 'E_DTYPE', () => ignis.tensor([1, 2], { dtype: 'f64' as 'f32' }));
  add('tensor: dtype a number', 'TypeError', 'E_TYPE', () => ignis.tensor([1, 2], { dtype: 32 as unknown as 'f32' }));
  add('zeros: unknown dtype', 'IgnisError', 'E_DTYPE', () => ignis.zeros([2], { dtype: 'int4' as 'f32' }));
  add("full: value 'x'", 'TypeError', 'E_TYPE', () => ignis.full([2], 'x' as unknown as number));
  add("randn: seed 'x'", 'TypeError', 'E_TYPE', () => ignis.randn([2], { seed: 'x' as unknown as number }));
  add('randn: dtype i32', 'IgnisError', 'E_DTYPE', () => ignis.randn([2], { seed: 1, dtype: 'i32' }));
  add('randn: options a number', 'TypeError', 'E_TYPE', () => ignis.randn([2], 5 as unknown as object));

  // --- devices ------------------------------------------------------------------------------------
  for (const dev of ['gpu', 'cuda:x', 'cuda:', 'tpu', 'CPU ', 'cpu:0:1', 'cuda:-1', 'metal', ''])
    add(`tensor: device '${dev}'`, 'IgnisError', 'E_DEVICE', () => ignis.tensor([1, 2], { device: dev }));
  for (const dev of ['gpu', 'cuda:x', 'vulkan']) {
    add(`zeros: device '${dev}'`, 'IgnisError', 'E_DEVICE', () => ignis.zeros([2], { device: dev }));
    add(`full: device '${dev}'`, 'IgnisError', 'E_DEVICE', () => ignis.full([2], 1, { device: dev }));
    add(`randn: device '${dev}'`, 'IgnisError', 'E_DEVICE', () => ignis.randn([2], { device: dev }));
    add(`to('${dev}')`, 'IgnisError', 'E_DEVICE', () => f([2]).to(dev));
  }
  add('tensor: device a number', 'TypeError', 'E_TYPE', () => ignis.tensor([1, 2], { device: 0 as unknown as string }));
  add('to(0)', 'TypeError', 'E_TYPE', () => f([2]).to(0 as unknown as string));
  if (!cudaAvailable) {
    for (const dev of ['cuda', 'cuda:0', 'cuda:1']) {
      add(`tensor on '${dev}' without CUDA`, 'IgnisError', 'E_DEVICE', () => ignis.tensor([1, 2], { device: dev }));
      add(`zeros on '${dev}' without CUDA`, 'IgnisError', 'E_DEVICE', () => ignis.zeros([2], { device: dev }));
      add(`randn on '${dev}' without CUDA`, 'IgnisError', 'E_DEVICE', () => ignis.randn([2], { device: dev, seed: 1 }));
      add(`to('${dev}') without CUDA`, 'IgnisError', 'E_DEVICE', () => f([2]).to(dev));
    }
    add('kvCache on cuda without CUDA', 'IgnisError', 'E_DEVICE', () => ignis.kvCache({ batch: 1, maxSeq: 8, heads: 2, headDim: 8, device: 'cuda' }));
  } else {
    const n = ignis.info().cuda.devices.length;
    add(`tensor on 'cuda:${n}' (no such device)`, 'IgnisError', 'E_DEVICE', () => ignis.tensor([1, 2], { device: `cuda:${n}` }));
    const g = (shape: number[]) => ignis.full(shape, 0.5, { device: 'cuda' });
    add('matmul: a on cpu, b on cuda', 'IgnisError', 'E_DEVICE', () => ignis.matmul(f([2, 3]), g([3, 4])));
    add('matmul: bias on cuda, a and b on cpu', 'IgnisError', 'E_DEVICE', () => ignis.matmul(f([2, 3]), f([3, 4]), { bias: g([4]) }));
    add('add: cpu + cuda', 'IgnisError', 'E_DEVICE', () => ignis.add(f([3]), g([3])));
    add('mul: cuda * cpu', 'IgnisError', 'E_DEVICE', () => ignis.mul(g([3]), f([3])));
    add('attention: k on cuda', 'IgnisError', 'E_DEVICE', () => ignis.attention(q4(), g([1, 3, 2, 8]), kv2()));
    add('rmsnorm: weight on cuda', 'IgnisError', 'E_DEVICE', () => ignis.rmsnorm(f([2, 8]), g([8])));
    add('layernorm: bias on cuda', 'IgnisError', 'E_DEVICE', () => ignis.layernorm(f([2, 8]), f([8]), g([8])));
    add('embedding: table on cuda', 'IgnisError', 'E_DEVICE', () => ignis.embedding(ids([0]), g([4, 8])));
    add('qmatmul: x on cuda, weight on cpu', 'IgnisError', 'E_DEVICE', () => ignis.matmul(g([2, 64]), qt()));
    add('kvCache on cpu, k on cuda', 'IgnisError', 'E_DEVICE', () =>
      ignis.attention(g([1, 1, 4, 8]), g([1, 1, 2, 8]), g([1, 1, 2, 8]), { kvCache: cache(8) }));
  }
  return cases;
}

describe('malformed calls', () => {
  const cases = buildCases();
  it('there are a few hundred of them', () => {
    expect(cases.length).toBeGreaterThan(300);
  });
  for (const c of cases) {
    it(`${c.label} -> ${c.kind} ${c.code}`, () => {
      expectThrows(c.fn, c.kind, c.code, c.label, c.shapes ?? []);
    });
  }
});

describe('after the errors', () => {
  for (const dev of devices()) {
    it(`a small matmul still matches the reference on ${dev}`, async () => {
      const name = `matmul after errors ${dev}`;
      const tc = testCase(FILE, name);
      const a = await input(tc, [7, 33], 'f32', dev);
      const b = await input(tc, [33, 5], 'f32', dev);
      await check(ignis.matmul(a.t, b.t), refMatmul(a.x, [7, 33], b.x, [33, 5]), 1e-5, tc.ctx, { dtype: 'f32', device: dev });
    });
  }
});

// A kernel-time error: the op returns at once; reading its output (and anything computed from
// it) rejects with E_INDEX; no other call sees it: the next call on the device, work queued
// beside it and work queued after it all succeed.
forDevices((dev) => {
  describe('kernel-time error: embedding id out of range', () => {
    for (const badId of [4, -1, 1000000]) {
      it(`id ${badId} of a table [4, 8] ${dev}`, async () => {
        const tc = testCase(FILE, `embedding E_INDEX ${badId} ${dev}`);
        const table = await input(tc, [4, 8], 'f32', dev);
        const idsT = ids([0, 3, badId, 1], dev);
        let out: T | undefined;
        expect(() => {
          out = ignis.embedding(idsT, table.t);
        }, 'the op itself must not throw: the id is only seen by the kernel').not.toThrow();
        let err: unknown;
        try {
          await out!.data();
        } catch (e) {
          err = e;
        }
        expect(err, 'data() must reject').toBeInstanceOf(ignis.IgnisError);
        expect((err as { code?: string }).code).toBe('E_INDEX');
        // the rejection carries the stack of the data() call, not of the worker's delivery
        expect((err as Error).stack, 'the stack names the caller').toContain('errors.test.ts');
        expect((err as Error).stack).toMatch(/^IgnisError: embedding: id/);
        const readyErr = await out!.ready().then(() => undefined, (e: unknown) => e);
        expect((readyErr as { code?: string }).code).toBe('E_INDEX');
        expect((readyErr as Error).stack, 'ready() too').toContain('errors.test.ts');
        // no other call gets it: an unrelated op right after, and one computed from it rejects
        expect(() => ignis.zeros([2], { device: dev }), 'an unrelated call after the kernel error').not.toThrow();
        const dependent = ignis.relu(out!);
        await expect(dependent.data(), 'computed from the failed output').rejects.toMatchObject({ code: 'E_INDEX' });
        const x = await input(tc, [3, 8], 'f32', dev);
        await check(ignis.relu(x.t), x.x.map((v) => Math.max(v, 0)), 0, `${tc.ctx}: relu after the error`, { shape: [3, 8], dtype: 'f32', device: dev });
        const good = ignis.embedding(ids([3, 0], dev), table.t);
        await check(good, refEmbedding([3, 0], [2], table.x, 4, 8), 0, `${tc.ctx}: embedding after the error`, { dtype: 'f32', device: dev });
      });
    }
  });
});

// Two requests' work interleaved on one device, as a server's would be: one request's bad id
// fails that request's outputs only; the other's, queued before, beside and after it, and an
// unrelated call made right after it, all succeed (issue 17: request B must never get request
// A's error).
forDevices((dev) => {
  describe('kernel-time errors stay with their computation', () => {
    it(`a bad id in one request's work reaches none of another's ${dev}`, async () => {
      const tc = testCase(FILE, `error isolation ${dev}`);
      const table = await input(tc, [16, 8], 'f32', dev);
      const w = await input(tc, [8, 5], 'f32', dev);
      const request = (idList: number[]) => {
        const e = ignis.embedding(ids(idList, dev), table.t);
        return ignis.relu(ignis.matmul(e, w.t));
      };
      const want = (idList: number[]) => {
        const e = refEmbedding(idList, [idList.length], table.x, 16, 8);
        const m = refMatmul(e.data, [idList.length, 8], w.x, [8, 5]);
        return { data: m.data.map((v) => Math.max(v, 0)), shape: m.shape };
      };
      const before = request([1, 2, 3]);
      const bad = request([4, 99, 5]);
      const beside = request([6, 7]);
      const zeros = ignis.zeros([2], { device: dev });
      const after = request([15, 0, 9, 9]);
      await expect(bad.data()).rejects.toMatchObject({ code: 'E_INDEX', message: expect.stringContaining('id 99') });
      await check(before, want([1, 2, 3]), 1e-5, `${tc.ctx}: queued before`, { dtype: 'f32', device: dev });
      await check(beside, want([6, 7]), 1e-5, `${tc.ctx}: queued beside`, { dtype: 'f32', device: dev });
      expect(Array.from(await zeros.data())).toEqual([0, 0]);
      await check(after, want([15, 0, 9, 9]), 1e-5, `${tc.ctx}: queued after`, { dtype: 'f32', device: dev });
      // and with nothing read in between: the failed output is read last
      const bad2 = request([100]);
      const later = request([3]);
      await check(later, want([3]), 1e-5, `${tc.ctx}: after an unread failure`, { dtype: 'f32', device: dev });
      await expect(bad2.data()).rejects.toMatchObject({ code: 'E_INDEX' });
    });
  });
});

// Sizes past what a tensor may hold (2^40 elements), including the ones a zero dimension hides:
// every size is computed with checked arithmetic, so each is E_RANGE at the call, never a wrap
// around to a small allocation, a hang in an allocator, or a tensor that claims 1.8e19 elements.
describe('sizes past the element limit', () => {
  it('zero dimensions beside huge ones, and products past 2^40, are E_RANGE at the call', async () => {
    const cases: [string, () => unknown][] = [
      ['a dimension past 2^40 beside a zero', () => ignis.zeros([67280421310721, 0])],
      ['tensor() with a huge shape and no data', () => ignis.tensor(new Float32Array(0), { shape: [2 ** 50, 0] })],
      ['a product past 2^40', () => ignis.zeros([2 ** 21, 2 ** 20])],
      ['matmul whose output is 2^64 elements', () => ignis.matmul(ignis.zeros([2 ** 32, 0]), ignis.zeros([0, 2 ** 32]))],
      ['matmul whose output is past 2^40', () => ignis.matmul(ignis.zeros([2 ** 30, 0]), ignis.zeros([0, 2 ** 31]))],
      ['add broadcasting to past 2^40', () => ignis.add(ignis.zeros([2 ** 30, 1, 0]), ignis.zeros([2 ** 20, 1]))],
      ['reshape to a huge shape', () => ignis.zeros([0]).reshape([2 ** 41, 0])],
    ];
    for (const [label, fn] of cases) expectThrows(fn, 'RangeError', 'E_RANGE', label);
    // the process is fine, and an empty product still works
    const e = ignis.matmul(ignis.zeros([3, 0]), ignis.zeros([0, 4]));
    expect(Array.from(await e.data())).toEqual(new Array(12).fill(0));
  });

  it('a graph whose buffers or KV cache would pass 2^40 elements at the maxima is E_RANGE at compile', async () => {
    const g = ignis.graph();
    const x = g.input('x', { shape: ['b', 4, 2, 8] });
    const position = g.scalar('position');
    const cache = g.kvCache('c', { batch: 'b', maxSeq: 16, heads: 2, headDim: 8 });
    g.output('y', g.attention(x, x, x, { cache, position }));
    await expect(g.compile({ max: { b: 2 ** 52 } })).rejects.toMatchObject({ code: 'E_RANGE' });
    await expect(g.compile({ max: { b: 2 ** 38 } })).rejects.toMatchObject({ code: 'E_RANGE' });
    const ok = await g.compile({ max: { b: 2 } });
    ok.dispose();
  });
});

// Where an error stays: a KVCache whose append failed rejects the attention over it until
// reset(); reset() clears it in queue order and the cache then works as a fresh one.
describe('error scope: a KV cache', () => {
  it('one failed k poisons the cache until cache.reset(), then the cache works again', async () => {
    const tc = testCase(FILE, 'kv cache error scope');
    const table = await input(tc, [4, 8], 'f32', 'cpu');
    const cache = ignis.kvCache({ batch: 1, maxSeq: 8, heads: 2, headDim: 4 });
    const kv = (ids: number[]) => ignis.embedding(ignis.tensor(Int32Array.from(ids), { shape: [1, ids.length] }), table.t).reshape([1, ids.length, 2, 4]);
    const bad = kv([1, 99]); // the embedding fails in its kernel, so k and v carry E_INDEX
    await expect(bad.data()).rejects.toMatchObject({ code: 'E_INDEX' });
    expect(() => ignis.relu(table.t), 'the kernel error stays with its outputs').not.toThrow();
    const y1 = ignis.attention(bad, bad, bad, { kvCache: cache });
    await expect(y1.data()).rejects.toMatchObject({ code: 'E_INDEX' });
    const good = kv([1, 2]);
    const y2 = ignis.attention(good, good, good, { kvCache: cache });
    await expect(y2.data(), 'the cache the failed append marked').rejects.toMatchObject({ code: 'E_INDEX' });
    cache.reset();
    const y3 = ignis.attention(good, good, good, { kvCache: cache });
    const fresh = ignis.kvCache({ batch: 1, maxSeq: 8, heads: 2, headDim: 4 });
    const want = ignis.attention(good, good, good, { kvCache: fresh });
    expect(Array.from(await y3.data())).toEqual(Array.from(await want.data()));
  });
});

// Every failure is coded: inputs a hostile or careless caller makes.
describe('coded failures', () => {
  it('objects that only look like tensors are E_TYPE at every op (a brand check, not instanceof)', () => {
    const forged = Object.create(ignis.Tensor.prototype) as T;
    const lookalike = { shape: [2, 3], dtype: 'f32', device: 'cpu', rank: 2, _h: {} } as unknown as T;
    const x = ignis.zeros([2, 3]);
    for (const fake of [forged, lookalike]) {
      const calls: [string, () => unknown][] = [
        ['attention', () => ignis.attention(fake, fake, fake)],
        ['quantize', () => ignis.quantize(fake)],
        ['softmax', () => ignis.softmax(fake)],
        ['argmax', () => ignis.argmax(fake)],
        ['sample', () => ignis.sample(fake)],
        ['matmul', () => ignis.matmul(x, fake)],
        ['data', () => ignis.Tensor.prototype.data.call(fake)],
        ['graph.weight', () => ignis.graph().weight('w', fake)],
      ];
      for (const [label, fn] of calls) expectThrows(fn, 'TypeError', 'E_TYPE', label);
    }
    expect(ignis.isTensor(forged)).toBe(false);
    expect(ignis.isTensor(x)).toBe(true);
  });

  it('tensor() of an array nested deeper than 8 levels is E_SHAPE, not a stack overflow', () => {
    let deep: unknown = [1];
    for (let i = 0; i < 100000; i++) deep = [deep];
    expectThrows(() => ignis.tensor(deep as number[]), 'IgnisError', 'E_SHAPE', 'nested 100k deep');
  });

  it('a SharedArrayBuffer-backed TypedArray is accepted (copied)', async () => {
    const sab = new Float32Array(new SharedArrayBuffer(16));
    sab.set([1, 2, 3, 4]);
    expect(Array.from(await ignis.tensor(sab).data())).toEqual([1, 2, 3, 4]);
    const ints = new Int32Array(new SharedArrayBuffer(8));
    ints.set([7, -7]);
    expect(Array.from(await ignis.tensor(ints).data())).toEqual([7, -7]);
  });

  it('full() of an integer dtype refuses a value outside its range, as tensor() does', () => {
    expectThrows(() => ignis.full([2], 300, { dtype: 'i8' }), 'RangeError', 'E_RANGE', 'i8 300');
    expectThrows(() => ignis.full([2], -(2 ** 31) - 1, { dtype: 'i32' }), 'RangeError', 'E_RANGE', 'i32 below');
  });

  it('toArray() of a shape that would build too many nested arrays is E_RANGE', async () => {
    await expect(ignis.zeros([1e9, 0]).toArray()).rejects.toMatchObject({ code: 'E_RANGE' });
    expect(await ignis.zeros([2, 0]).toArray()).toEqual([[], []]);
  });
});
