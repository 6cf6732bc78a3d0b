#!/usr/bin/env node
// npm run test:install: ignis-node as a user installs it. Packs the main package and this
// platform's binary package (scripts/package.js, reusing build/), installs both tarballs into an
// empty app with a PATH that holds node and npm alone (no cc, c++, cmake, nvcc, make or python: an
// install that tried to compile would fail), then runs a CommonJS `require` and an ESM `import`
// that each do a matmul and load and generate from a small checkpoint, and checks both against
// the checkout's own results; and runs @arethetypeswrong/cli on the main tarball. Prints the
// install time. Exit status 1 on any failure.
// Then a source build on request: refused with every missing tool named on the bare PATH, and
// with --build-from-source, built for real in the installed package (CPU kernels) and loaded.
//   node scripts/e2e-install.js [--keep] [--no-pack] [--build-from-source]
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { hostTarget } = require('./target');

const root = path.join(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const say = (s) => console.log(`e2e-install: ${s}`);
const TOOLS = ['cc', 'gcc', 'c++', 'g++', 'clang', 'clang++', 'cmake', 'nvcc', 'make', 'ninja', 'python', 'python3'];

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}${r.error ? `, ${r.error.message}` : ''}):\n${r.stdout}\n${r.stderr}`.trim());
  return r.stdout;
}

/** A folder of links to node and npm only: the PATH of the install and the runs. */
function barePath(dir) {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  const npmCli = fs.realpathSync(sh('sh', ['-c', 'command -v npm']).trim()); // .../npm/bin/npm-cli.js
  fs.writeFileSync(path.join(bin, 'npm'), `#!/bin/sh\nexec "${process.execPath}" "${npmCli}" "$@"\n`, { mode: 0o755 });
  for (const t of TOOLS) {
    const r = spawnSync('sh', ['-c', `command -v ${t}`], { env: { PATH: bin }, encoding: 'utf8' });
    if (r.status === 0) throw new Error(`${t} is still on the bare PATH (${r.stdout.trim()})`);
  }
  return bin;
}

const probe = (ig, lines) => `
  const a = ig.tensor(new Float32Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3] });
  const b = ig.tensor(new Float32Array([7, 8, 9, 10, 11, 12]), { shape: [3, 2] });
  const product = Array.from(await ig.matmul(a, b).data());
  const model = await ig.loadModel(process.argv[2]);
  const ids = [];
  for await (const { token } of model.generate([1, 5, 9], { maxNewTokens: 8 })) ids.push(token);
  model.dispose();
  ${lines}
  console.log(JSON.stringify({ product, ids, simd: ig.info().cpu.simd, version: ig.info().version, binary: ig.info().binary }));
`;

async function main() {
  const keep = process.argv.includes('--keep');
  const host = hostTarget();
  if (!process.argv.includes('--no-pack')) sh(process.execPath, [path.join(__dirname, 'package.js'), `--targets=${host}`], { cwd: root, stdio: 'inherit' });
  const tarballs = [`${pkg.name}-${pkg.version}.tgz`, `${pkg.name}-${host}-${pkg.version}.tgz`].map((f) => path.join(root, 'dist-packages', f));
  for (const t of tarballs) if (!fs.existsSync(t)) throw new Error(`${path.relative(root, t)} is missing (npm run package)`);

  // The declarations as TypeScript resolves them for require and import, under every module
  // resolution (node10, node16 CJS and ESM, bundler): @arethetypeswrong/cli on the main tarball.
  const attw = spawnSync(process.execPath, [path.join(root, 'node_modules', '@arethetypeswrong', 'cli', 'dist', 'index.js'), tarballs[0], '--format', 'table-flipped'], { encoding: 'utf8' });
  if (attw.status !== 0) throw new Error(`attw found problems in ${path.basename(tarballs[0])}:\n${attw.stdout}${attw.stderr}`);
  say(`attw: ${attw.stdout.includes('No problems found') ? 'no problems found' : attw.stdout.trim().split('\n')[0]} (node10, node16 CJS and ESM, bundler)`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-e2e-'));
  try {
    const app = path.join(dir, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'e2e-app', version: '1.0.0', private: true }, null, 2));
    const bin = barePath(dir);
    const env = { PATH: bin, HOME: process.env.HOME || dir, npm_config_cache: process.env.npm_config_cache || path.join(os.homedir(), '.npm'), npm_config_update_notifier: 'false' };

    // The main package names every platform package as an optional dependency; the ones not
    // published yet are refused by the registry, which npm skips for an optional dependency.
    const t0 = Date.now();
    sh(path.join(bin, 'npm'), ['install', '--no-audit', '--no-fund', ...tarballs], { cwd: app, env });
    const installSeconds = (Date.now() - t0) / 1000;
    const installed = fs.readdirSync(path.join(app, 'node_modules')).filter((n) => n.startsWith(pkg.name));
    say(`installed ${installed.join(', ')} in ${installSeconds.toFixed(1)} s with PATH=${bin} (node and npm only)`);
    if (fs.existsSync(path.join(app, 'node_modules', pkg.name, 'build'))) throw new Error('the install built something: node_modules/ignis-node/build exists');

    // The reference: the same calls on the checkout (its dist/ and build/).
    const model = path.join(dir, 'model');
    const { writeRandomCheckpoint } = require(path.join(root, 'dist', 'models', 'random.js'));
    await writeRandomCheckpoint(model, { modelType: 'llama', hidden: 64, layers: 2, heads: 4, kvHeads: 2, vocab: 128, maxPositions: 64, seed: 8 });
    fs.writeFileSync(path.join(dir, 'ref.js'), `const ig = require(${JSON.stringify(path.join(root, 'dist', 'index.js'))});\n(async () => {${probe('ig', '')}})().catch((e) => { console.error(e); process.exit(1); });\n`);
    const want = JSON.parse(sh(process.execPath, [path.join(dir, 'ref.js'), model], { cwd: root }));

    fs.writeFileSync(path.join(app, 'main.cjs'), `const ig = require('${pkg.name}');\n(async () => {${probe('ig', `const where = require.resolve('${pkg.name}'); if (!where.includes('node_modules')) throw new Error('resolved ' + where);`)}})().catch((e) => { console.error(e); process.exit(1); });\n`);
    fs.writeFileSync(path.join(app, 'main.mjs'), `import * as ig from '${pkg.name}';\nimport { matmul } from '${pkg.name}';\nif (typeof matmul !== 'function') throw new Error('no named export matmul');\n${probe('ig', '')}`);
    for (const file of ['main.cjs', 'main.mjs']) {
      const got = JSON.parse(sh(path.join(bin, 'node'), [file, model], { cwd: app, env }));
      if (JSON.stringify(got.product) !== JSON.stringify([58, 64, 139, 154])) throw new Error(`${file}: matmul gave ${got.product}`);
      if (JSON.stringify(got.ids) !== JSON.stringify(want.ids)) throw new Error(`${file}: generated ${got.ids}, the checkout ${want.ids}`);
      if (got.version !== pkg.version) throw new Error(`${file}: version ${got.version}`);
      const from = fs.realpathSync(path.join(app, 'node_modules', `${pkg.name}-${host}`, 'ignis.node'));
      if (got.binary !== from) throw new Error(`${file}: loaded ${got.binary}, not the platform package's ${from}`);
      say(`${file}: matmul ok, generated ${got.ids.length} tokens as the checkout did (${got.simd} kernels, from node_modules/${pkg.name}-${host})`);
    }

    // A source build only on request: with no compiler on PATH it names what is missing; with
    // this machine's PATH (CPU kernels, to keep it short) it builds into the package, and the
    // loader takes that build before the platform package's.
    // (the bin itself, as npx would start it: npx runs it through sh, which the bare PATH lacks)
    const bare = spawnSync(path.join(app, 'node_modules', '.bin', 'ignis-node-build'), [], { cwd: app, env: { ...env, IGNIS_CUDA: 'OFF' }, encoding: 'utf8' });
    const said = `${bare.stdout}${bare.stderr}`;
    if (bare.status === 0 || !/missing: a C\+\+17 compiler/.test(said) || !/CMake 3\.20\+ was not found/.test(said)) throw new Error(`npx ignis-node-build with no tools: exit ${bare.status}\n${said}`);
    say('npx ignis-node-build with no compiler on PATH: refused, naming the compiler, CMake and make');
    if (process.argv.includes('--build-from-source')) {
      const t1 = Date.now();
      sh('npx', ['ignis-node-build'], { cwd: app, env: { ...process.env, IGNIS_CUDA: 'OFF' }, stdio: 'inherit' });
      const got = JSON.parse(sh(path.join(bin, 'node'), ['main.cjs', model], { cwd: app, env }));
      const from = fs.realpathSync(path.join(app, 'node_modules', pkg.name, 'build', 'Release', 'ignis.node'));
      if (got.binary !== from || JSON.stringify(got.ids) !== JSON.stringify(want.ids)) throw new Error(`after the source build: loaded ${got.binary}, generated ${got.ids}`);
      say(`npx ignis-node-build (IGNIS_CUDA=OFF) built in ${((Date.now() - t1) / 1000).toFixed(0)} s; main.cjs then loaded it and generated the same tokens`);
    }
    say(`passed; install ${installSeconds.toFixed(1)} s`);
  } finally {
    if (keep) say(`kept ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`e2e-install: FAILED: ${e.message}`);
  process.exitCode = 1;
});
