// QuantizedTensor: a symmetric int8 weight, q i8 [N, K] plus scales f32 or f16 [N, K / groupSize].
// matmul(x, qweight) dequantizes inside the kernel; no float copy of the weight is made.

import './dispose';
import { describe, IgnisError, rangeError, typeError } from './errors';
import { FloatDType } from './dtype';
import { callOne, callOp, handle, Tensor } from './tensor';
import type { Device } from './device';
import * as v from './validate';

export const GROUP_SIZES = [32, 64, 128] as const;
/** The dtypes a QuantizedTensor's scales may have (quantize's scales). */
export const SCALE_DTYPES = ['f32', 'f16'] as const;
export type ScaleDtype = (typeof SCALE_DTYPES)[number];

export class QuantizedTensor {
  readonly q: Tensor<'i8'>;
  readonly scales: Tensor<ScaleDtype>;
  readonly groupSize: number;

  /** @internal Made by ignis.quantize (or a model loader from stored q and scales). */
  constructor(q: Tensor, scales: Tensor, groupSize: number) {
    this.q = q as Tensor<'i8'>;
    this.scales = scales as Tensor<ScaleDtype>;
    this.groupSize = groupSize;
  }

  /** [N, K]: the shape of the float weight this stands for. */
  get shape(): readonly number[] {
    return this.q.shape;
  }
  get device(): Device {
    return this.q.device;
  }
  get disposed(): boolean {
    return this.q.disposed;
  }
  dispose(): void {
    this.q.dispose();
    this.scales.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
  toString(): string {
    return `QuantizedTensor(${v.shapeStr(this.shape)}, i8, groupSize ${this.groupSize}, ${this.scales.dtype} scales, ${this.device})`;
  }
}

export function checkGroupSize(op: string, groupSize: unknown, K: number): number {
  const g = v.int(op, 'groupSize', groupSize, 1, K);
  if (g !== K && !(GROUP_SIZES as readonly number[]).includes(g))
    throw rangeError(`${op}: groupSize must be ${GROUP_SIZES.join(', ')} or K (${K}) for per-channel, got ${g}`);
  if (K % g !== 0) throw rangeError(`${op}: groupSize ${g} does not divide K = ${K}`);
  return g;
}

export interface QuantizeOptions {
  groupSize?: number;
  /**
   * The scales' dtype. 'f32' (the default): max|w| / 127 per group. 'f16': that value rounded up
   * onto f16's grid and q taken against it, so each weight is still within half a step of its
   * group's scale (the scale itself at most 2^-11 relative, or 2^-24 absolute, larger): 2 bytes a
   * group instead of 4 (Q8_0's layout: 34 bytes a group of 32 instead of 36). A group whose
   * largest magnitude passes 127 * 65504 is an E_RANGE error. On the CPU only, for now.
   */
  scales?: ScaleDtype;
}

/** Symmetric int8 quantization of w [N, K] in groups of groupSize along K (default: per channel). */
export function quantize(w: Tensor, opts?: QuantizeOptions): QuantizedTensor {
  const op = 'quantize';
  const h = handle(op, 'w', w);
  const o = v.options<QuantizeOptions>(op, opts, ['groupSize', 'scales']);
  if (w.rank !== 2) throw new IgnisError('E_SHAPE', `${op}: w must be [N, K], got ${v.shapeStr(w.shape)}`);
  const g = checkGroupSize(op, o.groupSize, w.shape[1]);
  const scalesDtype = v.oneOf(op, 'scales', o.scales, SCALE_DTYPES, 'f32');
  const [q, scales] = callOp('quantize', [h], { groupSize: g, scales: scalesDtype });
  return new QuantizedTensor(q, scales, g);
}

export interface DequantizeOptions<D extends FloatDType = FloatDType> {
  /** default f32 */
  dtype?: D;
}

/** The float weight [N, K] = q * scale (for inspection; matmul never needs it). */
export function dequantize<D extends FloatDType = 'f32'>(qt: QuantizedTensor, opts?: DequantizeOptions<D>): Tensor<D> {
  const op = 'dequantize';
  const o = v.options<DequantizeOptions>(op, opts, ['dtype']);
  const [q, s] = quantizedHandles(op, 'qt', qt);
  const dtype = v.dtype(op, o.dtype, 'f32');
  return callOne('dequantize', [q, s], { groupSize: qt.groupSize, dtype }) as Tensor<D>;
}

/** @internal */
export function quantizedHandles(op: string, name: string, qt: QuantizedTensor) {
  if (!(qt instanceof QuantizedTensor))
    throw typeError(`${op}: ${name} must be a QuantizedTensor from ignis.quantize(), got ${describe(qt)}`);
  return [handle(op, `${name}.q`, qt.q), handle(op, `${name}.scales`, qt.scales)] as const;
}
