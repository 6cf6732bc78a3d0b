// The errors ignis throws. Domain errors are IgnisError with a stable `code`; arguments of the
// wrong JS type are TypeError (code E_TYPE), numbers out of range RangeError (code E_RANGE).

export type ErrorCode =
  | 'E_SHAPE'
  | 'E_DTYPE'
  | 'E_DEVICE'
  | 'E_DISPOSED'
  | 'E_OOM'
  | 'E_CUDA'
  | 'E_FORMAT'
  | 'E_ARGUMENT'
  | 'E_INDEX'
  | 'E_INTERNAL'
  | 'E_DEVICE_LOST'
  | 'E_QUEUE_FULL'
  | 'E_TIMEOUT'
  | 'E_LOAD'
  | 'E_CONFIG';

export class IgnisError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'IgnisError';
    this.code = code;
  }
}

export type IgnisTypeError = TypeError & { code: 'E_TYPE' };
export type IgnisRangeError = RangeError & { code: 'E_RANGE' };

export function typeError(message: string): IgnisTypeError {
  const e = new TypeError(message) as IgnisTypeError;
  e.code = 'E_TYPE';
  return e;
}

export function rangeError(message: string): IgnisRangeError {
  const e = new RangeError(message) as IgnisRangeError;
  e.code = 'E_RANGE';
  return e;
}

// How a received value is named in messages: "a string", "undefined", "an array", "a Tensor".
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') {
    const name = (v as object).constructor?.name;
    return name && name !== 'Object' ? `a ${name}` : 'an object';
  }
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'string') return `the string '${v.length > 40 ? v.slice(0, 40) + '…' : v}'`;
  return `a ${typeof v}`;
}
