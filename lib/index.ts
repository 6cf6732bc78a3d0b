// ignis: native inference kernels for Node.js. This file is the public surface.
import { native, NativeBinding, packageRoot } from './binding';
import * as fs from 'node:fs';
import * as path from 'node:path';

export { IgnisError } from './errors';
export type { ErrorCode } from './errors';
export { DTYPES, FLOAT_DTYPES } from './dtype';
export type { DType, FloatDType, TensorData } from './dtype';
export { Tensor, tensor, zeros, full, randn, isTensor } from './tensor';
export type { TensorOptions, FillOptions, RandnOptions, NestedArray } from './tensor';
export { QuantizedTensor, quantize, dequantize } from './quant';
export { PackedWeight, packWeight } from './packed';
export type { PackWeightOptions } from './packed';
export type { QuantizeOptions, DequantizeOptions } from './quant';
export { KVCache, kvCache } from './kvcache';
export type { KVCacheOptions } from './kvcache';
export {
  matmul, attention, rmsnorm, layernorm, gelu, silu, relu, softmax, rope, embedding, add, mul, cast, ACTIVATIONS,
} from './ops';
export type { MatmulOptions, AttentionOptions, NormOptions, SoftmaxOptions, RopeOptions, ActivationName } from './ops';
export {
  openSafetensors, openCheckpoint, saveSafetensors, encodeSafetensors, rawTensor, SafetensorsFile, Checkpoint, MAX_HEADER_BYTES,
} from './safetensors';
export type { TensorInfo, ReadOptions, RawTensor, TensorSource } from './safetensors';

/** What info() returns: the package version and what the native addon reports. */
export type Info = { version: string } & ReturnType<NativeBinding['info']>;

let version: string | undefined;

/** What this build and machine offer: SIMD level, CPU threads, CUDA devices (and why not). */
export function info(): Info {
  version ??= (JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  return { version, ...native().info() };
}

/** The best device present: 'cuda' when CUDA is usable, else 'cpu'. */
export function defaultDevice(): string {
  return native().info().cuda.available ? 'cuda' : 'cpu';
}
