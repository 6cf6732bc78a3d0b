// safetensors reading and writing: round trips of every dtype at awkward shapes (bit-exact), a
// file built byte by byte here, sharded checkpoints, dtype conversion on read, one case per
// validation rule, and a seeded fuzz of malformed files judged against a reference validator
// written here: every file either reads back exactly what its bytes say or throws E_FORMAT.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ignis from '../lib/index';
import { assertError, cudaAvailable } from './helpers';
import { bf16BitsToNumber, bf16Bits, f16Bits, f16BitsToNumber } from './reference/round';
import { Rng, rngFor, testSeed } from './reference/rng';

const FILE = 'test/safetensors.test.ts';
const seed = testSeed();
const rerun = `[seed ${seed}; rerun: IGNIS_TEST_SEED=${seed} npx vitest run ${FILE}]`;
console.log(`safetensors tests: ${rerun}`);

type DType = 'f32' | 'f16' | 'bf16' | 'i8' | 'i32';
const DTYPES: DType[] = ['f32', 'f16', 'bf16', 'i8', 'i32'];
const FILE_DTYPE: Record<DType, string> = { f32: 'F32', f16: 'F16', bf16: 'BF16', i8: 'I8', i32: 'I32' };
const SHAPES = [[1], [7], [33, 5], [0, 3], []];

let dir = '';
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-safetensors-'));
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});
const tmp = (name: string): string => path.join(dir, name);

const numel = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/** Random raw element bits of a dtype: every bit pattern, NaNs and subnormals included. */
function randomRaw(rng: Rng, dtype: DType, n: number): Float32Array | Uint16Array | Int8Array | Int32Array {
  const words = new Uint32Array(n);
  for (let i = 0; i < n; i++) words[i] = Math.floor(rng.next() * 2 ** 32);
  switch (dtype) {
    case 'f32':
      return new Float32Array(words.buffer);
    case 'i32':
      return new Int32Array(words.buffer);
    case 'i8':
      return Int8Array.from(words, (w) => (w & 0xff) - 128);
    default:
      return Uint16Array.from(words, (w) => w & 0xffff);
  }
}

const bytesOf = (d: ArrayBufferView): Uint8Array => new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/** What data() of a tensor made from raw bits must give, decoded by the reference helpers. */
function decode(dtype: DType, raw: ArrayBufferView): Float32Array | Int8Array | Int32Array {
  const b = bytesOf(raw).slice();
  if (dtype === 'i8') return new Int8Array(b.buffer);
  if (dtype === 'i32') return new Int32Array(b.buffer);
  if (dtype === 'f32') return new Float32Array(b.buffer);
  const h = new Uint16Array(b.buffer);
  return Float32Array.from(h, dtype === 'f16' ? f16BitsToNumber : bf16BitsToNumber);
}

/** Element-wise bit equality; a NaN only has to stay a NaN (16-bit NaN payloads pass through f32). */
function expectSameBits(got: ArrayLike<number> & ArrayBufferView, want: ArrayLike<number> & ArrayBufferView, ctx: string): void {
  expect(got.length, `${ctx}: length`).toBe(want.length);
  const isFloat = got instanceof Float32Array;
  const gw = isFloat ? new Uint32Array(got.buffer, got.byteOffset, got.length) : got;
  const ww = isFloat ? new Uint32Array(want.buffer, want.byteOffset, want.length) : want;
  for (let i = 0; i < got.length; i++) {
    if (isFloat && Number.isNaN(want[i])) {
      if (!Number.isNaN(got[i])) expect.fail(`${ctx}: element ${i} should be NaN, got ${got[i]}`);
    } else if (gw[i] !== ww[i]) {
      expect.fail(`${ctx}: element ${i} is ${got[i]} (bits ${gw[i].toString(16)}), expected ${want[i]} (bits ${ww[i].toString(16)})`);
    }
  }
}

/** Raw 16-bit float bits compared exactly, except that a NaN only has to stay a NaN. */
function expectSameHalfBits(got: Uint16Array, want: Uint16Array, dtype: 'f16' | 'bf16', ctx: string): void {
  const nan = (h: number) => (dtype === 'f16' ? (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0 : (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0);
  for (let i = 0; i < want.length; i++) {
    if (nan(want[i]) ? !nan(got[i]) : got[i] !== want[i])
      expect.fail(`${ctx}: element ${i} bits ${got[i].toString(16)}, expected ${want[i].toString(16)}`);
  }
}

async function rejects(p: Promise<unknown> | (() => unknown), kind: 'IgnisError' | 'TypeError', code: string, label: string, contains: string[] = []): Promise<Error> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  if (err === undefined) expect.fail(`${label}: expected ${kind} ${code}, but it succeeded`);
  assertError(err, kind, code, label);
  for (const s of contains) expect((err as Error).message, `${label}: message`).toContain(s);
  return err as Error;
}

// --- an independent reader: the reference the fuzz judges by --------------------------------

const REF_BITS: Record<string, number> = Object.assign(Object.create(null), {
  F64: 64, I64: 64, U64: 64, C64: 64, F32: 32, I32: 32, U32: 32, F16: 16, BF16: 16, I16: 16, U16: 16,
  I8: 8, U8: 8, BOOL: 8, F8_E4M3: 8, F8_E5M2: 8, F8_E8M0: 8, F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8, F6_E2M3: 6, F6_E3M2: 6, F4: 4,
});

interface RefTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** The tensors of a file by the spec, or the reason it is malformed. */
function refParse(file: Uint8Array): { ok: true; tensors: Map<string, RefTensor>; metadata: Record<string, string> } | { ok: false; why: string } {
  const bad = (why: string) => ({ ok: false as const, why });
  if (file.length < 8) return bad('short');
  let n = 0n;
  for (let i = 7; i >= 0; i--) n = (n << 8n) | BigInt(file[i]);
  if (n === 0n || n > BigInt(file.length - 8) || n > 100n * 1024n * 1024n) return bad('header length');
  const dataStart = 8 + Number(n);
  const dataSize = file.length - dataStart;
  let hdr: unknown;
  try {
    hdr = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(file.subarray(8, dataStart)));
  } catch {
    return bad('json');
  }
  if (typeof hdr !== 'object' || hdr === null || Array.isArray(hdr)) return bad('not an object');
  const tensors = new Map<string, RefTensor>();
  const ranges: [number, number][] = [];
  let metadata: Record<string, string> = {};
  for (const [name, e] of Object.entries(hdr as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof e !== 'object' || e === null || Array.isArray(e)) return bad('metadata');
      if (!Object.values(e).every((x) => typeof x === 'string')) return bad('metadata value');
      metadata = e as Record<string, string>;
      continue;
    }
    if (typeof e !== 'object' || e === null || Array.isArray(e)) return bad('entry');
    if (Object.keys(e).sort().join() !== 'data_offsets,dtype,shape') return bad('keys');
    const { dtype, shape, data_offsets: off } = e as { dtype: unknown; shape: unknown; data_offsets: unknown };
    if (typeof dtype !== 'string' || !(dtype in REF_BITS)) return bad('dtype');
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) return bad('shape');
    if (!Array.isArray(off) || off.length !== 2 || off.some((o) => !Number.isSafeInteger(o) || o < 0) || off[0] > off[1]) return bad('offsets');
    let bits = BigInt(REF_BITS[dtype]);
    for (const d of shape) bits *= BigInt(d);
    if (bits % 8n !== 0n || bits / 8n !== BigInt(off[1] - off[0])) return bad('size');
    if (off[1] > dataSize) return bad('range');
    if (off[1] > off[0]) ranges.push([off[0], off[1]]);
    tensors.set(name, { dtype, shape: shape.map((d: number) => d + 0), bytes: file.slice(dataStart + off[0], dataStart + off[1]) });
  }
  ranges.sort((a, b) => a[0] - b[0]);
  let reach = 0;
  for (const [b, e] of ranges) {
    if (b < reach) return bad('overlap');
    reach = Math.max(reach, e);
  }
  return { ok: true, tensors, metadata };
}

// --- a writer independent of the library: headers exactly as the caller spells them ---------

interface Spec {
  name: string;
  dtype: string;
  shape: unknown;
  offsets: unknown;
  extra?: Record<string, unknown>;
}

/** A file from an explicit header (any JSON text) and data section. */
function fileFromHeaderText(header: string, data: Uint8Array, pad = 0, lengthField?: bigint): Uint8Array {
  const h = new TextEncoder().encode(header + ' '.repeat(pad));
  const out = new Uint8Array(8 + h.length + data.length);
  let n = lengthField ?? BigInt(h.length);
  for (let i = 0; i < 8; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function withByte(bytes: Uint8Array, at: number, value: number): Uint8Array {
  const out = bytes.slice();
  out[at] = value;
  return out;
}

/** Specs laid end to end from offset 0, each of the given dtype and shape. */
function packed(list: [string, string, number[]][]): Spec[] {
  let offset = 0;
  return list.map(([name, dtype, shape]) => {
    const size = (numel(shape) * REF_BITS[dtype]) / 8;
    offset += size;
    return ok(name, dtype, shape, [offset - size, offset]);
  });
}

function headerText(specs: Spec[], metadata?: unknown): string {
  const parts: string[] = [];
  if (metadata !== undefined) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  for (const s of specs) {
    const body = { dtype: s.dtype, shape: s.shape, data_offsets: s.offsets, ...s.extra };
    parts.push(`${JSON.stringify(s.name)}:${JSON.stringify(body)}`);
  }
  return `{${parts.join(',')}}`;
}

function write(name: string, bytes: Uint8Array): string {
  const p = tmp(name);
  fs.writeFileSync(p, bytes);
  return p;
}

/** Opens and checks every tensor against the reference reading of the same bytes. */
async function checkAgainstReference(p: string, bytes: Uint8Array, ctx: string): Promise<'opened' | 'rejected'> {
  const ref = refParse(bytes);
  let f: Awaited<ReturnType<typeof ignis.openSafetensors>>;
  try {
    f = await ignis.openSafetensors(p);
  } catch (e) {
    assertError(e, 'IgnisError', 'E_FORMAT', ctx);
    expect((e as Error).message, `${ctx}: message names the file`).toContain(p);
    if (ref.ok) expect.fail(`${ctx}: rejected a file the reference accepts: ${(e as Error).message}`);
    return 'rejected';
  }
  try {
    if (!ref.ok) expect.fail(`${ctx}: opened a file the reference rejects (${ref.why})`);
    expect(new Set(f.names()), `${ctx}: names`).toEqual(new Set(ref.tensors.keys()));
    expect({ ...f.metadata }, `${ctx}: metadata`).toEqual({ ...ref.metadata });
    for (const [name, t] of ref.tensors) {
      expect(f.info(name), `${ctx}: info ${name}`).toEqual({ dtype: t.dtype, shape: t.shape, byteLength: t.bytes.length });
      expect(Buffer.compare(await f.readBytes(name), t.bytes), `${ctx}: bytes of ${name}`).toBe(0);
      const own = Object.entries(FILE_DTYPE).find(([, s]) => s === t.dtype)?.[0] as DType | undefined;
      if (own === undefined) {
        await rejects(f.read(name), 'IgnisError', 'E_DTYPE', `${ctx}: read ${name}`, [t.dtype]);
        continue;
      }
      // past what a tensor may hold: 8 dims, 2^40 elements, a zero not excusing a huge sibling
      if (t.shape.length > 8 || t.shape.some((d) => d > 2 ** 40) || t.shape.filter((d) => d > 0).reduce((a, d) => a * d, 1) > 2 ** 40) {
        await rejects(f.read(name), 'IgnisError', 'E_SHAPE', `${ctx}: read ${name} beyond ignis's limits`);
        continue;
      }
      const x = await f.read(name);
      expect(x.dtype).toBe(own);
      expect([...x.shape]).toEqual(t.shape);
      expectSameBits((await x.data()) as Float32Array, decode(own, t.bytes) as Float32Array, `${ctx}: ${name}`);
      x.dispose();
    }
  } finally {
    await f.close();
  }
  return 'opened';
}

// --- round trips -------------------------------------------------------------------------------

describe('round trip', () => {
  for (const dtype of DTYPES) {
    it(`every shape of ${dtype}, raw and as Tensors, bit-exact`, async () => {
      const rng = rngFor(`round trip ${dtype}`);
      const ctx = `${dtype} ${rerun}`;
      const raw: Record<string, ignis.RawTensor> = {};
      for (const shape of SHAPES) raw[`t${JSON.stringify(shape)}`] = { dtype, shape, data: randomRaw(rng, dtype, numel(shape)) };
      const metadata = { format: 'pt', note: `seed ${seed}` };

      // raw -> file -> bytes and tensors
      const p = write(`rt-${dtype}.safetensors`, ignis.encodeSafetensors(raw, metadata));
      const f = await ignis.openSafetensors(p);
      expect(f.names()).toEqual(Object.keys(raw));
      expect(f.metadata).toEqual(metadata);
      const tensors: Record<string, ignis.Tensor> = {};
      for (const [name, r] of Object.entries(raw)) {
        expect(f.info(name)).toEqual({ dtype: FILE_DTYPE[dtype], shape: r.shape, byteLength: r.data.byteLength });
        expect(Buffer.compare(await f.readBytes(name), bytesOf(r.data)), `${ctx}: bytes of ${name}`).toBe(0);
        const t = await f.read(name);
        expect(t.dtype).toBe(dtype);
        expect([...t.shape]).toEqual(r.shape);
        expectSameBits((await t.data()) as Float32Array, decode(dtype, r.data) as Float32Array, `${ctx}: read ${name}`);
        tensors[name] = t;
      }
      await f.close();

      // Tensors -> saveSafetensors -> the same bits
      const p2 = tmp(`rt-${dtype}-tensors.safetensors`);
      await ignis.saveSafetensors(p2, tensors, metadata);
      const g = await ignis.openSafetensors(p2);
      expect(g.names()).toEqual(Object.keys(raw));
      expect(g.metadata).toEqual(metadata);
      for (const [name, r] of Object.entries(raw)) {
        const got = await g.readBytes(name);
        if (dtype === 'f16' || dtype === 'bf16')
          expectSameHalfBits(new Uint16Array(got.buffer, got.byteOffset, got.length / 2), r.data as Uint16Array, dtype, `${ctx}: saved ${name}`);
        else expect(Buffer.compare(got, bytesOf(r.data)), `${ctx}: saved ${name}`).toBe(0);
        tensors[name].dispose();
      }
      await g.close();
    });
  }

  it('lays out the header padded with spaces to 8 bytes and the data contiguous, in the order given', async () => {
    const rng = rngFor('layout');
    const names = ['zeta', 'b', 'émoji ✓ "quoted"\n', '__proto__', 'constructor', ''];
    const input: Record<string, ignis.RawTensor> = Object.fromEntries(
      names.map((n, i) => [n, { dtype: DTYPES[i % 5], shape: [i + 1], data: randomRaw(rng, DTYPES[i % 5], i + 1) }]),
    );
    const buf = ignis.encodeSafetensors(input, Object.fromEntries([['__proto__', 'kept'], ['ü', '✓']]));
    const n = Number(buf.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const text = buf.subarray(8, 8 + n).toString('utf8');
    expect(text.trimEnd().endsWith('}')).toBe(true);
    expect(/^[^ ]* *$/.test(text.slice(text.lastIndexOf('}')))).toBe(true);
    const ref = refParse(buf);
    if (!ref.ok) expect.fail(`reference rejects the writer's file: ${ref.why}`);
    expect([...ref.tensors.keys()]).toEqual(Object.keys(input));
    let offset = 0;
    const hdr = JSON.parse(text) as Record<string, { data_offsets: [number, number] }>;
    for (const name of Object.keys(input)) {
      expect(hdr[name].data_offsets).toEqual([offset, offset + input[name].data.byteLength]);
      offset += input[name].data.byteLength;
    }
    expect(buf.length).toBe(8 + n + offset);
    const f = await ignis.openSafetensors(write('layout.safetensors', buf));
    expect(f.names()).toEqual(Object.keys(input));
    expect(Object.entries(f.metadata)).toEqual([['__proto__', 'kept'], ['ü', '✓']]);
    expect(f.has('constructor') && f.has('__proto__') && !f.has('toString') && !f.has('__metadata__')).toBe(true);
    expect(f.info('toString')).toBeUndefined();
    await f.close();
  });

  it('writes a file with no tensors, and replaces an existing file without leaving temporaries', async () => {
    const p = tmp('replace.safetensors');
    await ignis.saveSafetensors(p, { a: ignis.full([2], 3) });
    await ignis.saveSafetensors(p, {}, { only: 'metadata' });
    const f = await ignis.openSafetensors(p);
    expect(f.names()).toEqual([]);
    expect(f.metadata).toEqual({ only: 'metadata' });
    await f.close();
    expect(fs.readdirSync(dir).filter((x) => x.includes('replace.safetensors'))).toEqual(['replace.safetensors']);
  });
});

describe('a file written by hand, byte by byte', () => {
  it('reads back exactly', async () => {
    // Unsorted entries, a hole, an empty tensor, a U8 tensor ignis cannot hold, and 5 spaces of
    // padding so the data section starts unaligned.
    const header =
      '{"b":{"dtype":"I32","shape":[2],"data_offsets":[16,24]},"__metadata__":{"format":"pt"},' +
      '"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"h":{"dtype":"BF16","shape":[3],"data_offsets":[24,30]},' +
      '"z":{"dtype":"F16","shape":[0,4],"data_offsets":[30,30]},"u":{"dtype":"U8","shape":[2],"data_offsets":[32,34]},' +
      '"e":{"dtype":"F16","shape":[],"data_offsets":[34,36]}}     ';
    const bytes: number[] = [];
    const n = header.length; // ASCII only
    bytes.push(n & 0xff, (n >> 8) & 0xff, 0, 0, 0, 0, 0, 0);
    for (let i = 0; i < n; i++) bytes.push(header.charCodeAt(i));
    bytes.push(0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40); // a: 1.0, 2.0
    bytes.push(0x00, 0x00, 0x00, 0xbf, 0x00, 0x00, 0x50, 0x40); // a: -0.5, 3.25
    bytes.push(0xfe, 0xff, 0xff, 0xff, 0x02, 0x01, 0x00, 0x00); // b: -2, 258
    bytes.push(0x80, 0x3f, 0x00, 0xc0, 0x00, 0x3f); // h: 1.0, -2.0, 0.5
    bytes.push(0xaa, 0xbb); // a hole
    bytes.push(0x07, 0x09); // u
    bytes.push(0x00, 0xbc); // e: f16 -1.0
    const p = write('by-hand.safetensors', Uint8Array.from(bytes));

    const f = await ignis.openSafetensors(p);
    expect(f.path).toBe(p);
    expect(f.names()).toEqual(['a', 'b', 'h', 'z', 'u', 'e']);
    expect(f.metadata).toEqual({ format: 'pt' });
    expect(f.info('h')).toEqual({ dtype: 'BF16', shape: [3], byteLength: 6 });
    expect(f.info('u')).toEqual({ dtype: 'U8', shape: [2], byteLength: 2 });
    expect(f.info('nope')).toBeUndefined();
    expect(await (await f.read('a')).toArray()).toEqual([[1, 2], [-0.5, 3.25]]);
    const b = await f.read('b');
    expect(b.dtype).toBe('i32');
    expect([...(await b.data())]).toEqual([-2, 258]);
    const h = await f.read('h');
    expect(h.dtype).toBe('bf16');
    expect([...(await h.data())]).toEqual([1, -2, 0.5]);
    const z = await f.read('z');
    expect([...z.shape]).toEqual([0, 4]);
    expect((await z.data()).length).toBe(0);
    const e = await f.read('e');
    expect([e.dtype, e.shape.length, ...(await e.data())]).toEqual(['f16', 0, -1]);
    expect([...(await f.readBytes('u'))]).toEqual([7, 9]);
    await rejects(f.read('u'), 'IgnisError', 'E_DTYPE', 'read U8', ['"u"', 'U8', p]);
    await f.close();
    await f.close(); // twice is fine
    await rejects(f.read('a'), 'IgnisError', 'E_DISPOSED', 'read after close');
    expect(f.names().length).toBe(6); // the header outlives the file handle
  });
});

describe('sharded checkpoints', () => {
  async function makeSharded(sub: string, weightMap?: Record<string, string>) {
    const d = tmp(sub);
    fs.mkdirSync(d);
    const rng = rngFor(`sharded ${sub}`);
    const a = { dtype: 'f32' as const, shape: [3, 4], data: randomRaw(rng, 'f32', 12) };
    const b = { dtype: 'bf16' as const, shape: [5], data: randomRaw(rng, 'bf16', 5) };
    const c = { dtype: 'i32' as const, shape: [2, 2], data: randomRaw(rng, 'i32', 4) };
    const e = { dtype: 'f16' as const, shape: [7], data: randomRaw(rng, 'f16', 7) };
    fs.writeFileSync(path.join(d, 'model-00001-of-00002.safetensors'), ignis.encodeSafetensors({ a, b }, { format: 'pt' }));
    fs.writeFileSync(path.join(d, 'model-00002-of-00002.safetensors'), ignis.encodeSafetensors({ c, e }, { format: 'pt' }));
    const map = weightMap ?? {
      a: 'model-00001-of-00002.safetensors',
      b: 'model-00001-of-00002.safetensors',
      c: 'model-00002-of-00002.safetensors',
      e: 'model-00002-of-00002.safetensors',
    };
    fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 90 }, weight_map: map }));
    return { d, raw: { a, b, c, e } as Record<string, ignis.RawTensor> };
  }

  it('reads tensors from every shard', async () => {
    const { d, raw } = await makeSharded('ok');
    const ck = await ignis.openCheckpoint(d);
    expect(ck.names()).toEqual(['a', 'b', 'c', 'e']);
    expect(ck.metadata).toEqual({ total_size: 90 });
    expect(ck.files.map((f) => path.basename(f.path))).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(ck.files[1].metadata).toEqual({ format: 'pt' });
    expect(ck.has('c') && !ck.has('x')).toBe(true);
    expect(ck.info('e')).toEqual({ dtype: 'F16', shape: [7], byteLength: 14 });
    for (const [name, r] of Object.entries(raw)) {
      const t = await ck.read(name);
      expectSameBits((await t.data()) as Float32Array, decode(r.dtype, r.data) as Float32Array, `shard tensor ${name} ${rerun}`);
      expect(Buffer.compare(await ck.readBytes(name), bytesOf(r.data))).toBe(0);
    }
    await rejects(ck.read('x'), 'IgnisError', 'E_ARGUMENT', 'unknown name', ['"x"']);
    await ck.close();
    await rejects(ck.read('a'), 'IgnisError', 'E_DISPOSED', 'read after close');
  });

  it('opens a directory with a single model.safetensors', async () => {
    const d = tmp('single');
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'model.safetensors'), ignis.encodeSafetensors({ w: { dtype: 'i8', shape: [3], data: Int8Array.from([1, -2, 3]) } }, { k: 'v' }));
    const ck = await ignis.openCheckpoint(d);
    expect(ck.names()).toEqual(['w']);
    expect(ck.metadata).toEqual({ k: 'v' });
    expect([...(await (await ck.read('w')).data())]).toEqual([1, -2, 3]);
    await ck.close();
  });

  it('rejects a missing shard, a wrong weight_map entry, a path outside the directory, a bad index', async () => {
    const missing = await makeSharded('missing', { a: 'model-00001-of-00002.safetensors', c: 'model-00003-of-00003.safetensors' });
    await rejects(ignis.openCheckpoint(missing.d), 'IgnisError', 'E_FORMAT', 'missing shard', ['model-00003-of-00003.safetensors', 'model.safetensors.index.json']);

    const wrong = await makeSharded('wrong', { a: 'model-00001-of-00002.safetensors', c: 'model-00001-of-00002.safetensors' });
    await rejects(ignis.openCheckpoint(wrong.d), 'IgnisError', 'E_FORMAT', 'wrong weight_map entry', [
      path.join(wrong.d, 'model-00001-of-00002.safetensors'),
      '"c"',
    ]);

    const outside = await makeSharded('outside', { a: '../ok/model-00001-of-00002.safetensors' });
    await rejects(ignis.openCheckpoint(outside.d), 'IgnisError', 'E_FORMAT', 'shard outside the directory', ['../ok']);

    const badShard = await makeSharded('bad-shard');
    fs.writeFileSync(path.join(badShard.d, 'model-00002-of-00002.safetensors'), Uint8Array.from([1, 2, 3]));
    await rejects(ignis.openCheckpoint(badShard.d), 'IgnisError', 'E_FORMAT', 'malformed shard', ['model-00002-of-00002.safetensors']);

    for (const [label, text] of [
      ['not JSON', '{"weight_map": '],
      ['no weight_map', '{"metadata": {}}'],
      ['weight_map not of strings', '{"weight_map": {"a": 1}}'],
      ['metadata not an object', '{"metadata": 3, "weight_map": {}}'],
      ['an array', '[]'],
    ]) {
      const d = tmp(`index-${label.replace(/ /g, '-')}`);
      fs.mkdirSync(d);
      fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), text);
      await rejects(ignis.openCheckpoint(d), 'IgnisError', 'E_FORMAT', `index ${label}`, ['model.safetensors.index.json']);
    }

    const empty = tmp('empty-dir');
    fs.mkdirSync(empty);
    await rejects(ignis.openCheckpoint(empty), 'IgnisError', 'E_ARGUMENT', 'no model files', [empty]);
    await rejects(ignis.openCheckpoint(tmp('no-such-dir')), 'IgnisError', 'E_ARGUMENT', 'no such dir', [tmp('no-such-dir')]);
    await rejects(ignis.openCheckpoint(path.join(missing.d, 'model.safetensors.index.json')), 'IgnisError', 'E_ARGUMENT', 'a file, not a dir');
  });
});

describe('reading with a dtype', () => {
  it('converts bf16 -> f32 exactly, f32 -> bf16/f16 rounding to nearest even, like cast', async () => {
    const rng = rngFor('convert');
    const n = 257;
    const values = rng.normals(n, 100);
    const bf = Uint16Array.from(values, (x) => bf16Bits(x));
    const f32 = Float32Array.from(values);
    const f16 = Uint16Array.from(values, (x) => f16Bits(x));
    const p = write('convert.safetensors', ignis.encodeSafetensors({
      bf: { dtype: 'bf16', shape: [n], data: bf },
      f: { dtype: 'f32', shape: [n], data: f32 },
      h: { dtype: 'f16', shape: [n], data: f16 },
      i: { dtype: 'i8', shape: [2], data: Int8Array.from([1, 2]) },
    }));
    const f = await ignis.openSafetensors(p);

    const asF32 = await f.read('bf', { dtype: 'f32' });
    expect(asF32.dtype).toBe('f32');
    const got = await asF32.data();
    for (let i = 0; i < n; i++) {
      const want = bf16BitsToNumber(bf[i]); // float64: the bf16 value itself
      if (got[i] !== want) expect.fail(`bf16 -> f32 element ${i}: ${got[i]}, expected ${want} ${rerun}`);
      if (Math.abs(want - values[i]) > Math.abs(values[i]) * 2 ** -8) expect.fail(`bf16 element ${i} is not values[i] rounded ${rerun}`);
    }

    const toBf = await (await f.read('f', { dtype: 'bf16' })).data();
    const toHalf = await (await f.read('f', { dtype: 'f16' })).data();
    for (let i = 0; i < n; i++) {
      expect(toBf[i]).toBe(bf16BitsToNumber(bf16Bits(f32[i])));
      expect(toHalf[i]).toBe(f16BitsToNumber(f16Bits(f32[i])));
    }

    // bf16 file read as f16 gives what cast gives
    const direct = await (await f.read('bf', { dtype: 'f16' })).data();
    const viaCast = await ignis.cast(await f.read('bf'), 'f16').data();
    expectSameBits(direct, viaCast, `bf16 -> f16 vs cast ${rerun}`);
    const hToBf = await (await f.read('h', { dtype: 'bf16' })).data();
    expectSameBits(hToBf, await ignis.cast(await f.read('h'), 'bf16').data(), `f16 -> bf16 vs cast ${rerun}`);

    await rejects(f.read('i', { dtype: 'f32' }), 'IgnisError', 'E_DTYPE', 'i8 as f32', ['"i"', 'I8']);
    await rejects(f.read('f', { dtype: 'i32' }), 'IgnisError', 'E_DTYPE', 'f32 as i32');
    await rejects(f.read('f', { dtype: 'f64' as never }), 'IgnisError', 'E_DTYPE', 'unknown dtype');
    expect((await f.read('i', { dtype: 'i8' })).dtype).toBe('i8');
    await f.close();
  });

  it('converts tensors larger than one read chunk (4 MiB stored), every chunk and the tail; reads run concurrently, close waits for them', async () => {
    const n = 3 * (1 << 20) + 123; // f16: 6 MiB + 246 bytes, so two whole chunks and a partial one
    const rng = rngFor('big convert', seed);
    const values = rng.normals(n, 10);
    const h = Uint16Array.from(values, (x) => f16Bits(x));
    const bf = Uint16Array.from(values, (x) => bf16Bits(x));
    const p = write('big.safetensors', ignis.encodeSafetensors({ h: { dtype: 'f16', shape: [n], data: h }, bf: { dtype: 'bf16', shape: [n], data: bf } }));
    const f = await ignis.openSafetensors(p);
    const [a, b, c] = await Promise.all([f.read('h', { dtype: 'f32' }), f.read('bf', { dtype: 'f32' }), f.read('bf')]);
    const [ga, gb, gc] = [await a.data(), await b.data(), await c.data()];
    for (let i = 0; i < n; i++) {
      if (ga[i] !== f16BitsToNumber(h[i])) expect.fail(`f16 -> f32 element ${i} of ${n}: ${ga[i]}, expected ${f16BitsToNumber(h[i])} ${rerun}`);
      if (gb[i] !== bf16BitsToNumber(bf[i]) || gc[i] !== gb[i]) expect.fail(`bf16 element ${i} of ${n}: ${gb[i]} / ${gc[i]}, expected ${bf16BitsToNumber(bf[i])} ${rerun}`);
    }
    // a read in flight when close() is called completes before the file closes
    const pending = f.read('h');
    await f.close();
    expect((await (await pending).data()).length).toBe(n);
  });

  describe.skipIf(!cudaAvailable)('on cuda', () => {
    it('reads onto the GPU', async () => {
      const p = write('cuda.safetensors', ignis.encodeSafetensors({ w: { dtype: 'bf16', shape: [3], data: Uint16Array.from([0x3f80, 0xc000, 0x3f00]) } }));
      const f = await ignis.openSafetensors(p);
      const t = await f.read('w', { device: 'cuda', dtype: 'f32' });
      expect(t.device).toBe('cuda:0');
      expect([...(await t.data())]).toEqual([1, -2, 0.5]);
      await f.close();
    });
  });
});

describe('arguments', () => {
  it('throws TypeError, E_ARGUMENT, E_SHAPE, E_DISPOSED for what the caller did wrong', async () => {
    await rejects(ignis.openSafetensors(3 as never), 'TypeError', 'E_TYPE', 'path not a string');
    await rejects(ignis.openSafetensors(tmp('absent.safetensors')), 'IgnisError', 'E_ARGUMENT', 'missing file', [tmp('absent.safetensors')]);
    await rejects(ignis.openSafetensors(dir), 'IgnisError', 'E_ARGUMENT', 'a directory', [dir]);
    const p = write('args.safetensors', ignis.encodeSafetensors({ a: { dtype: 'f32', shape: [1], data: new Float32Array(1) } }));
    const f = await ignis.openSafetensors(p);
    await rejects(f.read(1 as never), 'TypeError', 'E_TYPE', 'name not a string');
    await rejects(f.read('a', { bogus: 1 } as never), 'TypeError', 'E_TYPE', 'unknown option');
    await rejects(f.read('a', { device: 'tpu' }), 'IgnisError', 'E_DEVICE', 'bad device');
    await rejects(f.readBytes('b'), 'IgnisError', 'E_ARGUMENT', 'unknown name', ['"b"', p]);
    await f.close();

    const raw = (x: unknown) => ({ x }) as never;
    expect(() => ignis.encodeSafetensors(null as never)).toThrow(TypeError);
    expect(() => ignis.encodeSafetensors(raw(5))).toThrow(TypeError);
    expect(() => ignis.encodeSafetensors(raw({ dtype: 'f32', shape: [2] }))).toThrow(TypeError);
    expect(() => ignis.encodeSafetensors(raw({ shape: [2], data: new Float32Array(2) }))).toThrow(TypeError);
    expect(() => ignis.encodeSafetensors(raw({ dtype: 'f32', shape: [2], data: new Float32Array(2), extra: 1 }))).toThrow(TypeError);
    expect(() => ignis.encodeSafetensors(raw({ dtype: 'f32', shape: [2], data: [1, 2] }))).toThrow(TypeError);
    expect(() => ignis.encodeSafetensors({}, { a: 1 } as never)).toThrow(TypeError);
    expect(() => ignis.encodeSafetensors({ t: ignis.full([1], 1) } as never)).toThrow(TypeError);
    await rejects(() => ignis.encodeSafetensors(raw({ dtype: 'f64', shape: [2], data: new Float64Array(2) })), 'IgnisError', 'E_DTYPE', 'unknown dtype');
    await rejects(() => ignis.encodeSafetensors(raw({ dtype: 'bf16', shape: [3], data: new Float32Array(3) })), 'IgnisError', 'E_SHAPE', 'bf16 as f32 data', ['[3]', 'Uint16Array']);
    await rejects(() => ignis.encodeSafetensors({ __metadata__: { dtype: 'i8', shape: [1], data: new Int8Array(1) } }), 'IgnisError', 'E_ARGUMENT', 'reserved name');
    const gone = ignis.full([2], 1);
    gone.dispose();
    await rejects(ignis.saveSafetensors(tmp('gone.safetensors'), { gone }), 'IgnisError', 'E_DISPOSED', 'disposed tensor');
    await rejects(ignis.saveSafetensors(tmp('no/such/dir/x.safetensors'), {}), 'IgnisError', 'E_ARGUMENT', 'unwritable path', ['no/such/dir']);
    expect(fs.existsSync(tmp('gone.safetensors'))).toBe(false);
  });

  it('a file truncated after opening fails its reads with E_FORMAT', async () => {
    const p = write('shrinks.safetensors', ignis.encodeSafetensors({ a: { dtype: 'i32', shape: [64], data: new Int32Array(64) } }));
    const f = await ignis.openSafetensors(p);
    fs.truncateSync(p, fs.statSync(p).size - 10);
    await rejects(f.read('a'), 'IgnisError', 'E_FORMAT', 'truncated under us', [p]);
    await f.close();
  });
});

// --- validation: one case per rule -----------------------------------------------------------

const ok = (name: string, dtype: string, shape: unknown, offsets: unknown, extra?: Record<string, unknown>): Spec => ({ name, dtype, shape, offsets, extra });

describe('validation', () => {
  const data = new Uint8Array(64).map((_, i) => i);
  const cases: [string, Uint8Array, string][] = [
    ['empty file', new Uint8Array(0), '0 bytes'],
    ['7-byte file', new Uint8Array(7), '7 bytes'],
    ['header length 0', fileFromHeaderText('{}', data, 0, 0n), 'header length is 0'],
    ['header length past the end', fileFromHeaderText('{}', new Uint8Array(0), 0, 3n), 'header length 3'],
    ['header length 2^63', fileFromHeaderText('{}', data, 0, 2n ** 63n), '9223372036854775808'],
    ['header length 2^64 - 1', fileFromHeaderText('{}', data, 0, 2n ** 64n - 1n), '18446744073709551615'],
    ['invalid UTF-8', withByte(fileFromHeaderText('{"a":{}}', data), 10, 0xff), 'UTF-8'],
    ['a BOM', fileFromHeaderText('\ufeff{}', data), 'JSON'],
    ['bad JSON', fileFromHeaderText('{"a":', data), 'JSON'],
    ['JSON array', fileFromHeaderText('[]', data), 'object'],
    ['JSON null', fileFromHeaderText('null', data), 'object'],
    ['entry a number', fileFromHeaderText('{"a":3}', data), '"a"'],
    ['entry an array', fileFromHeaderText('{"a":[]}', data), '"a"'],
    ['entry with an extra key', fileFromHeaderText(headerText([ok('a', 'U8', [1], [0, 1], { x: 1 })]), data), 'exactly the keys'],
    ['entry without shape', fileFromHeaderText('{"a":{"dtype":"U8","data_offsets":[0,1]}}', data), 'exactly the keys'],
    ['unknown dtype', fileFromHeaderText(headerText([ok('a', 'F33', [1], [0, 4])]), data), '"F33"'],
    ['lowercase dtype', fileFromHeaderText(headerText([ok('a', 'f32', [1], [0, 4])]), data), '"f32"'],
    ['dtype constructor', fileFromHeaderText(headerText([ok('a', 'constructor', [1], [0, 4])]), data), 'constructor'],
    ['dtype a number', fileFromHeaderText('{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}', data), 'dtype'],
    ['shape not an array', fileFromHeaderText(headerText([ok('a', 'U8', 4, [0, 4])]), data), 'shape'],
    ['negative dim', fileFromHeaderText(headerText([ok('a', 'U8', [-1], [0, 0])]), data), 'shape'],
    ['fractional dim', fileFromHeaderText(headerText([ok('a', 'U8', [1.5], [0, 1])]), data), 'shape'],
    ['dim past 2^53', fileFromHeaderText('{"a":{"dtype":"U8","shape":[9007199254740993],"data_offsets":[0,1]}}', data), 'shape'],
    ['string dim', fileFromHeaderText(headerText([ok('a', 'U8', ['1'], [0, 1])]), data), 'shape'],
    // 100k levels (a 200 KB header): refused before it is parsed, not a stack overflow
    ['a shape nested 100k deep', fileFromHeaderText(`{"a":{"dtype":"U8","shape":${'['.repeat(100000)}${']'.repeat(100000)},"data_offsets":[0,0]}}`, data), 'levels deep'],
    ['huge dims whose product overflows', fileFromHeaderText(headerText([ok('a', 'F32', [2 ** 40, 2 ** 40, 0x10000], [0, 0])]), data), 'needs'],
    ['one offset', fileFromHeaderText(headerText([ok('a', 'U8', [1], [1])]), data), 'data_offsets'],
    ['begin > end', fileFromHeaderText(headerText([ok('a', 'U8', [1], [5, 4])]), data), 'data_offsets'],
    ['negative offset', fileFromHeaderText(headerText([ok('a', 'U8', [1], [-1, 0])]), data), 'data_offsets'],
    ['fractional offset', fileFromHeaderText(headerText([ok('a', 'U8', [1], [0.5, 1.5])]), data), 'data_offsets'],
    ['size mismatch', fileFromHeaderText(headerText([ok('a', 'F32', [2, 3], [0, 20])]), data), 'needs 24 bytes'],
    ['end past the data', fileFromHeaderText(headerText([ok('a', 'U8', [65], [0, 65])]), data), '64-byte data section'],
    ['overlap', fileFromHeaderText(headerText([ok('a', 'F32', [4], [0, 16]), ok('b', 'U8', [4], [12, 16])]), data), 'overlap'],
    ['overlap, unsorted', fileFromHeaderText(headerText([ok('a', 'U8', [40], [20, 60]), ok('b', 'U8', [2], [0, 2]), ok('c', 'U8', [2], [59, 61])]), data), 'overlap'],
    ['F4 of half a byte', fileFromHeaderText(headerText([ok('a', 'F4', [3], [0, 2])]), data), 'whole number of bytes'],
    ['metadata an array', fileFromHeaderText('{"__metadata__":[]}', data), '__metadata__'],
    ['metadata null', fileFromHeaderText('{"__metadata__":null}', data), '__metadata__'],
    ['metadata not strings', fileFromHeaderText('{"__metadata__":{"a":1}}', data), '"a"'],
  ];
  for (const [label, bytes, mention] of cases) {
    it(`rejects ${label}`, async () => {
      expect(refParse(bytes).ok, `${label}: the reference should reject it too`).toBe(false);
      const p = write(`bad-${label.replace(/[^a-z0-9]+/gi, '-')}.safetensors`, bytes);
      await rejects(ignis.openSafetensors(p), 'IgnisError', 'E_FORMAT', label, [p, mention]);
    });
  }

  it('rejects a header over 100 MiB without reading it', async () => {
    const p = tmp('huge-header.safetensors');
    const fd = fs.openSync(p, 'w');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(100 * 2 ** 20 + 1));
    fs.writeSync(fd, prefix);
    fs.ftruncateSync(fd, 101 * 2 ** 20); // sparse
    fs.closeSync(fd);
    await rejects(ignis.openSafetensors(p), 'IgnisError', 'E_FORMAT', 'header over the limit', ['104857601', 'limit']);
    fs.rmSync(p);
  });

  const fine: [string, Uint8Array, string[]][] = [
    ['no tensors', fileFromHeaderText('{}', new Uint8Array(0)), []],
    ['trailing spaces and holes', fileFromHeaderText(headerText([ok('a', 'U8', [2], [10, 12]), ok('b', 'I16', [2], [40, 44])]), data, 13), ['a', 'b']],
    ['an empty tensor inside another', fileFromHeaderText(headerText([ok('a', 'F32', [4], [0, 16]), ok('z', 'F32', [0], [8, 8])]), data), ['a', 'z']],
    ['every dtype', fileFromHeaderText(headerText(packed(Object.keys(REF_BITS).map((d, i) => [`t${i}`, d, [REF_BITS[d] < 8 ? 4 : 1]]))), new Uint8Array(128)), Object.keys(REF_BITS).map((_, i) => `t${i}`)],
    ['F4 of whole bytes', fileFromHeaderText(headerText([ok('a', 'F4', [2, 2], [0, 2])]), data), ['a']],
  ];
  for (const [label, bytes, names] of fine) {
    it(`accepts ${label}`, async () => {
      const p = write(`fine-${label.replace(/[^a-z0-9]+/gi, '-')}.safetensors`, bytes);
      expect(await checkAgainstReference(p, bytes, label)).toBe('opened');
      const f = await ignis.openSafetensors(p);
      expect(new Set(f.names())).toEqual(new Set(names));
      await f.close();
    });
  }
});

// --- fuzz --------------------------------------------------------------------------------------

const FUZZ_DTYPES = ['F32', 'F16', 'BF16', 'I8', 'I32', 'F64', 'I64', 'U8', 'BOOL', 'F8_E4M3', 'U16', 'F4'];
const BAD_DTYPES: unknown[] = ['F33', 'f32', 'FLOAT', '', 'F8', 'I4', 'constructor', '__proto__', 'toString', 'BF16 ', 1, null, [], {}];
const BAD_NUMBERS: unknown[] = [-1, 1.5, -0.5, 2 ** 53, 2 ** 53 + 2, 1e300, -1e300, '3', null, true, [], 2 ** 40, 2 ** 64];

/** A valid file: random tensors, contiguous (the data section ends with the last one). */
function baseFile(rng: Rng): { specs: Spec[]; data: Uint8Array; metadata?: Record<string, string> } {
  const count = rng.int(0, 5);
  const specs: Spec[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const dtype = FUZZ_DTYPES[rng.int(0, FUZZ_DTYPES.length - 1)];
    const shape = Array.from({ length: rng.int(0, 3) }, () => rng.int(0, 4));
    if (dtype === 'F4' && numel(shape) % 2) shape.push(2);
    const size = (numel(shape) * REF_BITS[dtype]) / 8;
    offset += rng.int(0, 1) ? 0 : rng.int(0, 3); // sometimes a hole
    specs.push(ok(`w${i}.${rng.int(0, 99)}`, dtype, shape, [offset, offset + size]));
    offset += size;
  }
  const data = Uint8Array.from({ length: offset }, () => rng.int(0, 255));
  return { specs, data, metadata: rng.int(0, 1) ? { format: 'pt', seed: String(seed) } : undefined };
}

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(0, xs.length - 1)];
}

/** One mutation of a valid file, and whether the result is malformed for certain. */
function mutate(rng: Rng): { label: string; bytes: Uint8Array; mustFail: boolean } {
  const { specs, data, metadata } = baseFile(rng);
  const build = (s: Spec[] = specs, meta: unknown = metadata, pad = rng.int(0, 9)) => fileFromHeaderText(headerText(s, meta), data, pad);
  const file = build();
  const headerEnd = 8 + Number(new DataView(file.buffer).getBigUint64(0, true));
  const edit = (f: (s: Spec) => Spec) => {
    const i = rng.int(0, specs.length - 1);
    return specs.map((s, j) => (j === i ? f({ ...s }) : s));
  };
  const kind = rng.int(0, 12);
  switch (kind) {
    case 0: {
      const at = rng.int(0, file.length - 1);
      return { label: `truncated at ${at} of ${file.length}`, bytes: file.slice(0, at), mustFail: at < headerEnd || data.length > 0 };
    }
    case 1: {
      const n = pick(rng, [0n, 1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 32n, BigInt(file.length), BigInt(file.length - 7), BigInt(headerEnd - 9), BigInt(headerEnd - 7), BigInt(rng.int(0, 2 ** 30)) << 20n]);
      const bytes = file.slice();
      new DataView(bytes.buffer).setBigUint64(0, n, true);
      return { label: `header length ${n}`, bytes, mustFail: n === 0n || n > BigInt(file.length - 8) };
    }
    case 2: {
      const bytes = file.slice();
      const flips = rng.int(1, 4);
      for (let k = 0; k < flips; k++) bytes[rng.int(8, headerEnd - 1)] = rng.int(0, 255);
      return { label: `${flips} header bytes changed`, bytes, mustFail: false };
    }
    case 3: {
      const text = headerText(specs, metadata);
      const cut = rng.int(0, text.length - 1);
      const junk = pick(rng, ['', ',', '}', ']', '{', '"', 'x', '\\', '\u0000', ':', 'nul', '1e', '-']);
      return { label: `JSON cut at ${cut} + ${JSON.stringify(junk)}`, bytes: fileFromHeaderText(text.slice(0, cut) + junk, data), mustFail: false };
    }
    case 4: {
      if (specs.length === 0) break;
      const dtype = pick(rng, BAD_DTYPES);
      return { label: `dtype ${JSON.stringify(dtype)}`, bytes: build(edit((s) => ({ ...s, dtype: dtype as string }))), mustFail: true };
    }
    case 5: {
      if (specs.length === 0) break;
      const which = rng.int(0, 3);
      const x = pick(rng, BAD_NUMBERS);
      const spec = edit((s) => {
        const [b, e] = s.offsets as number[];
        s.offsets = which === 0 ? [x, e] : which === 1 ? [b, x] : which === 2 ? [e + 1, e] : [b + data.length + 1, e + data.length + 1];
        return s;
      });
      return { label: `offsets ${which} with ${JSON.stringify(x)}`, bytes: build(spec), mustFail: true };
    }
    case 6: {
      // another tensor placed over a non-empty one, its size kept consistent
      const target = specs.find((s) => (s.offsets as number[])[1] - (s.offsets as number[])[0] >= 2);
      if (!target) break;
      const [b, e] = target.offsets as number[];
      const start = rng.int(b, e - 1);
      const len = rng.int(1, e - start);
      return { label: `U8[${len}] over ${target.name}`, bytes: build([...specs, ok('intruder', 'U8', [len], [start, start + len])]), mustFail: true };
    }
    case 7: {
      const target = specs.find((s) => (s.shape as number[]).length > 0);
      if (!target) break;
      const delta = pick(rng, [1, -1, 2]);
      const shape = (target.shape as number[]).slice();
      const k = rng.int(0, shape.length - 1);
      if (shape[k] + delta < 0) break;
      shape[k] += delta;
      const sizeChanges = numel(shape) !== numel(target.shape as number[]);
      return { label: `shape of ${target.name} ${JSON.stringify(target.shape)} -> ${JSON.stringify(shape)}`, bytes: build(specs.map((s) => (s === target ? { ...s, shape } : s))), mustFail: sizeChanges };
    }
    case 8: {
      if (specs.length === 0) break;
      const dim = pick(rng, [-1, -3, 0.5, 2.5, 2 ** 53, 2 ** 60, 1e20, 2 ** 32, 2 ** 26]);
      const i = rng.int(0, specs.length - 1);
      const empty = numel(specs[i].shape as number[]) === 0; // stays empty, and valid, with whole dims
      const spec = specs.map((s, j) => (j === i ? { ...s, shape: [...(s.shape as number[]), dim, dim, dim] } : s));
      return { label: `dims ${dim} x3 on ${specs[i].name}`, bytes: build(spec), mustFail: !empty || !(Number.isSafeInteger(dim) && dim >= 0) };
    }
    case 9: {
      if (specs.length === 0) break;
      const how = rng.int(0, 3);
      const spec = edit((s) => (how === 0 ? { ...s, extra: { extra: 1 } } : how === 1 ? { ...s, shape: undefined } : how === 2 ? { ...s, shape: [[1]] } : { ...s, offsets: 'all' }));
      return { label: `entry keys/types ${how}`, bytes: build(spec), mustFail: true };
    }
    case 10: {
      const meta = pick(rng, [null, [], 'pt', { a: 1 }, { a: null }, { a: { b: 'c' } }, 7]);
      return { label: `metadata ${JSON.stringify(meta)}`, bytes: build(specs, meta), mustFail: true };
    }
    case 11: {
      const n = rng.int(0, 64);
      return { label: `${n} random bytes`, bytes: Uint8Array.from({ length: n }, () => rng.int(0, 255)), mustFail: false };
    }
    case 12: {
      // data bytes changed: still valid, and the reads must see the new bytes
      const bytes = file.slice();
      if (bytes.length > headerEnd) for (let k = 0; k < 4; k++) bytes[rng.int(headerEnd, bytes.length - 1)] ^= rng.int(1, 255);
      return { label: 'data bytes changed', bytes, mustFail: false };
    }
  }
  return { label: 'unchanged', bytes: file, mustFail: false };
}

// 2000 files in npm test; IGNIS_FUZZ_FILES sets more (npm run fuzz: 20,000).
const FUZZ_FILES = Number(process.env.IGNIS_FUZZ_FILES ?? 2000);

describe('fuzz', () => {
  it(`${FUZZ_FILES} malformed files each read back exactly or throw E_FORMAT / E_DTYPE / E_SHAPE, nothing else`, async () => {
    const rng = rngFor('fuzz');
    const counts = { opened: 0, rejected: 0 };
    const fuzzDir = fs.mkdtempSync(path.join(dir, 'fuzz-'));
    for (let i = 0; i < FUZZ_FILES; i++) {
      const m = mutate(rng);
      const ctx = `fuzz case ${i} (${m.label}) ${rerun}`;
      const p = path.join(fuzzDir, `case-${i}.safetensors`);
      fs.writeFileSync(p, m.bytes);
      const outcome = await checkAgainstReference(p, m.bytes, ctx);
      if (m.mustFail) expect(outcome, `${ctx}: must be rejected`).toBe('rejected');
      counts[outcome]++;
      fs.rmSync(p);
    }
    fs.rmSync(fuzzDir, { recursive: true });
    console.log(`safetensors fuzz: ${counts.opened} opened and read back, ${counts.rejected} rejected with E_FORMAT`);
    // both outcomes well represented, or the generator has drifted
    expect(counts.rejected, JSON.stringify(counts)).toBeGreaterThan(FUZZ_FILES / 2);
    expect(counts.opened, JSON.stringify(counts)).toBeGreaterThan(FUZZ_FILES / 12);
  });
});
