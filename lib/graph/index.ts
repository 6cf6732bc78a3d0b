// Fixed-weight forward graphs: build (./builder.ts) -> compile (./compile.ts) -> run (./model.ts).
export { graph, GraphBuilder, GraphNode, GraphWeight, GraphScalar, GraphCache, GraphPagedCache } from './builder';
export type { Dim, GraphInputOptions, GraphMatmulOptions, GraphAttentionOptions, GraphPagedAttentionOptions, GraphRopeOptions, GraphKVCacheOptions, CompileOptions } from './builder';
export { Model, ModelState } from './model';
export type { RunInputs, RunOptions } from './model';
