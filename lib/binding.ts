// Finds and loads the native addon: prebuilds/<platform>-<arch>/ignis.node first (shipped in
// the npm package), then build/Release/ignis.node (built from source). If none loads, one
// error lists every path tried, why each failed, and how to fix it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IgnisError } from './errors';

export type Handle = { dispose(): void; readonly __ignisHandle?: never };

// The native module's exports (native/binding/*.cc).
export interface NativeBinding {
  init(errorClass: typeof IgnisError): void;
  compilePlan(description: object): Handle;
  /** with settled, a promise of the run's end follows the outputs */
  planRun(plan: Handle, inputs: Handle[], scalars: number[], state: Handle | null, settled: boolean, outputs?: (Handle | null)[]): unknown[];
  planState(plan: Handle): Handle;
  planMemory(plan: Handle): { weights: number; arena: number; state: number };
  planProfile(plan: Handle, on?: boolean): { op: string; ns: number }[];
  planProfileTotal(plan: Handle): [number, number];
  memory(device: string): { allocated: number; reserved: number; peak: number };
  emptyCache(device: string): number;
  info(): {
    napi: number;
    cpu: { simd: string; threads: number };
    cuda: {
      compiled: boolean;
      available: boolean;
      reason?: string;
      devices: { name: string; computeCapability: string; memoryBytes: number }[];
    };
  };
  meta(h: Handle): [number[], string, string];
  fromBytes(bytes: ArrayBufferView, srcDtype: string, dtype: string, shape: number[], device: string): Handle;
  fromData(data: Float32Array | Int32Array | Int8Array, dtype: string, shape: number[], device: string): Handle;
  full(shape: number[], dtype: string, device: string, value: number): Handle;
  randn(shape: number[], dtype: string, device: string, seed: number): Handle;
  cast(x: Handle, dtype: string): Handle;
  reshape(x: Handle, shape: number[]): Handle;
  to(x: Handle, device: string): Handle;
  read(x: Handle, readyOnly: boolean): Promise<Float32Array | Int32Array | Int8Array | undefined>;
  matmul(a: Handle, b: Handle, bias: Handle | null, transposeB: boolean, activation: string): Handle;
  packWeight(b: Handle, transposeB: boolean): Handle;
  matmulPacked(x: Handle, packed: Handle, N: number, bias: Handle | null, activation: string): Handle;
  quantize(w: Handle, groupSize: number): [Handle, Handle];
  dequantize(q: Handle, scales: Handle, groupSize: number, dtype: string): Handle;
  matmulQ(x: Handle, q: Handle, scales: Handle, groupSize: number, bias: Handle | null, activation: string): Handle;
  attention(q: Handle, k: Handle, v: Handle, causal: boolean, scale: number, kvLen: number, qPos0: number): Handle;
  kvAppend(cacheK: Handle, cacheV: Handle, k: Handle, v: Handle, position: number): void;
  rmsnorm(x: Handle, weight: Handle, eps: number): Handle;
  layernorm(x: Handle, weight: Handle, bias: Handle, eps: number): Handle;
  activation(x: Handle, name: string): Handle;
  softmax(x: Handle, axis: number): Handle;
  argmax(x: Handle): Handle;
  sample(x: Handle, temperature: number, topK: number, topP: number, seedHi: number, seedLo: number, counter: number): Handle;
  rope(x: Handle, position: number, theta: number): Handle;
  embedding(ids: Handle, table: Handle): Handle;
  binary(a: Handle, b: Handle, op: string): Handle;
}

// The folder holding package.json: lib/ (tests) and dist/ or dist-bench/lib (builds) live below it.
export const packageRoot = (() => {
  let dir = path.resolve(__dirname, '..');
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();

export function candidatePaths(root = packageRoot): string[] {
  const fromEnv = process.env.IGNIS_BINARY ? [path.resolve(process.env.IGNIS_BINARY)] : [];
  return [
    ...fromEnv,
    path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'ignis.node'),
    path.join(root, 'build', 'Release', 'ignis.node'),
  ];
}

export function loadBinding(paths = candidatePaths()): NativeBinding {
  const tried: string[] = [];
  for (const p of paths) {
    if (!fs.existsSync(p)) {
      tried.push(`  ${p}: not found`);
      continue;
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const b = require(p) as NativeBinding;
      b.init(IgnisError);
      return b;
    } catch (e) {
      tried.push(`  ${p}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new IgnisError(
    'E_LOAD',
    `ignis: could not load the native addon for ${process.platform}-${process.arch} (Node ${process.version}).\n` +
      `Tried:\n${tried.join('\n')}\n` +
      'To fix: reinstall (npm install ignis) to get the prebuilt binary for this platform, or build it from ' +
      'source in the package folder with `npm run build:native` (needs CMake and a C++17 compiler) or ' +
      '`npm run build:gyp` (node-gyp, CPU only).',
  );
}

let cached: NativeBinding | undefined;
// The loaded addon; loads it on first use.
export function native(): NativeBinding {
  if (!cached) cached = loadBinding();
  return cached;
}
