// loadModel: a Hugging Face checkpoint directory (config.json + safetensors, sharded or not)
// -> a LanguageModel with two compiled graphs over the same weights: 'full' (every position's
// logits, for forward) and 'step' (last position, KV caches in a per-sequence state, for
// generate: prefill once, then one token a step).
import '../dispose';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, IgnisError, typeError } from '../errors';
import { FloatDType } from '../dtype';
import { graph, Model } from '../graph';
import { openCheckpoint, ReadOptions, TensorSource } from '../safetensors';
import type { DType } from '../dtype';
import { tensor, Tensor } from '../tensor';
import type { Device } from '../device';
import * as v from '../validate';
import { buildGpt2, disposeGpt2, Gpt2Config, gpt2Config, gpt2Tensors, Gpt2Weights, gpt2WeightBytes, loadGpt2 } from './gpt2';
import { buildLlama, disposeLlama, LlamaConfig, llamaConfig, llamaTensors, LlamaWeights, llamaWeightBytes, loadLlama } from './llama';
import { sample as sampleOn } from '../ops';
import { argmax, samplerFor, samplingParams, SamplingOptions } from './sampling';

export interface LoadModelOptions {
  device?: Device;
  /** the weights' (and activations') dtype; default f32. With quantize the activations are f32. */
  dtype?: FloatDType;
  /** int8 weights (per-group scales) for every linear layer and the LM head */
  quantize?: 'int8';
  /** int8 group size along K (32, 64 or 128) where it divides a layer's K; elsewhere the largest
   * of 128, 64, 32 that does, else one scale per output channel */
  groupSize?: number;
  /** the longest sequence (prompt + generated) a state holds; default min(context, 2048) */
  maxSeq?: number;
  /** the most sequences one forward or state handles at once; default 1 */
  maxBatch?: number;
  /** called after each tensor read: what is done so far, and the checkpoint's totals (an upper
   * bound: a model may not read every tensor of its checkpoint) */
  onProgress?: (p: LoadProgress) => void;
  /** aborts the load between two tensors (and before the graphs compile): loadModel rejects with
   * the signal's reason, and the tensors read so far are freed */
  signal?: AbortSignal;
}

export interface LoadProgress {
  tensors: number;
  bytes: number;
  totalTensors: number;
  totalBytes: number;
}

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens?: number;
  /** token ids that end generation (the stop token is yielded, then generation ends) */
  stop?: number[];
  /** end at the model's end-of-sequence ids (model.eosTokenIds) as at a stop id; default true */
  eos?: boolean;
  /** ends the generation: the next step is not queued, and the generator throws the reason */
  signal?: AbortSignal;
}

type Arch = { config: Gpt2Config; weights: Gpt2Weights } | { config: LlamaConfig; weights: LlamaWeights };

export class LanguageModel {
  readonly modelType: 'gpt2' | 'llama' | 'qwen2' | 'qwen3' | 'mistral' | 'phi3';
  readonly vocabSize: number;
  /** the longest sequence a state holds */
  readonly maxSeq: number;
  readonly maxBatch: number;
  /** as given to loadModel ('cpu', 'cuda' or 'cuda:N') */
  readonly device: Device;
  readonly dtype: FloatDType;
  readonly quantized: 'int8' | undefined;
  /** end-of-sequence ids: generation_config.json's eos_token_id, else config.json's; generate()
   * ends at them unless told `eos: false` */
  readonly eosTokenIds: readonly number[];
  /** @internal */ readonly full: Model;
  /** @internal */ readonly step: Model;
  private arch: Arch | null;

  /** @internal */
  constructor(arch: Arch, full: Model, step: Model, o: { maxSeq: number; maxBatch: number; device: Device; dtype: FloatDType; quantize?: 'int8'; eos: number[] }) {
    this.arch = arch;
    this.modelType = arch.config.modelType;
    this.vocabSize = arch.config.vocab;
    this.full = full;
    this.step = step;
    this.maxSeq = o.maxSeq;
    this.maxBatch = o.maxBatch;
    this.device = o.device;
    this.dtype = o.dtype;
    this.quantized = o.quantize;
    this.eosTokenIds = Object.freeze([...o.eos]);
  }

  /** Bytes: the weights, the two graphs' activation arenas, and the KV cache of one state. */
  memory(): { weights: number; arena: number; kvCache: number } {
    const a = this.live('memory');
    const weights = a.config.modelType === 'gpt2' ? gpt2WeightBytes(a.weights as Gpt2Weights) : llamaWeightBytes(a.weights as LlamaWeights);
    return { weights, arena: this.full.memory().arena + this.step.memory().arena, kvCache: this.step.memory().state };
  }

  private live(op: string): Arch {
    if (!this.arch) throw new IgnisError('E_DISPOSED', `model.${op}: the model was disposed`);
    return this.arch;
  }

  private ids(op: string, ids: unknown): Tensor {
    if (Tensor.is(ids)) {
      if (ids.dtype !== 'i32' || ids.rank !== 2) throw new IgnisError('E_SHAPE', `model.${op}: ids must be an i32 [batch, seq] tensor, got ${ids}`);
      return ids;
    }
    if (!Array.isArray(ids) || ids.length === 0) throw typeError(`model.${op}: ids must be token ids (number[] or number[][]) or an i32 tensor, got ${describe(ids)}`);
    const rows = (Array.isArray(ids[0]) ? ids : [ids]) as unknown[];
    const seq = (rows[0] as unknown[]).length;
    const flat = new Int32Array(rows.length * seq);
    rows.forEach((r, b) => {
      if (!Array.isArray(r) || r.length !== seq) throw new IgnisError('E_SHAPE', `model.${op}: every sequence of a batch must have the same length (${seq})`);
      r.forEach((t, s) => {
        if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= this.vocabSize)
          throw new IgnisError('E_INDEX', `model.${op}: token ${describe(t)} at [${b}, ${s}] is not an id in [0, ${this.vocabSize})`);
        flat[b * seq + s] = t;
      });
    });
    return tensor(flat, { shape: [rows.length, seq], dtype: 'i32', device: this.device });
  }

  /** logits [batch, seq, vocab] for every position of ids (number[] is one sequence). */
  forward(ids: number[] | number[][] | Tensor): Tensor {
    this.live('forward');
    const t = this.ids('forward', ids);
    try {
      return this.full.enqueue({ ids: t }).logits;
    } finally {
      if (t !== ids) t.dispose();
    }
  }

  /**
   * Generates token ids after `prompt`, one per iteration: the prompt is run once (prefill),
   * then each new token is one step over the KV cache. Greedy unless a temperature is given.
   * Greedy steps pick their token on the device (the step graph's argmax), sampled ones on the
   * CPU too (ignis.sample queued after the step), so each step is queued, reading the previous
   * step's token tensor, before that token is read back: the JS work of a step overlaps the
   * kernels of the one before it. Elsewhere a sampled token is drawn in JS from the logits.
   */
  async *generate(prompt: number[], opts?: GenerateOptions): AsyncGenerator<number, void, undefined> {
    const op = 'generate';
    this.live(op);
    const o = v.options<GenerateOptions>(op, opts, ['maxNewTokens', 'stop', 'eos', 'signal', 'temperature', 'topK', 'topP', 'seed']);
    const signal = abortSignal(`model.${op}`, o.signal);
    signal?.throwIfAborted();
    const maxNew = v.int(op, 'maxNewTokens', o.maxNewTokens, 0, 32);
    if (o.stop !== undefined && (!Array.isArray(o.stop) || o.stop.some((x) => !Number.isInteger(x))))
      throw typeError(`model.${op}: stop must be an array of token ids, got ${describe(o.stop)}`);
    if (o.eos !== undefined && typeof o.eos !== 'boolean') throw typeError(`model.${op}: eos must be true or false, got ${describe(o.eos)}`);
    const stop = new Set([...(o.stop ?? []), ...(o.eos === false ? [] : this.eosTokenIds)]);
    const params = samplingParams(`model.${op}`, o);
    const sample = samplerFor(params);
    // On the CPU a sampled token is drawn by ignis.sample, queued after its step like the argmax.
    const native = sample !== argmax && this.device === 'cpu';
    if (!Array.isArray(prompt) || prompt.length === 0 || Array.isArray(prompt[0]))
      throw typeError(`model.${op}: prompt must be a non-empty array of token ids, got ${describe(prompt)}`);
    if (prompt.length > this.maxSeq)
      throw new IgnisError('E_ARGUMENT', `model.${op}: the prompt (${prompt.length} tokens) does not fit maxSeq ${this.maxSeq}`);
    if (maxNew === 0) return;
    const state = this.step.createState();
    // The first step's outputs are written over by the later ones: logits [1, 1, vocab], and
    // two next-token tensors [1, 1] used in turn (a step reads one while it writes the other).
    let logits: Tensor | undefined;
    const next: Tensor[] = [];
    let position = 0;
    const enqueue = (ids: Tensor, k: number): Tensor => {
      const outputs: Record<string, Tensor> = {};
      if (logits) outputs.logits = logits;
      if (next[k % 2]) outputs.next = next[k % 2];
      const r = this.step.enqueue({ ids, position }, { state, outputs });
      position += ids.shape[1];
      logits = r.logits;
      next[k % 2] = r.next;
      return r.next;
    };
    try {
      const ids = this.ids(op, prompt);
      let pending: Tensor;
      try {
        pending = enqueue(ids, 0);
      } finally {
        ids.dispose();
      }
      for (let n = 0; n < maxNew; n++) {
        signal?.throwIfAborted();
        const more = n + 1 < maxNew && position < this.maxSeq;
        let token: number;
        if (sample === argmax || native) {
          // Queue order: step n (and its draw), the read of its token, step n + 1 (which reads
          // step n's token tensor), so the token comes back while step n + 1 runs.
          const cur = native ? sampleOn(logits!, { temperature: params.temperature, topK: params.topK || undefined, topP: params.topP, seed: params.seed, counter: n }) : pending;
          const read = cur.data();
          if (more) pending = enqueue(cur, n + 1);
          if (native) cur.dispose(); // the queued read and step hold it
          token = ((await read) as Int32Array)[0];
        } else {
          token = sample((await logits!.data()) as Float32Array, 0, this.vocabSize);
          if (more) {
            const t = tensor(new Int32Array([token]), { shape: [1, 1], dtype: 'i32', device: this.device });
            try {
              enqueue(t, n + 1);
            } finally {
              t.dispose();
            }
          }
        }
        yield token;
        if (stop.has(token) || !more) return;
      }
    } finally {
      logits?.dispose();
      for (const t of next) t.dispose();
      state.dispose();
    }
  }

  dispose(): void {
    const a = this.arch;
    if (!a) return;
    this.arch = null;
    this.full.dispose();
    this.step.dispose();
    if (a.config.modelType === 'gpt2') disposeGpt2(a.weights as Gpt2Weights);
    else disposeLlama(a.weights as LlamaWeights);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Loads a Hugging Face style checkpoint directory: model_type gpt2, llama, qwen2, qwen3, mistral or phi3. */
export async function loadModel(dir: string, opts?: LoadModelOptions): Promise<LanguageModel> {
  const op = 'loadModel';
  if (typeof dir !== 'string' || !dir) throw typeError(`${op}: dir must be a directory path, got ${describe(dir)}`);
  const o = v.options<LoadModelOptions>(op, opts, ['device', 'dtype', 'quantize', 'groupSize', 'maxSeq', 'maxBatch', 'onProgress', 'signal']);
  const signal = abortSignal(op, o.signal);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw typeError(`${op}: onProgress must be a function, got ${describe(o.onProgress)}`);
  signal?.throwIfAborted();
  const device = v.device(op, o.device);
  const dtype = v.dtype(op, o.dtype, 'f32') as FloatDType;
  if (!['f32', 'f16', 'bf16'].includes(dtype)) throw new IgnisError('E_DTYPE', `${op}: dtype must be f32, f16 or bf16, got ${dtype}`);
  if (o.quantize !== undefined && o.quantize !== 'int8') throw new IgnisError('E_ARGUMENT', `${op}: quantize must be 'int8', got ${describe(o.quantize)}`);
  const groupSize = o.groupSize === undefined ? undefined : v.int(op, 'groupSize', o.groupSize, 1);
  const maxBatch = v.int(op, 'maxBatch', o.maxBatch, 1, 1);
  let raw: Record<string, unknown>;
  const cfgPath = path.join(dir, 'config.json');
  try {
    raw = JSON.parse(await fsp.readFile(cfgPath, 'utf8'));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new IgnisError('E_ARGUMENT', `${op}: ${cfgPath} does not exist`);
    throw new IgnisError('E_FORMAT', `${op}: ${cfgPath}: ${err.message}`);
  }
  if (typeof raw !== 'object' || raw === null) throw new IgnisError('E_FORMAT', `${op}: ${cfgPath} is not a JSON object`);
  const wo = { dtype, quantize: o.quantize, groupSize, device };
  // The config first, all of it checked before a byte of weights is read.
  let config: Gpt2Config | LlamaConfig;
  if (raw.model_type === 'gpt2') config = gpt2Config(raw);
  else if (['llama', 'qwen2', 'qwen3', 'mistral', 'phi3'].includes(raw.model_type as string)) config = llamaConfig(raw);
  else throw new IgnisError('E_FORMAT', `${op}: model_type ${JSON.stringify(raw.model_type)} is not supported (gpt2, llama, qwen2, qwen3, mistral, phi3)`);
  const eos = await eosTokenIds(dir, raw, config.vocab);
  const context = config.modelType === 'gpt2' ? config.positions : config.maxPositions;
  // a sliding window of w equals full attention up to w tokens, and dynamic NTK RoPE the default
  // rotation up to the original context: that is all ignis computes
  const window = config.modelType === 'gpt2' ? undefined : config.window;
  const ropeLimit = config.modelType === 'gpt2' ? undefined : config.rope.limit;
  const maxSeq = Math.min(context, v.int(op, 'maxSeq', o.maxSeq, 1, Math.min(context, 2048, window ?? Infinity, ropeLimit ?? Infinity)));
  if (window !== undefined && maxSeq > window)
    throw new IgnisError('E_ARGUMENT', `${op}: maxSeq ${maxSeq} passes the config's sliding_window ${window}: attention is computed over every key, which equals the window's only up to ${window} tokens`);
  if (ropeLimit !== undefined && maxSeq > ropeLimit)
    throw new IgnisError('E_ARGUMENT', `${op}: maxSeq ${maxSeq} passes ${ropeLimit}, where the config's RoPE scaling changes with the sequence length (dynamic NTK, longrope's long factors): ignis computes the rotation up to there`);

  const opened = await openCheckpoint(dir);
  const src = watched(opened, o.onProgress, signal);
  let arch: Arch;
  try {
    arch = config.modelType === 'gpt2'
      ? { config, weights: await loadGpt2(src, config, wo) }
      : { config, weights: await loadLlama(src, config, wo) };
    signal?.throwIfAborted();
  } catch (e) {
    src.disposeRead();
    throw e;
  } finally {
    await opened.close();
  }
  const build = (mode: 'full' | 'step') => {
    const g = graph();
    if (arch.config.modelType === 'gpt2') buildGpt2(g, arch.config, arch.weights as Gpt2Weights, mode, maxSeq);
    else buildLlama(g, arch.config, arch.weights as LlamaWeights, mode, maxSeq);
    return g.compile({ device, max: { batch: maxBatch, seq: maxSeq } });
  };
  let full: Model | undefined, step: Model | undefined;
  try {
    full = await build('full');
    signal?.throwIfAborted();
    step = await build('step');
    signal?.throwIfAborted();
    // packing and quantizing were queued as the tensors arrived: the model is loaded once they
    // are done (a failure there rejects the load, not the first request)
    const weights = arch.config.modelType === 'gpt2' ? gpt2Tensors(arch.weights as Gpt2Weights) : llamaTensors(arch.weights as LlamaWeights);
    await Promise.all(weights.map((t) => t.ready()));
  } catch (e) {
    full?.dispose();
    step?.dispose();
    src.disposeRead();
    if (arch.config.modelType === 'gpt2') disposeGpt2(arch.weights as Gpt2Weights);
    else disposeLlama(arch.weights as LlamaWeights);
    throw e;
  }
  return new LanguageModel(arch, full, step, { maxSeq, maxBatch, device, dtype, quantize: o.quantize, eos });
}

/**
 * The end-of-sequence ids as transformers' generate() takes them: generation_config.json's
 * eos_token_id when that file has one, else config.json's; an id or a list of ids, each a token
 * of the vocabulary (anything else is E_FORMAT naming the file).
 */
async function eosTokenIds(dir: string, cfg: Record<string, unknown>, vocab: number): Promise<number[]> {
  const genPath = path.join(dir, 'generation_config.json');
  let gen: Record<string, unknown> = {};
  try {
    gen = JSON.parse(await fsp.readFile(genPath, 'utf8'));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code !== 'ENOENT') throw new IgnisError('E_FORMAT', `loadModel: ${genPath}: ${err.message}`);
  }
  if (typeof gen !== 'object' || gen === null || Array.isArray(gen)) throw new IgnisError('E_FORMAT', `loadModel: ${genPath} is not a JSON object`);
  const [file, raw] = gen.eos_token_id != null ? ['generation_config.json', gen.eos_token_id] : ['config.json', cfg.eos_token_id];
  if (raw == null) return [];
  const ids = Array.isArray(raw) ? raw : [raw];
  for (const id of ids)
    if (!Number.isSafeInteger(id) || (id as number) < 0 || (id as number) >= vocab)
      throw new IgnisError('E_FORMAT', `loadModel: ${file}: eos_token_id ${JSON.stringify(raw)} is not a token id of the vocabulary (0 to ${vocab - 1})`);
  return ids as number[];
}

function abortSignal(op: string, s: unknown): AbortSignal | undefined {
  if (s === undefined) return undefined;
  if (!(s instanceof AbortSignal)) throw typeError(`${op}: signal must be an AbortSignal, got ${describe(s)}`);
  return s;
}

/**
 * The checkpoint as the loaders read it, counting each tensor read for onProgress, checking the
 * signal before each, and keeping what it handed out so a failed or aborted load can free it
 * (dispose is idempotent: tensors a loader consumed are already freed).
 */
function watched(src: TensorSource, onProgress: ((p: LoadProgress) => void) | undefined, signal: AbortSignal | undefined): TensorSource & { disposeRead(): void } {
  const names = src.names();
  const total = { totalTensors: names.length, totalBytes: names.reduce((n, k) => n + (src.info(k)?.byteLength ?? 0), 0) };
  const done = { tensors: 0, bytes: 0 };
  const read: Tensor[] = [];
  return {
    names: () => src.names(),
    info: (name) => src.info(name),
    has: (name) => src.has(name),
    async read<D extends DType = DType>(name: string, opts?: ReadOptions<D>): Promise<Tensor<D>> {
      signal?.throwIfAborted();
      const t = await src.read(name, opts);
      read.push(t);
      done.tensors++;
      done.bytes += src.info(name)?.byteLength ?? 0;
      onProgress?.({ ...done, ...total });
      signal?.throwIfAborted();
      return t;
    },
    readBytes: (name) => src.readBytes(name),
    close: () => src.close(),
    disposeRead: () => {
      for (const t of read) t.dispose();
    },
  };
}
