#!/usr/bin/env node
// npm run package: the packages users install, as tarballs in dist-packages/, ready for
// `npm install <tarball>` or `npm publish <tarball>`:
//   ignis-node-<version>.tgz                  the main package: dist/, no install script, no
//                                             runtime dependency; every platform package as an
//                                             optional dependency (npm installs the one whose
//                                             os/cpu/libc match)
//   ignis-node-<target>-<version>.tgz         one per target built here: its ignis.node alone
// It builds what this machine can: its own target (reusing build/ when it is current), and the
// cross targets whose toolchain is here (linux-arm64-gnu with Debian's aarch64 cross g++). The
// other targets are built by the release workflow on their own runners.
//   node scripts/package.js [--targets=linux-x64-gnu,linux-arm64-gnu] [--no-build]
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { hostTarget } = require('./target');
const { found } = require('./build');

const root = path.join(__dirname, '..');
const out = path.join(root, 'dist-packages');
const stage = path.join(out, '.stage');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

// Every target a platform package exists for: npm's os/cpu/libc fields, and what it runs.
const TARGETS = {
  'linux-x64-gnu': { os: 'linux', cpu: 'x64', libc: 'glibc', runs: 'AVX2+FMA or portable kernels (picked at load), CUDA (sm_80, sm_90a, PTX compute_80)' },
  'linux-arm64-gnu': { os: 'linux', cpu: 'arm64', libc: 'glibc', runs: 'portable kernels' },
  'linux-x64-musl': { os: 'linux', cpu: 'x64', libc: 'musl', runs: 'AVX2+FMA or portable kernels' },
  'linux-arm64-musl': { os: 'linux', cpu: 'arm64', libc: 'musl', runs: 'portable kernels' },
  'darwin-arm64': { os: 'darwin', cpu: 'arm64', runs: 'portable kernels' },
  'darwin-x64': { os: 'darwin', cpu: 'x64', runs: 'AVX2+FMA or portable kernels' },
  'win32-x64': { os: 'win32', cpu: 'x64', runs: 'AVX2+FMA or portable kernels' },
};

const say = (s) => console.log(`package: ${s}`);
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status})`);
}
function capture(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', shell: process.platform === 'win32', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}


/** The targets this machine can build: its own; from linux-x64-gnu also linux-arm64-gnu (with
 * Debian's cross g++: npm run build:arm64 installs it) and both musl targets (zig, fetched). */
function buildable() {
  const host = hostTarget();
  const list = [host];
  if (host === 'linux-x64-gnu' && found('aarch64-linux-gnu-g++') !== undefined) list.push('linux-arm64-gnu');
  if (host === 'linux-x64-gnu') list.push('linux-x64-musl', 'linux-arm64-musl');
  return list;
}

/** Newest modification time under the native sources and build files. */
function sourcesTime() {
  let newest = 0;
  const walk = (p) => {
    const st = fs.statSync(p);
    if (st.isDirectory()) for (const f of fs.readdirSync(p)) walk(path.join(p, f));
    else newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of ['native', 'cmake', 'CMakeLists.txt']) if (fs.existsSync(path.join(root, p))) walk(path.join(root, p));
  return newest;
}

function binaryFor(target, host, build) {
  const dir = target === host ? 'build' : `build-${target}`;
  const file = path.join(root, dir, 'Release', 'ignis.node');
  const current = fs.existsSync(file) && fs.statSync(file).mtimeMs >= sourcesTime();
  if (!current) {
    if (!build) throw new Error(`${path.relative(root, file)} is missing or older than the sources (run without --no-build)`);
    run(process.execPath, [path.join(__dirname, 'build.js'), ...(target === host ? [] : [`--target=${target}`])]);
  } else {
    say(`${target}: reusing ${path.relative(root, file)} (newer than every native source)`);
  }
  return file;
}

function common() {
  return { version: pkg.version, license: pkg.license, homepage: pkg.homepage, repository: pkg.repository, bugs: pkg.bugs };
}

function writePlatformPackage(target, binary) {
  const t = TARGETS[target];
  const name = `${pkg.name}-${target}`;
  const dir = path.join(stage, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(binary, path.join(dir, 'ignis.node'));
  fs.copyFileSync(path.join(root, 'LICENSE'), path.join(dir, 'LICENSE'));
  const manifest = {
    name,
    ...common(),
    description: `The ${target} binary of ${pkg.name} (${t.runs}). Installed by ${pkg.name} as an optional dependency; not for direct use.`,
    os: [t.os],
    cpu: [t.cpu],
    ...(t.libc ? { libc: [t.libc] } : {}),
    main: 'ignis.node',
    files: ['ignis.node'],
    engines: pkg.engines,
  };
  fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, 'README.md'), `# ${name}\n\nThe prebuilt \`ignis.node\` of [${pkg.name}](https://www.npmjs.com/package/${pkg.name}) for ${target}: ${t.runs}.\nInstall \`${pkg.name}\`, which depends on this package where it fits.\n`);
  return dir;
}

function writeMainPackage() {
  const dir = path.join(stage, pkg.name);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of [...pkg.files, 'README.md', 'LICENSE']) {
    const from = path.join(root, f);
    if (!fs.existsSync(from)) throw new Error(`package.json files lists ${f}, which does not exist`);
    fs.cpSync(from, path.join(dir, f), { recursive: true });
  }
  const manifest = { ...pkg };
  delete manifest.scripts; // no install step of any kind: the binary comes in a platform package
  delete manifest.devDependencies;
  manifest.optionalDependencies = Object.fromEntries(Object.keys(TARGETS).map((t) => [`${pkg.name}-${t}`, pkg.version]));
  fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return dir;
}

function packDir(dir) {
  const [info] = JSON.parse(capture('npm', ['pack', dir, '--json', '--pack-destination', out, '--ignore-scripts']));
  return info;
}

function main() {
  const build = !process.argv.includes('--no-build');
  const only = process.argv.find((a) => a.startsWith('--targets='));
  const host = hostTarget();
  const targets = only ? only.slice('--targets='.length).split(',') : buildable();
  for (const t of targets) if (!TARGETS[t]) throw new Error(`unknown target ${t} (known: ${Object.keys(TARGETS).join(', ')})`);

  if (!fs.existsSync(path.join(root, 'dist', 'index.js')) || build) run('npm', ['run', 'build:ts']);
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(stage, { recursive: true });
  const made = [];
  for (const t of targets) made.push(packDir(writePlatformPackage(t, binaryFor(t, host, build))));
  made.push(packDir(writeMainPackage()));
  fs.rmSync(stage, { recursive: true, force: true });
  for (const m of made) say(`${path.join('dist-packages', m.filename)}: ${(m.size / 2 ** 20).toFixed(1)} MiB packed, ${(m.unpackedSize / 2 ** 20).toFixed(1)} MiB unpacked, ${m.entryCount} files`);
  const missing = Object.keys(TARGETS).filter((t) => !targets.includes(t));
  if (missing.length) say(`not built here (the release workflow builds them): ${missing.join(', ')}`);
}

if (require.main === module) {
  try {
    main();
  } catch (e) {
    console.error(`package: ${e.message}`);
    process.exitCode = 1;
  }
}
module.exports = { TARGETS };
