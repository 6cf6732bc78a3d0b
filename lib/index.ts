// ignis: native inference kernels for Node.js. This file is the public surface.
import { loadedBinary, native, NativeBinding, packageRoot } from './binding';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IgnisError } from './errors';
import * as v from './validate';
import type { Device } from './device';

export { IgnisError } from './errors';
export type { ErrorCode } from './errors';
export { DTYPES, FLOAT_DTYPES } from './dtype';
export type { DType, FloatDType, TensorData } from './dtype';
export { Tensor, tensor, zeros, full, randn, isTensor } from './tensor';
export type { TensorOptions, FillOptions, RandnOptions, NestedArray, DefaultDTypeOf } from './tensor';
export type { Device } from './device';
export { QuantizedTensor, quantize, dequantize } from './quant';
export { PackedWeight, packWeight } from './packed';
export { loadModel, LanguageModel } from './models/index';
export { Server } from './models/serve';
export { serveHttp } from './http';
export type { HttpOptions, HttpService } from './http';
export type { ServeOptions, ServeGenerateOptions, ServerMetrics, RequestMetrics } from './models/serve';
export type { LoadModelOptions, LoadProgress, GenerateOptions, GenerateInput, GeneratedPiece, FinishReason, ChatReply, GenerationDefaults } from './models/index';
export { loadTokenizer, Tokenizer, Detokenizer } from './tokenizer';
export type { EncodeOptions, DecodeOptions, DetokenizerOptions, ChatMessage, ChatTemplateOptions } from './tokenizer';
export type { SamplingOptions } from './models/sampling';
export { graph, GraphBuilder, GraphNode, GraphWeight, GraphScalar, GraphCache, GraphPagedCache, Model, ModelState } from './graph';
export type { Dim, GraphInputOptions, GraphMatmulOptions, GraphAttentionOptions, GraphRopeOptions, GraphKVCacheOptions, CompileOptions, RunInputs, RunOptions } from './graph';
export type { PackWeightOptions } from './packed';
export type { QuantizeOptions, DequantizeOptions } from './quant';
export { KVCache, kvCache } from './kvcache';
export type { KVCacheOptions } from './kvcache';
export { PagedKVCache, pagedKvCache, kvWrite, pagedAttention } from './pagedkv';
export type { PagedKVCacheOptions, PagedAttentionOptions } from './pagedkv';
// Every eager op (matmul, attention, the norms, each activation by name, ...) and its options.
export * from './ops';
export {
  openSafetensors, openCheckpoint, saveSafetensors, encodeSafetensors, rawTensor, SafetensorsFile, Checkpoint, MAX_HEADER_BYTES,
} from './safetensors';
export type { TensorInfo, ReadOptions, RawTensor, TensorSource } from './safetensors';

/** What info() returns: the package version, the addon file loaded, and what the addon reports. */
export type Info = { version: string; binary: string } & ReturnType<NativeBinding['info']>;

let version: string | undefined;

/** What this build and machine offer: SIMD level, CPU threads, CUDA devices (and why not). */
export function info(): Info {
  version ??= (JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  const reported = native().info();
  return { version, binary: loadedBinary(), ...reported };
}

export interface MemoryStats {
  /** bytes held by live tensors (each rounded up to its allocator size class) */
  allocated: number;
  /** allocated plus freed buffers the caching allocator keeps for reuse */
  reserved: number;
  /** the most `allocated` has been */
  peak: number;
}

/**
 * Memory of a device's caching allocator. On the CPU, buffers of 4 KiB and up are kept when
 * freed (up to IGNIS_CPU_CACHE_BYTES, default 1 GiB) so the next tensor of that size costs no
 * system allocation, page faults or zeroing. On CUDA every block is kept, in size bins
 * (512-byte steps to 1 MiB, then quarter powers of two), and reused for the next tensor of
 * its bin; a failed allocation empties the cache and tries once more before E_OOM.
 */
export function memory(device: Device = 'cpu'): MemoryStats {
  return native().memory(v.device('memory', device));
}

/** Frees the buffers a device's caching allocator keeps (on CUDA: every device's); returns the bytes freed. */
export function emptyCache(device: Device = 'cpu'): number {
  return native().emptyCache(v.device('emptyCache', device));
}

/** The best device present: 'cuda' when CUDA is usable, else 'cpu'. */
export function defaultDevice(): 'cpu' | 'cuda' {
  return native().info().cuda.available ? 'cuda' : 'cpu';
}
