// Types as users write them: consumer files (test/fixtures/types/ and the README's examples) are
// type-checked against the built declarations in dist/, reached as a consumer reaches them
// (node_modules/ignis-node, its package.json "exports"), with skipLibCheck off, by the TypeScript
// 5 the project builds with and by the newest release (the typescript-latest devDependency). The
// README's examples are also run as pasted. Needs dist/ built (npm run build:ts).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const fixtures = path.join(root, 'test', 'fixtures', 'types');

type Compiler = { tsc: string; version: string };

/** The tsc of an installed typescript package (by name, or a folder), or null. */
function compiler(pkg: string): Compiler | null {
  let manifest: string;
  try {
    manifest = fs.existsSync(path.join(pkg, 'package.json')) ? path.join(pkg, 'package.json') : require.resolve(`${pkg}/package.json`, { paths: [root] });
  } catch {
    return null;
  }
  const m = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { version: string; bin: { tsc: string } };
  return { tsc: path.join(path.dirname(manifest), m.bin.tsc), version: m.version };
}

const ts5 = compiler('typescript') ?? undefined;
// The newest release: the devDependency "typescript-latest" (npm:typescript@^7), or a folder
// holding one (IGNIS_TYPESCRIPT_LATEST=/path/node_modules/typescript) where it is not installed.
const latest = compiler(process.env.IGNIS_TYPESCRIPT_LATEST || 'typescript-latest');

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, maxBuffer: 16 * 2 ** 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }));
  });
}

/** The README's examples: the CommonJS and ESM JavaScript blocks and the TypeScript one. */
function readmeExamples(): Record<'readme.cjs' | 'readme.mjs' | 'readme-ts.mts', string> {
  const md = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const blocks = [...md.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1], code: m[2] }));
  const find = (what: string, ok: (b: { lang: string; code: string }) => boolean) => {
    const b = blocks.find(ok);
    if (!b) throw new Error(`README.md has no ${what} example`);
    return b.code;
  };
  return {
    'readme.cjs': find("```js with require('ignis-node')", (b) => b.lang === 'js' && b.code.includes("require('ignis-node')")),
    'readme.mjs': find("```js with import ... from 'ignis-node'", (b) => b.lang === 'js' && b.code.includes("from 'ignis-node'")),
    'readme-ts.mts': find("```ts with import ... from 'ignis-node'", (b) => b.lang === 'ts' && b.code.includes("from 'ignis-node'")),
  };
}

// A consumer project: node16-style resolution (.mts/.mjs are ESM, .cts/.cjs CommonJS), the lib
// `using` needs, Node's types, and every file checked, the declarations included.
const NODENEXT = {
  module: 'nodenext',
  target: 'es2022',
  lib: ['es2022', 'esnext.disposable'],
  types: ['node'],
  strict: true,
  skipLibCheck: false,
  allowJs: true,
  checkJs: true,
};
const ALL_FILES = ['consumer.mts', 'consumer.cts', 'readme.cjs', 'readme.mjs', 'readme-ts.mts'];

let dir = '';

beforeAll(() => {
  if (!fs.existsSync(path.join(root, 'dist', 'index.d.ts')) || !fs.existsSync(path.join(root, 'dist', 'index.d.mts')))
    throw new Error('dist/index.d.ts and dist/index.d.mts are missing: run npm run build:ts');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-types-'));
  fs.mkdirSync(path.join(dir, 'node_modules', '@types'), { recursive: true });
  fs.symlinkSync(root, path.join(dir, 'node_modules', 'ignis-node'), 'dir');
  fs.symlinkSync(path.join(root, 'node_modules', '@types', 'node'), path.join(dir, 'node_modules', '@types', 'node'), 'dir');
  for (const f of fs.readdirSync(fixtures)) fs.copyFileSync(path.join(fixtures, f), path.join(dir, f));
  for (const [f, code] of Object.entries(readmeExamples())) fs.writeFileSync(path.join(dir, f), code);
  const project = (name: string, compilerOptions: object, files: string[]) =>
    fs.writeFileSync(path.join(dir, name), JSON.stringify({ compilerOptions, files }, null, 2));
  project('tsconfig.json', { ...NODENEXT, outDir: 'out' }, ALL_FILES); // emits: the README's TypeScript is run below
  project('tsconfig.noemit.json', { ...NODENEXT, noEmit: true }, ALL_FILES);
  // Nothing but the files: the newest compiler's defaults (its lib, resolution, no @types).
  project('tsconfig.defaults.json', { noEmit: true }, ['consumer.mts', 'readme-ts.mts']);
});

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Checks a project; returns the files it read. Every diagnostic fails, in the package's
 * declarations too, and so does an unused @ts-expect-error (a type that no longer catches the
 * mistake it should).
 */
async function check(c: Compiler, project: string): Promise<string[]> {
  const { code, out } = await run(process.execPath, [c.tsc, '-p', project, '--pretty', 'false', '--listFiles'], dir);
  const lines = out.split('\n').filter((l) => l.trim());
  const files = lines.filter((l) => path.isAbsolute(l) && fs.existsSync(l));
  const diagnostics = lines.filter((l) => !files.includes(l));
  expect(diagnostics.join('\n'), `tsc ${c.version} -p ${project}`).toBe('');
  expect(code).toBe(0);
  return files;
}

// What a consumer's compiler should read for `import` and for `require`: the package.json
// "exports" types of each (dist/index.d.mts and dist/index.d.ts once the ESM entry has its own).
function entryDeclarations(): string[] {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const dot = pkg.exports?.['.'] ?? {};
  const types = (c: unknown) => (typeof c === 'object' && c !== null ? (c as { types?: string }).types : undefined);
  return [types(dot.import) ?? dot.types, types(dot.require) ?? dot.types].filter(Boolean).map((t: string) => path.join(root, t));
}

describe(`TypeScript ${ts5?.version ?? '5'}`, () => {
  it('type-checks the consumers and the README examples against dist/', async () => {
    expect(ts5, 'typescript (the devDependency) is not installed: npm install').toBeDefined();
    const files = await check(ts5!, 'tsconfig.json');
    for (const d of entryDeclarations()) expect(files, 'the declarations package.json names').toContain(d);
  });
});

describe.skipIf(!latest)(
  latest ? `TypeScript ${latest.version} (newest)` : 'newest TypeScript (skipped: typescript-latest is not installed; npm install, or IGNIS_TYPESCRIPT_LATEST=<a typescript package folder>)',
  () => {
    it('type-checks the consumers and the README examples against dist/', async () => {
      const files = await check(latest!, 'tsconfig.noemit.json');
      for (const d of entryDeclarations()) expect(files, 'the declarations package.json names').toContain(d);
    });
    it('with its default settings: no error, in the package or the consumer', async () => {
      await check(latest!, 'tsconfig.defaults.json');
    });
  },
);

describe('README examples run as pasted', () => {
  it('CommonJS', async () => {
    const { code, out } = await run(process.execPath, ['readme.cjs'], dir);
    expect(out).toContain('[ 4, 3072 ] f32');
    expect(code).toBe(0);
  });
  it('ES module', async () => {
    const { code, out } = await run(process.execPath, ['readme.mjs'], dir);
    expect(out).toContain('[ [ 1.5, 1.5 ], [ 3.5, 3.5 ] ]');
    expect(code).toBe(0);
  });
  it('TypeScript, compiled (`using` runs on this Node)', async () => {
    expect(ts5, 'typescript (the devDependency) is not installed: npm install').toBeDefined();
    const out = path.join(dir, 'out', 'readme-ts.mjs');
    if (!fs.existsSync(out)) await check(ts5!, 'tsconfig.json'); // when run alone (-t)
    const r = await run(process.execPath, [out], dir);
    expect(r.out).toContain('6 cpu');
    expect(r.code).toBe(0);
  });
});
