#!/usr/bin/env node
// npm install hook. In the published package a prebuilt binary for this platform ships under
// prebuilds/ and nothing is built. Otherwise (a git checkout, or a platform without a prebuild)
// the addon is built from source with cmake-js (CPU always, CUDA when nvcc is found), falling
// back to node-gyp (CPU only) when CMake is missing or fails. In a checkout, npm's `prepare`
// step compiles the TypeScript afterwards (the published package ships dist/).
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const prebuilt = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'ignis.node');

function run(cmd, args) {
  console.log(`ignis: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  return r.status === 0;
}

// npm passes its bundled node-gyp to install scripts; else a node-gyp from node_modules.
function nodeGyp() {
  if (process.env.npm_config_node_gyp) return process.env.npm_config_node_gyp;
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return 'node-gyp';
  }
}

function hasCmake() {
  return spawnSync('cmake', ['--version'], { stdio: 'ignore', shell: process.platform === 'win32' }).status === 0;
}

if (fs.existsSync(prebuilt) && !process.env.IGNIS_BUILD_FROM_SOURCE) {
  console.log(`ignis: using the prebuilt binary ${path.relative(root, prebuilt)}`);
} else {
  const parallel = ['--parallel', String(Math.max(2, require('os').cpus().length))];
  const built =
    (hasCmake() && run(process.execPath, [require.resolve('cmake-js/bin/cmake-js'), 'compile', ...parallel])) ||
    run(process.execPath, [nodeGyp(), 'rebuild']);
  if (!built) {
    console.error('ignis: could not build the native addon. Install CMake 3.20+ and a C++17 compiler, then run `npm rebuild ignis`.');
    process.exit(1);
  }
}
