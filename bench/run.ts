// `npm run bench [-- --quick]`: runs the benchmark areas and prints one table per area.
import * as ignis from '../lib/index';
import { benchOps } from './ops.bench';

async function main() {
  const quick = process.argv.includes('--quick');
  const info = ignis.info();
  console.log(`ignis ${info.version} | cpu ${info.cpu.simd} x${info.cpu.threads} | ${new Date().toISOString()}`);
  const rows = await benchOps(quick);
  console.log('\nCPU ops (median of tinybench samples; each sample includes reading the result)');
  const w = [20, 14, 12, 34];
  const line = (c: string[]) => c.map((s, i) => (i >= 2 ? s.padStart(w[i]) : s.padEnd(w[i]))).join('  ');
  console.log(line(['op', 'shape', 'median ms', 'rate']));
  for (const r of rows) console.log(line([r.name, r.shape, r.medianMs.toFixed(3), r.rate]));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
