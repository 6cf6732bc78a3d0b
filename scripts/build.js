#!/usr/bin/env node
// Builds the native addon from source, saying first what it builds and why. Users never need it
// (the platform packages hold prebuilt binaries); a checkout runs it from `npm install` (the
// `prepare` step), and `npx ignis-node-build` runs it in an installed package on request.
//   node scripts/build.js [--target=linux-arm64-gnu|linux-x64-musl|linux-arm64-musl] [--out=DIR] [--gyp]
// Environment: IGNIS_CUDA=OFF (no CUDA backend), IGNIS_CUDA_ARCHS="80;90a" (SASS archs, a CMake
// list), IGNIS_PORTABLE=0 (Linux: link against this machine's glibc and libstdc++ instead of the
// glibc 2.17 sysroot, so the binary only loads here), IGNIS_JOBS=N (parallel compile jobs).
// CMake (cmake-js) builds the CPU kernels and, when nvcc is found, the CUDA backend; without
// CMake, node-gyp builds the CPU kernels alone. A failed build names every missing tool.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { hostTarget } = require('./target');

const root = path.join(__dirname, '..');
const arg = (name) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : undefined;
};
const say = (s) => console.log(`ignis: ${s}`);


/** The first line a tool prints for `cmd --version` (or args), undefined where it does not run. */
function found(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', shell: process.platform === 'win32' });
  return r.status === 0 ? (r.stdout || r.stderr).split('\n')[0].trim() : undefined;
}

/** nvcc on PATH, or in CUDA_PATH / CUDA_HOME / /usr/local/cuda, as CMake's check looks for it. */
function findNvcc() {
  const dirs = [process.env.CUDA_PATH, process.env.CUDA_HOME, '/usr/local/cuda'].filter(Boolean).map((d) => path.join(d, 'bin', 'nvcc'));
  for (const c of ['nvcc', ...dirs]) {
    const r = spawnSync(c, ['--version'], { encoding: 'utf8', shell: process.platform === 'win32' });
    if (r.status === 0) return { path: c, version: (r.stdout.match(/release ([\d.]+)/) || [])[1] || '(version unknown)' };
  }
  return undefined;
}

function main() {
  const host = hostTarget();
  const target = arg('target') || host;
  const cross = target !== host;
  const out = arg('out') || (cross ? `build-${target}` : 'build');
  const jobs = Number(process.env.IGNIS_JOBS) || (os.availableParallelism ? os.availableParallelism() : os.cpus().length);
  const useGyp = process.argv.includes('--gyp');

  const cmake = found('cmake');
  const cxx = process.env.CXX ? found(process.env.CXX) : found('c++') || found('g++') || found('clang++');
  const generator = found('ninja') ? 'ninja' : found('make') ? 'make' : undefined;
  const python = found('python3') || found('python');

  // CUDA: only for linux-x64-gnu and win32-x64 builds on this machine, only when asked for.
  let cuda = { on: false, why: '' };
  const cudaWanted = (process.env.IGNIS_CUDA || 'ON').toUpperCase() !== 'OFF';
  if (!cudaWanted) cuda.why = 'IGNIS_CUDA=OFF';
  else if (cross) cuda.why = `a cross build for ${target}`;
  else if (!['linux-x64-gnu', 'win32-x64'].includes(target)) cuda.why = `no CUDA build for ${target}`;
  else if (useGyp || !cmake) cuda.why = 'node-gyp builds the CPU kernels only: CUDA needs CMake';
  else {
    const nvcc = findNvcc();
    if (nvcc) cuda = { on: true, why: `nvcc ${nvcc.version} at ${nvcc.path}` };
    else cuda.why = 'nvcc was not found (install the CUDA toolkit, or set CUDA_PATH)';
  }
  const archs = process.env.IGNIS_CUDA_ARCHS || '80;90a';

  const tool = useGyp || !cmake ? 'node-gyp' : 'cmake-js';
  // The portable Linux link: the glibc 2.17 sysroot from scripts/toolchain.js (CMake builds only).
  const cmakeDefs = [];
  let link = 'this machine\'s C and C++ libraries';
  if (target.endsWith('-gnu') && process.env.IGNIS_PORTABLE !== '0' && tool === 'cmake-js') {
    try {
      const sysroot = require('./toolchain').sysroot(target);
      cmakeDefs.push(`--CDIGNIS_GLIBC_SYSROOT=${sysroot}`);
      link = 'glibc 2.17 (the sysroot) with libstdc++ linked in: loads on glibc 2.28 and later';
    } catch (e) {
      if (cross) throw e;
      say(`warning: ${e.message.split('\n')[0]}; linking against this machine's glibc (IGNIS_PORTABLE=0 silences this)`);
    }
  }
  // A musl build from a glibc machine: zig c++ (scripts/toolchain.js zig(), cmake/zig.cmake reads
  // IGNIS_ZIG) with musl, libc++ and libunwind of its own, the last two linked in.
  if (cross && target.endsWith('-musl') && tool === 'cmake-js') {
    process.env.IGNIS_ZIG = require('./toolchain').zig();
    link = 'musl with libc++ linked in (zig c++): needs only musl\'s libc';
  }
  if (cross) {
    const file = path.join(root, 'cmake', `${target}.cmake`);
    if (!fs.existsSync(file)) throw new Error(`no CMake toolchain file for ${target} (${path.relative(root, file)})`);
    cmakeDefs.push(`--CDCMAKE_TOOLCHAIN_FILE=${file}`);
  }
  cmakeDefs.push(`--CDIGNIS_CUDA=${cuda.on ? 'ON' : 'OFF'}`);
  if (cuda.on) cmakeDefs.push(`--CDIGNIS_CUDA_ARCHS=${archs}`);

  say(`building ignis.node from source for ${target}${cross ? ` (cross, on ${host})` : ''} into ${out}/Release with ${tool}, ${jobs} jobs`);
  say(`  CPU kernels: ${target.includes('x64') ? 'AVX2+FMA and portable, picked at load' : 'portable'}`);
  say(`  CUDA: ${cuda.on ? `ON (${cuda.why}); SASS for sm_${archs.split(';').join(', sm_')}, PTX for compute_80` : `OFF (${cuda.why})`}`);
  say(`  links against ${link}`);
  // measured on 2 cores: 31 s without CUDA, 2 min with the two default archs
  say(`  expected time on 2 cores: ${cuda.on ? `about ${1 + archs.split(';').length / 2} minutes (the CUDA kernels dominate)` : 'under a minute'}`);

  const missing = [];
  if (!cxx) missing.push('a C++17 compiler (g++ 9+ or clang++ 10+; set CXX to pick one)');
  if (tool === 'cmake-js' && !generator) missing.push('ninja or make');
  if (tool === 'node-gyp' && !python) missing.push('python3 (node-gyp runs it)');
  if (tool === 'node-gyp' && !generator && process.platform !== 'win32') missing.push('make');
  if (missing.length) return fail(missing, cmake);

  let ok;
  if (!buildTools()) return fail(['cmake-js and node-addon-api (npm could not install them)'], cmake);
  if (tool === 'cmake-js') {
    const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
    ok = run(process.execPath, [cmakeJs, 'compile', '--out', out, '--parallel', String(jobs), ...cmakeDefs]);
  } else {
    let gyp = process.env.npm_config_node_gyp;
    if (!gyp) {
      try {
        gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });
      } catch {
        return fail(['node-gyp (npm install -g node-gyp)'], cmake);
      }
    }
    ok = run(process.execPath, [gyp, 'rebuild', '--jobs', String(jobs)]);
    if (ok && out !== 'build') fs.cpSync(path.join(root, 'build'), path.join(root, out), { recursive: true });
  }
  if (!ok) return fail([], cmake, true);
  say(`built ${path.join(out, 'Release', 'ignis.node')}`);
}

// The build tools are devDependencies of a checkout; an installed ignis-node has none (it needs
// no build), so a source build asked for there fetches them into the package first.
const BUILD_TOOLS = { 'cmake-js': '^8.0.0', 'node-addon-api': '^8.5.0' };
function buildTools() {
  const missing = Object.keys(BUILD_TOOLS).filter((name) => {
    try {
      require.resolve(`${name}/package.json`, { paths: [root] });
      return false;
    } catch {
      return true;
    }
  });
  if (!missing.length) return true;
  const specs = missing.map((name) => `${name}@${BUILD_TOOLS[name]}`);
  say(`fetching the build tools: ${specs.join(' ')}`);
  return run('npm', ['install', '--no-save', '--no-package-lock', '--ignore-scripts', ...specs]);
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  return r.status === 0;
}

function fail(missing, cmake, compileFailed = false) {
  const lines = [];
  if (compileFailed) lines.push('the compile failed (its output is above).');
  if (missing.length) lines.push(`missing: ${missing.join('; ')}.`);
  if (!cmake) lines.push('CMake 3.20+ was not found: without it only node-gyp can build, CPU kernels only.');
  console.error(`ignis: could not build the native addon: ${lines.join(' ')}\n` +
    'Prebuilt binaries need none of this: install ignis-node on a supported platform (see the README\'s table).');
  process.exitCode = 1;
}

if (require.main === module) {
  try {
    main();
  } catch (e) {
    console.error(`ignis: ${e.message}`);
    process.exitCode = 1;
  }
}
module.exports = { BUILD_TOOLS, found };
