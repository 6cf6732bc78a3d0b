// What a Linux shared object asks of the system, read from its ELF dynamic sections: the
// libraries it names (DT_NEEDED), the symbol versions it needs (.gnu.version_r) and its undefined
// symbols with their versions (.dynsym + .gnu.version). Enough to tell whether a binary loads on
// an old glibc, or on musl (Alpine); 64-bit little-endian objects only (x86-64 and aarch64).
// One implementation for test/portable.test.ts and the cross builds (scripts/cross/):
//   node scripts/elf.js <ignis.node> [--machine=aarch64] [--max-glibc=2.28] [--musl-symbols=<libc.S>]
// prints what the file needs and exits 1 if anything keeps it from loading where it should.
'use strict';
const fs = require('fs');

/**
 * @typedef {object} ElfNeeds
 * @property {string} machine 'x86-64', 'aarch64' or 'machine N'
 * @property {string[]} libraries DT_NEEDED names
 * @property {{ file: string, version: string }[]} versions every version needed, per library
 * @property {{ name: string, version: string }[]} undefinedSymbols undefined, not weak, with the
 *   version each is bound to ('' if none)
 */

const SHT_DYNSYM = 11, SHT_DYNAMIC = 6, SHT_GNU_VERNEED = 0x6ffffffe, SHT_GNU_VERSYM = 0x6fffffff;

/** @param {string} file @returns {ElfNeeds} */
function readElfNeeds(file) {
  const b = fs.readFileSync(file);
  if (b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file}: not an ELF file`);
  if (b[4] !== 2 || b[5] !== 1) throw new Error(`${file}: not a 64-bit little-endian ELF file`);
  const machineCode = b.readUInt16LE(0x12);
  const machine = machineCode === 62 ? 'x86-64' : machineCode === 183 ? 'aarch64' : `machine ${machineCode}`;
  const shoff = Number(b.readBigUInt64LE(0x28)), shentsize = b.readUInt16LE(0x3a), shnum = b.readUInt16LE(0x3c);
  const sections = Array.from({ length: shnum }, (_, i) => {
    const o = shoff + i * shentsize;
    return {
      type: b.readUInt32LE(o + 4),
      offset: Number(b.readBigUInt64LE(o + 24)),
      size: Number(b.readBigUInt64LE(o + 32)),
      link: b.readUInt32LE(o + 40),
      info: b.readUInt32LE(o + 44),
    };
  });
  const str = (table, at) => {
    const start = sections[table].offset + at;
    return b.toString('latin1', start, b.indexOf(0, start));
  };

  const libraries = [];
  const dynamic = sections.find((s) => s.type === SHT_DYNAMIC);
  if (dynamic) {
    for (let o = dynamic.offset; o < dynamic.offset + dynamic.size; o += 16) {
      const tag = Number(b.readBigInt64LE(o));
      if (tag === 0) break;
      if (tag === 1) libraries.push(str(dynamic.link, Number(b.readBigUInt64LE(o + 8)))); // DT_NEEDED
    }
  }

  // .gnu.version_r: a chain of Verneed (one per library), each with a chain of Vernaux.
  const versions = [];
  const versionByIndex = new Map();
  const verneed = sections.find((s) => s.type === SHT_GNU_VERNEED);
  if (verneed) {
    let o = verneed.offset;
    for (let n = 0; n < verneed.info; n++) {
      const cnt = b.readUInt16LE(o + 2), fileName = str(verneed.link, b.readUInt32LE(o + 4));
      let a = o + b.readUInt32LE(o + 8);
      for (let k = 0; k < cnt; k++) {
        const other = b.readUInt16LE(a + 6), name = str(verneed.link, b.readUInt32LE(a + 8));
        versions.push({ file: fileName, version: name });
        versionByIndex.set(other, name);
        a += b.readUInt32LE(a + 12);
      }
      const next = b.readUInt32LE(o + 12);
      if (!next) break;
      o += next;
    }
  }

  const undefinedSymbols = [];
  const dynsym = sections.find((s) => s.type === SHT_DYNSYM);
  const versym = sections.find((s) => s.type === SHT_GNU_VERSYM);
  if (dynsym) {
    const count = dynsym.size / 24;
    for (let i = 1; i < count; i++) {
      const o = dynsym.offset + i * 24;
      const bind = b[o + 4] >> 4, shndx = b.readUInt16LE(o + 6);
      if (shndx !== 0 || bind === 2) continue; // defined here, or weak
      const v = versym ? b.readUInt16LE(versym.offset + i * 2) & 0x7fff : 1;
      undefinedSymbols.push({ name: str(dynsym.link, b.readUInt32LE(o)), version: versionByIndex.get(v) ?? '' });
    }
  }
  return { machine, libraries, versions, undefinedSymbols };
}

/** Unversioned undefined symbols a portable addon may have: Node's N-API, and glibc 2.18's. */
const ALLOWED_UNVERSIONED = /^(napi_|node_api_|__cxa_thread_atexit_impl$)/;

/** What keeps a binary from loading on glibc `maxGlibc` without a newer libstdc++: [] if nothing.
 * @param {ElfNeeds} needs @param {number[]} maxGlibc @returns {string[]} */
function portabilityProblems(needs, maxGlibc = [2, 28]) {
  const problems = [];
  const newer = (v) => {
    const m = /^GLIBC_(\d+)\.(\d+)/.exec(v);
    return m !== null && (Number(m[1]) > maxGlibc[0] || (Number(m[1]) === maxGlibc[0] && Number(m[2]) > maxGlibc[1]));
  };
  for (const { file, version } of needs.versions) {
    if (newer(version)) problems.push(`${version} from ${file} (newer than glibc ${maxGlibc.join('.')})`);
    if (/^(GLIBCXX|CXXABI)_/.test(version)) problems.push(`${version} from ${file} (the system's libstdc++)`);
  }
  for (const lib of needs.libraries) if (/^libstdc\+\+/.test(lib)) problems.push(`needs ${lib}`);
  for (const s of needs.undefinedSymbols) {
    if (!s.version && !ALLOWED_UNVERSIONED.test(s.name)) problems.push(`undefined symbol ${s.name} with no version (found nowhere at link time)`);
  }
  return problems;
}

/** Which C library a binary was linked against, from its NEEDED names: glibc's libc.so.6, or
 *  musl's libc.so / libc.musl-<arch>.so.1 (musl's loader takes any libc.so* as itself). */
function libcOf(needs) {
  if (needs.libraries.includes('libc.so.6')) return 'glibc';
  if (needs.libraries.some((l) => /^libc\.(so|musl-[a-z0-9_]+\.so\.1)$/.test(l))) return 'musl';
  return undefined;
}

/** What keeps a musl binary from loading on any Alpine with only musl installed: [] if nothing.
 *  musl has no symbol versions, so its undefined symbols carry none; libc++, libunwind and
 *  compiler-rt must be linked in. With musl's symbol list (a Set), every undefined symbol but
 *  N-API's must be one musl defines.
 * @param {ElfNeeds} needs @param {Set<string>} [muslSymbols] @returns {string[]} */
function muslProblems(needs, muslSymbols) {
  const problems = [];
  for (const lib of needs.libraries) {
    if (!/^libc\.(so|musl-[a-z0-9_]+\.so\.1)$/.test(lib)) problems.push(`needs ${lib} (only musl's libc is on every Alpine)`);
  }
  if (!needs.libraries.length) problems.push('needs no libc at all (a static or broken link)');
  for (const { file, version } of needs.versions) problems.push(`${version} from ${file} (a versioned need: musl has none)`);

  if (muslSymbols) {
    for (const s of needs.undefinedSymbols)
      if (!/^(napi_|node_api_)/.test(s.name) && !muslSymbols.has(s.name)) problems.push(`undefined symbol ${s.name}, which musl does not define`);
  }
  return problems;
}

module.exports = { readElfNeeds, portabilityProblems, libcOf, muslProblems };

if (require.main === module) {
  const file = process.argv[2];
  const opt = (k) => (process.argv.find((a) => a.startsWith(`--${k}=`)) || '').slice(k.length + 3) || undefined;
  if (!file) {
    console.error('usage: node scripts/elf.js <ignis.node> [--machine=aarch64] [--max-glibc=2.28] [--musl-symbols=<libc.S>]');
    process.exit(2);
  }
  const needs = readElfNeeds(file);
  const libc = libcOf(needs);
  const machine = opt('machine');
  // musl's symbol list as zig ships it (lib/libc/musl/libc.S: one "name:" line per symbol)
  const symbolsFile = opt('musl-symbols');
  const musl = symbolsFile ? new Set([...fs.readFileSync(symbolsFile, 'utf8').matchAll(/^([A-Za-z_][A-Za-z0-9_]*):$/gm)].map((m) => m[1])) : undefined;
  const problems = [
    ...(machine && needs.machine !== machine ? [`machine ${needs.machine}, not ${machine}`] : []),
    ...(libc === 'musl' ? muslProblems(needs, musl) : portabilityProblems(needs, (opt('max-glibc') || '2.28').split('.').map(Number))),
  ];
  const napi = needs.undefinedSymbols.filter((s) => /^(napi_|node_api_)/.test(s.name)).length;
  console.log(`${file}: ${fs.statSync(file).size} bytes, ${needs.machine}, ${libc || 'no libc'}`);
  console.log(`  needed: ${needs.libraries.join(' ')}`);
  console.log(`  version needs: ${[...new Set(needs.versions.map((v) => v.version))].join(' ') || 'none'}`);
  console.log(`  undefined strong symbols: ${napi} N-API, ${needs.undefinedSymbols.length - napi} others`);
  for (const p of problems) console.log(`  FAIL: ${p}`);
  if (!problems.length) console.log('  ok');
  process.exitCode = problems.length ? 1 : 0;
}

