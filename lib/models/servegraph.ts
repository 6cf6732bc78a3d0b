// What every serving graph (continuous batching, speculative decoding) shares: its layout and its
// inputs. A step's rows are any mix of sequences, each row at its own position: ids, positions
// and slots [tokens] (the row's token, its position in its sequence, and the pool slot its k and v
// go to), rows [tokens, 2] (the row's sequence in blockTables, and its position), blockTables
// [seqs, maxBlocks], and logitRows [r] (the rows whose next token is wanted). Outputs: logits
// [r, vocab] and next [r] (their argmax).
import type { GraphBuilder, GraphNode } from '../graph';

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
