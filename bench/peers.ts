// The peers ignis is benched against in the same run: onnxruntime-node (CPU EP, in this
// process, on the models bench/onnx.ts builds) and numpy (one python3 child that times the same
// cases, bench/numpy_peer.py). Either is skipped, visibly, where it is not installed.
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';

// Loaded lazily so the bench still runs (without the ORT column) where the package is absent.
type Ort = typeof import('onnxruntime-node');
let ort: Ort | null | undefined;
let ortWhy = '';

export function onnxruntime(): Ort | null {
  if (ort === undefined) {
    try {
      ort = require('onnxruntime-node') as Ort;
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
  id: string;
  kind: string;
  [param: string]: string | number | boolean;
}

export interface NumpyResults {
  status: string;
  ms: Map<string, number>;
}

/** Runs every case in one python3 child; medians in ms by case id. */
export function runNumpy(cases: NumpyCase[], quick: boolean): NumpyResults {
  const script = path.join(__dirname, '..', '..', 'bench', 'numpy_peer.py');
  const spec = { cases, budgetMs: quick ? 100 : 500, minRuns: quick ? 3 : 7, maxRuns: 1000 };
  const r = spawnSync('python3', [script], { input: JSON.stringify(spec), encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.error) return { status: `numpy: skipped (python3 not found)`, ms: new Map() };
  if (r.status !== 0) {
    const last = r.stderr.trim().split('\n').pop() ?? '';
    const why = /No module named .?numpy/.test(r.stderr) ? 'numpy is not installed for python3' : `python3 failed: ${last}`;
    return { status: `numpy: skipped (${why})`, ms: new Map() };
  }
  const out = JSON.parse(r.stdout) as { version: string; blas: string; results: Record<string, number> };
  return { status: `numpy ${out.version} (${out.blas}), one python3 child, run before the in-process rows`, ms: new Map(Object.entries(out.results)) };
}
