// What every serving graph (continuous batching, speculative decoding) shares: its layout and its
// inputs. A step's rows are any mix of sequences, each row at its own position: ids, positions
// and slots [tokens] (the row's token, its position in its sequence, and the pool slot its k and v
// go to), rows [tokens, 2] (the row's sequence in blockTables, and its position), blockTables
// [seqs, maxBlocks], and logitRows [r] (the rows whose next token is wanted). Outputs: logits
// [r, vocab] and next [r] (their argmax).
import type { Device } from '../device';
import type { GraphBuilder, GraphNode, Model, ModelState } from '../graph';
import { tensor, Tensor } from '../tensor';

/** The paged KV cache of a serving graph. */
export interface ServeLayout {
  blocks: number;
  blockSize: number;
  /** block-table entries a sequence has: ceil(maxSeq / blockSize) */
  maxBlocks: number;
}

export interface ServeInputs {
  ids: GraphNode;
  positions: GraphNode;
  slots: GraphNode;
  rows: GraphNode;
  blockTables: GraphNode;
  logitRows: GraphNode;
}

export function serveInputs(g: GraphBuilder, layout: ServeLayout): ServeInputs {
  return {
    ids: g.input('ids', { shape: ['tokens'], dtype: 'i32' }),
    positions: g.input('positions', { shape: ['tokens'], dtype: 'i32' }),
    slots: g.input('slots', { shape: ['tokens'], dtype: 'i32' }),
    rows: g.input('rows', { shape: ['tokens', 2], dtype: 'i32' }),
    blockTables: g.input('blockTables', { shape: ['seqs', layout.maxBlocks], dtype: 'i32' }),
    logitRows: g.input('logitRows', { shape: ['r'], dtype: 'i32' }),
  };
}

/** The outputs: logits of the wanted rows (head(y [r, hidden])), and their argmax. */
export function serveOutputs(g: GraphBuilder, logits: GraphNode): void {
  g.output('logits', logits);
  g.output('next', g.argmax(logits)); // [r]
}

/** One step's rows as plain integers (the inputs above; rows and blockTables flat). */
export interface ServeStep {
  ids: ArrayLike<number>;
  positions: ArrayLike<number>;
  slots: ArrayLike<number>;
  rows: ArrayLike<number>; // [tokens, 2]
  blockTables: ArrayLike<number>; // [seqs, maxBlocks]
  logitRows: ArrayLike<number>;
}

/** Runs one step of a serving graph: its inputs made on `device`, read(outputs) awaited, then every tensor freed. */
export async function runServeStep<R>(graph: Model, state: ModelState, device: Device, layout: ServeLayout, s: ServeStep, read: (out: Record<string, Tensor>) => Promise<R>): Promise<R> {
  const i32 = (x: ArrayLike<number>, shape?: number[]) => tensor(Int32Array.from(x), { shape, dtype: 'i32', device });
  const T = s.ids.length, mb = layout.maxBlocks;
  const inputs: Record<string, Tensor> = {
    ids: i32(s.ids),
    positions: i32(s.positions),
    slots: i32(s.slots),
    rows: i32(s.rows, [T, 2]),
    blockTables: i32(s.blockTables, [s.blockTables.length / mb, mb]),
    logitRows: i32(s.logitRows),
  };
  let out: Record<string, Tensor> | undefined;
  try {
    out = await graph.run(inputs, { state });
    return await read(out);
  } finally {
    for (const t of Object.values(inputs)) t.dispose();
    if (out) for (const t of Object.values(out)) t.dispose();
  }
}
