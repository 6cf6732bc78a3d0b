// Loading a checkpoint's linear layers in the form a model's graph multiplies by: packed f32
// (packWeight), int8 (quantize), or the stored f16/bf16 tensor used through transposeB.
import { IgnisError } from '../errors';
import { DTYPE_BYTES, FloatDType } from '../dtype';
import { GraphBuilder, GraphNode, GraphWeight } from '../graph';
import { PackedWeight, packWeight } from '../packed';
import { QuantizedTensor, quantize, type ScaleDtype } from '../quant';
import { TensorSource } from '../safetensors';
import { Tensor } from '../tensor';
import type { Device } from '../device';

export interface WeightOptions {
  dtype: FloatDType;
  quantize?: 'int8';
  groupSize?: number;
  /** int8: the scales' dtype (default f32) */
  scales?: ScaleDtype;
  device: Device;
  /** 'f32': f32 activations (norms, biases, embeddings' rows) under 16-bit weights */
  activations?: 'f32' | 'weights';
}

/** The activations' dtype (a model's norms, biases and KV cache) and its linear weights' as read
 * (int8: read in f32, then quantized). */
export function modelDtypes(o: WeightOptions): { act: FloatDType; weights: FloatDType } {
  if (o.quantize) return { act: 'f32', weights: 'f32' };
  return { act: o.activations === 'f32' ? 'f32' : o.dtype, weights: o.dtype };
}

/** A linear layer's weight, y = x @ W^T with W [N, K] (what nn.Linear stores). */
export type Linear = { kind: 'tensor'; t: Tensor } | { kind: 'packed'; t: PackedWeight } | { kind: 'q'; t: QuantizedTensor };

export function tensorBytes(t: Tensor): number {
  return t.size * DTYPE_BYTES[t.dtype];
}

/** The tensors holding a linear weight. */
export function linearTensors(l: Linear): Tensor[] {
  if (l.kind === 'tensor') return [l.t];
  if (l.kind === 'packed') return [l.t.packed];
  return [l.t.q, l.t.scales];
}

export function disposeLinear(l: Linear): void {
  l.t.dispose();
}

/**
 * The group size to quantize a layer of width K with: the asked one where it divides K, else
 * the largest of 128, 64, 32 that does, else K (one scale per output channel).
 */
function groupFor(K: number, asked?: number): number {
  for (const g of [asked, 128, 64, 32]) if (g !== undefined && K % g === 0) return g;
  return K;
}

/** Makes the linear weight from W [N, K] given as an f32 tensor (consumed). */
export function linearFromNK(w: Tensor, o: WeightOptions): Linear {
  if (o.quantize === 'int8') {
    const q = quantize(w, { groupSize: groupFor(w.shape[1], o.groupSize), scales: o.scales });
    w.dispose();
    return { kind: 'q', t: q };
  }
  if (o.dtype === 'f32' && w.device === 'cpu') {
    const p = packWeight(w, { transposeB: true });
    w.dispose();
    return { kind: 'packed', t: p };
  }
  return { kind: 'tensor', t: w };
}

/** The graph node of a linear weight and how to multiply by it (int8: with int8 activations in
 * the step graph where asked). */
export function graphLinear(g: GraphBuilder, name: string, l: Linear, int8Activations = false): { b: GraphNode | GraphWeight; transposeB?: boolean; int8Activations?: boolean } {
  if (l.kind === 'tensor') return { b: g.weight(name, l.t), transposeB: true };
  if (l.kind === 'q' && int8Activations) return { b: g.weight(name, l.t), int8Activations: true };
  return { b: g.weight(name, l.t) };
}

/** Reads a tensor, checking its shape; E_FORMAT names the tensor and both shapes. */
export async function readChecked(src: TensorSource, name: string, shape: number[], dtype: FloatDType, device: Device): Promise<Tensor> {
  const info = src.info(name);
  if (!info) throw new IgnisError('E_FORMAT', `loadModel: the checkpoint has no tensor '${name}'`);
  if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i]))
    throw new IgnisError('E_FORMAT', `loadModel: tensor '${name}' is [${info.shape.join(', ')}], the config says [${shape.join(', ')}]`);
  return src.read(name, { dtype, device });
}

/** f32 host values of a tensor of the checkpoint (for layouts that need a transpose or split). */
export async function readHost(src: TensorSource, name: string, shape: number[]): Promise<Float32Array> {
  const t = await readChecked(src, name, shape, 'f32', 'cpu');
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}

/** out [cols, rows] = a [rows, cols]^T, for columns [c0, c1) of a only. */
export function transposeCols(a: Float32Array, rows: number, cols: number, c0: number, c1: number): Float32Array {
  const w = c1 - c0;
  const out = new Float32Array(w * rows);
  for (let r = 0; r < rows; r++) {
    const base = r * cols + c0;
    for (let c = 0; c < w; c++) out[c * rows + r] = a[base + c];
  }
  return out;
}

/** A number from config.json (or the fallback when the key is absent); E_FORMAT naming the key. */
export function configNumber(cfg: Record<string, unknown>, key: string, fallback?: number): number {
  const x = cfg[key] ?? fallback;
  if (typeof x !== 'number' || !Number.isFinite(x))
    throw new IgnisError('E_FORMAT', `loadModel: config.json: '${key}' must be a number, got ${JSON.stringify(cfg[key])}`);
  return x;
}

/** A flag of the config: true or false, absent or null for `fallback`, else E_FORMAT naming it. */
export function configBool(cfg: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const x = cfg[key] ?? fallback;
  if (typeof x !== 'boolean') throw new IgnisError('E_FORMAT', `loadModel: config.json: '${key}' must be true or false, got ${JSON.stringify(cfg[key])}`);
  return x;
}

/** A size or count of the config (layers, heads, dims): a whole number >= 1, or E_FORMAT naming it. */
export function configInt(cfg: Record<string, unknown>, key: string, fallback?: number): number {
  const x = configNumber(cfg, key, fallback);
  if (!Number.isSafeInteger(x) || x < 1)
    throw new IgnisError('E_FORMAT', `loadModel: config.json: '${key}' must be a whole number >= 1, got ${JSON.stringify(cfg[key])}`);
  return x;
}
