// What a Linux shared object asks of the system, read from its ELF dynamic sections: the
// libraries it names (DT_NEEDED), the symbol versions it needs (.gnu.version_r) and its undefined
// symbols with their versions (.dynsym + .gnu.version). Enough to tell whether a binary loads on
// an old glibc, or on musl (Alpine); 64-bit little-endian objects only (x86-64 and aarch64).
import * as fs from 'node:fs';

export interface ElfNeeds {
  machine: 'x86-64' | 'aarch64' | string;
  libraries: string[];
  /** every version needed, per library: { file: 'libc.so.6', version: 'GLIBC_2.14' } */
  versions: { file: string; version: string }[];
  /** undefined symbols that are not weak, with the version each is bound to ('' if none) */
  undefinedSymbols: { name: string; version: string }[];
}

const SHT_DYNSYM = 11, SHT_DYNAMIC = 6, SHT_GNU_VERNEED = 0x6ffffffe, SHT_GNU_VERSYM = 0x6fffffff;

export function readElfNeeds(file: string): ElfNeeds {
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
  const str = (table: number, at: number) => {
    const start = sections[table].offset + at;
    return b.toString('latin1', start, b.indexOf(0, start));
  };

  const libraries: string[] = [];
  const dynamic = sections.find((s) => s.type === SHT_DYNAMIC);
  if (dynamic) {
    for (let o = dynamic.offset; o < dynamic.offset + dynamic.size; o += 16) {
      const tag = Number(b.readBigInt64LE(o));
      if (tag === 0) break;
      if (tag === 1) libraries.push(str(dynamic.link, Number(b.readBigUInt64LE(o + 8)))); // DT_NEEDED
    }
  }

  // .gnu.version_r: a chain of Verneed (one per library), each with a chain of Vernaux.
  const versions: { file: string; version: string }[] = [];
  const versionByIndex = new Map<number, string>();
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

  const undefinedSymbols: { name: string; version: string }[] = [];
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

/** What keeps a binary from loading on glibc `maxGlibc` without a newer libstdc++: [] if nothing. */
export function portabilityProblems(needs: ElfNeeds, maxGlibc = [2, 28]): string[] {
  const problems: string[] = [];
  const newer = (v: string) => {
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
export function libcOf(needs: ElfNeeds): 'glibc' | 'musl' | undefined {
  if (needs.libraries.includes('libc.so.6')) return 'glibc';
  if (needs.libraries.some((l) => /^libc\.(so|musl-[a-z0-9_]+\.so\.1)$/.test(l))) return 'musl';
  return undefined;
}

/** What keeps a musl binary from loading on any Alpine with only musl installed: [] if nothing.
 *  musl has no symbol versions, so its undefined symbols carry none; libc++, libunwind and
 *  compiler-rt must be linked in. */
export function muslProblems(needs: ElfNeeds): string[] {
  const problems: string[] = [];
  for (const lib of needs.libraries) {
    if (!/^libc\.(so|musl-[a-z0-9_]+\.so\.1)$/.test(lib)) problems.push(`needs ${lib} (only musl's libc is on every Alpine)`);
  }
  if (!needs.libraries.length) problems.push('needs no libc at all (a static or broken link)');
  for (const { file, version } of needs.versions) problems.push(`${version} from ${file} (a versioned need: musl has none)`);
  return problems;
}
