// The package around the kernels: the loader's error, ESM import, info(), and the execution
// model's guarantees (a queued op keeps its inputs alive; ops run in order; errors after a
// failed op flow to its dependents).
import { execFileSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import * as ignis from '../lib/index';
import { candidatePaths, checkEnvironment, linuxLibc, loadBinding, NATIVE_EXPORTS, platformTarget, TARGETS } from '../lib/binding';
import { checkTables, NativeTables, OP_PARAMS } from '../lib/native-tables';

const root = path.resolve(__dirname, '..');

describe('loader', () => {
  it('lists every path tried, why each failed, and how to fix it', () => {
    const bogus = path.join(root, 'package.json'); // exists but is no addon
    let err: unknown;
    try {
      loadBinding(['/nonexistent/ignis.node', bogus]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ignis.IgnisError);
    const e = err as ignis.IgnisError;
    expect(e.code).toBe('E_LOAD');
    expect(e.message).toContain('/nonexistent/ignis.node: not found');
    expect(e.message).toContain(bogus + ':');
    expect(e.message).toContain('npm run build:native');
    expect(e.message).toContain(`npm install ignis-node-${platformTarget()}@`);
  });

  it('the loader, the packager and the build agree on the targets and the build tools', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const packager = require('../scripts/package.js') as { TARGETS: Record<string, unknown> };
    expect(Object.keys(packager.TARGETS)).toEqual([...TARGETS]);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { BUILD_TOOLS } = require('../scripts/build.js') as { BUILD_TOOLS: Record<string, string> };
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    for (const [name, range] of Object.entries(BUILD_TOOLS)) expect(pkg.devDependencies[name], name).toBe(range);
    // the runtime dependencies: the tokenizer's two pure-JS Hugging Face packages, pinned, with
    // no install step and no native code of their own
    expect(pkg.dependencies).toEqual({ '@huggingface/jinja': '0.5.13', '@huggingface/tokenizers': '0.2.0' });
    for (const name of Object.keys(pkg.dependencies)) {
      const dep = JSON.parse(fs.readFileSync(path.join(root, 'node_modules', name, 'package.json'), 'utf8'));
      expect(dep.version, name).toBe(pkg.dependencies[name]);
      expect(Object.keys(dep.scripts ?? {}).filter((s) => /install/.test(s)), name).toEqual([]);
      expect(dep.dependencies ?? {}, name).toEqual({});
      expect(dep.gypfile, name).toBeUndefined();
    }
    expect(Object.keys(pkg.scripts)).not.toContain('install');
    for (const f of pkg.files) expect(fs.existsSync(path.join(root, f)), f).toBe(true);
  });

  it('names this platform as the packages are named', () => {
    expect(platformTarget('linux', 'x64', 'gnu')).toBe('linux-x64-gnu');
    expect(platformTarget('linux', 'arm64', 'musl')).toBe('linux-arm64-musl');
    expect(platformTarget('darwin', 'arm64')).toBe('darwin-arm64');
    expect(platformTarget('win32', 'x64')).toBe('win32-x64');
    if (process.platform === 'linux') expect(linuxLibc()).toBe(process.report.getReport().header.glibcVersionRuntime ? 'gnu' : 'musl');
    expect(TARGETS).toContain(platformTarget());
  });

  it('finds the platform package beside it, after a source build, and says when it is absent', () => {
    vi.stubEnv('IGNIS_BINARY', undefined); // the sanitizer and arm64 runs set it; it would come first
    const app = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'ignis-loader-'));
    try {
      const own = path.join(app, 'node_modules', 'ignis-node'), plat = path.join(app, 'node_modules', 'ignis-node-linux-x64-gnu');
      fs.mkdirSync(own, { recursive: true });
      fs.writeFileSync(path.join(own, 'package.json'), '{"name":"ignis-node","version":"0.0.0"}');
      const absent = candidatePaths(own, 'linux-x64-gnu');
      expect(absent.slice(-2)).toEqual([path.join(own, 'build', 'Release', 'ignis.node'), 'ignis-node-linux-x64-gnu/ignis.node (package ignis-node-linux-x64-gnu is not installed)']);
      fs.mkdirSync(plat, { recursive: true });
      fs.writeFileSync(path.join(plat, 'package.json'), '{"name":"ignis-node-linux-x64-gnu","version":"0.0.0","main":"ignis.node"}');
      expect(candidatePaths(own, 'linux-x64-gnu').at(-1)).toBe(path.join(plat, 'ignis.node'));
      let err: ignis.IgnisError | undefined;
      try {
        loadBinding(candidatePaths(own, 'plan9-mips'), 'plan9-mips');
      } catch (e) {
        err = e as ignis.IgnisError;
      }
      expect(err?.code).toBe('E_LOAD');
      expect(err?.message).toContain('No prebuilt binary exists for plan9-mips (there are: linux-x64-gnu, linux-arm64-gnu');
      expect(err?.message).toContain('ignis-node-plan9-mips/ignis.node (package ignis-node-plan9-mips is not installed)');
    } finally {
      fs.rmSync(app, { recursive: true, force: true });
      vi.unstubAllEnvs();
    }
  });
});

describe('environment', () => {
  const code = (f: () => void): string | undefined => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(ignis.IgnisError);
      return `${(e as ignis.IgnisError).code}: ${(e as Error).message}`;
    }
    return undefined;
  };
  it('takes the values each IGNIS_* variable documents, and unset or empty', () => {
    for (const env of [{}, { IGNIS_SIMD: '' }, { IGNIS_SIMD: 'avx2' }, { IGNIS_SIMD: 'avx512', IGNIS_THREADS: '2' }, { IGNIS_SIMD: 'avx512bf16' }, { IGNIS_THREADS: '1024' },
      { IGNIS_CPU_CACHE_BYTES: '0' }, { IGNIS_CUDA_GRAPHS: '0' }, { IGNIS_CUDA_UNVERIFIED_ATTENTION: '1' }])
      expect(code(() => checkEnvironment(env, 'x64')), JSON.stringify(env)).toBeUndefined();
    expect(code(() => checkEnvironment({ IGNIS_SIMD: 'neon' }, 'arm64'))).toBeUndefined();
  });
  it('refuses a value the addon would ignore, naming the variable and what it takes', () => {
    expect(code(() => checkEnvironment({ IGNIS_SIMD: 'avx3' }, 'x64'))).toMatch(/^E_CONFIG: .*IGNIS_SIMD="avx3".*scalar, avx2, avx512, avx512bf16 \(on x64\)/);
    expect(code(() => checkEnvironment({ IGNIS_SIMD: 'avx2' }, 'arm64'))).toMatch(/^E_CONFIG: .*IGNIS_SIMD="avx2".*scalar, neon/);
    expect(code(() => checkEnvironment({ IGNIS_SIMD: 'AVX2' }, 'x64'))).toMatch(/IGNIS_SIMD/);
    for (const t of ['0', '-1', '2x', '1025', ' 2']) expect(code(() => checkEnvironment({ IGNIS_THREADS: t }, 'x64')), t).toMatch(/^E_CONFIG: .*IGNIS_THREADS.*1 to 1024/);
    expect(code(() => checkEnvironment({ IGNIS_CPU_CACHE_BYTES: '1e9' }, 'x64'))).toMatch(/IGNIS_CPU_CACHE_BYTES="1e9"/);
    expect(code(() => checkEnvironment({ IGNIS_CUDA_GRAPHS: 'off' }, 'x64'))).toMatch(/IGNIS_CUDA_GRAPHS="off"/);
    expect(code(() => checkEnvironment({ IGNIS_CUDA_UNVERIFIED_ATTENTION: 'yes' }, 'x64'))).toMatch(/IGNIS_CUDA_UNVERIFIED_ATTENTION/);
  });
  const built = fs.existsSync(path.join(root, 'dist', 'index.js'));
  it.skipIf(!built)('a thread started with a bad value fails at its first use, not later and not silently', async () => {
    // a worker has its own copy of the environment and its own load of the addon (a worker, not a
    // child process: the arm64 suite runs under qemu-user, which a spawned node would not)
    const w = new Worker(`require(${JSON.stringify(path.join(root, 'dist', 'index.js'))}).zeros([1])`, {
      eval: true,
      env: { ...process.env, IGNIS_SIMD: 'avx3' },
      stderr: true,
    });
    const err = await new Promise<unknown>((resolve) => {
      w.on('error', resolve);
      w.on('exit', () => resolve(undefined));
    });
    expect(err).toMatchObject({ code: 'E_CONFIG', message: expect.stringContaining('IGNIS_SIMD="avx3"') });
  });
});

describe('native tables', () => {
  // the addon lib/binding.ts loads, opened again as a plain module
  const raw = () => {
    const p = candidatePaths().find((c) => fs.existsSync(c))!;
    return { p, b: require(p) as Record<string, unknown> & { tables(): NativeTables } };
  };

  it('the addon exports exactly what NativeBinding declares', () => {
    expect(Object.keys(raw().b).sort()).toEqual([...NATIVE_EXPORTS].sort());
  });

  it('lib/ and the addon agree on the ops, their params, activations, dtypes and buffer kinds', () => {
    const { p, b } = raw();
    const t = b.tables();
    expect(() => checkTables(t, p)).not.toThrow();
    expect(t.ops).toEqual(Object.keys(OP_PARAMS));
    expect(t.activations).toEqual(['none', ...ignis.ACTIVATIONS]);
  });

  it('a table that drifted is refused at load, naming what differs', () => {
    const { p, b } = raw();
    const drift: [string, (t: NativeTables) => void][] = [
      ['activations', (t) => t.activations.push('tanh2')],
      ['ops', (t) => t.ops.reverse()],
      ['rmsnorm params', (t) => (t.opParams.rmsnorm = { epsilon: 'number' })],
      ['matmul params', (t) => (t.opParams.matmul.transposeB = 'int')],
      ['dtypes', (t) => t.dtypes.pop()],
      ['graph buffer kinds', (t) => t.bufferKinds.splice(1, 1)],
    ];
    for (const [what, change] of drift) {
      const t = b.tables();
      change(t);
      let err: unknown;
      try {
        checkTables(t, p);
      } catch (e) {
        err = e;
      }
      expect(err, what).toBeInstanceOf(ignis.IgnisError);
      expect((err as ignis.IgnisError).code).toBe('E_LOAD');
      expect((err as Error).message).toContain(`its ${what} are`);
    }
  });
});

describe('module formats', () => {
  const built = fs.existsSync(path.join(root, 'dist', 'index.mjs'));
  it.skipIf(!built)('require() and import give the same API', () => {
    const script = `
      import * as esm from ${JSON.stringify(path.join(root, 'dist', 'index.mjs'))};
      import { createRequire } from 'node:module';
      const cjs = createRequire(import.meta.url)(${JSON.stringify(path.join(root, 'dist', 'index.js'))});
      const t = esm.tensor([1, 2, 3]);
      const d = await cjs.add(t, t).data();
      console.log(JSON.stringify({ same: esm.matmul === cjs.matmul, d: Array.from(d) }));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({ same: true, d: [2, 4, 6] });
  });
});

describe('info()', () => {
  it('names the version, the SIMD level and why CUDA is or is not used', () => {
    const i = ignis.info();
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    expect(i.version).toBe(pkg.version);
    expect(i.napi).toBeGreaterThanOrEqual(8);
    expect(['avx512+vnni+bf16+amx', 'avx512+vnni+amx', 'avx512+vnni+bf16', 'avx512+bf16', 'avx512+vnni', 'avx512', 'avx2+fma+avx512vnni', 'avx2+fma', 'neon+dotprod', 'neon', 'scalar']).toContain(i.cpu.simd);
    expect(i.cpu.threads).toBeGreaterThanOrEqual(1);
    expect(typeof i.cuda.compiled).toBe('boolean');
    if (!i.cuda.available) expect(i.cuda.reason).toMatch(/\w/);
    for (const d of i.cuda.devices) {
      expect(d.name).toMatch(/\w/);
      expect(d.computeCapability).toMatch(/^\d+\.\d+$/);
      expect(d.memoryBytes).toBeGreaterThan(0);
    }
  });
});

describe('execution model', () => {
  it('a queued op keeps its inputs alive after they are disposed', async () => {
    const a = ignis.tensor(new Float32Array(256 * 256).map((_, i) => (i % 13) - 6), { shape: [256, 256] });
    const b = ignis.tensor(new Float32Array(256 * 256).map((_, i) => (i % 7) - 3), { shape: [256, 256] });
    const [av, bv] = [await a.data(), await b.data()];
    const c = ignis.matmul(a, b);
    a.dispose();
    b.dispose();
    // Churn the allocator so freed memory would be reused if c's inputs had been freed.
    for (let i = 0; i < 20; i++) ignis.full([256, 256], 1e9).dispose();
    const cv = await c.data();
    for (const [i, j] of [[0, 0], [17, 200], [255, 255]]) {
      let s = 0;
      for (let k = 0; k < 256; k++) s += av[i * 256 + k] * bv[k * 256 + j];
      expect(cv[i * 256 + j]).toBe(s); // small integers: exact in f32
    }
  });

  it('ops run in the order they were called', async () => {
    let x = ignis.full([1000], 1);
    const two = ignis.full([1000], 2);
    const one = ignis.full([1000], 1);
    for (let i = 0; i < 50; i++) {
      const y = i % 2 ? ignis.add(x, one) : ignis.mul(x, two);
      x.dispose();
      x = y;
    }
    // ((1*2+1)*2+1)... 25 times: 2^26 - 1 (exact in f32? 2^26-1 needs 26 bits: rounds) -> compute in f32
    let ref = Math.fround(1);
    for (let i = 0; i < 50; i++) ref = Math.fround(i % 2 ? ref + 1 : ref * 2);
    const d = await x.data();
    expect(d[0]).toBe(ref);
    expect(d[999]).toBe(ref);
  });

  it("a failed op's dependents reject with its error, and no other call sees it", async () => {
    const table = ignis.randn([4, 8], { seed: 1 });
    const ones = ignis.full([8], 1);
    const ids = ignis.tensor([1, 9], { dtype: 'i32' });
    // The worker may finish the failing kernel before any of the calls below: none of them
    // throws it (it stays with the failed op's output and what is computed from it).
    const bad = ignis.embedding(ids, table);
    const dependent = ignis.rmsnorm(bad, ones);
    const fine = ignis.add(table, table);
    await expect(bad.data()).rejects.toMatchObject({ code: 'E_INDEX', message: expect.stringContaining('id 9') });
    await expect(bad.ready()).rejects.toMatchObject({ code: 'E_INDEX', message: expect.stringContaining('id 9') });
    await expect(dependent.data()).rejects.toMatchObject({ code: 'E_INDEX' });
    await expect(dependent.ready()).rejects.toMatchObject({ code: 'E_INDEX' });
    expect(await fine.ready()).toBe(fine);
    expect(await fine.data()).toHaveLength(32);
    const after = ignis.add(table, table);
    expect(await after.data()).toHaveLength(32);
    expect(await ignis.add(table, table).data()).toHaveLength(32);
  });

  it('ready() resolves once the op has run, after the ops queued before it', async () => {
    const a = ignis.randn([300, 300], { seed: 3 });
    const chain = [a];
    for (let i = 0; i < 5; i++) chain.push(ignis.matmul(chain[chain.length - 1], a));
    const last = chain[chain.length - 1];
    expect(await last.ready()).toBe(last);
    const d = await last.data();
    expect(d.length).toBe(90000);
    expect(d.every(Number.isFinite)).toBe(true);
    last.dispose();
    await expect(last.ready()).rejects.toMatchObject({ code: 'E_DISPOSED' });
  });

  it('many reads in flight settle, each with its own data', async () => {
    const ts = Array.from({ length: 200 }, (_, i) => ignis.full([3], i));
    const ds = await Promise.all(ts.map((t) => t.data()));
    ds.forEach((d, i) => expect(Array.from(d)).toEqual([i, i, i]));
  });
});
