// `npm run bench [-- --quick] [--graph-only] [--only=mm,int8,...,llama,serve,speculative] [--precision=f16,int8 (llama)]`: measures the machine's limits, then runs every benchmark area
// on ignis and its peers (onnxruntime-node, numpy, llama.cpp through node-llama-cpp) in this one run and prints a table per area.
import * as os from 'node:os';
import * as ignis from '../lib/index';
import { benchGraph } from './graph.bench';
import { benchLoad } from './load.bench';
import { benchLoop } from './loop.bench';
import { benchLlama } from './model.bench';
import { benchServe, benchSpeculative } from './serve.bench';
import { AREAS, benchOps, Row } from './ops.bench';
import { measurePeak, Peak } from './peak';
import { printTable } from './table';
import { ortStatus } from './peers';

function fmtMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-';
  return ms >= 100 ? ms.toFixed(1) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3);
}

/** peer ms / ignis ms: above 1 ignis is faster. */
function speedup(peerMs: number | undefined, ms: number): string {
  return peerMs === undefined || !Number.isFinite(peerMs) ? '-' : `${(peerMs / ms).toFixed(2)}x`;
}

/**
 * Roofline: the least time the row could take is max(flops / peak FLOP/s, bytes / bandwidth);
 * the larger term names the bound, and % of peak is that time over the measured one.
 */
function roofline(r: Row, peak: Peak): { rate: string; pct: string } {
  const gflops = r.flops / r.ignisMs / 1e6, gbs = r.bytes / r.ignisMs / 1e6;
  const tFlop = peak.fmaGflops ? r.flops / (peak.fmaGflops * 1e6) : 0;
  const tByte = r.bytes / (peak.bwGBs * 1e6);
  const memBound = tByte >= tFlop;
  const rate = memBound ? `${gbs.toFixed(1)} GB/s` : `${gflops.toFixed(1)} GFLOP/s`;
  const pct = ((memBound ? tByte : tFlop) / r.ignisMs) * 100;
  // a row that measured the copy bandwidth beside its rounds: % of that copy
  if (memBound && r.copyGBs) return { rate, pct: `${((gbs / r.copyGBs) * 100).toFixed(0)}% copy*` };
  return { rate, pct: `${pct.toFixed(0)}% ${memBound ? 'BW' : 'FMA'}` };
}

function table(title: string, rows: Row[], peak: Peak): void {
  const head = ['shape', 'ignis ms', 'ignis rate', '% peak', 'ORT ms', 'ORT/ignis', 'numpy ms', 'numpy/ignis'];
  const body = rows.map((r) => {
    const { rate, pct } = roofline(r, peak);
    return [r.shape, fmtMs(r.ignisMs), rate, pct, fmtMs(r.ortMs), speedup(r.ortMs, r.ignisMs), fmtMs(r.numpyMs), speedup(r.numpyMs, r.ignisMs)];
  });
  printTable(title, head, body);
}

async function main() {
  const quick = process.argv.includes('--quick');
  const graphOnly = process.argv.includes('--graph-only'); // skip the op tables and their peers
  // --only=mm,int8: just those op areas (mm, decode, int8, attn, small; graph for the graph tables;
  // loop for the event loop's gaps while kernels run; load for loadModel against one read of the file;
  // llama for the model table against llama.cpp through node-llama-cpp)
  const onlyArg = process.argv.find((a) => a.startsWith('--only='));
  const only = onlyArg ? onlyArg.slice('--only='.length).split(',') : undefined;
  const t0 = performance.now();
  const info = ignis.info();
  console.log(`ignis ${info.version} | cpu ${info.cpu.simd} x${info.cpu.threads} | ${os.cpus()[0]?.model ?? '?'} | node ${process.version} | ${new Date().toISOString()}${quick ? ' | --quick' : ''}${graphOnly ? ' | --graph-only' : ''}`);
  const peak = measurePeak();
  const read = peak.readGBs ? `${peak.readGBs.toFixed(1)} GB/s read, ` : '';
  console.log(`machine peak: ${peak.fmaGflops ? `${peak.fmaGflops.toFixed(1)} GFLOP/s f32 FMA` : 'FMA peak not measured'}, ${read}${peak.copyGBs.toFixed(1)} GB/s copy (read + write) [${peak.source}]`);
  const progress = process.stderr.isTTY ? (s: string) => process.stderr.write(`\r\x1b[K${s}`) : () => {};
  if (!graphOnly && (!only || only.some((a) => a !== 'graph' && a !== 'loop' && a !== 'load' && a !== 'llama' && a !== 'serve' && a !== 'speculative'))) await opTables(quick, peak, progress, only);
  if (!only || only.includes('graph')) await benchGraph(quick, peak, progress);
  if (!graphOnly && (!only || only.includes('loop'))) await benchLoop(quick, progress);
  if (!graphOnly && (!only || only.includes('load'))) await benchLoad(quick, progress);
  if (!graphOnly && (!only || only.includes('llama'))) await benchLlama(quick, progress);
  if (!graphOnly && (!only || only.includes('serve'))) await benchServe(quick, progress);
  if (!graphOnly && (!only || only.includes('speculative'))) await benchSpeculative(quick, progress);
  console.log(`\nbench wall time ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

async function opTables(quick: boolean, peak: Peak, progress: (s: string) => void, only?: string[]): Promise<void> {
  console.log(`peers: ${ortStatus()}`);
  const { rows, numpyStatus } = await benchOps(quick, progress, only);
  progress('');
  console.log(`       ${numpyStatus}`);
  console.log('Median ms per call: an ignis sample runs until the result is computed (await out.ready(): the');
  console.log('queue round trip included, no copy into JS), an ORT sample is one session.run (its outputs are');
  console.log('copied into JS buffers), a numpy sample one call.');
  console.log('% peak: roofline, max(FLOPs / FMA peak, bytes / max(read, copy) bandwidth) over the time; BW rows count');
  console.log('the least bytes moved (weights once: int8 = N*K + scales); rows whose data stays in cache can pass 100%.');
  console.log('Peer columns are speedups: peer ms / ignis ms (>1: ignis faster). copy*: % of the copy bandwidth measured before');
  console.log('each of the row\'s rounds (the probe again, median), not at the start of the run.');
  for (const [area, title] of Object.entries(AREAS)) {
    const mine = rows.filter((r) => r.area === area);
    if (mine.length) table(title, mine, peak);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
