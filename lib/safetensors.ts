// safetensors files and sharded checkpoints: open validates the whole header and keeps only it
// in memory; read() fetches exactly one tensor's bytes with a positioned read. Writers lay the
// data out 8-byte aligned, in the order given.
// Layout: [u64 LE header length N][N bytes of JSON header, space-padded][data section].
// ignis targets little-endian hosts (x86-64, arm64), so TypedArrays view file bytes directly.
/// <reference types="node" preserve="true" />
import './dispose';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, IgnisError, typeError } from './errors';
import { DType, DTYPE_BYTES, f32ToBf16Bits, f32ToF16Bits, isFloatDType } from './dtype';
import { Handle, native } from './binding';
import { limits } from './native-tables';
import { handle, Tensor } from './tensor';
import { Device, deviceName } from './device';
import * as v from './validate';

/** The largest header (and index.json) ignis reads: bigger ones are rejected, not allocated. */
export const MAX_HEADER_BYTES = 100 * 2 ** 20;

// Bits per element of every dtype the format defines. A Map, so names like 'constructor' from a
// hostile header are unknown rather than inherited.
const SAFETENSORS_BITS = new Map<string, number>([
  ['BOOL', 8], ['U8', 8], ['I8', 8], ['F8_E5M2', 8], ['F8_E4M3', 8], ['F8_E8M0', 8], ['F8_E4M3FNUZ', 8], ['F8_E5M2FNUZ', 8],
  ['I16', 16], ['U16', 16], ['F16', 16], ['BF16', 16],
  ['I32', 32], ['U32', 32], ['F32', 32],
  ['I64', 64], ['U64', 64], ['F64', 64], ['C64', 64],
  ['F4', 4], ['F6_E2M3', 6], ['F6_E3M2', 6],
]);

const TO_IGNIS = new Map<string, DType>([['F32', 'f32'], ['F16', 'f16'], ['BF16', 'bf16'], ['I8', 'i8'], ['I32', 'i32']]);
const FROM_IGNIS: Record<DType, string> = { f32: 'F32', f16: 'F16', bf16: 'BF16', i8: 'I8', i32: 'I32' };

const ENTRY_KEYS = ['data_offsets', 'dtype', 'shape'];
const META_KEY = '__metadata__';
const INDEX_FILE = 'model.safetensors.index.json';
const SINGLE_FILE = 'model.safetensors';
const IO_CHUNK = 2 ** 30; // fs reads/writes move at most 2 GiB - 1 per call

export interface TensorInfo {
  /** the file's dtype string, e.g. 'BF16' */
  dtype: string;
  shape: number[];
  byteLength: number;
}

export interface ReadOptions<D extends DType = DType> {
  /** the dtype of the returned tensor; float dtypes convert into each other, integers do not */
  dtype?: D;
  device?: Device;
}

/** A tensor as raw little-endian element bits: Uint16Array for f16/bf16, else its own array. */
export interface RawTensor {
  dtype: DType;
  shape: number[];
  data: ArrayBufferView;
}

// One validated header entry; begin/end are relative to the data section.
interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/** @internal A validated header. */
export interface Header {
  entries: Map<string, Entry>;
  /** names in file order (by data offset) */
  order: string[];
  metadata: Record<string, string>;
}

/** A name from a file as messages show it: quoted, escaped, shortened. */
function quote(s: string): string {
  const q = JSON.stringify(s);
  return q.length > 82 ? q.slice(0, 80) + '…"' : q;
}

function formatError(where: string, problem: string): IgnisError {
  return new IgnisError('E_FORMAT', `${where}: ${problem}`);
}

// An fs failure on a path the caller gave: the path and what the system said.
function pathError(op: string, file: string, e: unknown, doing = 'open'): IgnisError {
  const code = (e as { code?: string }).code;
  if (code === 'ENOENT' && doing === 'open') return new IgnisError('E_ARGUMENT', `${op}: ${file} does not exist`);
  return new IgnisError('E_ARGUMENT', `${op}: cannot ${doing} ${file}: ${(e as Error).message}`);
}

async function statOrNull(p: string): Promise<import('node:fs').Stats | null> {
  try {
    return await fsp.stat(p);
  } catch {
    return null;
  }
}

// Fills buf from the file at position; a file shorter than that is malformed.
async function readFully(fh: fsp.FileHandle, buf: Uint8Array, position: number, where: string): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesRead } = await fh.read(buf, done, Math.min(buf.byteLength - done, IO_CHUNK), position + done);
    if (bytesRead === 0)
      throw formatError(where, `file ends at byte ${position + done}, inside the ${buf.byteLength} bytes at ${position}`);
    done += bytesRead;
  }
}

async function writeFully(fh: fsp.FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesWritten } = await fh.write(buf, done, Math.min(buf.byteLength - done, IO_CHUNK), position + done);
    done += bytesWritten;
  }
}

const MAX_JSON_DEPTH = 64;

// The deepest nesting of [ and { in JSON text (outside strings), in one pass without recursion.
function jsonDepth(text: string): number {
  let depth = 0, max = 0, inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) max = depth;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return max;
}

// UTF-8 JSON bytes -> value; invalid UTF-8 (no silent U+FFFD), a BOM or bad JSON is malformed.
function parseJson(bytes: Uint8Array, where: string, what: string): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw formatError(where, `${what} is not valid UTF-8`);
  }
  // A header nests two or three levels; a deeply nested one is refused before it is parsed, as
  // walking it (a check, an error message) would overflow the stack.
  const depth = jsonDepth(text);
  if (depth > MAX_JSON_DEPTH) throw formatError(where, `${what} nests ${depth} levels deep (at most ${MAX_JSON_DEPTH})`);
  try {
    return JSON.parse(text);
  } catch (e) {
    const why = (e as Error).message;
    throw formatError(where, `${what} is not valid JSON (${why.length > 160 ? why.slice(0, 160) + '…' : why})`);
  }
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

// Validates a parsed header against a data section of dataSize bytes.
function parseHeader(header: Uint8Array, dataSize: number, where: string): Header {
  const json = parseJson(header, where, 'header');
  if (!isObject(json)) throw formatError(where, `header must be a JSON object, got ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json}`);
  let metadata: Record<string, string> = {};
  const entries = new Map<string, Entry>();
  for (const name of Object.keys(json)) {
    const value = json[name];
    if (name === META_KEY) {
      metadata = parseMetadata(value, where);
      continue;
    }
    const t = `tensor ${quote(name)}`;
    if (!isObject(value)) throw formatError(where, `${t} must be an object with dtype, shape and data_offsets`);
    const keys = Object.keys(value).sort();
    if (keys.length !== 3 || keys.some((k, i) => k !== ENTRY_KEYS[i]))
      throw formatError(where, `${t} must have exactly the keys dtype, shape and data_offsets, has ${keys.map(quote).join(', ') || 'none'}`);
    const { dtype, shape, data_offsets: offsets } = value;
    const bits = typeof dtype === 'string' ? SAFETENSORS_BITS.get(dtype) : undefined;
    if (bits === undefined)
      throw formatError(where, `${t} has dtype ${typeof dtype === 'string' ? quote(dtype) : describe(dtype)}, which is not a safetensors dtype`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw formatError(where, `${t} has shape ${brief(shape)}; a shape is an array of whole numbers >= 0`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1])
      throw formatError(where, `${t} has data_offsets ${brief(offsets)}; they must be [begin, end] with 0 <= begin <= end`);
    const [begin, end] = offsets as [number, number];
    // bytes = prod(shape) * bits / 8, in BigInt: a hostile shape overflows doubles
    const bitCount = (shape as number[]).reduce((a: bigint, d: number) => a * BigInt(d), 1n) * BigInt(bits);
    if (bitCount % 8n !== 0n) throw formatError(where, `${t}: shape ${brief(shape)} of ${dtype} is not a whole number of bytes`);
    if (bitCount / 8n !== BigInt(end - begin))
      throw formatError(where, `${t}: shape ${brief(shape)} of ${dtype} needs ${bitCount / 8n} bytes, but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    if (end > dataSize)
      throw formatError(where, `${t}: data_offsets [${begin}, ${end}] run past the end of the ${dataSize}-byte data section`);
    entries.set(name, { name, dtype: dtype as string, shape: (shape as number[]).map((d) => d + 0), begin, end });
  }
  // File order; empty tensors take no bytes, so only non-empty ranges can overlap.
  const sorted = [...entries.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let last: Entry | undefined;
  for (const e of sorted) {
    if (e.begin === e.end) continue;
    if (last && e.begin < last.end)
      throw formatError(where, `tensors ${quote(last.name)} [${last.begin}, ${last.end}] and ${quote(e.name)} [${e.begin}, ${e.end}] overlap`);
    if (!last || e.end > last.end) last = e;
  }
  return { entries, order: sorted.map((e) => e.name), metadata };
}

function parseMetadata(value: unknown, where: string): Record<string, string> {
  if (!isObject(value)) throw formatError(where, `${META_KEY} must be an object of strings, got ${describe(value)}`);
  for (const [k, x] of Object.entries(value)) {
    if (typeof x !== 'string') throw formatError(where, `${META_KEY} value ${quote(k)} must be a string, got ${describe(x)}`);
  }
  // fromEntries defines keys as own data properties, so '__proto__' stays a plain key
  return Object.freeze(Object.fromEntries(Object.entries(value))) as Record<string, string>;
}

// A JSON value from a header, short enough for a message.
function brief(x: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(x) ?? String(x);
  } catch {
    s = String(x);
  }
  return s.length > 80 ? s.slice(0, 80) + '…' : s;
}

export interface TensorSource {
  names(): string[];
  info(name: string): TensorInfo | undefined;
  has(name: string): boolean;
  read<D extends DType = DType>(name: string, opts?: ReadOptions<D>): Promise<Tensor<D>>;
  readBytes(name: string): Promise<Buffer>;
  close(): Promise<void>;
}

/** One open .safetensors file: its validated header in memory, tensors read on demand. */
export class SafetensorsFile implements TensorSource {
  readonly path: string;
  readonly metadata: Record<string, string>;
  #fh: fsp.FileHandle | null;
  #dataStart: number;
  #header: Header;
  #inFlight = new Set<Promise<Handle>>();

  /** @internal Made by openSafetensors. */
  constructor(file: string, fh: fsp.FileHandle, dataStart: number, header: Header) {
    this.path = file;
    this.metadata = header.metadata;
    this.#fh = fh;
    this.#dataStart = dataStart;
    this.#header = header;
  }

  get closed(): boolean {
    return this.#fh === null;
  }

  /** Tensor names in file order. */
  names(): string[] {
    return this.#header.order.slice();
  }

  info(name: string): TensorInfo | undefined {
    const e = typeof name === 'string' ? this.#header.entries.get(name) : undefined;
    return e && { dtype: e.dtype, shape: e.shape.slice(), byteLength: e.end - e.begin };
  }

  has(name: string): boolean {
    return typeof name === 'string' && this.#header.entries.has(name);
  }

  /** The tensor as an ignis Tensor of its own dtype, or of opts.dtype (float <-> float only). */
  async read<D extends DType = DType>(name: string, opts?: ReadOptions<D>): Promise<Tensor<D>> {
    const op = 'read';
    const e = this.#entry(op, name);
    const o = v.options<ReadOptions>(op, opts, ['dtype', 'device']);
    const device = v.device(op, o.device);
    const own = TO_IGNIS.get(e.dtype);
    const t = `${op}: ${this.path}: tensor ${quote(name)}`;
    if (own === undefined)
      throw new IgnisError('E_DTYPE', `${t} is ${e.dtype}, which ignis tensors cannot hold (they hold F32, F16, BF16, I8 and I32); readBytes() gives its raw bytes`);
    const want = v.dtype(op, o.dtype, own);
    if (want !== own && !(isFloatDType(want) && isFloatDType(own)))
      throw new IgnisError('E_DTYPE', `${t} is ${e.dtype} and cannot be read as ${want}: only float dtypes convert into each other`);
    if (e.shape.length > limits.maxRank || v.checkedNumel(e.shape) < 0)
      throw new IgnisError('E_SHAPE', `${t} has shape ${v.shapeStr(e.shape)}; ignis tensors have at most ${limits.maxRank} dimensions and 2^40 elements`);
    if (!this.#fh) throw new IgnisError('E_DISPOSED', `${op}: ${this.path} was closed`);
    if (process.platform !== 'win32') {
      // Read natively from the open file into the tensor's memory, on a pool thread: one copy
      // out of the page cache (stored dtype), or chunks converted as they arrive; on a device,
      // then copied in. close() waits for reads in flight before it closes the file.
      const reading = native().readFile(this.#fh.fd, this.#dataStart + e.begin, e.end - e.begin, own, want, e.shape);
      this.#inFlight.add(reading);
      let handle: Handle;
      try {
        handle = await reading;
      } catch (err) {
        if (err instanceof IgnisError && err.code === 'E_FORMAT') throw formatError(t, err.message);
        throw err;
      } finally {
        this.#inFlight.delete(reading);
      }
      const host = new Tensor<D>(handle, [e.shape.slice(), want, 'cpu']);
      if (device === 'cpu') return host;
      try {
        return host.to(deviceName(device)) as Tensor<D>;
      } finally {
        host.dispose();
      }
    }
    const bytes = await this.#bytes(op, e);
    // The stored bits go to native as they are and are converted there (the conversion cast uses):
    // no JS pass over the elements, NaN payloads kept.
    return new Tensor<D>(native().fromBytes(bytes, own, want, e.shape, device), [e.shape.slice(), want, deviceName(device)]);
  }

  /** The tensor's bytes exactly as stored. */
  async readBytes(name: string): Promise<Buffer> {
    const bytes = await this.#bytes('readBytes', this.#entry('readBytes', name));
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Closes the file; names() and info() keep working, reads fail. Safe to call twice. */
  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = null;
    await Promise.allSettled([...this.#inFlight]); // the native reads use the descriptor
    if (fh) await fh.close();
  }
  /** close(), for `await using f = await ignis.openSafetensors(path)`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #entry(op: string, name: unknown): Entry {
    if (typeof name !== 'string') throw typeError(`${op}: name must be a string, got ${describe(name)}`);
    const e = this.#header.entries.get(name);
    if (!e) throw new IgnisError('E_ARGUMENT', `${op}: ${this.path} has no tensor named ${quote(name)}`);
    return e;
  }

  async #bytes(op: string, e: Entry): Promise<Uint8Array> {
    if (!this.#fh) throw new IgnisError('E_DISPOSED', `${op}: ${this.path} was closed`);
    const out = new Uint8Array(e.end - e.begin);
    await readFully(this.#fh, out, this.#dataStart + e.begin, `${op}: ${this.path}: tensor ${quote(e.name)}`);
    return out;
  }
}

/** Opens a .safetensors file and validates its header; no tensor data is read yet. */
export async function openSafetensors(file: string): Promise<SafetensorsFile> {
  const op = 'openSafetensors';
  if (typeof file !== 'string' || file === '') throw typeError(`${op}: path must be a non-empty string, got ${describe(file)}`);
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (e) {
    throw pathError(op, file, e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new IgnisError('E_ARGUMENT', `${op}: ${file} is not a file`);
    const where = `${op}: ${file}`;
    const size = st.size;
    if (size < 8) throw formatError(where, `file is ${size} bytes; a safetensors file starts with an 8-byte header length`);
    const prefix = new Uint8Array(8);
    await readFully(fh, prefix, 0, where);
    const n = new DataView(prefix.buffer).getBigUint64(0, true);
    if (n === 0n) throw formatError(where, 'header length is 0');
    if (n > BigInt(size - 8)) throw formatError(where, `header length ${n} runs past the end of the ${size}-byte file`);
    if (n > BigInt(MAX_HEADER_BYTES)) throw formatError(where, `header length ${n} is over the ${MAX_HEADER_BYTES}-byte limit`);
    const headerBytes = new Uint8Array(Number(n));
    await readFully(fh, headerBytes, 8, where);
    const header = parseHeader(headerBytes, size - 8 - headerBytes.length, where);
    return new SafetensorsFile(file, fh, 8 + headerBytes.length, header);
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw e;
  }
}

/** A model directory: model.safetensors, or model.safetensors.index.json and its shards. */
export class Checkpoint implements TensorSource {
  readonly dir: string;
  /** the open files: one, or every shard the index names (sorted by file name) */
  readonly files: readonly SafetensorsFile[];
  /** the index's "metadata" (e.g. total_size), or the single file's __metadata__ */
  readonly metadata: Record<string, unknown>;
  #owner: Map<string, SafetensorsFile>;
  #order: string[];

  /** @internal Made by openCheckpoint. */
  constructor(dir: string, files: SafetensorsFile[], owner: Map<string, SafetensorsFile>, metadata: Record<string, unknown>) {
    this.dir = dir;
    this.files = Object.freeze(files.slice());
    this.metadata = metadata;
    this.#owner = owner;
    // shard by shard, each in file order
    this.#order = files.flatMap((f) => f.names().filter((n) => owner.get(n) === f));
  }

  names(): string[] {
    return this.#order.slice();
  }

  info(name: string): TensorInfo | undefined {
    return typeof name === 'string' ? this.#owner.get(name)?.info(name) : undefined;
  }

  has(name: string): boolean {
    return typeof name === 'string' && this.#owner.has(name);
  }

  async read<D extends DType = DType>(name: string, opts?: ReadOptions<D>): Promise<Tensor<D>> {
    return this.#file('read', name).read(name, opts);
  }

  async readBytes(name: string): Promise<Buffer> {
    return this.#file('readBytes', name).readBytes(name);
  }

  /** Closes every shard. Safe to call twice. */
  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }
  /** close(), for `await using c = await ignis.openCheckpoint(dir)`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #file(op: string, name: unknown): SafetensorsFile {
    if (typeof name !== 'string') throw typeError(`${op}: name must be a string, got ${describe(name)}`);
    const f = this.#owner.get(name);
    if (!f) throw new IgnisError('E_ARGUMENT', `${op}: checkpoint ${this.dir} has no tensor named ${quote(name)}`);
    return f;
  }
}

/**
 * Opens a model directory: model.safetensors if present, else model.safetensors.index.json,
 * checking that every shard it names exists and holds the tensors the index puts there.
 */
export async function openCheckpoint(dir: string): Promise<Checkpoint> {
  const op = 'openCheckpoint';
  if (typeof dir !== 'string' || dir === '') throw typeError(`${op}: dir must be a non-empty string, got ${describe(dir)}`);
  let st;
  try {
    st = await fsp.stat(dir);
  } catch (e) {
    throw pathError(op, dir, e);
  }
  if (!st.isDirectory()) throw new IgnisError('E_ARGUMENT', `${op}: ${dir} is not a directory`);
  const single = path.join(dir, SINGLE_FILE);
  if ((await statOrNull(single))?.isFile()) {
    const f = await openSafetensors(single);
    return new Checkpoint(dir, [f], new Map(f.names().map((n) => [n, f])), f.metadata);
  }
  const indexPath = path.join(dir, INDEX_FILE);
  const indexStat = await statOrNull(indexPath);
  if (!indexStat?.isFile()) throw new IgnisError('E_ARGUMENT', `${op}: ${dir} has neither ${SINGLE_FILE} nor ${INDEX_FILE}`);
  const { weightMap, metadata } = await readIndex(indexPath, indexStat.size, dir);

  const shardNames = [...new Set(weightMap.values())].sort();
  const opened = new Map<string, SafetensorsFile>();
  try {
    for (const shard of shardNames) {
      const p = path.join(dir, shard);
      if (!(await statOrNull(p))?.isFile())
        throw formatError(`${op}: ${indexPath}`, `weight_map names shard ${quote(shard)}, which is not a file in ${dir}`);
      opened.set(shard, await openSafetensors(p));
    }
    const owner = new Map<string, SafetensorsFile>();
    for (const [name, shard] of weightMap) {
      const f = opened.get(shard)!;
      if (!f.has(name))
        throw formatError(`${op}: ${indexPath}`, `weight_map puts tensor ${quote(name)} in ${f.path}, which has no such tensor`);
      owner.set(name, f);
    }
    return new Checkpoint(dir, [...opened.values()], owner, metadata);
  } catch (e) {
    await Promise.all([...opened.values()].map((f) => f.close().catch(() => undefined)));
    throw e;
  }
}

// The index: {"metadata": {...}?, "weight_map": {tensor: shard file}}; shard paths stay inside dir.
async function readIndex(indexPath: string, size: number, dir: string): Promise<{ weightMap: Map<string, string>; metadata: Record<string, unknown> }> {
  const where = `openCheckpoint: ${indexPath}`;
  if (size > MAX_HEADER_BYTES) throw formatError(where, `index is ${size} bytes, over the ${MAX_HEADER_BYTES}-byte limit`);
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(indexPath);
  } catch (e) {
    throw pathError('openCheckpoint', indexPath, e, 'read');
  }
  const json = parseJson(bytes, where, 'index');
  if (!isObject(json)) throw formatError(where, `index must be a JSON object, got ${describe(json)}`);
  const metadata = json.metadata ?? {};
  if (!isObject(metadata)) throw formatError(where, `"metadata" must be an object, got ${describe(metadata)}`);
  if (!isObject(json.weight_map)) throw formatError(where, `"weight_map" must be an object of tensor name -> shard file, got ${describe(json.weight_map)}`);
  const weightMap = new Map<string, string>();
  const root = path.resolve(dir);
  for (const [name, shard] of Object.entries(json.weight_map)) {
    if (typeof shard !== 'string' || shard === '')
      throw formatError(where, `weight_map entry ${quote(name)} must be a shard file name, got ${describe(shard)}`);
    const rel = path.relative(root, path.resolve(root, shard));
    if (path.isAbsolute(shard) || rel === '' || rel.startsWith('..'))
      throw formatError(where, `weight_map entry ${quote(name)} names ${quote(shard)}, which is not a file inside ${dir}`);
    weightMap.set(name, shard);
  }
  return { weightMap, metadata: Object.fromEntries(Object.entries(metadata)) };
}

// --- writing ---------------------------------------------------------------------------------

interface Planned {
  name: string;
  dtype: DType;
  shape: number[];
  byteLength: number;
  source: Tensor | ArrayBufferView;
}

/** The raw little-endian bits of a Tensor, as saveSafetensors writes them. */
export async function rawTensor(t: Tensor): Promise<RawTensor> {
  handle('rawTensor', 't', t);
  return { dtype: t.dtype, shape: [...t.shape], data: await tensorBits(t) };
}

// f16/bf16 come back from data() widened to f32 (exactly), so narrowing them back is exact too.
async function tensorBits(t: Tensor): Promise<Uint8Array> {
  const d = await t.data();
  if (t.dtype === 'f16' || t.dtype === 'bf16') {
    const narrow = t.dtype === 'f16' ? f32ToF16Bits : f32ToBf16Bits;
    const out = new Uint16Array(d.length);
    for (let i = 0; i < d.length; i++) out[i] = narrow(d[i]);
    return new Uint8Array(out.buffer);
  }
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

// Checks every input and lays out the header; tensors keep the caller's order.
function plan(op: string, tensors: unknown, metadata: unknown, allowTensors: boolean): { header: Uint8Array; items: Planned[] } {
  if (!v.is.object(tensors)) throw typeError(`${op}: tensors must be an object of name -> tensor, got ${describe(tensors)}`);
  const metaEntries: [string, string][] = [];
  if (metadata !== undefined) {
    if (!v.is.object(metadata)) throw typeError(`${op}: metadata must be an object of strings, got ${describe(metadata)}`);
    for (const [k, x] of Object.entries(metadata)) {
      if (typeof x !== 'string') throw typeError(`${op}: metadata[${quote(k)}] must be a string, got ${describe(x)}`);
      metaEntries.push([k, x]);
    }
  }
  const items: Planned[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const what = `tensors[${quote(name)}]`;
    if (name === META_KEY) throw new IgnisError('E_ARGUMENT', `${op}: ${META_KEY} is reserved for metadata and cannot name a tensor`);
    if (Tensor.is(t)) {
      if (!allowTensors)
        throw typeError(`${op}: ${what} is a Tensor; ${op} takes raw { dtype, shape, data } (saveSafetensors takes Tensors, rawTensor() converts one)`);
      handle(op, what, t);
      const dtype = t.dtype as DType;
      items.push({ name, dtype, shape: [...t.shape], byteLength: t.size * DTYPE_BYTES[dtype], source: t });
      continue;
    }
    if (!v.is.object(t)) throw typeError(`${op}: ${what} must be a Tensor or { dtype, shape, data }, got ${describe(t)}`);
    const raw = v.options<RawTensor>(op, t, ['dtype', 'shape', 'data']);
    if (raw.dtype === undefined) throw typeError(`${op}: ${what}.dtype is required`);
    const dtype = v.dtype(op, raw.dtype, 'f32');
    const shape = v.shape(op, raw.shape, `${what}.shape`);
    if (!ArrayBuffer.isView(raw.data)) throw typeError(`${op}: ${what}.data must be a TypedArray of the raw element bits, got ${describe(raw.data)}`);
    const byteLength = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
    if (raw.data.byteLength !== byteLength) {
      const hint = dtype === 'f16' || dtype === 'bf16' ? ' (16-bit floats are raw bits: a Uint16Array)' : '';
      throw new IgnisError('E_SHAPE', `${op}: ${what}.data has ${raw.data.byteLength} bytes, but shape ${v.shapeStr(shape)} of ${dtype} needs ${byteLength}${hint}`);
    }
    items.push({ name, dtype, shape, byteLength, source: raw.data });
  }

  // {"__metadata__":{...},"name":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},...}
  const parts: string[] = [];
  if (metaEntries.length > 0)
    parts.push(`"${META_KEY}":{${metaEntries.map(([k, x]) => `${JSON.stringify(k)}:${JSON.stringify(x)}`).join(',')}}`);
  let offset = 0;
  for (const it of items) {
    const entry = `{"dtype":"${FROM_IGNIS[it.dtype]}","shape":[${it.shape.join(',')}],"data_offsets":[${offset},${offset + it.byteLength}]}`;
    parts.push(`${JSON.stringify(it.name)}:${entry}`);
    offset += it.byteLength;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const n = Math.ceil(json.length / 8) * 8; // data starts at 8 + n: 8-byte aligned
  if (n > MAX_HEADER_BYTES) throw new IgnisError('E_ARGUMENT', `${op}: the header would be ${n} bytes, over the ${MAX_HEADER_BYTES}-byte limit readers accept`);
  const header = Buffer.alloc(8 + n, 0x20);
  header.writeBigUInt64LE(BigInt(n), 0);
  json.copy(header, 8);
  return { header, items };
}

function viewBytes(d: ArrayBufferView): Uint8Array {
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** A whole safetensors file in memory, from raw { dtype, shape, data } entries. */
export function encodeSafetensors(tensors: Record<string, RawTensor>, metadata?: Record<string, string>): Buffer {
  const { header, items } = plan('encodeSafetensors', tensors, metadata, false);
  const out = Buffer.alloc(header.length + items.reduce((a, it) => a + it.byteLength, 0));
  out.set(header, 0);
  let pos = header.length;
  for (const it of items) {
    out.set(viewBytes(it.source as ArrayBufferView), pos);
    pos += it.byteLength;
  }
  return out;
}

/**
 * Writes tensors (ignis Tensors or raw { dtype, shape, data }) to a .safetensors file, one
 * tensor in memory at a time. The file appears whole or not at all: it is written next to the
 * target and renamed over it.
 */
export async function saveSafetensors(file: string, tensors: Record<string, Tensor | RawTensor>, metadata?: Record<string, string>): Promise<void> {
  const op = 'saveSafetensors';
  if (typeof file !== 'string' || file === '') throw typeError(`${op}: path must be a non-empty string, got ${describe(file)}`);
  const { header, items } = plan(op, tensors, metadata, true);
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`;
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(tmp, 'wx');
  } catch (e) {
    throw pathError(op, file, e, 'write');
  }
  try {
    await writeFully(fh, header, 0);
    let pos = header.length;
    for (const it of items) {
      const bytes = Tensor.is(it.source) ? await tensorBits(it.source) : viewBytes(it.source);
      await writeFully(fh, bytes, pos);
      pos += it.byteLength;
    }
    await fh.close();
    await fsp.rename(tmp, file);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw e instanceof IgnisError || e instanceof TypeError ? e : pathError(op, file, e, 'write');
  }
}
