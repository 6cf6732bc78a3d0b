#!/usr/bin/env node
// Before npm run bench: installs the bench's peers (bench/package.json: onnxruntime-node and
// node-llama-cpp) into bench/node_modules from bench/package-lock.json, once. They are not the
// package's dependencies, and their install settings (bench/.npmrc) stay in bench/. Where the
// install fails the bench still runs, and says which peer it skipped.
//
// node-llama-cpp lists a prebuilt llama.cpp for every platform and GPU API as optional
// dependencies (about 670 MB on linux-x64, CUDA and Vulkan builds included); the bench runs its
// CPU build only, so optional dependencies are left out and this platform's CPU package is
// installed by name, at the version node-llama-cpp pins.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const bench = path.join(__dirname, '..', 'bench');
const modules = path.join(bench, 'node_modules');
const npm = (args) =>
  spawnSync('npm', [...args, '--no-audit', '--no-fund'], { cwd: bench, stdio: 'inherit', env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' }, shell: process.platform === 'win32' });

if (!['onnxruntime-node', 'node-llama-cpp'].every((p) => fs.existsSync(path.join(modules, p, 'package.json')))) {
  // npm install --no-save rather than npm ci: npm 11 leaves other platforms' optional packages out
  // of the lock it writes, and npm ci then refuses that lock as out of sync
  console.log('bench: installing the peers in bench/ (from bench/package-lock.json)');
  if (npm(['install', '--no-save', '--omit=optional']).status !== 0) console.log('bench: the peers did not install; the bench runs without them');
}

// node-llama-cpp's CPU binaries for this platform (the Metal build is Apple silicon's only one)
const CPU_PACKAGE = { 'linux-x64': 'linux-x64', 'linux-arm64': 'linux-arm64', 'darwin-arm64': 'mac-arm64-metal', 'darwin-x64': 'mac-x64', 'win32-x64': 'win-x64', 'win32-arm64': 'win-arm64' };
const cpu = CPU_PACKAGE[`${process.platform}-${process.arch}`];
const nlc = path.join(modules, 'node-llama-cpp', 'package.json');
if (cpu && fs.existsSync(nlc) && !fs.existsSync(path.join(modules, '@node-llama-cpp', cpu, 'package.json'))) {
  const version = JSON.parse(fs.readFileSync(nlc, 'utf8')).optionalDependencies[`@node-llama-cpp/${cpu}`];
  console.log(`bench: installing @node-llama-cpp/${cpu}@${version} (node-llama-cpp's CPU build here)`);
  if (npm(['install', '--no-save', '--omit=optional', `@node-llama-cpp/${cpu}@${version}`]).status !== 0)
    console.log('bench: node-llama-cpp\'s binaries did not install; the llama table is skipped');
}
