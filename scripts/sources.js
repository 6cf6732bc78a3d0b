#!/usr/bin/env node
// The one list of native sources, read by both builds: CMakeLists.txt (cmake-js) and
// binding.gyp (node-gyp). `node scripts/sources.js host` prints the C++ sources every build
// compiles; `node scripts/sources.js cuda` prints the CUDA backend's sources, .cu and host .cc
// (CMake only).
// Sources are found by folder, so a new kernel file needs no edit here.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const groups = {
  host: ['native/core', 'native/cpu', 'native/ops', 'native/graph', 'native/binding'],
  cuda: ['native/cuda'],
};
const extension = { host: ['.cc'], cuda: ['.cu', '.cc'] };

function list(group) {
  const out = [];
  for (const dir of groups[group]) {
    for (const f of fs.readdirSync(path.join(root, dir)).sort()) {
      if (extension[group].some((e) => f.endsWith(e))) out.push(`${dir}/${f}`);
    }
  }
  return out;
}

if (require.main === module) {
  const group = process.argv[2];
  if (!groups[group]) {
    console.error(`usage: node scripts/sources.js ${Object.keys(groups).join('|')}`);
    process.exit(2);
  }
  process.stdout.write(list(group).join(process.argv[3] === '--lines' ? '\n' : ' '));
}
module.exports = { list };
