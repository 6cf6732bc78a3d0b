// PackedWeight: a fixed matmul operand B [K, N] stored once in the CPU GEMM's panel layout
// (f32 [ceil(N / 16), K, 16]), so later matmuls against it skip packing B, as a runtime that
// prepacks its constant initializers does. Costs K * ceil(N / 16) * 64 bytes.

import './dispose';
import { describe, typeError } from './errors';
import { FloatDType } from './dtype';
import { callOne, handle, Tensor } from './tensor';
import type { Device } from './device';
import * as v from './validate';

export class PackedWeight {
  /** f32 [ceil(N / 16), K, 16] */
  readonly packed: Tensor<'f32'>;
  /** [K, N]: the B that matmul(x, this) multiplies by */
  readonly shape: readonly [number, number];
  /** dtype of the weight it was packed from */
  readonly dtype: FloatDType;

  /** @internal Made by ignis.packWeight. */
  constructor(packed: Tensor, shape: [number, number], dtype: FloatDType) {
    this.packed = packed as Tensor<'f32'>;
    this.shape = shape;
    this.dtype = dtype;
  }
  get device(): Device {
    return this.packed.device;
  }
  get disposed(): boolean {
    return this.packed.disposed;
  }
  dispose(): void {
    this.packed.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
  toString(): string {
    return `PackedWeight([K, N] = ${v.shapeStr(this.shape)}, from ${this.dtype}, ${this.device})`;
  }
}

export interface PackWeightOptions {
  /** b is [N, K] (a Linear layer's weight): the same meaning as matmul's transposeB */
  transposeB?: boolean;
}

/**
 * Packs a fixed weight for repeated products: matmul(x, packWeight(b, opts)) equals
 * matmul(x, b, opts) (b 2-D), without re-packing b on every call. CPU only.
 */
export function packWeight(b: Tensor, opts?: PackWeightOptions): PackedWeight {
  const op = 'packWeight';
  const h = handle(op, 'b', b);
  const o = v.options<PackWeightOptions>(op, opts, ['transposeB']);
  const transposeB = v.bool(op, 'transposeB', o.transposeB, false);
  const packed = callOne('pack_weight', [h], { transposeB });
  const [r, c] = b.shape;
  return new PackedWeight(packed, transposeB ? [c, r] : [r, c], b.dtype as FloatDType);
}

/** @internal */
export function packedHandle(op: string, name: string, pw: PackedWeight) {
  if (!(pw instanceof PackedWeight)) throw typeError(`${op}: ${name} must be a PackedWeight from ignis.packWeight(), got ${describe(pw)}`);
  return handle(op, `${name}.packed`, pw.packed);
}
