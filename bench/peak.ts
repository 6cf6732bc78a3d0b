// The machine's limits that "% of peak" is measured against: peak FMA GFLOP/s, read and copy
// GB/s from bench/peak/probe.cc, compiled here with g++ when it is present (the addon itself stays
// free of bench code). Without g++ only the bandwidth is measured, single-threaded, in JS.
import * as ignis from '../lib/index';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface Peak {
  /** all-core AVX2 FMA GFLOP/s, or undefined where it could not be measured */
  fmaGflops?: number;
  /** streaming read bandwidth, GB/s (undefined without the probe) */
  readGBs?: number;
  /** copy bandwidth, bytes read + written per second, in GB/s */
  copyGBs: number;
  /** the bandwidth rows are held to: the better of read and copy */
  bwGBs: number;
  source: string;
}

const root = path.join(__dirname, '..', '..');
const source = path.join(root, 'bench', 'peak', 'probe.cc');
const binary = path.join(root, 'dist-bench', 'peak-probe');

function buildProbe(): string | undefined {
  if (process.arch !== 'x64') return 'not x86-64';
  if (fs.existsSync(binary) && fs.statSync(binary).mtimeMs >= fs.statSync(source).mtimeMs) return undefined;
  const args = ['-O2', '-mavx2', '-mfma', '-std=c++17', '-pthread', source, '-o', binary];
  const r = spawnSync('g++', args, { encoding: 'utf8' });
  if (r.error) return 'g++ not found';
  if (r.status !== 0) return `g++ failed: ${r.stderr.trim().split('\n')[0]}`;
  return undefined;
}

/** Copy bandwidth of one JS thread: 256 MiB Float32Array.prototype.set, best of 3. */
function jsCopyGBs(): number {
  const n = (256 << 20) / 4;
  const src = new Float32Array(n).fill(1), dst = new Float32Array(n);
  let best = 0;
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    dst.set(src);
    best = Math.max(best, (2 * n * 4) / ((performance.now() - t) * 1e6));
  }
  return best;
}

/**
 * Read and copy GB/s now (the probe without its FMA part), for a row held to the bandwidth of the
 * moment it ran in; undefined where the probe cannot run.
 */
export function measureBandwidth(threads = os.availableParallelism()): { readGBs: number; copyGBs: number } | undefined {
  if (buildProbe() !== undefined) return undefined;
  const r = spawnSync(binary, [String(threads), 'bw'], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const p = JSON.parse(r.stdout) as { readGBs: number; copyGBs: number };
  return { readGBs: p.readGBs, copyGBs: p.copyGBs };
}

export function measurePeak(threads = os.availableParallelism()): Peak {
  const why = buildProbe();
  if (why === undefined) {
    const r = spawnSync(binary, [String(threads)], { encoding: 'utf8' });
    if (r.status === 0) {
      const p = JSON.parse(r.stdout) as { threads: number; fmaGflops: number; fmaAllCoresGflops: number; fmaOneCoreGflops: number; fma512Gflops: number; readGBs: number; copyGBs: number };
      // the peak of the vectors ignis's kernels use: AVX-512 where info().cpu.simd says so
      const wide = ignis.info().cpu.simd.startsWith('avx512') && p.fma512Gflops > 0;
      const fma = wide
        ? `FMA = AVX-512 ${p.fma512Gflops.toFixed(0)} (the kernels' path; AVX2 ${p.fmaGflops.toFixed(0)})`
        : `FMA = max(all ${p.threads} cores ${p.fmaAllCoresGflops.toFixed(0)}, one core ${p.fmaOneCoreGflops.toFixed(0)} x ${p.threads})`;
      return { fmaGflops: wide ? p.fma512Gflops : p.fmaGflops, readGBs: p.readGBs, copyGBs: p.copyGBs, bwGBs: Math.max(p.readGBs, p.copyGBs), source: `bench/peak/probe.cc: ${fma}` };
    }
  }
  const copyGBs = jsCopyGBs();
  return { copyGBs, bwGBs: copyGBs, source: `JS copy, 1 thread; FMA peak not measured (${why ?? 'probe failed'})` };
}
