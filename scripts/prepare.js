#!/usr/bin/env node
// npm's `prepare` step in a checkout (`npm install` / `npm ci` here, never in an app that installs
// ignis-node: the published package has no install script). Builds the native addon from
// source (scripts/build.js: it says what it builds and why), then compiles lib/ into dist/.
// Before `npm pack` / `npm publish` only dist/ is built: the binaries travel in the platform
// packages (npm run package), not in the main one.
'use strict';
const { spawnSync } = require('child_process');
const path = require('path');

const root = path.join(__dirname, '..');
const step = (args) => {
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status || 1);
};
const packing = ['pack', 'publish'].includes(process.env.npm_command);
if (!packing && process.env.IGNIS_SKIP_NATIVE !== '1') step([path.join(__dirname, 'build.js')]);
step([path.join(__dirname, 'build-ts.js')]);
