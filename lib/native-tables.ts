// The native tables lib/ is compiled against: the ops and each op's params (names and kinds),
// the activations, binary ops, dtypes, error codes, graph buffer kinds and limits. lib/ passes
// names, never indices; checkTables() compares these with what the loaded addon exports
// (native/binding/ops.cc tables()) and refuses an addon built from other sources.
import { DTYPES, DType } from './dtype';
import { ErrorCode, IgnisError } from './errors';

export const ACTIVATIONS = ['gelu', 'silu', 'relu', 'tanh'] as const;
export type ActivationName = (typeof ACTIVATIONS)[number];
export const BINARY_OPS = ['add', 'mul'] as const;
export type BinaryOpName = (typeof BINARY_OPS)[number];
export const BUFFER_KINDS = ['input', 'weight', 'arena', 'output', 'state', 'view'] as const;
export type BufferKind = (typeof BUFFER_KINDS)[number];

/** Each op's params: field name -> kind (native/core/op.h, fields()). */
export const OP_PARAMS = {
  matmul: { transposeB: 'bool', activation: 'activation' },
  matmul_q: { groupSize: 'int', activation: 'activation', int8Activations: 'bool' },
  matmul_packed: { N: 'int', activation: 'activation' },
  pack_weight: { transposeB: 'bool' },
  quantize: { groupSize: 'int', scales: 'dtype' },
  dequantize: { groupSize: 'int', dtype: 'dtype' },
  attention: { causal: 'bool', scale: 'number', kvLen: 'int', qPos0: 'int', window: 'int', softcap: 'number' },
  kv_append: { position: 'int' },
  kv_write: {},
  paged_attention: { scale: 'number', window: 'int', softcap: 'number' },
  rmsnorm: { eps: 'number' },
  layernorm: { eps: 'number' },
  activation: { activation: 'activation' },
  softmax: { axis: 'int' },
  argmax: {},
  sample: { temperature: 'number', topK: 'int', topP: 'number', seed: 'uint', counter: 'uint' },
  rope: { position: 'int', theta: 'number', freqs: 'numbers', scale: 'number' },
  embedding: {},
  binary: { op: 'binaryOp' },
  cast: { dtype: 'dtype' },
  rows: { start: 'int', count: 'dim' },
  last: {},
  fill: { value: 'number' },
  randn: { seed: 'uint' },
} as const;
export type OpName = keyof typeof OP_PARAMS;

interface KindTypes {
  bool: boolean;
  number: number;
  int: number;
  uint: number;
  dim: number | string;
  numbers: readonly number[] | Float64Array;
  activation: ActivationName | 'none';
  binaryOp: BinaryOpName;
  dtype: DType;
}
/** The params object an op takes, typed from OP_PARAMS. */
export type ParamsOf<O extends OpName> = { -readonly [K in keyof (typeof OP_PARAMS)[O]]: KindTypes[(typeof OP_PARAMS)[O][K] & keyof KindTypes] };

/** The native error codes (E_RANGE reaches JS as a RangeError, as lib/'s own range checks). */
export const ERROR_CODES: readonly (ErrorCode | 'E_RANGE')[] = [
  'E_SHAPE', 'E_DTYPE', 'E_DEVICE', 'E_DISPOSED', 'E_OOM', 'E_CUDA', 'E_FORMAT', 'E_ARGUMENT', 'E_INDEX', 'E_INTERNAL', 'E_RANGE', 'E_DEVICE_LOST',
];

export interface NativeTables {
  ops: string[];
  opParams: Record<string, Record<string, string>>;
  activations: string[];
  binaryOps: string[];
  dtypes: string[];
  errorCodes: string[];
  bufferKinds: string[];
  maxRank: number;
  maxElements: number;
  panelWidth: number;
}

/** Limits the addon reports (set at load). */
export const limits = { maxRank: 8, maxElements: 2 ** 40, panelWidth: 16 };

const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Throws E_LOAD naming the first table where lib/ and the addon disagree. */
export function checkTables(t: NativeTables, where: string): void {
  const differ = (what: string, want: unknown, got: unknown): never => {
    throw new IgnisError(
      'E_LOAD',
      `ignis: the native addon at ${where} was built from other sources than this lib/: its ${what} are ${JSON.stringify(got)}, ` +
        `lib/ expects ${JSON.stringify(want)}. Rebuild it (npm run build:native) or reinstall the package.`,
    );
  };
  if (!same(Object.keys(OP_PARAMS), t.ops)) differ('ops', Object.keys(OP_PARAMS), t.ops);
  for (const op of t.ops) {
    const want = OP_PARAMS[op as OpName] as Record<string, string>;
    const got = t.opParams[op] ?? {};
    if (!same(Object.keys(want), Object.keys(got)) || Object.keys(want).some((k) => want[k] !== got[k])) differ(`${op} params`, want, got);
  }
  if (!same(['none', ...ACTIVATIONS], t.activations)) differ('activations', ['none', ...ACTIVATIONS], t.activations);
  if (!same(BINARY_OPS, t.binaryOps)) differ('binary ops', BINARY_OPS, t.binaryOps);
  if (!same(DTYPES, t.dtypes)) differ('dtypes', DTYPES, t.dtypes);
  if (!same(ERROR_CODES, t.errorCodes)) differ('error codes', ERROR_CODES, t.errorCodes);
  if (!same(BUFFER_KINDS, t.bufferKinds)) differ('graph buffer kinds', BUFFER_KINDS, t.bufferKinds);
  limits.maxRank = t.maxRank;
  limits.maxElements = t.maxElements;
  limits.panelWidth = t.panelWidth;
}
