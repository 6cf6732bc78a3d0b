#!/usr/bin/env node
// npm run build:ts, and the checkout's prepare step: lib/ compiled into a fresh dist/ by the
// project's TypeScript (5.x, called by path: node_modules/.bin/tsc may be typescript-latest's),
// then dist/index.mjs and index.d.mts (scripts/esm-wrapper.js).
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
for (const args of [[require.resolve('typescript/bin/tsc', { paths: [root] }), '-p', 'tsconfig.json'], [path.join(__dirname, 'esm-wrapper.js')]]) {
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status || 1);
}
