// The Linux binaries load on old distributions: each built ignis.node (build/ and the cross
// builds build-linux-*/) asks for no glibc symbol newer than 2.28 and nothing of the system's
// libstdc++ (RHEL 8, Debian 10, Ubuntu 20.04 and Amazon Linux 2023 have glibc 2.28 to 2.34 and
// older libstdc++s than the build machine's). Read from the ELF files themselves (test/elf.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { portabilityProblems, readElfNeeds } from './elf';

const root = path.join(__dirname, '..');
const built = fs
  .readdirSync(root)
  .filter((d) => d === 'build' || /^build-linux-/.test(d))
  .map((d) => path.join(root, d, 'Release', 'ignis.node'))
  .filter((f) => fs.existsSync(f));
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

  it.skipIf(portableOff || built.length === 0)('every built ignis.node needs glibc 2.28 at most and no system libstdc++', () => {
    for (const file of built) {
      const needs = readElfNeeds(file);
      expect(portabilityProblems(needs), `${path.relative(root, file)} (${needs.machine})`).toEqual([]);
      expect(needs.libraries).toContain('libc.so.6');
    }
  });
});
