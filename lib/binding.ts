// Finds and loads the native addon, as sharp's loader does: IGNIS_BINARY if set, then a source
// build in this package (build/Release: a checkout, or `npx ignis-node-build`), then the prebuilt
// binary of this platform's package (ignis-node-<platform>-<arch>[-<libc>], an optional
// dependency npm installs only where its os/cpu/libc match). If none loads, one error lists every
// path tried, why each failed, and the fix. The x64 binaries carry AVX2+FMA kernels beside the
// portable ones and pick at load from what the CPU reports (cpuid), so an older CPU runs the
// portable kernels instead of faulting on an illegal instruction: info().cpu.simd says which.
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
      /** lost: why the device's context is gone (every call there throws E_DEVICE_LOST); absent while it works */
      devices: { name: string; computeCapability: string; memoryBytes: number; multiprocessors: number; lost?: string }[];
    };
  };
  fromBytes(bytes: ArrayBufferView, srcDtype: string, dtype: string, shape: number[], device: string): Handle;
  /** a CPU tensor read from an open file (POSIX), on a pool thread; fd stays open until it settles */
  readFile(fd: number, offset: number, byteLength: number, srcDtype: string, dtype: string, shape: number[]): Promise<Handle>;
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
  'clearErrors', 'readFile',
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

/** The C library of this Linux process: 'gnu' (glibc) or 'musl'. */
export function linuxLibc(): 'gnu' | 'musl' {
  try {
    // ldd is a script on glibc and the musl loader itself on Alpine: cheaper than a process report
    const ldd = fs.readFileSync('/usr/bin/ldd', 'latin1');
    if (ldd.includes('musl')) return 'musl';
    if (ldd.includes('GNU C Library') || ldd.includes('glibc') || ldd.includes('GLIBC')) return 'gnu';
  } catch {
    // no ldd: ask the process
  }
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return header?.glibcVersionRuntime ? 'gnu' : 'musl';
}

/** This process's target, as the platform packages are named: linux-x64-gnu, darwin-arm64, win32-x64. */
export function platformTarget(platform: string = process.platform, arch: string = process.arch, libc = platform === 'linux' ? linuxLibc() : ''): string {
  return libc ? `${platform}-${arch}-${libc}` : `${platform}-${arch}`;
}

/** The targets a prebuilt binary package exists for (scripts/package.js builds them). */
export const TARGETS = ['linux-x64-gnu', 'linux-arm64-gnu', 'linux-x64-musl', 'linux-arm64-musl', 'darwin-arm64', 'darwin-x64', 'win32-x64'] as const;

/** Every place the addon may be, in the order they are tried. */
export function candidatePaths(root = packageRoot, target = platformTarget()): string[] {
  const fromEnv = process.env.IGNIS_BINARY ? [path.resolve(process.env.IGNIS_BINARY)] : [];
  const pkg = `ignis-node-${target}`;
  let prebuilt: string;
  try {
    prebuilt = path.join(path.dirname(require.resolve(`${pkg}/package.json`, { paths: [root] })), 'ignis.node');
  } catch {
    prebuilt = `${pkg}/ignis.node (package ${pkg} is not installed)`;
  }
  return [...fromEnv, path.join(root, 'build', 'Release', 'ignis.node'), prebuilt];
}

export function loadBinding(paths = candidatePaths(), target = platformTarget()): NativeBinding {
  const tried: string[] = [];
  for (const p of paths) {
    if (!fs.existsSync(p)) {
      tried.push(`  ${p}${p.includes('is not installed') ? '' : ': not found'}`);
      continue;
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const b = require(p) as NativeBinding;
      const exported = Object.keys(b).sort().join(', '), want = [...NATIVE_EXPORTS].sort().join(', ');
      if (exported !== want) throw new Error(`it exports ${exported}; this lib/ expects ${want} (built from other sources?)`);
      checkTables(b.tables(), p);
      b.init(IgnisError);
      loaded = p;
      return b;
    } catch (e) {
      tried.push(`  ${p}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const known = (TARGETS as readonly string[]).includes(target);
  const fix = known
    ? `To fix: reinstall so that npm installs ignis-node-${target}, the optional dependency holding this ` +
      "platform's binary (an install with --omit=optional or --no-optional, or a lockfile made on another " +
      `platform, skips it: npm install ignis-node-${target}@${packageVersion()} adds it by hand). `
    : `No prebuilt binary exists for ${target} (there are: ${TARGETS.join(', ')}). `;
  throw new IgnisError(
    'E_LOAD',
    `ignis: could not load the native addon for ${target} (Node ${process.version}).\n` +
      `Tried:\n${tried.join('\n')}\n${fix}` +
      'Or build it from source: `npx ignis-node-build` (needs CMake 3.20+ and a C++17 compiler; it fetches ' +
      'cmake-js and node-addon-api), or `npm run build:native` in a checkout.',
  );
}

let loaded = '';
/** The path of the addon file that loaded ('' before the first load). */
export function loadedBinary(): string {
  return loaded;
}

function packageVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'latest';
  }
}

// The environment variables the addon reads, each with the values it takes: a value it does not
// take is an error at load, not a setting silently ignored (a misspelt IGNIS_SIMD would otherwise
// run the default kernels under a benchmark that believes it forced a lower path).
const simdLevels = (arch: string): string[] =>
  arch === 'x64' ? ['scalar', 'avx2', 'avx512', 'avx512bf16'] : arch === 'arm64' ? ['scalar', 'neon'] : ['scalar'];
const ENVIRONMENT: Record<string, { takes: (v: string, arch: string) => boolean; what: (arch: string) => string }> = {
  IGNIS_SIMD: { takes: (v, arch) => simdLevels(arch).includes(v), what: (arch) => `one of ${simdLevels(arch).join(', ')} (on ${arch})` },
  IGNIS_THREADS: { takes: (v) => /^[0-9]+$/.test(v) && +v >= 1 && +v <= 1024, what: () => 'an integer from 1 to 1024' },
  IGNIS_CPU_CACHE_BYTES: { takes: (v) => /^[0-9]+$/.test(v) && Number.isSafeInteger(+v), what: () => 'a byte count (decimal digits)' },
  IGNIS_CUDA_GRAPHS: { takes: (v) => v === '0' || v === '1', what: () => "'0' (off) or '1'" },
  IGNIS_CUDA_UNVERIFIED_ATTENTION: { takes: (v) => v === '0' || v === '1', what: () => "'0' or '1' (on)" },
};

/** Throws E_CONFIG naming the first IGNIS_* variable whose value the addon does not take (empty = unset). */
export function checkEnvironment(env: NodeJS.ProcessEnv = process.env, arch: string = process.arch): void {
  for (const [name, rule] of Object.entries(ENVIRONMENT)) {
    const v = env[name];
    if (v === undefined || v === '' || rule.takes(v, arch)) continue;
    throw new IgnisError('E_CONFIG', `ignis: ${name}=${JSON.stringify(v)} is not a value it takes: use ${rule.what(arch)}, or leave it unset`);
  }
}

let cached: NativeBinding | undefined;
// The loaded addon; loads it on first use, after checking the environment it reads.
export function native(): NativeBinding {
  if (!cached) {
    checkEnvironment();
    cached = loadBinding();
  }
  return cached;
}
