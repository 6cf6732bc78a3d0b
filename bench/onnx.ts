// A minimal ONNX protobuf encoder (the ModelProto fields the bench needs) and the small models
// the bench runs on onnxruntime-node, so the peer runs the same shapes as ignis with no model
// files: each model is built in memory from its shapes and handed to InferenceSession.create.

// ---- protobuf wire format: varint (0), 64-bit (1), length-delimited (2), 32-bit (5) ----

class Writer {
  private chunks: Uint8Array[] = [];
  private bytes: number[] = [];

  private flush(): void {
    if (this.bytes.length) this.chunks.push(Uint8Array.from(this.bytes));
    this.bytes = [];
  }
  private varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.bytes.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.bytes.push(Number(x));
  }
  private tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }
  int(field: number, v: number): this {
    this.tag(field, 0);
    this.varint(v);
    return this;
  }
  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.bytes.push(...b);
    return this;
  }
  bytesField(field: number, data: Uint8Array): this {
    this.tag(field, 2);
    this.varint(data.length);
    this.flush();
    this.chunks.push(data);
    return this;
  }
  string(field: number, s: string): this {
    return this.bytesField(field, new TextEncoder().encode(s));
  }
  message(field: number, m: Writer): this {
    return this.bytesField(field, m.finish());
  }
  packedInts(field: number, vs: number[]): this {
    const inner = new Writer();
    for (const v of vs) inner.varint(v);
    return this.bytesField(field, inner.finish());
  }
  finish(): Uint8Array {
    this.flush();
    const total = this.chunks.reduce((n, c) => n + c.length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

// ---- onnx.proto messages (field numbers from onnx/onnx.proto) ----

/** TensorProto.DataType */
export const DT = { float: 1, uint8: 2, int8: 3, int32: 6, int64: 7 } as const;
type Elem = keyof typeof DT;

export interface Initializer {
  name: string;
  dtype: Elem;
  dims: number[];
  data: Float32Array | Int8Array | Uint8Array | Int32Array | BigInt64Array;
}

/** TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9 (little-endian). */
function tensorProto(t: Initializer): Writer {
  const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return new Writer().packedInts(1, t.dims).int(2, DT[t.dtype]).string(8, t.name).bytesField(9, raw);
}

/** ValueInfoProto { name = 1, type = 2 { tensor_type = 1 { elem_type = 1, shape = 2 { dim = 1 { dim_value = 1 } } } } } */
function valueInfo(name: string, dtype: Elem, dims: number[]): Writer {
  const shape = new Writer();
  for (const d of dims) shape.message(1, new Writer().int(1, d));
  const tensorType = new Writer().int(1, DT[dtype]).message(2, shape);
  return new Writer().string(1, name).message(2, new Writer().message(1, tensorType));
}

export type AttrValue = number | string | number[] | { float: number };

/** AttributeProto: name = 1, f = 2, i = 3, s = 4, ints = 8, type = 20 (FLOAT 1, INT 2, STRING 3, INTS 7). */
function attribute(name: string, v: AttrValue): Writer {
  const w = new Writer().string(1, name);
  if (typeof v === 'string') return w.string(4, v).int(20, 3);
  if (Array.isArray(v)) return w.packedInts(8, v).int(20, 7);
  if (typeof v === 'object') return w.float(2, v.float).int(20, 1);
  return w.int(3, v).int(20, 2);
}

export interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, AttrValue>;
  domain?: string;
}

export interface Graph {
  nodes: Node[];
  inputs: { name: string; dtype?: Elem; dims: number[] }[];
  outputs: { name: string; dtype?: Elem; dims: number[] }[];
  initializers?: Initializer[];
}

/** ModelProto: ir_version = 1, producer_name = 2, graph = 7, opset_import = 8 (domain = 1, version = 2). */
export function encodeModel(g: Graph, opset = 21): Uint8Array {
  const graph = new Writer();
  g.nodes.forEach((n, i) => {
    const node = new Writer();
    for (const x of n.inputs) node.string(1, x);
    for (const y of n.outputs) node.string(2, y);
    node.string(3, `${n.op}_${i}`).string(4, n.op);
    for (const [k, v] of Object.entries(n.attrs ?? {})) node.message(5, attribute(k, v));
    if (n.domain) node.string(7, n.domain);
    graph.message(1, node); // GraphProto.node = 1
  });
  graph.string(2, 'bench');
  for (const t of g.initializers ?? []) graph.message(5, tensorProto(t)); // initializer = 5
  for (const v of g.inputs) graph.message(11, valueInfo(v.name, v.dtype ?? 'float', v.dims));
  for (const v of g.outputs) graph.message(12, valueInfo(v.name, v.dtype ?? 'float', v.dims));
  const model = new Writer().int(1, 10).string(2, 'ignis-bench').message(7, graph); // IR 10 = opset 21
  model.message(8, new Writer().string(1, '').int(2, opset));
  if (g.nodes.some((n) => n.domain === 'com.microsoft')) model.message(8, new Writer().string(1, 'com.microsoft').int(2, 1));
  return model.finish();
}

// ---- the bench's models ----

/** y [M, N] = a [M, K] @ b [K, N], both fed. */
export function matmulModel(M: number, K: number, N: number): Uint8Array {
  return encodeModel({
    nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }],
    inputs: [{ name: 'a', dims: [M, K] }, { name: 'b', dims: [K, N] }],
    outputs: [{ name: 'y', dims: [M, N] }],
  });
}

/** y [M, N] = x [M, K] @ w, w [K, N] a constant initializer (the layout ONNX exporters write). */
export function matmulConstModel(M: number, K: number, N: number, w: Float32Array): Uint8Array {
  return encodeModel({
    nodes: [{ op: 'MatMul', inputs: ['x', 'w'], outputs: ['y'] }],
    inputs: [{ name: 'x', dims: [M, K] }],
    outputs: [{ name: 'y', dims: [M, N] }],
    initializers: [{ name: 'w', dtype: 'float', dims: [K, N], data: w }],
  });
}

/**
 * y [M, N] = x [M, K] @ dequantize(w)^T via com.microsoft MatMulNBits, bits = 8: w is
 * uint8 [N, K / blockSize, blockSize] holding int8 + 128 (the op's default zero point),
 * scales f32 [N * K / blockSize]. accuracyLevel 0 computes in f32 (W8A32, like ignis); 4
 * quantizes x to int8 per block and uses integer dot products.
 */
export function matmulNBitsModel(M: number, K: number, N: number, q: Int8Array, scales: Float32Array, blockSize: number, accuracyLevel: number): Uint8Array {
  const blob = new Uint8Array(q.length);
  for (let i = 0; i < q.length; i++) blob[i] = q[i] + 128;
  return encodeModel({
    nodes: [{
      op: 'MatMulNBits', domain: 'com.microsoft', inputs: ['x', 'w', 'scales'], outputs: ['y'],
      attrs: { K, N, bits: 8, block_size: blockSize, accuracy_level: accuracyLevel },
    }],
    inputs: [{ name: 'x', dims: [M, K] }],
    outputs: [{ name: 'y', dims: [M, N] }],
    initializers: [
      { name: 'w', dtype: 'uint8', dims: [N, K / blockSize, blockSize], data: blob },
      { name: 'scales', dtype: 'float', dims: [N * (K / blockSize)], data: scales },
    ],
  });
}

/**
 * y [M, N] = x [M, K] @ DequantizeLinear(w int8 [K, N], scale [K / blockSize, N], axis 0,
 * block_size) — the plain-ONNX (QDQ) form of an int8 weight matmul.
 */
export function matmulDQModel(M: number, K: number, N: number, qKN: Int8Array, scalesKN: Float32Array, blockSize: number): Uint8Array {
  return encodeModel({
    nodes: [
      { op: 'DequantizeLinear', inputs: ['w', 'scale'], outputs: ['wf'], attrs: { axis: 0, block_size: blockSize } },
      { op: 'MatMul', inputs: ['x', 'wf'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [M, K] }],
    outputs: [{ name: 'y', dims: [M, N] }],
    initializers: [
      { name: 'w', dtype: 'int8', dims: [K, N], data: qKN },
      { name: 'scale', dtype: 'float', dims: [K / blockSize, N], data: scalesKN },
    ],
  });
}

/**
 * Attention as an exporter writes it, head-major q [1, H, Sq, D], k, v [1, H, Skv, D]:
 * S = q k^T * scale (+ causal mask [Sq, Skv]: 0 or -inf), P = softmax(S), y = P v.
 */
export function attentionModel(H: number, Sq: number, Skv: number, D: number, causal: boolean): Uint8Array {
  const nodes: Node[] = [
    { op: 'Transpose', inputs: ['k'], outputs: ['kt'], attrs: { perm: [0, 1, 3, 2] } },
    { op: 'MatMul', inputs: ['q', 'kt'], outputs: ['s0'] }, // S = q k^T  [1, H, Sq, Skv]
    { op: 'Mul', inputs: ['s0', 'scale'], outputs: ['s1'] },
  ];
  const initializers: Initializer[] = [{ name: 'scale', dtype: 'float', dims: [], data: Float32Array.of(1 / Math.sqrt(D)) }];
  let scores = 's1';
  if (causal) {
    // Query i sits at position Skv - Sq + i and sees keys at positions <= its own.
    const mask = new Float32Array(Sq * Skv);
    for (let i = 0; i < Sq; i++) for (let j = 0; j < Skv; j++) if (j > Skv - Sq + i) mask[i * Skv + j] = -Infinity;
    initializers.push({ name: 'mask', dtype: 'float', dims: [Sq, Skv], data: mask });
    nodes.push({ op: 'Add', inputs: ['s1', 'mask'], outputs: ['s2'] });
    scores = 's2';
  }
  nodes.push({ op: 'Softmax', inputs: [scores], outputs: ['p'], attrs: { axis: -1 } });
  nodes.push({ op: 'MatMul', inputs: ['p', 'v'], outputs: ['y'] }); // y = P v  [1, H, Sq, D]
  return encodeModel({
    nodes,
    inputs: [{ name: 'q', dims: [1, H, Sq, D] }, { name: 'k', dims: [1, H, Skv, D] }, { name: 'v', dims: [1, H, Skv, D] }],
    outputs: [{ name: 'y', dims: [1, H, Sq, D] }],
    initializers,
  });
}

/** rmsnorm from primitives (x / sqrt(mean(x^2) + eps) * g); ORT fuses it into SimplifiedLayerNormalization. */
export function rmsnormModel(R: number, C: number, g: Float32Array): Uint8Array {
  return encodeModel({
    nodes: [
      { op: 'Mul', inputs: ['x', 'x'], outputs: ['x2'] },
      { op: 'ReduceMean', inputs: ['x2', 'axes'], outputs: ['ms'], attrs: { keepdims: 1 } },
      { op: 'Add', inputs: ['ms', 'eps'], outputs: ['mse'] },
      { op: 'Sqrt', inputs: ['mse'], outputs: ['rms'] },
      { op: 'Div', inputs: ['x', 'rms'], outputs: ['xn'] },
      { op: 'Mul', inputs: ['xn', 'g'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [R, C] }],
    outputs: [{ name: 'y', dims: [R, C] }],
    initializers: [
      { name: 'axes', dtype: 'int64', dims: [1], data: BigInt64Array.of(-1n) },
      { name: 'eps', dtype: 'float', dims: [], data: Float32Array.of(1e-5) },
      { name: 'g', dtype: 'float', dims: [C], data: g },
    ],
  });
}

/** One elementwise/row op on x [dims]: Softmax (last axis), Gelu (tanh form), or Add with a second input. */
export function unaryModel(op: 'Softmax' | 'Gelu' | 'Add', dims: number[]): Uint8Array {
  const attrs: Record<string, AttrValue> = op === 'Softmax' ? { axis: -1 } : op === 'Gelu' ? { approximate: 'tanh' } : {};
  const inputs = op === 'Add' ? ['x', 'b'] : ['x'];
  return encodeModel({
    nodes: [{ op, inputs, outputs: ['y'], attrs }],
    inputs: inputs.map((name) => ({ name, dims })),
    outputs: [{ name: 'y', dims }],
  });
}

/**
 * Rotate-half rope on x [1, S, H, D] from primitives, as exporters write it:
 * y = x * cos + concat(-x2, x1) * sin, cos/sin [S, 1, D] constants for positions 0..S-1.
 */
export function ropeModel(S: number, H: number, D: number, theta = 10000): Uint8Array {
  const half = D / 2;
  const cos = new Float32Array(S * D), sin = new Float32Array(S * D);
  for (let s = 0; s < S; s++)
    for (let i = 0; i < D; i++) {
      const a = s * Math.pow(theta, -(2 * (i % half)) / D);
      cos[s * D + i] = Math.cos(a);
      sin[s * D + i] = Math.sin(a);
    }
  return encodeModel({
    nodes: [
      { op: 'Split', inputs: ['x'], outputs: ['x1', 'x2'], attrs: { axis: -1, num_outputs: 2 } },
      { op: 'Neg', inputs: ['x2'], outputs: ['nx2'] },
      { op: 'Concat', inputs: ['nx2', 'x1'], outputs: ['rot'], attrs: { axis: -1 } },
      { op: 'Mul', inputs: ['x', 'cos'], outputs: ['xc'] },
      { op: 'Mul', inputs: ['rot', 'sin'], outputs: ['rs'] },
      { op: 'Add', inputs: ['xc', 'rs'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [1, S, H, D] }],
    outputs: [{ name: 'y', dims: [1, S, H, D] }],
    initializers: [
      { name: 'cos', dtype: 'float', dims: [S, 1, D], data: cos },
      { name: 'sin', dtype: 'float', dims: [S, 1, D], data: sin },
    ],
  });
}
