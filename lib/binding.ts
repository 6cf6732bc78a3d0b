// Finds and loads the native addon: prebuilds/<platform>-<arch>/ignis.node first (shipped in
// the npm package), then build/Release/ignis.node (built from source). If none loads, one
// error lists every path tried, why each failed, and how to fix it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IgnisError } from './errors';
import { checkTables, NativeTables, OpName, ParamsOf } from './native-tables';

export type Handle = { dispose(): void; readonly __ignisHandle?: never };
/** [shape, dtype, device] of a tensor, as the binding hands it back with a handle. */
export type Meta = [number[], string, string];
/** A dimension the graph builder passes to infer(): a size, or a symbol's name. */
export type DimArg = number | string;

// The native module's exports (native/binding/*.cc). NATIVE_EXPORTS below lists them; the
// loader refuses an addon whose exports differ.
export interface NativeBinding {
  init(errorClass: typeof IgnisError): void;
  tables(): NativeTables;
  /** any op of the table: [handle, meta, handle, meta, ...], each output's (none for an in-place op) */
  call<O extends OpName>(op: O, operands: (Handle | null)[], params: ParamsOf<O>): (Handle | Meta)[];
  /** an op's rules on shapes (string dims are symbols): each output's dims and dtype, or the op's error */
  infer<O extends OpName>(op: O, operands: { dims: DimArg[]; dtype: string; name: string }[], params: ParamsOf<O>, prefix: string): { dims: DimArg[]; dtype: string }[];
  compilePlan(description: object): Handle;
  /** with settled, a promise of the run's end follows the outputs */
  planRun(plan: Handle, inputs: Handle[], scalars: number[], state: Handle | null, settled: boolean, outputs?: (Handle | null)[]): unknown[];
  planState(plan: Handle): Handle;
  /** clears the state's errors, queued after the runs before it */
  planStateReset(state: Handle): void;
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
      devices: { name: string; computeCapability: string; memoryBytes: number; multiprocessors: number }[];
    };
  };
  fromBytes(bytes: ArrayBufferView, srcDtype: string, dtype: string, shape: number[], device: string): Handle;
  fromData(data: Float32Array | Int32Array | Int8Array, dtype: string, shape: number[], device: string): Handle;
  full(shape: number[], dtype: string, device: string, value: number): Handle;
  randn(shape: number[], dtype: string, device: string, seed: number): Handle;
  reshape(x: Handle, shape: number[]): Handle;
  to(x: Handle, device: string): Handle;
  read(x: Handle, readyOnly: boolean): Promise<Float32Array | Int32Array | Int8Array | undefined>;
  /** clears the tensors' errors (a failed op's mark), queued after the ops before it */
  clearErrors(xs: Handle[]): void;
}

/** Every export of the addon, once; the type checks that it is every key of NativeBinding. */
export const NATIVE_EXPORTS = [
  'init', 'tables', 'call', 'infer', 'compilePlan', 'planRun', 'planState', 'planStateReset', 'planMemory', 'planProfile',
  'planProfileTotal', 'memory', 'emptyCache', 'info', 'fromBytes', 'fromData', 'full', 'randn', 'reshape', 'to', 'read',
  'clearErrors',
] as const satisfies readonly (keyof NativeBinding)[];
type Unlisted = Exclude<keyof NativeBinding, (typeof NATIVE_EXPORTS)[number]>;
const everyExportListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyExportListed;

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
      const exported = Object.keys(b).sort().join(', '), want = [...NATIVE_EXPORTS].sort().join(', ');
      if (exported !== want) throw new Error(`it exports ${exported}; this lib/ expects ${want} (built from other sources?)`);
      checkTables(b.tables(), p);
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
