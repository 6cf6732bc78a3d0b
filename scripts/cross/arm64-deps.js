#!/usr/bin/env node
// The arm64 builds of vitest's native packages (today rolldown's binding and lightningcss), for
// running the project's own vitest under an emulated arm64 Node (scripts/cross/test-arm64.sh).
// node_modules holds them for this x64 machine only; here the arm64 ones, at the versions
// package-lock.json locks, go into a folder of their own, which the test puts on NODE_PATH.
//   node scripts/cross/arm64-deps.js <dir>     installs into <dir>/node_modules when out of date
// Each is checked against the integrity package-lock.json records.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..', '..');
const lock = require(path.join(root, 'package-lock.json')).packages;

// Where npm put a dependency of the package at `from` (a lock key): the nearest node_modules.
function locate(from, name) {
  for (let dir = from; ; dir = dir.slice(0, Math.max(0, dir.lastIndexOf('/node_modules/')))) {
    const key = `${dir ? `${dir}/` : ''}node_modules/${name}`;
    if (lock[key]) return key;
    if (!dir) return undefined;
  }
}

// Every package vitest can load, optional ones included: the arm64 + linux (+ glibc) ones of them.
function wanted() {
  const seen = new Set();
  const todo = ['node_modules/vitest'];
  const deps = {}; // name -> [version, lock key]
  while (todo.length) {
    const key = todo.pop();
    if (seen.has(key)) continue;
    seen.add(key);
    const p = lock[key];
    const names = Object.keys({ ...p.dependencies, ...p.optionalDependencies, ...p.peerDependencies });
    for (const name of names) {
      const dep = locate(key, name);
      if (!dep) continue;
      const d = lock[dep];
      if (d.cpu || d.os || d.libc) {
        if ((d.cpu || []).includes('arm64') && (d.os || []).includes('linux') && (!d.libc || d.libc.includes('glibc'))) deps[name] = [d.version, dep];
        continue; // another platform's package, or one we take as the arm64 build above
      }
      todo.push(dep);
    }
  }
  return deps;
}

function main() {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: node scripts/cross/arm64-deps.js <dir>');
  const deps = wanted();
  const versions = Object.fromEntries(Object.entries(deps).map(([n, [v]]) => [n, v]).sort());
  const manifest = `${JSON.stringify({ private: true, optionalDependencies: versions }, null, 2)}\n`;
  const file = path.join(dir, 'package.json');
  if (fs.existsSync(path.join(dir, 'node_modules')) && fs.existsSync(file) && fs.readFileSync(file, 'utf8') === manifest) return;

  console.error(`test-arm64: installing the arm64 builds of ${Object.entries(versions).map(([n, v]) => `${n}@${v}`).join(', ')}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(file, manifest);
  // Optional dependencies, so that --cpu/--os/--libc pick them (npm refuses a direct dependency
  // for another platform).
  const r = spawnSync('npm', ['install', '--cpu=arm64', '--os=linux', '--libc=glibc', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'],
    { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`npm install in ${dir} failed (${r.error ? r.error.message : `exit ${r.status}`})`);
  const got = JSON.parse(fs.readFileSync(path.join(dir, 'node_modules', '.package-lock.json'), 'utf8')).packages;
  for (const [name, [, key]] of Object.entries(deps)) {
    const g = got[`node_modules/${name}`], w = lock[key];
    if (!g) throw new Error(`${name} was not installed into ${dir}`);
    if (g.integrity !== w.integrity) throw new Error(`${name}: integrity ${g.integrity} is not the locked ${w.integrity}`);
  }
}

try {
  main();
} catch (e) {
  console.error(`test-arm64: ${e.message}`);
  process.exit(1);
}
