// One printed table: a title line, then the head and the rows as columns, the first one left-aligned
// and the rest right-aligned, each as wide as its widest cell.
export function printTable(title: string, head: string[], body: string[][]): void {
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (c: string[]) => c.map((s, i) => (i === 0 ? s.padEnd(w[i]) : s.padStart(w[i]))).join('  ');
  console.log(`\n${title}`);
  console.log(line(head));
  for (const b of body) console.log(line(b));
}
