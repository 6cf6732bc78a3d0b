// What the benchmark tables share: printTable and the median of a row's samples.

/** The median (the mean of the middle two for an even count; NaN for none). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// One printed table: a title line, then the head and the rows as columns, the first one left-aligned
// and the rest right-aligned, each as wide as its widest cell.
export function printTable(title: string, head: string[], body: string[][]): void {
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (c: string[]) => c.map((s, i) => (i === 0 ? s.padEnd(w[i]) : s.padStart(w[i]))).join('  ');
  console.log(`\n${title}`);
  console.log(line(head));
  for (const b of body) console.log(line(b));
}
