// What every op test shares: the devices and dtypes to run over, their tolerances, random
// inputs (created as ignis tensors and read back, so the reference sees exactly the values
// the kernel sees), and the comparison against a float64 reference with a reproducible,
// seed-carrying failure message.

import { describe, expect, it } from 'vitest';
import * as ignis from '../lib/index';
import { compare, compareExact } from './reference/compare';
import { rngFor, testSeed, type Rng } from './reference/rng';
import { roundTo, type DType, type FloatDType } from './reference/round';
import { shapeStr, type Ref } from './reference/shape';

export type Tensor = ReturnType<typeof ignis.tensor>;
export type Device = 'cpu' | 'cuda';

export const info = ignis.info();
export const cudaAvailable: boolean = !!info.cuda?.available;

/** IGNIS_TEST_DEVICE=cuda (npm run test:gpu) runs the cuda cases only, and fails them rather than skipping them if no GPU is there. */
const onlyDevice = process.env.IGNIS_TEST_DEVICE as Device | undefined;

export const ALL_DEVICES: readonly Device[] = ['cpu', 'cuda'];

/** The devices to test: 'cpu' always, 'cuda' when a CUDA device is available. */
export function devices(): Device[] {
  if (onlyDevice) return [onlyDevice];
  return cudaAvailable ? ['cpu', 'cuda'] : ['cpu'];
}

/** Whether the cases of a device are skipped (visibly) in this run. */
export function skipDevice(dev: Device): boolean {
  if (onlyDevice) return dev !== onlyDevice;
  return dev === 'cuda' && !cudaAvailable;
}

/** describe() once per device of ALL_DEVICES; an absent device shows as a skipped block. */
export function forDevices(fn: (dev: Device) => void): void {
  for (const dev of ALL_DEVICES) {
    const label = dev === 'cuda' && !cudaAvailable ? `device cuda (skipped: ${(info.cuda?.reason ?? 'no CUDA device').split(' (')[0]})` : `device ${dev}`;
    describe.skipIf(skipDevice(dev))(label, () => fn(dev));
  }
}

/** The device name a tensor reports: 'cpu' or 'cuda:0'. */
export function deviceName(dev: Device): string {
  return dev === 'cuda' ? 'cuda:0' : dev;
}

export const FLOAT_DTYPES: readonly FloatDType[] = ['f32', 'f16', 'bf16'];

/**
 * Tolerance on max|out - ref| / max|ref| for an output of dtype. f32: accumulation error only
 * (long: reductions of thousands of terms). f16/bf16: dominated by rounding the output (and
 * any 16-bit intermediate) to 11 / 8 significant bits.
 */
export function tolFor(dtype: FloatDType, long = false): number {
  switch (dtype) {
    case 'f32':
      return long ? 2e-5 : 1e-5;
    case 'f16':
      return 1e-2;
    case 'bf16':
      return long ? 2e-2 : 1e-2;
  }
}

/** A test case: its inputs' generator (run seed + case name) and the context for messages. */
export interface Case {
  rng: Rng;
  ctx: string;
}

export function testCase(file: string, name: string): Case {
  const seed = testSeed();
  return {
    rng: rngFor(name, seed),
    ctx: `${name} [seed ${seed}; rerun: IGNIS_TEST_SEED=${seed} npx vitest run ${file}]`,
  };
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export interface Input {
  t: Tensor;
  /** the tensor's values as the kernel sees them (rounded to its dtype), float64 */
  x: Float64Array;
}

/**
 * A float tensor of normal(mean, std) values on dev, and those values rounded to dtype. The
 * values are read back from the tensor and must equal the local rounding exactly.
 */
export async function input(
  c: Case,
  shape: readonly number[],
  dtype: FloatDType,
  dev: Device,
  opts: { std?: number; mean?: number; values?: ArrayLike<number> } = {},
): Promise<Input> {
  const n = sizeOf(shape);
  const raw = opts.values ? Float64Array.from(opts.values) : c.rng.normals(n, opts.std ?? 1, opts.mean ?? 0);
  const f32 = Float32Array.from(raw);
  const t = ignis.tensor(f32, { shape: [...shape], dtype, device: dev });
  const x = roundTo(f32, dtype);
  const back = await t.data();
  const cmp = compareExact(back, x);
  if (!cmp.ok) throw new Error(`${c.ctx}: input ${shapeStr(shape)} ${dtype} on ${dev} did not round-trip: ${cmp.message}`);
  return { t, x };
}

/** An i32 tensor of the given integers. */
export function intInput(values: Int32Array, shape: readonly number[], dev: Device): Tensor {
  return ignis.tensor(values, { shape: [...shape], device: dev });
}

export interface Meta {
  shape?: readonly number[];
  dtype?: DType;
  device?: Device;
}

/**
 * Checks out against a float64 reference: shape (from a Ref, or meta.shape), dtype and device
 * when given, then the values within tol (see reference/compare.ts; tol 0 = exact).
 */
export async function check(out: Tensor, ref: Ref | Float64Array, tol: number, ctx: string, meta: Meta = {}): Promise<void> {
  const refData = ref instanceof Float64Array ? ref : ref.data;
  const shape = meta.shape ?? (ref instanceof Float64Array ? undefined : ref.shape);
  if (shape) expect(out.shape, `${ctx}: shape`).toEqual([...shape]);
  if (meta.dtype) expect(out.dtype, `${ctx}: dtype`).toBe(meta.dtype);
  if (meta.device) expect(out.device, `${ctx}: device`).toBe(deviceName(meta.device));
  const got = await out.data();
  const floor = out.dtype === 'f16' ? 2 ** -14 : 1e-6;
  const cmp = tol === 0 ? compareExact(got, refData) : compare(got, refData, tol, floor);
  if (!cmp.ok) {
    const where = shape ? ` (out ${shapeStr(out.shape)}, ${out.dtype}, ${out.device})` : '';
    expect.fail(`${ctx}${where}: ${cmp.message}`);
  }
}

// --- errors ------------------------------------------------------------------------------------

export type ErrorKind = 'IgnisError' | 'TypeError' | 'RangeError';

function describeErr(e: unknown): string {
  if (e instanceof Error) return `${e.constructor.name}(${(e as { code?: string }).code}): ${e.message}`;
  return String(e);
}

/** Asserts e is of kind with .code, and (for E_SHAPE) that the message spells each shape. */
export function assertError(e: unknown, kind: ErrorKind, code: string, label: string, shapes: readonly (readonly number[])[] = []): void {
  const cls = kind === 'IgnisError' ? ignis.IgnisError : kind === 'TypeError' ? TypeError : RangeError;
  if (!(e instanceof cls)) expect.fail(`${label}: expected ${kind} ${code}, got ${describeErr(e)}`);
  expect((e as { code?: string }).code, `${label}: code of ${describeErr(e)}`).toBe(code);
  for (const s of shapes) {
    expect((e as Error).message, `${label}: message should contain ${shapeStr(s)}`).toContain(shapeStr(s));
  }
}

/** fn must throw synchronously. */
export function expectThrows(fn: () => unknown, kind: ErrorKind, code: string, label: string, shapes: readonly (readonly number[])[] = []): void {
  let thrown: unknown = undefined;
  let did = false;
  try {
    const r = fn();
    // an unexpected tensor result must not leak; a rejected promise is not a synchronous throw
    if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).catch(() => {});
  } catch (e) {
    thrown = e;
    did = true;
  }
  if (!did) expect.fail(`${label}: expected ${kind} ${code} to be thrown, but the call returned`);
  assertError(thrown, kind, code, label, shapes);
}

/** fn must throw or return a promise that rejects (for data()/toArray()). */
export async function expectFails(fn: () => unknown, kind: ErrorKind, code: string, label: string): Promise<void> {
  let err: unknown;
  let failed = false;
  try {
    await fn();
  } catch (e) {
    err = e;
    failed = true;
  }
  if (!failed) expect.fail(`${label}: expected ${kind} ${code}, but it succeeded`);
  assertError(err, kind, code, label);
}

// --- op tests as tables ------------------------------------------------------------------------

/** One input of an op case: its shape, and its values' distribution (normal, or given). */
export interface OpInput {
  shape: readonly number[];
  mean?: number;
  std?: number;
  values?: ArrayLike<number>;
}

/** An input as the reference sees it: the values the kernel sees (rounded to the dtype), float64. */
export interface RefArg {
  x: Float64Array;
  shape: readonly number[];
}

/** One line of an op's test table (tinygrad's helper_test_op): inputs, the op, its reference. */
export interface OpCase {
  /** the case's name; the run's seed and this name give its inputs */
  name: string;
  inputs: readonly (readonly number[] | OpInput)[];
  /** the op as a user calls it, on the inputs' tensors */
  run: (...t: Tensor[]) => Tensor;
  /** the float64 reference on the inputs' values; its shape is checked when it gives one */
  ref: (...x: RefArg[]) => Ref | Float64Array;
  /** the long-reduction tolerance (tolFor(dtype, true)) */
  long?: boolean;
  /** an extra check on the output values (after the reference comparison) */
  also?: (got: ArrayLike<number>, ref: Float64Array, dtype: FloatDType, ctx: string) => void;
}

/**
 * Runs each case on every device (cuda skipped visibly where there is none) and each float
 * dtype: random inputs made as tensors and read back, the op, and its output checked against
 * the reference within tolFor(dtype) (shape, dtype and device too).
 */
export function opTests(file: string, cases: readonly OpCase[], dtypes: readonly FloatDType[] = FLOAT_DTYPES): void {
  forDevices((dev) => {
    for (const dtype of dtypes) {
      describe(dtype, () => {
        for (const oc of cases) {
          const name = `${oc.name} ${dtype} ${dev}`;
          it(name, async () => {
            const c = testCase(file, name);
            const ins: Input[] = [];
            for (const i of oc.inputs) {
              const o: OpInput = isShape(i) ? { shape: i } : i;
              ins.push(await input(c, o.shape, dtype, dev, o));
            }
            const args: RefArg[] = oc.inputs.map((i, k) => ({ x: ins[k].x, shape: isShape(i) ? i : i.shape }));
            const out = oc.run(...ins.map((i) => i.t));
            const ref = oc.ref(...args);
            await check(out, ref, tolFor(dtype, oc.long), c.ctx, { dtype, device: dev });
            if (oc.also) oc.also(await out.data(), ref instanceof Float64Array ? ref : ref.data, dtype, c.ctx);
          });
        }
      });
    }
  });
}

function isShape(i: readonly number[] | OpInput): i is readonly number[] {
  return Array.isArray(i);
}

/** Quantizes a fresh random w [N, K] on dev; returns the tensor, its values and the kernel's q and scales. */
export async function quantized(c: Case, N: number, K: number, groupSize: number, wDtype: FloatDType, dev: Device, zeroGroup = false, scaleDtype: 'f32' | 'f16' = 'f32') {
  const values = c.rng.normals(N * K, 0.5);
  if (zeroGroup) for (let k = 0; k < groupSize; k++) values[Math.min(1, N - 1) * K + k] = 0; // one all-zero group
  const w = await input(c, [N, K], wDtype, dev, { values });
  const qt = ignis.quantize(w.t, { groupSize, scales: scaleDtype });
  const q = await qt.q.data();
  const scales = await qt.scales.data();
  return { w, qt, q, scales };
}

