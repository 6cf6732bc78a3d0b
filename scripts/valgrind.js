#!/usr/bin/env node
// npm run valgrind: valgrind memcheck over ignis. Two runs, each under memcheck with every child
// process traced:
//   1. test/fixtures/workload.js (node --jitless): every op at awkward shapes and each float
//      dtype, a kernel-time error, refused calls, a compiled graph, a random Llama (f32, int8)
//      that generates;
//   2. the op and model suites (vitest, one forked worker per file).
// Node itself draws reports valgrind cannot see through (V8's conservative stack scan reads
// uninitialised stack words on purpose), so an error counts as ours when a frame of its stack is
// in ignis.node, and so does a definite leak allocated from ignis.node. Any such error ends the
// run with status 1 and prints its stack. Options: --only=workload|suites, --keep (keep the
// XML reports, printed at the end).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const only = (process.argv.find((a) => a.startsWith('--only=')) || '').slice(7);
const keep = process.argv.includes('--keep');

if (spawnSync('valgrind', ['--version']).status !== 0) {
  console.error('valgrind: not found (apt install valgrind)');
  process.exit(2);
}
const dist = path.join(root, 'dist', 'index.js');
if (!fs.existsSync(dist)) {
  console.error('valgrind: dist/index.js is missing: npm run build:ts first');
  process.exit(2);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-valgrind-'));
const memcheck = (name) => [
  '--tool=memcheck', '--trace-children=yes', '--leak-check=full', '--show-leak-kinds=definite',
  '--num-callers=40', '--xml=yes', `--xml-file=${path.join(dir, `${name}.%p.xml`)}`,
  `--log-file=${path.join(dir, `${name}.%p.log`)}`,
];

const runs = [
  { name: 'workload', cmd: [process.execPath, '--jitless', path.join(root, 'test', 'fixtures', 'workload.js'), dist], expect: /^ok/m },
  {
    name: 'suites',
    cmd: [process.execPath, path.join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/ops', 'test/models',
      '--pool=forks', '--reporter=dot', '--testTimeout=3000000', '--hookTimeout=3000000'],
    expect: /Tests\s+\d+ passed/,
  },
].filter((r) => !only || r.name === only);

// The <error> elements of one XML report, each as { kind, what, frames: [{ fn, obj, file, line }] }.
function errorsOf(xml) {
  const text = (s, tag) => {
    const m = s.match(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`));
    return m ? m[1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&') : '';
  };
  const out = [];
  for (const m of xml.matchAll(/<error>([\s\S]*?)<\/error>/g)) {
    const body = m[1];
    const stack = (body.match(/<stack>[\s\S]*?<\/stack>/) || [''])[0];
    const frames = [...stack.matchAll(/<frame>([\s\S]*?)<\/frame>/g)].map((f) => ({
      fn: text(f[1], 'fn'), obj: text(f[1], 'obj'), file: text(f[1], 'file'), line: text(f[1], 'line'),
    }));
    out.push({ kind: text(body, 'kind'), what: text(body, 'text') || text(body, 'what'), frames });
  }
  return out;
}

let ours = 0;
const t0 = Date.now();
for (const run of runs) {
  const t = Date.now();
  const r = spawnSync('valgrind', [...memcheck(run.name), ...run.cmd], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 28 });
  const output = `${r.stdout}\n${r.stderr}`.replace(/\x1b\[[0-9;]*m/g, ''); // no colours
  const reports = fs.readdirSync(dir).filter((f) => f.startsWith(`${run.name}.`) && f.endsWith('.xml'));
  let all = 0, mine = 0, processes = 0;
  for (const f of reports) {
    const xml = fs.readFileSync(path.join(dir, f), 'utf8');
    if (!xml.includes('ignis.node')) { all += errorsOf(xml).length; processes++; continue; } // never loaded the addon
    processes++;
    for (const e of errorsOf(xml)) {
      all++;
      if (!e.frames.some((fr) => fr.obj.endsWith('ignis.node'))) continue;
      if (++mine > 10) continue; // counted, not printed
      console.log(`\n${run.name} (${f}): ${e.kind}: ${e.what}`);
      for (const fr of e.frames.slice(0, 16)) {
        const fn = fr.fn.length > 140 ? `${fr.fn.slice(0, 140)}...` : fr.fn;
        console.log(`    ${fn || '???'}  ${fr.file ? `${fr.file}:${fr.line}` : path.basename(fr.obj)}`);
      }
    }
  }
  const passed = r.status === 0 && run.expect.test(output);
  console.log(`${run.name}: ${passed ? 'passed' : `FAILED (exit ${r.status}${r.signal ? `, ${r.signal}` : ''})`} in ${((Date.now() - t) / 1000).toFixed(0)} s; ` +
    `${processes} processes checked; ${all} memcheck reports in all, ${mine} with a frame in ignis.node`);
  if (!passed) console.log(output.slice(-4000));
  ours += mine + (passed ? 0 : 1);
}
console.log(`valgrind: ${ours ? `FAILED: ${ours} finding(s)` : 'clean'} in ${((Date.now() - t0) / 1000).toFixed(0)} s` + (keep ? `; reports in ${dir}` : ''));
if (!keep) fs.rmSync(dir, { recursive: true, force: true });
process.exitCode = ours ? 1 : 0;
