// The bench's GGUF writer (bench/gguf.ts), read back by a reader written here from the GGUF v3
// layout: the header, every tensor's name, dims, type and aligned offset, and its data (F32 as
// written, F16/BF16 within their rounding, Q8_0 within half a step per block, Q/K rows permuted).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { permuteRope, quantizeQ8_0, writeLlamaGguf } from '../bench/gguf';
import { writeRandomCheckpoint } from '../lib/models/random';
import { openSafetensors } from '../lib/safetensors';

interface Parsed {
  kv: Map<string, unknown>;
  tensors: Map<string, { dims: number[]; type: number; data: Buffer }>;
}

function parseGguf(buf: Buffer): Parsed {
  let at = 0;
  const u32 = () => ((at += 4), buf.readUInt32LE(at - 4));
  const u64 = () => ((at += 8), Number(buf.readBigUInt64LE(at - 8)));
  const str = () => {
    const n = u64();
    at += n;
    return buf.toString('utf8', at - n, at);
  };
  const value = (type: number): unknown => {
    switch (type) {
      case 4: return u32();
      case 5: return (at += 4), buf.readInt32LE(at - 4);
      case 6: return (at += 4), buf.readFloatLE(at - 4);
      case 7: return buf[at++] !== 0;
      case 8: return str();
      case 9: {
        const of = u32(), n = u64();
        return Array.from({ length: n }, () => value(of));
      }
      default: throw new Error(`value type ${type}`);
    }
  };
  expect(buf.toString('latin1', 0, 4)).toBe('GGUF');
  at = 4;
  expect(u32()).toBe(3);
  const nTensors = u64(), nKv = u64();
  const kv = new Map<string, unknown>();
  for (let i = 0; i < nKv; i++) {
    const k = str();
    kv.set(k, value(u32()));
  }
  const infos: { name: string; dims: number[]; type: number; offset: number }[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str(), nd = u32();
    const dims = Array.from({ length: nd }, () => u64());
    infos.push({ name, dims, type: u32(), offset: u64() });
  }
  const align = (kv.get('general.alignment') as number | undefined) ?? 32;
  const start = Math.ceil(at / align) * align;
  const tensors = new Map<string, { dims: number[]; type: number; data: Buffer }>();
  infos.forEach((t, i) => {
    expect(t.offset % align).toBe(0);
    const end = i + 1 < infos.length ? infos[i + 1].offset : buf.length - start;
    tensors.set(t.name, { dims: t.dims, type: t.type, data: buf.subarray(start + t.offset, start + end) });
  });
  return { kv, tensors };
}

const f16 = (h: number) => {
  const e = (h >> 10) & 31, m = h & 1023, s = h & 0x8000 ? -1 : 1;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
};

describe('bench GGUF writer', () => {
  const shape = { hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 96, vocab: 300, maxPositions: 128 };
  let dir: string;
  let weights: Map<string, Float32Array>;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-gguf-'));
    await writeRandomCheckpoint(dir, { modelType: 'llama', seed: 11, ...shape });
    const st = await openSafetensors(path.join(dir, 'model.safetensors'));
    weights = new Map();
    for (const n of st.names()) {
      const b = await st.readBytes(n);
      weights.set(n, new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
    }
    await st.close();
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('permutes each head\'s two halves into adjacent pairs, and back', () => {
    const cols = 3, heads = 2, D = 4;
    const x = Float32Array.from({ length: heads * D * cols }, (_, i) => i);
    const p = permuteRope(x, heads, cols);
    // head 0 rows [0 1 | 2 3] -> [0 2 1 3]; head 1 rows [4 5 | 6 7] -> [4 6 5 7]
    const order = [0, 2, 1, 3, 4, 6, 5, 7];
    order.forEach((from, to) => expect(Array.from(p.subarray(to * cols, to * cols + cols))).toEqual(Array.from(x.subarray(from * cols, from * cols + cols))));
  });

  it('quantizes Q8_0 blocks to within half a step, ties away from zero', () => {
    const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 1.7) * (i < 32 ? 3 : 0.01));
    const out = Buffer.alloc(68);
    quantizeQ8_0(x, out, 0);
    for (let b = 0; b < 2; b++) {
      const d = f16(out.readUInt16LE(b * 34));
      const amax = Math.max(...Array.from(x.subarray(b * 32, b * 32 + 32), Math.abs));
      expect(Math.abs(d - amax / 127) / (amax / 127)).toBeLessThan(1e-3);
      // half a step of the unrounded scale, plus 127 times the scale's own f16 rounding
      const bound = 0.5 * (amax / 127) + 127 * Math.abs(d - amax / 127) + 1e-12;
      for (let j = 0; j < 32; j++) expect(Math.abs(out.readInt8(b * 34 + 2 + j) * d - x[b * 32 + j])).toBeLessThanOrEqual(bound);
    }
    const tie = new Float32Array(32).fill(0);
    tie[0] = 127; tie[1] = -2.5; tie[2] = 2.5;
    quantizeQ8_0(tie, out, 0);
    expect([out.readInt8(2), out.readInt8(3), out.readInt8(4)]).toEqual([127, -3, 3]);
    expect(() => quantizeQ8_0(new Float32Array(33), out, 0)).toThrow(/multiple of 32/);
  });

  for (const type of ['f32', 'f16', 'bf16', 'q8_0'] as const) {
    it(`writes a ${type} llama GGUF that reads back as the checkpoint`, async () => {
      const file = path.join(dir, `m-${type}.gguf`);
      await writeLlamaGguf(dir, file, type);
      const g = parseGguf(fs.readFileSync(file));
      expect(g.kv.get('general.architecture')).toBe('llama');
      expect(g.kv.get('llama.block_count')).toBe(shape.layers);
      expect(g.kv.get('llama.attention.head_count_kv')).toBe(shape.kvHeads);
      expect((g.kv.get('tokenizer.ggml.tokens') as string[]).length).toBe(shape.vocab);
      expect(new Set(g.kv.get('tokenizer.ggml.tokens') as string[]).size).toBe(shape.vocab);
      expect(g.tensors.size).toBe(3 + 9 * shape.layers);
      const ggmlType = { f32: 0, f16: 1, bf16: 30, q8_0: 8 }[type];
      const check = (gname: string, hname: string, heads = 0) => {
        const t = g.tensors.get(gname)!;
        let w = weights.get(hname)!;
        const cols = t.dims[0], rows = w.length / cols;
        expect(t.dims.reduce((a, b) => a * b, 1)).toBe(w.length);
        if (heads) w = permuteRope(w, heads, cols);
        const vec = t.dims.length === 1;
        expect(t.type).toBe(vec ? 0 : ggmlType);
        const at = (i: number): number => {
          if (vec || type === 'f32') return t.data.readFloatLE(i * 4);
          if (type === 'f16') return f16(t.data.readUInt16LE(i * 2));
          if (type === 'bf16') { const b = Buffer.alloc(4); b.writeUInt16LE(t.data.readUInt16LE(i * 2), 2); return b.readFloatLE(0); }
          const r = Math.floor(i / cols), c = i % cols, blk = r * (cols / 32) + Math.floor(c / 32);
          return f16(t.data.readUInt16LE(blk * 34)) * t.data.readInt8(blk * 34 + 2 + (c % 32));
        };
        const tol = vec || type === 'f32' ? 0 : type === 'f16' ? 2 ** -11 : type === 'bf16' ? 2 ** -8 : 1 / 127;
        let amax = 0;
        for (const v of w) amax = Math.max(amax, Math.abs(v));
        for (let i = 0; i < rows * cols; i += 7) expect(Math.abs(at(i) - w[i])).toBeLessThanOrEqual(tol * (type === 'q8_0' ? amax : Math.abs(w[i])) + (type === 'f16' ? 2 ** -25 : 0));
      };
      check('token_embd.weight', 'model.embed_tokens.weight');
      check('blk.1.attn_q.weight', 'model.layers.1.self_attn.q_proj.weight', shape.heads);
      check('blk.1.attn_k.weight', 'model.layers.1.self_attn.k_proj.weight', shape.kvHeads);
      check('blk.0.ffn_down.weight', 'model.layers.0.mlp.down_proj.weight');
      check('blk.0.attn_norm.weight', 'model.layers.0.input_layernorm.weight');
      check('output.weight', 'lm_head.weight');
    });
  }
});
