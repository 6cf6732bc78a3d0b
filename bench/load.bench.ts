// Loading benchmarks (area 'load'): loadModel of a random Llama-shaped checkpoint against the
// time to read the same file once (64 MiB reads into one reused buffer), both with the file in
// the page cache: the weights kept in their stored dtype (the bar: within 2x of one read), f32
// packed for the CPU GEMM, and int8 quantized at load (loadModel resolves once the packing and
// quantizing it queued are done). Each figure is the median of its runs.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ignis from '../lib/index';
import { writeRandomCheckpoint } from '../lib/models/random';
import { printTable } from './table';

async function readOnce(file: string): Promise<void> {
  const fh = await fsp.open(file, 'r');
  const buf = Buffer.allocUnsafe(64 << 20);
  try {
    for (let pos = 0; ; ) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
}

async function medianMs(runs: number, fn: () => Promise<void>): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return ms[Math.floor(ms.length / 2)];
}

export async function benchLoad(quick: boolean, progress: (s: string) => void): Promise<void> {
  // ~490 M parameters (Llama-shaped, 8 layers of hidden 2048): 2.0 GB in f32, 1.0 GB in bf16
  const shape = { modelType: 'llama' as const, hidden: 2048, layers: quick ? 2 : 8, heads: 16, kvHeads: 4, intermediate: 5632, vocab: 32000, maxPositions: 2048 };
  const runs = quick ? 3 : 5;
  const rows: string[][] = [];
  for (const stored of ['bf16', 'f32'] as const) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ignis-load-${stored}-`));
    try {
      progress(`load: writing a ${stored} checkpoint`);
      const { params } = await writeRandomCheckpoint(dir, { ...shape, dtype: stored, seed: 1 });
      const file = path.join(dir, 'model.safetensors');
      const bytes = fs.statSync(file).size;
      await readOnce(file); // into the page cache
      const readMs = await medianMs(runs, () => readOnce(file));
      const cases: [string, ignis.LoadModelOptions][] = stored === 'bf16'
        ? [['bf16 as stored', { dtype: 'bf16' }], ['bf16 -> f32 (packed)', {}]]
        : [['f32 (packed)', {}], ['f32 -> int8 g128', { quantize: 'int8' }]];
      rows.push([`read ${stored} file once`, `${(bytes / 1e9).toFixed(2)} GB`, readMs.toFixed(0), `${(bytes / 1e6 / readMs).toFixed(2)}`, '1.00']);
      for (const [name, opts] of cases) {
        progress(`load: ${name}`);
        const ms = await medianMs(runs, async () => {
          const m = await ignis.loadModel(dir, { ...opts, maxSeq: 64 }); // resolves once packed / quantized
          m.dispose();
        });
        rows.push([`loadModel ${name}`, `${(params / 1e6).toFixed(0)} M params`, ms.toFixed(0), `${(bytes / 1e6 / ms).toFixed(2)}`, (ms / readMs).toFixed(2)]);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  progress('');
  printTable(`loading a checkpoint (${shape.layers} layers, hidden ${shape.hidden}, vocab ${shape.vocab}; ${runs} runs each)`,
    ['load (file in the page cache)', 'size', 'median ms', 'file GB/s', 'x one read'], rows);
}
