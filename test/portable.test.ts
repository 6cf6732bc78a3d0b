// The Linux binaries load on old distributions: each built glibc ignis.node (build/ and the cross
// builds build-linux-*-gnu/) asks for no glibc symbol newer than 2.28 and nothing of the system's
// libstdc++ (RHEL 8, Debian 10, Ubuntu 20.04 and Amazon Linux 2023 have glibc 2.28 to 2.34 and
// older libstdc++s than the build machine's); each musl one (build-linux-*-musl/, zig c++) needs
// musl's libc alone. Read from the ELF files themselves (scripts/elf.js, which the cross builds run too).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
/** scripts/elf.js's ElfNeeds */
interface ElfNeeds {
  machine: string;
  libraries: string[];
  versions: { file: string; version: string }[];
  undefinedSymbols: { name: string; version: string }[];
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { libcOf, muslProblems, portabilityProblems, readElfNeeds } = require('../scripts/elf.js') as {
  readElfNeeds(file: string): ElfNeeds;
  portabilityProblems(needs: ElfNeeds, maxGlibc?: number[]): string[];
  libcOf(needs: ElfNeeds): 'glibc' | 'musl' | undefined;
  muslProblems(needs: ElfNeeds, muslSymbols?: Set<string>): string[];
};

const root = path.join(__dirname, '..');
const built = fs
  .readdirSync(root)
  .filter((d) => d === 'build' || /^build-linux-/.test(d))
  .map((d) => path.join(root, d, 'Release', 'ignis.node'))
  .filter((f) => fs.existsSync(f));
// A musl build is one in a -musl folder, or build/ on a musl machine (its NEEDED says which).
const builtMusl = built.filter((f) => /-musl$/.test(path.basename(path.dirname(path.dirname(f)))) || libcOf(readElfNeeds(f)) === 'musl');
const builtGlibc = built.filter((f) => !builtMusl.includes(f));
const linux = process.platform === 'linux';
const portableOff = process.env.IGNIS_PORTABLE === '0';

describe.skipIf(!linux)('portable Linux binaries', () => {
  it('the check finds what a binary built the ordinary way needs (the system libstdc++)', () => {
    const lib = ['/usr/lib/x86_64-linux-gnu/libstdc++.so.6', '/usr/lib/aarch64-linux-gnu/libstdc++.so.6', '/usr/lib64/libstdc++.so.6'].find((f) => fs.existsSync(f));
    if (!lib) return; // nothing to try it on here
    const needs = readElfNeeds(lib);
    expect(needs.versions.some((v) => v.file === 'libc.so.6')).toBe(true);
    expect(needs.libraries).toContain('libc.so.6');
    // Debian 12's libstdc++ asks glibc 2.34 and later: the check must say so
    expect(portabilityProblems(needs, [2, 17]).join('\n')).toMatch(/GLIBC_2\.\d+ from libc\.so\.6 \(newer than glibc 2\.17\)/);
  });

  it('the check flags a libstdc++ need and an unversioned undefined symbol', () => {
    const needs = {
      machine: 'x86-64',
      libraries: ['libstdc++.so.6', 'libc.so.6'],
      versions: [{ file: 'libstdc++.so.6', version: 'GLIBCXX_3.4.30' }, { file: 'libc.so.6', version: 'GLIBC_2.34' }, { file: 'libc.so.6', version: 'GLIBC_2.28' }],
      undefinedSymbols: [{ name: 'arc4random', version: '' }, { name: 'napi_create_function', version: '' }, { name: 'memcpy', version: 'GLIBC_2.14' }],
    };
    expect(portabilityProblems(needs)).toEqual([
      'GLIBCXX_3.4.30 from libstdc++.so.6 (the system\'s libstdc++)',
      'GLIBC_2.34 from libc.so.6 (newer than glibc 2.28)',
      'needs libstdc++.so.6',
      'undefined symbol arc4random with no version (found nowhere at link time)',
    ]);
  });

  it.skipIf(portableOff || builtGlibc.length === 0)('every built glibc ignis.node needs glibc 2.28 at most and no system libstdc++', () => {
    for (const file of builtGlibc) {
      const needs = readElfNeeds(file);
      expect(portabilityProblems(needs), `${path.relative(root, file)} (${needs.machine})`).toEqual([]);
      expect(needs.libraries).toContain('libc.so.6');
    }
  });

  it('the musl check flags glibc, libstdc++ and versioned needs', () => {
    const needs = {
      machine: 'x86-64',
      libraries: ['libc++.so.1', 'libc.so.6'],
      versions: [{ file: 'libc.so.6', version: 'GLIBC_2.17' }],
      undefinedSymbols: [{ name: 'malloc', version: 'GLIBC_2.2.5' }],
    };
    expect(libcOf(needs)).toBe('glibc');
    expect(muslProblems(needs)).toEqual([
      'needs libc++.so.1 (only musl\'s libc is on every Alpine)',
      'needs libc.so.6 (only musl\'s libc is on every Alpine)',
      'GLIBC_2.17 from libc.so.6 (a versioned need: musl has none)',
    ]);
    const musl = { machine: 'aarch64', libraries: ['libc.musl-aarch64.so.1'], versions: [], undefinedSymbols: [{ name: 'malloc', version: '' }] };
    expect(libcOf(musl)).toBe('musl');
    expect(muslProblems(musl)).toEqual([]);
  });

  it.skipIf(builtMusl.length === 0)('every built musl ignis.node needs musl\'s libc alone (libc++ linked in)', () => {
    for (const file of builtMusl) {
      const needs = readElfNeeds(file);
      const name = `${path.relative(root, file)} (${needs.machine})`;
      expect(libcOf(needs), name).toBe('musl');
      expect(muslProblems(needs), name).toEqual([]);
      // N-API comes from node: undefined here, and nothing of glibc's versions
      expect(needs.undefinedSymbols.some((s) => s.name === 'napi_create_function'), name).toBe(true);
    }
  });
});

// The x64 binary on a CPU without AVX2: qemu-user emulating a Nehalem (SSE4.2, no AVX). The addon
// must pick its portable kernels at load (cpuid) and compute what the AVX2 kernels compute here,
// not die on an illegal instruction. qemu-user comes with npm run build:arm64 (scripts/cross/setup.sh).
const qemu = ['/usr/bin/qemu-x86_64', '/usr/bin/qemu-x86_64-static'].find((f) => fs.existsSync(f));
const probe = `
const ig = require(${JSON.stringify(path.join(root, 'dist', 'index.js'))});
(async () => {
  const a = ig.randn([33, 129], { seed: 1 }), b = ig.randn([129, 17], { seed: 2 });
  const out = { simd: ig.info().cpu.simd };
  out.matmul = Array.from(await ig.matmul(a, b, { activation: 'gelu' }).data());
  out.softmax = Array.from(await ig.softmax(a).data());
  out.q = Array.from(await ig.matmul(a, ig.quantize(ig.randn([17, 129], { seed: 3 }), { groupSize: 129 })).data());
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });`;

describe.skipIf(!linux || process.arch !== 'x64' || !qemu)('x64 binary on a CPU without AVX2 (qemu-user, -cpu Nehalem)', () => {
  it('loads, picks the portable kernels, and agrees with this CPU', () => {
    const run = (cmd: string, args: string[]) => {
      const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000 });
      expect(r.status, `${cmd} ${args.slice(0, 3).join(' ')}: ${r.stderr}`).toBe(0);
      return JSON.parse(r.stdout) as { simd: string; matmul: number[]; softmax: number[]; q: number[] };
    };
    const old = run(qemu!, ['-cpu', 'Nehalem', fs.realpathSync(process.execPath), '-e', probe]);
    const here = run(process.execPath, ['-e', probe]);
    expect(old.simd).toBe('scalar');
    for (const k of ['matmul', 'softmax', 'q'] as const) {
      expect(old[k].length).toBe(here[k].length);
      const scale = Math.max(...here[k].map(Math.abs));
      const worst = Math.max(...old[k].map((v, i) => Math.abs(v - here[k][i])));
      expect(worst / scale, k).toBeLessThan(1e-5);
    }
  });
});

