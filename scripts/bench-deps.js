#!/usr/bin/env node
// Before npm run bench: installs the bench's peers (bench/package.json: onnxruntime-node) into
// bench/node_modules from bench/package-lock.json, once. They are not the package's dependencies,
// and their install settings (bench/.npmrc) stay in bench/. Where the install fails the bench
// still runs, and says which peer it skipped.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const bench = path.join(__dirname, '..', 'bench');
if (!fs.existsSync(path.join(bench, 'node_modules', 'onnxruntime-node', 'package.json'))) {
  console.log('bench: installing the peers in bench/ (npm ci)');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: bench, stdio: 'inherit', env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' }, shell: process.platform === 'win32' });
  if (r.status !== 0) console.log('bench: the peers did not install; the bench runs without them');
}
