// A GGUF (version 3) writer for the model bench: turns a Llama checkpoint that writeRandomCheckpoint
// made into the file llama.cpp reads, in F32, F16, BF16 or Q8_0, the way llama.cpp's converter
// (convert_hf_to_gguf.py) lays it out: its tensor names, ggml's dimension order (columns first),
// Q and K rows permuted from Hugging Face's rotate-half layout into the adjacent pairs llama.cpp's
// rope rotates, 1-D tensors kept in F32, and an SPM vocabulary the bench never tokenizes with
// (it feeds ids) but llama.cpp needs to load the model.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { f32ToBf16Bits, f32ToF16Bits } from '../lib/dtype';
import { openSafetensors } from '../lib/safetensors';

export type GgufType = 'f32' | 'f16' | 'bf16' | 'q8_0';

/** ggml_type ids, and llama_ftype ids for general.file_type */
const GGML_TYPE: Record<GgufType, number> = { f32: 0, f16: 1, q8_0: 8, bf16: 30 };
const FILE_TYPE: Record<GgufType, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };
const ALIGN = 32;

// GGUF metadata value types
const T = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 } as const;

type Value =
  | { type: 'u32' | 'i32' | 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; of: 'string'; value: string[] }
  | { type: 'array'; of: 'f32' | 'i32'; value: number[] };

/** Little-endian byte building with a growing buffer. */
class Bytes {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private room(n: number) {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u32(v: number) { this.room(4); this.buf.writeUInt32LE(v, this.length); this.length += 4; }
  i32(v: number) { this.room(4); this.buf.writeInt32LE(v, this.length); this.length += 4; }
  u64(v: number) { this.room(8); this.buf.writeBigUInt64LE(BigInt(v), this.length); this.length += 8; }
  f32(v: number) { this.room(4); this.buf.writeFloatLE(v, this.length); this.length += 4; }
  u8(v: number) { this.room(1); this.buf[this.length++] = v; }
  str(s: string) {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.room(b.length);
    b.copy(this.buf, this.length);
    this.length += b.length;
  }
  pad(align: number) { while (this.length % align) this.u8(0); }
  bytes(): Buffer { return this.buf.subarray(0, this.length); }
}

function writeValue(b: Bytes, v: Value) {
  switch (v.type) {
    case 'u32': b.u32(T.u32); b.u32(v.value); break;
    case 'i32': b.u32(T.i32); b.i32(v.value); break;
    case 'f32': b.u32(T.f32); b.f32(v.value); break;
    case 'bool': b.u32(T.bool); b.u8(v.value ? 1 : 0); break;
    case 'string': b.u32(T.string); b.str(v.value); break;
    case 'array':
      b.u32(T.array);
      b.u32(T[v.of]);
      b.u64(v.value.length);
      for (const x of v.value) {
        if (v.of === 'string') b.str(x as string);
        else if (v.of === 'f32') b.f32(x as number);
        else b.i32(x as number);
      }
      break;
  }
}

/** Bytes of one tensor of `rows` rows of `cols` f32 values once stored as `type`. */
function storedBytes(type: GgufType, rows: number, cols: number): number {
  if (type === 'q8_0') return rows * (cols / 32) * 34;
  return rows * cols * (type === 'f32' ? 4 : 2);
}

/**
 * Q8_0, as ggml's reference quantizer writes it: blocks of 32, d = max|x| / 127 stored as f16,
 * q = round-half-away(x / d) (the quotient taken with the f32 reciprocal of the unrounded d).
 */
export function quantizeQ8_0(x: Float32Array, out: Buffer, at: number): void {
  if (x.length % 32) throw new RangeError(`Q8_0 needs a multiple of 32 values, got ${x.length}`);
  const id32 = new Float32Array(1);
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]));
    const d = Math.fround(amax / 127);
    id32[0] = d ? 1 / d : 0;
    const id = id32[0];
    const o = at + (b / 32) * 34;
    out.writeUInt16LE(f32ToF16Bits(d), o);
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(x[b + j] * id);
      out.writeInt8(Math.sign(v) * Math.round(Math.abs(v)), o + 2 + j);
    }
  }
}

/** rows [heads * D, cols]: within each head, row half * D/2 + j moves to 2 j + half (llama.cpp's permute). */
export function permuteRope(x: Float32Array, heads: number, cols: number): Float32Array {
  const rows = x.length / cols, D = rows / heads, half = D / 2;
  const out = new Float32Array(x.length);
  for (let h = 0; h < heads; h++)
    for (let s = 0; s < 2; s++)
      for (let j = 0; j < half; j++) {
        const from = (h * D + s * half + j) * cols, to = (h * D + 2 * j + s) * cols;
        out.set(x.subarray(from, from + cols), to);
      }
  return out;
}

function encode(type: GgufType, x: Float32Array, cols: number): Buffer {
  const rows = x.length / cols;
  if (type === 'f32') return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  const out = Buffer.alloc(storedBytes(type, rows, cols));
  if (type === 'q8_0') {
    for (let r = 0; r < rows; r++) quantizeQ8_0(x.subarray(r * cols, (r + 1) * cols), out, r * (cols / 32) * 34);
    return out;
  }
  const narrow = type === 'f16' ? f32ToF16Bits : f32ToBf16Bits;
  const u16 = new Uint16Array(out.buffer, out.byteOffset, x.length);
  for (let i = 0; i < x.length; i++) u16[i] = narrow(x[i]);
  return out;
}

/**
 * Writes `out` from the Llama checkpoint in `dir` (config.json + model.safetensors, f32). Only
 * the plain Llama that writeRandomCheckpoint makes is handled: no RoPE scaling, untied head.
 */
export async function writeLlamaGguf(dir: string, out: string, type: GgufType): Promise<void> {
  const cfg = JSON.parse(await fsp.readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  if (cfg.model_type !== 'llama' || cfg.rope_scaling || cfg.tie_word_embeddings)
    throw new Error(`writeLlamaGguf: ${dir} is not a plain untied Llama checkpoint`);
  const num = (key: string) => {
    if (typeof cfg[key] !== 'number') throw new Error(`writeLlamaGguf: config.json has no number ${key}`);
    return cfg[key] as number;
  };
  const H = num('hidden_size'), L = num('num_hidden_layers'), heads = num('num_attention_heads'), kvHeads = num('num_key_value_heads');
  const D = num('head_dim'), V = num('vocab_size');
  const st = await openSafetensors(path.join(dir, 'model.safetensors'));
  try {
    // [gguf name, checkpoint name, heads to permute over (0: none)]
    const map: [string, string, number][] = [['token_embd.weight', 'model.embed_tokens.weight', 0]];
    for (let i = 0; i < L; i++) {
      const p = `model.layers.${i}.`, g = `blk.${i}.`;
      map.push(
        [`${g}attn_norm.weight`, `${p}input_layernorm.weight`, 0],
        [`${g}attn_q.weight`, `${p}self_attn.q_proj.weight`, heads],
        [`${g}attn_k.weight`, `${p}self_attn.k_proj.weight`, kvHeads],
        [`${g}attn_v.weight`, `${p}self_attn.v_proj.weight`, 0],
        [`${g}attn_output.weight`, `${p}self_attn.o_proj.weight`, 0],
        [`${g}ffn_norm.weight`, `${p}post_attention_layernorm.weight`, 0],
        [`${g}ffn_gate.weight`, `${p}mlp.gate_proj.weight`, 0],
        [`${g}ffn_up.weight`, `${p}mlp.up_proj.weight`, 0],
        [`${g}ffn_down.weight`, `${p}mlp.down_proj.weight`, 0],
      );
    }
    map.push(['output_norm.weight', 'model.norm.weight', 0], ['output.weight', 'lm_head.weight', 0]);

    // the vocabulary: <unk> <s> </s>, the 256 byte tokens, then distinct placeholder pieces
    const tokens = ['<unk>', '<s>', '</s>'], types = [2, 3, 3];
    for (let b = 0; b < 256 && tokens.length < V; b++) {
      tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      types.push(6);
    }
    while (tokens.length < V) {
      tokens.push(`\u2581t${tokens.length}`);
      types.push(1);
    }
    tokens.length = types.length = V;
    const kv: [string, Value][] = [
      ['general.architecture', { type: 'string', value: 'llama' }],
      ['general.name', { type: 'string', value: 'ignis bench random llama' }],
      ['general.file_type', { type: 'u32', value: FILE_TYPE[type] }],
      ['general.alignment', { type: 'u32', value: ALIGN }],
      ['llama.vocab_size', { type: 'u32', value: V }],
      ['llama.context_length', { type: 'u32', value: num('max_position_embeddings') }],
      ['llama.embedding_length', { type: 'u32', value: H }],
      ['llama.block_count', { type: 'u32', value: L }],
      ['llama.feed_forward_length', { type: 'u32', value: num('intermediate_size') }],
      ['llama.rope.dimension_count', { type: 'u32', value: D }],
      ['llama.attention.head_count', { type: 'u32', value: heads }],
      ['llama.attention.head_count_kv', { type: 'u32', value: kvHeads }],
      ['llama.attention.key_length', { type: 'u32', value: D }],
      ['llama.attention.value_length', { type: 'u32', value: D }],
      ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: num('rms_norm_eps') }],
      ['llama.rope.freq_base', { type: 'f32', value: num('rope_theta') }],
      ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
      ['tokenizer.ggml.tokens', { type: 'array', of: 'string', value: tokens }],
      ['tokenizer.ggml.scores', { type: 'array', of: 'f32', value: tokens.map((_, i) => -i) }],
      ['tokenizer.ggml.token_type', { type: 'array', of: 'i32', value: types }],
      ['tokenizer.ggml.unknown_token_id', { type: 'u32', value: 0 }],
      ['tokenizer.ggml.bos_token_id', { type: 'u32', value: 1 }],
      ['tokenizer.ggml.eos_token_id', { type: 'u32', value: 2 }],
      ['tokenizer.ggml.add_bos_token', { type: 'bool', value: false }],
    ];

    const head = new Bytes();
    head.u32(0x46554747); // "GGUF"
    head.u32(3);
    head.u64(map.length);
    head.u64(kv.length);
    for (const [k, v] of kv) {
      head.str(k);
      writeValue(head, v);
    }
    const plan: { name: string; from: string; heads: number; rows: number; cols: number; type: GgufType; offset: number }[] = [];
    let offset = 0;
    for (const [name, from, permHeads] of map) {
      const info = st.info(from);
      if (!info || info.dtype !== 'F32') throw new Error(`writeLlamaGguf: ${from} is missing or not F32`);
      const [rows, cols] = info.shape.length === 1 ? [1, info.shape[0]] : info.shape;
      const t: GgufType = info.shape.length === 1 ? 'f32' : type;
      plan.push({ name, from, heads: permHeads, rows, cols, type: t, offset });
      head.str(name);
      head.u32(info.shape.length);
      for (const d of [...info.shape].reverse()) head.u64(d); // ggml order: the contiguous dimension first
      head.u32(GGML_TYPE[t]);
      head.u64(offset);
      offset += storedBytes(t, rows, cols);
      offset = Math.ceil(offset / ALIGN) * ALIGN;
    }
    head.pad(ALIGN);

    const tmp = `${out}.partial`;
    const fh = await fsp.open(tmp, 'w');
    try {
      await fh.write(head.bytes());
      let at = 0;
      for (const p of plan) {
        const raw = await st.readBytes(p.from);
        let x = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
        if (p.heads) x = permuteRope(x, p.heads, p.cols);
        const data = encode(p.type, x, p.cols);
        if (at !== p.offset) throw new Error(`writeLlamaGguf: ${p.name} at ${at}, planned ${p.offset}`);
        await fh.write(data);
        at += data.length;
        const padded = Math.ceil(at / ALIGN) * ALIGN;
        if (padded > at) await fh.write(Buffer.alloc(padded - at));
        at = padded;
      }
    } finally {
      await fh.close();
    }
    fs.renameSync(tmp, out);
  } finally {
    await st.close();
  }
}
