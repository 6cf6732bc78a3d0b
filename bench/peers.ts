// The peers ignis is benched against in the same run: onnxruntime-node (CPU EP, in this
// process, on the models bench/onnx.ts builds) and numpy (one python3 child that times the same
// cases, bench/numpy_peer.py). Either is skipped, visibly, where it is not installed.
import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../lib/binding';

// Loaded lazily so the bench still runs (without the ORT column) where the package is absent. It
// is installed in bench/node_modules (bench/package.json, by scripts/bench-deps.js), not among
// the package's own dependencies.
type Ort = typeof import('onnxruntime-node');
let ort: Ort | null | undefined;
let ortWhy = '';

export function onnxruntime(): Ort | null {
  if (ort === undefined) {
    try {
      ort = createRequire(path.join(packageRoot, 'bench', 'package.json'))('onnxruntime-node') as Ort;
    } catch (e) {
      ort = null;
      ortWhy = (e as Error).message.split('\n')[0];
    }
  }
  return ort;
}

export function ortStatus(): string {
  const o = onnxruntime();
  return o ? `onnxruntime-node ${o.env.versions.node} (CPU EP, ${os.availableParallelism()} intra-op threads, graph optimization 'all')` : `onnxruntime-node: skipped (${ortWhy})`;
}

export type OrtInputs = Record<string, { data: Float32Array; dims: number[] }>;

/** A session for `model` and a run() that feeds `inputs` and returns the outputs' data. */
export async function ortRunner(model: Uint8Array, inputs: OrtInputs) {
  const o = onnxruntime()!;
  const session = await o.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: os.availableParallelism(),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const feeds: Record<string, InstanceType<Ort['Tensor']>> = {};
  for (const [name, t] of Object.entries(inputs)) feeds[name] = new o.Tensor('float32', t.data, t.dims);
  return {
    run: () => session.run(feeds),
    release: () => session.release(),
  };
}

/** One case for numpy_peer.py: `kind` plus its shape parameters. */
export interface NumpyCase {
  kind: string;
  [param: string]: string | number | boolean;
}

/**
 * The numpy peer: one python3 child (bench/numpy_peer.py) that builds cases and times them on
 * request, so its samples can alternate with the in-process ones. `status` says what it is, or
 * why it was skipped; then every method is a no-op returning undefined.
 */
export class NumpyPeer {
  status = '';
  private child?: ChildProcessWithoutNullStreams;
  private waiting: ((line: string | undefined) => void)[] = [];
  private nextId = 0;

  async start(): Promise<void> {
    const script = path.join(__dirname, '..', '..', 'bench', 'numpy_peer.py');
    let stderr = '';
    try {
      this.child = spawn('python3', [script], { stdio: 'pipe' });
    } catch {
      this.status = 'numpy: skipped (python3 not found)';
      return;
    }
    const child = this.child;
    child.on('error', () => this.flush());
    child.stdin.on('error', () => this.flush());
    child.on('exit', () => this.flush());
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    createInterface({ input: child.stdout }).on('line', (line) => {
      this.waiting.shift()?.(line);
    });
    const hello = await this.ask({ hello: 1 });
    if (!hello) {
      const why = /No module named .?numpy/.test(stderr)
        ? 'numpy is not installed for python3'
        : /ENOENT|not found/.test(stderr) || !stderr ? 'python3 not found' : `python3 failed: ${stderr.trim().split('\n').pop()}`;
      this.status = `numpy: skipped (${why})`;
      this.child = undefined;
      return;
    }
    this.status = `numpy ${hello.version} (${hello.blas}), one python3 child, samples interleaved with the in-process ones`;
  }

  /** Builds a case's inputs in the child; its id, or undefined if numpy has no such case. */
  async build(c: NumpyCase): Promise<string | undefined> {
    if (!this.child) return undefined;
    const id = String(this.nextId++);
    const r = await this.ask({ build: id, case: c });
    return r?.ok ? id : undefined;
  }

  /** Median ms of repeated runs of a built case. */
  async run(id: string | undefined, quick: boolean): Promise<number | undefined> {
    if (!this.child || id === undefined) return undefined;
    const r = await this.ask({ run: id, budgetMs: quick ? 100 : 400, minRuns: quick ? 3 : 7, maxRuns: 1000 });
    return r?.ms as number | undefined;
  }

  async drop(id: string | undefined): Promise<void> {
    if (this.child && id !== undefined) await this.ask({ drop: id });
  }

  close(): void {
    this.child?.stdin.end();
    this.child = undefined;
  }

  private ask(req: object): Promise<Record<string, any> | undefined> {
    const child = this.child;
    if (!child || child.exitCode !== null) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const done = (line: string | undefined) => resolve(line === undefined ? undefined : JSON.parse(line));
      this.waiting.push(done);
      child.stdin.write(JSON.stringify(req) + '\n');
    });
  }

  private flush(): void {
    for (const w of this.waiting.splice(0)) w(undefined);
  }
}
