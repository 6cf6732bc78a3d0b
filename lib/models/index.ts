// loadModel: a Hugging Face checkpoint directory (config.json + safetensors, sharded or not)
// -> a LanguageModel with two compiled graphs over the same weights: 'full' (every position's
// logits, for forward) and 'step' (last position, KV caches in a per-sequence state, for
// generate: prefill once, then one token a step).
import '../dispose';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, IgnisError, rangeError, typeError } from '../errors';
import { FloatDType } from '../dtype';
import { graph, Model } from '../graph';
import { openCheckpoint, ReadOptions, TensorSource } from '../safetensors';
import type { DType } from '../dtype';
import { tensor, Tensor } from '../tensor';
import type { Device } from '../device';
import * as v from '../validate';
import { SCALE_DTYPES, type ScaleDtype } from '../quant';
import { buildGpt2, buildGpt2Serve, disposeGpt2, Gpt2Config, gpt2Config, gpt2Tensors, Gpt2Weights, loadGpt2 } from './gpt2';
import { buildLlama, buildLlamaServe, disposeLlama, LlamaConfig, llamaConfig, llamaTensors, LlamaWeights, loadLlama } from './llama';
import { Server, serveOptions, ServeOptions } from './serve';
import { SeqRunner, speculativeSteps } from './speculative';
import type { ServeLayout } from './servegraph';
import { tensorBytes } from './weights';
import { native } from '../binding';
import { sample as sampleOn } from '../ops';
import { argmax, samplerFor, samplingParams, SamplingOptions } from './sampling';
import { loadTokenizer, Tokenizer } from '../tokenizer/tokenizer';
import type { Detokenizer } from '../tokenizer/detokenizer';
import type { ChatMessage, ChatTemplateOptions } from '../tokenizer/chat';

export interface LoadModelOptions {
  device?: Device;
  /** the weights' (and activations') dtype; default f32. With quantize the activations are f32
   * (in generate()'s steps on the CPU, int8: see int8Activations). */
  dtype?: FloatDType;
  /** int8 weights (per-group scales) for every linear layer and the LM head */
  quantize?: 'int8';
  /** with dtype f16 or bf16: the activations' dtype (the residual stream, norms, attention, KV
   * cache). 'f32', the default on the CPU: f32 activations, each linear layer multiplying them by
   * its 16-bit weight as stored (as llama.cpp computes; f32 accumulation, rounding only where
   * the weights' format does). 'weights': the weights' dtype throughout (the default on CUDA, which
   * has no mixed-dtype matmul yet; half the KV cache's memory). */
  activations?: 'f32' | 'weights';
  /** with quantize 'int8', on the CPU: generate()'s steps (decode and prefill) quantize each
   * layer's input per group too and take integer dot products (decode then streams the weights at
   * memory speed; prefill runs an integer GEMM); forward() keeps f32 activations. Default true on
   * the CPU; false keeps f32 activations everywhere (the exact mode: only the weights are rounded). */
  int8Activations?: boolean;
  /** int8 group size along K (32, 64 or 128) where it divides a layer's K; elsewhere the largest
   * of 128, 64, 32 that does, else one scale per output channel */
  groupSize?: number;
  /** with quantize 'int8': the scales' dtype (quantize's scales). 'f16', the default on the CPU:
   * each group's scale rounded up onto f16's grid (the weights' error bound kept; llama.cpp Q8_0's
   * bytes, ~5% less to read a decode step than 'f32'). 'f32', the default elsewhere (CUDA's int8
   * kernels read f32 scales). */
  scales?: ScaleDtype;
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
  /** read the directory's tokenizer.json (model.tokenizer; text and chat in generate); default
   * true where the file exists. false: ids only */
  tokenizer?: boolean;
}

export interface LoadProgress {
  tensors: number;
  bytes: number;
  totalTensors: number;
  totalBytes: number;
}

export interface GenerateOptions extends SamplingOptions {
  /** default: generation_config.json's max_new_tokens, else 32 */
  maxNewTokens?: number;
  /** what ends generation: token ids (the id is yielded, then generation ends) and strings (the
   * text ends before the string; needs a tokenizer) */
  stop?: readonly (number | string)[];
  /** end at the model's end-of-sequence ids (model.eosTokenIds) as at a stop id; default true */
  eos?: boolean;
  /** ends the generation: the next step is not queued, and the generator throws the reason */
  signal?: AbortSignal;
  /** speculative decoding: a smaller model of the same vocabulary proposes draftTokens tokens a
   * round, which this model checks in one forward; greedy tokens are this model's own, sampled
   * ones keep its distribution (the rejection rule). CPU, the models createServer() takes, for now. */
  draft?: LanguageModel;
  /** tokens the draft proposes a round (default 4, at most 15) */
  draftTokens?: number;
  /** after each speculative round: the draft tokens proposed and kept (their ratio: the acceptance rate) */
  onDraftRound?: (proposed: number, kept: number) => void;
  /** a text prompt: add the tokenizer's special tokens around it (Llama's BOS); default true */
  addSpecialTokens?: boolean;
  /** chat messages: the template's options (tools, variables such as Qwen3's enable_thinking) */
  chatTemplate?: Omit<ChatTemplateOptions, 'addGenerationPrompt'>;
  /** the text of special tokens (EOS, <|eot_id|>) is left out of the pieces; default true */
  skipSpecialTokens?: boolean;
}

/** What generate() takes: token ids, a text, or chat messages (the chat template applied). */
export type GenerateInput = readonly number[] | string | readonly ChatMessage[];

/** One generated token and the text that became final with it ('' while a character or a
 * possible stop string is pending; always '' for a model without a tokenizer). */
export interface GeneratedPiece {
  token: number;
  text: string;
}

/** Why generation ended: an EOS id, a stop id or string, or maxNewTokens / maxSeq. */
export type FinishReason = 'eos' | 'stop' | 'length';

/** model.chat()'s reply: the assistant's turn, ready to append to the messages. */
export interface ChatReply {
  role: 'assistant';
  content: string;
  tokens: number[];
  finishReason: FinishReason;
}

/**
 * generation_config.json's sampling defaults, as generate() applies them when a call gives no
 * temperature, topK or topP: greedy unless do_sample; then temperature (1), top_k (50) and top_p
 * (1) as transformers' GenerationConfig defaults them.
 */
export interface GenerationDefaults {
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  maxNewTokens?: number;
  /** settings of the file that generate() does not apply (repetition_penalty, min_p, num_beams,
   * ...), as "key=value": a call that relies on the defaults samples without them */
  notApplied: string[];
}

type Arch = { config: Gpt2Config; weights: Gpt2Weights } | { config: LlamaConfig; weights: LlamaWeights };

export class LanguageModel {
  readonly modelType: 'gpt2' | 'llama' | 'qwen2' | 'qwen3' | 'mistral' | 'phi3' | 'gemma2' | 'gemma3_text';
  readonly vocabSize: number;
  /** the longest sequence a state holds */
  readonly maxSeq: number;
  readonly maxBatch: number;
  /** as given to loadModel ('cpu', 'cuda' or 'cuda:N') */
  readonly device: Device;
  readonly dtype: FloatDType;
  readonly quantized: 'int8' | undefined;
  /** whether generate()'s steps quantize the layers' inputs to int8 too (loadModel's int8Activations) */
  readonly int8Activations: boolean;
  /** end-of-sequence ids: generation_config.json's eos_token_id, else config.json's; generate()
   * ends at them unless told `eos: false` */
  readonly eosTokenIds: readonly number[];
  /** the checkpoint's tokenizer (tokenizer.json), or null: then generate() takes ids only */
  readonly tokenizer: Tokenizer | null;
  /** generation_config.json's sampling defaults */
  readonly generationDefaults: Readonly<GenerationDefaults>;
  /** @internal */ readonly full: Model;
  /** @internal */ readonly step: Model;
  private arch: Arch | null;

  /** @internal */
  constructor(arch: Arch, full: Model, step: Model, o: { maxSeq: number; maxBatch: number; device: Device; dtype: FloatDType; quantize?: 'int8'; int8Activations: boolean; eos: number[]; tokenizer: Tokenizer | null; defaults: GenerationDefaults }) {
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
    this.int8Activations = o.int8Activations;
    this.eosTokenIds = Object.freeze([...o.eos]);
    this.tokenizer = o.tokenizer;
    this.generationDefaults = Object.freeze({ ...o.defaults, notApplied: Object.freeze([...o.defaults.notApplied]) as string[] });
  }

  /** Bytes: the weights, the two graphs' activation arenas, and the KV cache of one state. */
  memory(): { weights: number; arena: number; kvCache: number } {
    const a = this.live('memory');
    const weights = archTensors(a).reduce((n, t) => n + tensorBytes(t), 0);
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
      this._putIds(`model.${op}`, r, b, flat, b * seq);
    });
    return tensor(flat, { shape: [rows.length, seq], dtype: 'i32', device: this.device });
  }

  /** @internal Sequence b's token ids r into out from `at`, each checked against the vocabulary (E_INDEX naming it). */
  _putIds(prefix: string, r: readonly unknown[], b: number, out: Int32Array, at = 0): void {
    r.forEach((t, s) => {
      if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= this.vocabSize)
        throw new IgnisError('E_INDEX', `${prefix}: token ${describe(t)} at [${b}, ${s}] is not an id in [0, ${this.vocabSize})`);
      out[at + s] = t;
    });
  }

  /**
   * @internal A generation's options as they settle (generate() and server.generate()): its
   * signal (checked), maxNewTokens, end-of-sequence ids, and sampling (the call's, else the
   * checkpoint's defaults). op names the option errors, prefix the others.
   */
  _generation(op: string, prefix: string, o: GenerateOptions): { signal?: AbortSignal; maxNew: number; eos: Set<number>; params: Required<SamplingOptions> } {
    const signal = abortSignal(prefix, o.signal);
    signal?.throwIfAborted();
    const d = this.generationDefaults;
    const maxNew = v.int(op, 'maxNewTokens', o.maxNewTokens, 0, d.maxNewTokens ?? 32);
    if (o.eos !== undefined && typeof o.eos !== 'boolean') throw typeError(`${prefix}: eos must be true or false, got ${describe(o.eos)}`);
    const eos = new Set(o.eos === false ? [] : this.eosTokenIds);
    const own = o.temperature !== undefined || o.topK !== undefined || o.topP !== undefined;
    const sampling: SamplingOptions = own || !d.doSample ? o : { temperature: d.temperature, topK: d.topK || undefined, topP: d.topP, seed: o.seed };
    return { signal, maxNew, eos, params: samplingParams(prefix, sampling) };
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
   * Generates after `input` (token ids, a text, or chat messages with the chat template applied),
   * one { token, text } piece per token: the prompt is run once (prefill), then each new token is
   * one step over the KV cache. The text is decoded incrementally: a character whose bytes span
   * tokens comes with the token that completes it, and text that may begin a stop string is held
   * until it does or does not. Sampling: the call's temperature / topK / topP, else the model's
   * generationDefaults (greedy unless the checkpoint's generation_config.json samples). The
   * generator's return value is the FinishReason.
   */
  async *generate(input: GenerateInput, opts?: GenerateOptions): AsyncGenerator<GeneratedPiece, FinishReason, undefined> {
    const op = 'generate';
    this.live(op);
    const o = v.options<GenerateOptions>(op, opts, ['maxNewTokens', 'stop', 'eos', 'signal', 'temperature', 'topK', 'topP', 'seed', 'addSpecialTokens', 'chatTemplate', 'skipSpecialTokens', 'draft', 'draftTokens', 'onDraftRound']);
    const { prompt, stopIds, stopStrings, detok } = this._prepare(`model.${op}`, input, o);
    const steps = this.steps(op, prompt, o, stopIds);
    try {
      return yield* this._pieces(steps, detok, stopStrings);
    } finally {
      await steps.return('stop'); // a consumer that stops early frees the state here (a no-op once done)
    }
  }

  /** @internal A generation's prompt ids, stop ids and strings, and detokenizer (generate(), server.generate()). */
  _prepare(op: string, input: GenerateInput, o: GenerateOptions): { prompt: number[]; stopIds: number[]; stopStrings: string[]; detok: Detokenizer | null } {
    this.live(op);
    if (o.stop !== undefined && (!Array.isArray(o.stop) || o.stop.some((x) => !Number.isInteger(x) && (typeof x !== 'string' || x === ''))))
      throw typeError(`${op}: stop must be an array of token ids and non-empty strings, got ${describe(o.stop)}`);
    const stopIds = (o.stop ?? []).filter((x): x is number => typeof x === 'number');
    const stopStrings = (o.stop ?? []).filter((x): x is string => typeof x === 'string');
    if (stopStrings.length && !this.tokenizer) throw new IgnisError('E_ARGUMENT', `${op}: stop strings need a tokenizer, and this model has none (no tokenizer.json)`);
    const prompt = this.promptIds(op.replace(/^model\./, ''), input, o);
    const detok = this.tokenizer?.detokenizer({ skipSpecialTokens: v.bool(op, 'skipSpecialTokens', o.skipSpecialTokens, true) }) ?? null;
    return { prompt, stopIds, stopStrings, detok };
  }

  /**
   * A server that runs every request on this model as one batch a step (continuous batching,
   * paged KV cache, shared prompt blocks): server.generate() takes what generate() takes. CPU,
   * every architecture loadModel takes, for now.
   */
  async createServer(opts?: ServeOptions): Promise<Server> {
    const op = 'model.createServer';
    this.live('createServer');
    const o = serveOptions(op, opts, this.maxSeq);
    const fallback = opts?.fallback;
    if (fallback !== undefined) {
      if (!(fallback instanceof LanguageModel)) throw typeError(`${op}: fallback must be a LanguageModel (loadModel), got ${describe(fallback)}`);
      if (fallback.vocabSize !== this.vocabSize || fallback.maxSeq < this.maxSeq)
        throw new IgnisError('E_ARGUMENT', `${op}: the fallback must be the same model (vocabulary ${fallback.vocabSize} against ${this.vocabSize}, maxSeq ${fallback.maxSeq} against ${this.maxSeq})`);
    }
    const layout = { blocks: o.kvBlocks, blockSize: o.blockSize, maxBlocks: Math.ceil(this.maxSeq / o.blockSize) };
    try {
      return new Server(this, await this._serveGraph(op, layout, o.maxTokens, o.maxBatch), layout, { ...o, fallback });
    } catch (e) {
      const code = (e as { code?: string })?.code;
      if (!fallback || (code !== 'E_DEVICE' && code !== 'E_DEVICE_LOST')) throw e;
      // this device cannot serve: the fallback does, saying why
      const why = `${this.device} cannot serve: ${(e as Error).message}`;
      return new Server(fallback, await fallback._serveGraph(op, layout, o.maxTokens, o.maxBatch), layout, { ...o, fellBack: why });
    }
  }

  /** @internal The serving graph (continuous batching) for this model: E_DEVICE where it cannot run. */
  async _serveGraph(op: string, layout: ServeLayout, maxTokens: number, maxBatch: number): Promise<Model> {
    const a = this.live('createServer');
    if (this.device !== 'cpu') throw new IgnisError('E_DEVICE', `${op}: the paged KV cache runs on the CPU only, for now (this model is on ${this.device})`);
    const g = graph();
    if (a.config.modelType === 'gpt2') buildGpt2Serve(g, a.config as Gpt2Config, a.weights as Gpt2Weights, layout, this.int8Activations);
    else buildLlamaServe(g, a.config as LlamaConfig, a.weights as LlamaWeights, this.maxSeq, layout, this.int8Activations);
    return g.compile({ device: this.device, max: { tokens: maxTokens, seqs: maxBatch, r: maxBatch } });
  }

  private seqGraph: Promise<{ graph: Model; layout: ServeLayout }> | null = null;
  /** @internal The serving graph for one sequence (speculative decoding's target and draft), compiled once. */
  _seqGraph(op: string): Promise<{ graph: Model; layout: ServeLayout }> {
    this.live(op);
    if (!this.seqGraph) {
      const layout = { blocks: Math.ceil(this.maxSeq / 16), blockSize: 16, maxBlocks: Math.ceil(this.maxSeq / 16) };
      this.seqGraph = this._serveGraph(`model.${op}`, layout, this.maxSeq, 16).then((graph) => ({ graph, layout }));
      this.seqGraph.catch(() => (this.seqGraph = null));
    }
    return this.seqGraph;
  }

  /** @internal The pieces of a token loop's tokens: detokenized, stop strings found and held back. */
  async *_pieces(steps: AsyncGenerator<{ token: number; end?: FinishReason }, FinishReason, undefined>, detok: Detokenizer | null, stopStrings: string[]): AsyncGenerator<GeneratedPiece, FinishReason, undefined> {
    const longest = Math.max(0, ...stopStrings.map((x) => x.length));
    let held = ''; // text not yet given out: it may be the start of a stop string
    for (;;) {
      const r = await steps.next();
      if (r.done) return r.value;
      const { token, end } = r.value;
      let text = held + (detok ? detok.push(token) + (end ? detok.flush() : '') : '');
      held = '';
      let hit = -1;
      for (const x of stopStrings) {
        const at = text.indexOf(x);
        if (at >= 0 && (hit < 0 || at < hit)) hit = at;
      }
      if (hit >= 0) {
        yield { token, text: text.slice(0, hit) };
        return 'stop'; // generate() closes the loop: the state is freed, no further step queued
      }
      if (!end && longest > 1) {
        // hold back the longest end of the text that a stop string starts with
        for (let k = Math.min(longest - 1, text.length); k > 0; k--) {
          const tail = text.slice(text.length - k);
          if (stopStrings.some((x) => x.startsWith(tail))) {
            held = tail;
            text = text.slice(0, text.length - k);
            break;
          }
        }
      }
      yield { token, text };
      if (end) return end;
    }
  }

  /**
   * Applies the chat template to `messages` and generates the assistant's reply (until EOS, a
   * stop, maxNewTokens or maxSeq): { role: 'assistant', content, tokens, finishReason }.
   */
  async chat(messages: readonly ChatMessage[], opts?: GenerateOptions): Promise<ChatReply> {
    if (!Array.isArray(messages)) throw typeError(`model.chat: messages must be an array of { role, content }, got ${describe(messages)}`);
    const tokens: number[] = [];
    let content = '';
    const it = this.generate(messages, opts);
    for (;;) {
      const r = await it.next();
      if (r.done) return { role: 'assistant', content, tokens, finishReason: r.value };
      tokens.push(r.value.token);
      content += r.value.text;
    }
  }

  /** The prompt's ids: ids as given, a text encoded, messages through the chat template. */
  private promptIds(op: string, input: unknown, o: GenerateOptions): number[] {
    if (typeof input === 'string' || (Array.isArray(input) && input.length > 0 && typeof input[0] === 'object' && input[0] !== null)) {
      const tok = this.tokenizer;
      if (!tok) throw new IgnisError('E_ARGUMENT', `model.${op}: a text or chat prompt needs a tokenizer, and this model has none (no tokenizer.json in its directory, or loadModel's tokenizer: false); pass token ids`);
      if (typeof input === 'string') {
        if (input === '') throw typeError(`model.${op}: the prompt text is empty`);
        return tok.encode(input, { addSpecialTokens: v.bool(op, 'addSpecialTokens', o.addSpecialTokens, true) });
      }
      if (o.chatTemplate !== undefined && (typeof o.chatTemplate !== 'object' || o.chatTemplate === null || 'addGenerationPrompt' in o.chatTemplate))
        throw typeError(`model.${op}: chatTemplate must be template options without addGenerationPrompt (generation adds it), got ${describe(o.chatTemplate)}`);
      // the template writes the special tokens itself (BOS included)
      return tok.encode(tok.applyChatTemplate(input as ChatMessage[], { ...o.chatTemplate, addGenerationPrompt: true }), { addSpecialTokens: false });
    }
    if (!Array.isArray(input) || input.length === 0 || Array.isArray(input[0]))
      throw typeError(`model.${op}: the prompt must be token ids (a non-empty number[]), a text or chat messages, got ${describe(input)}`);
    return input as number[];
  }

  /**
   * The token loop: yields each token with `end` set on the last one (why it is the last). Greedy
   * steps pick their token on the device (the step graph's argmax), sampled ones on the CPU too
   * (ignis.sample queued after the step), so each step is queued, reading the previous step's
   * token tensor, before that token is read back: the JS work of a step overlaps the kernels of
   * the one before it. Elsewhere a sampled token is drawn in JS from the logits.
   */
  private async *steps(op: string, prompt: number[], o: GenerateOptions, stopIds: number[]): AsyncGenerator<{ token: number; end?: FinishReason }, FinishReason, undefined> {
    const { signal, maxNew, eos, params } = this._generation(op, `model.${op}`, o);
    const stop = new Set(stopIds);
    if (o.draft !== undefined || o.draftTokens !== undefined) {
      const draft = o.draft;
      if (!(draft instanceof LanguageModel)) throw typeError(`model.${op}: draft must be a LanguageModel (loadModel), got ${describe(draft)}`);
      const k = v.int(op, 'draftTokens', o.draftTokens, 1, 4);
      if (k > 15) throw rangeError(`model.${op}: draftTokens must be at most 15, got ${k}`);
      if (draft.vocabSize !== this.vocabSize) throw new IgnisError('E_ARGUMENT', `model.${op}: the draft's vocabulary (${draft.vocabSize}) is not this model's (${this.vocabSize})`);
      if (prompt.length > this.maxSeq || prompt.length > draft.maxSeq)
        throw new IgnisError('E_ARGUMENT', `model.${op}: the prompt (${prompt.length} tokens) does not fit maxSeq ${Math.min(this.maxSeq, draft.maxSeq)}`);
      this._putIds(`model.${op}`, prompt, 0, new Int32Array(prompt.length)); // checks every id
      if (maxNew === 0) return 'length';
      const [tg, dg] = await Promise.all([this._seqGraph(op), draft._seqGraph(op)]);
      const target = new SeqRunner(tg.graph, tg.layout, this.vocabSize, this.device);
      const dr = new SeqRunner(dg.graph, dg.layout, draft.vocabSize, draft.device);
      return yield* speculativeSteps(prompt, { target, draft: dr, k, params, maxNew, maxSeq: Math.min(this.maxSeq, draft.maxSeq), eos, stop, signal, onRound: o.onDraftRound });
    }
    const sample = samplerFor(params);
    // On the CPU a sampled token is drawn by ignis.sample, queued after its step like the argmax.
    const native = sample !== argmax && this.device === 'cpu';
    if (prompt.length > this.maxSeq)
      throw new IgnisError('E_ARGUMENT', `model.${op}: the prompt (${prompt.length} tokens) does not fit maxSeq ${this.maxSeq}`);
    const ids = this.ids(op, prompt); // checks every id
    if (maxNew === 0) {
      ids.dispose();
      return 'length';
    }
    const state = this.step.createState();
    // The first step's outputs are written over by the later ones: logits [1, 1, vocab], and
    // two next-token tensors [1, 1] used in turn (a step reads one while it writes the other).
    let logits: Tensor | undefined;
    const next: Tensor[] = [];
    let position = 0;
    const enqueue = (x: Tensor, k: number): Tensor => {
      const outputs: Record<string, Tensor> = {};
      if (logits) outputs.logits = logits;
      if (next[k % 2]) outputs.next = next[k % 2];
      const r = this.step.enqueue({ ids: x, position }, { state, outputs });
      position += x.shape[1];
      logits = r.logits;
      next[k % 2] = r.next;
      return r.next;
    };
    try {
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
        const end: FinishReason | undefined = eos.has(token) ? 'eos' : stop.has(token) ? 'stop' : !more ? 'length' : undefined;
        yield end ? { token, end } : { token };
        if (end) return end;
      }
      return 'length';
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
    void this.seqGraph?.then((s) => s.graph.dispose(), () => undefined);
    if (a.config.modelType === 'gpt2') disposeGpt2(a.weights as Gpt2Weights);
    else disposeLlama(a.weights as LlamaWeights);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Loads a Hugging Face style checkpoint directory: model_type gpt2, llama, qwen2, qwen3, mistral, phi3, gemma2 or gemma3_text. */
export async function loadModel(dir: string, opts?: LoadModelOptions): Promise<LanguageModel> {
  const op = 'loadModel';
  if (typeof dir !== 'string' || !dir) throw typeError(`${op}: dir must be a directory path, got ${describe(dir)}`);
  const o = v.options<LoadModelOptions>(op, opts, ['device', 'dtype', 'quantize', 'groupSize', 'maxSeq', 'maxBatch', 'onProgress', 'signal', 'tokenizer', 'int8Activations', 'activations', 'scales']);
  const wantTokenizer = v.bool(op, 'tokenizer', o.tokenizer, true);
  const signal = abortSignal(op, o.signal);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw typeError(`${op}: onProgress must be a function, got ${describe(o.onProgress)}`);
  signal?.throwIfAborted();
  const device = v.device(op, o.device);
  const dtype = v.dtype(op, o.dtype, 'f32') as FloatDType;
  if (!['f32', 'f16', 'bf16'].includes(dtype)) throw new IgnisError('E_DTYPE', `${op}: dtype must be f32, f16 or bf16, got ${dtype}`);
  if (o.quantize !== undefined && o.quantize !== 'int8') throw new IgnisError('E_ARGUMENT', `${op}: quantize must be 'int8', got ${describe(o.quantize)}`);
  const groupSize = o.groupSize === undefined ? undefined : v.int(op, 'groupSize', o.groupSize, 1);
  if (o.int8Activations !== undefined && o.quantize !== 'int8') throw new IgnisError('E_ARGUMENT', `${op}: int8Activations applies with quantize: 'int8' only`);
  if (o.int8Activations === true && device !== 'cpu') throw new IgnisError('E_DEVICE', `${op}: int8Activations are computed on the CPU only (device ${device})`);
  const int8Activations = o.quantize === 'int8' && device === 'cpu' && v.bool(op, 'int8Activations', o.int8Activations, true);
  if (o.scales !== undefined && o.quantize !== 'int8') throw new IgnisError('E_ARGUMENT', `${op}: scales applies with quantize: 'int8' only`);
  const scales = v.oneOf(op, 'scales', o.scales, SCALE_DTYPES, device === 'cpu' ? 'f16' : 'f32');
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
  const activations = v.oneOf(op, 'activations', o.activations, ['f32', 'weights'] as const, device === 'cpu' ? 'f32' : 'weights');
  if (activations === 'weights' && o.quantize)
    throw new IgnisError('E_ARGUMENT', `${op}: activations 'weights' does not apply with quantize: 'int8' (an int8 model's activations are f32; see int8Activations)`);
  if (activations === 'f32' && dtype !== 'f32' && !o.quantize && device !== 'cpu')
    throw new IgnisError('E_DEVICE', `${op}: activations 'f32' with ${dtype} weights needs a mixed-dtype matmul, computed on the CPU only, for now (device ${device}): use activations: 'weights'`);
  const wo = { dtype, quantize: o.quantize, groupSize, scales, device, activations };
  // The config first, all of it checked before a byte of weights is read.
  let config: Gpt2Config | LlamaConfig;
  if (raw.model_type === 'gpt2') config = gpt2Config(raw);
  else if (['llama', 'qwen2', 'qwen3', 'mistral', 'phi3', 'gemma2', 'gemma3_text'].includes(raw.model_type as string)) config = llamaConfig(raw);
  else throw new IgnisError('E_FORMAT', `${op}: model_type ${JSON.stringify(raw.model_type)} is not supported (gpt2, llama, qwen2, qwen3, mistral, phi3, gemma2, gemma3_text)`);
  // (the CUDA kernels' window and soft-cap paths await their first GPU run: see cudaAttentionVerified)
  if (device !== 'cpu' && !cudaAttentionVerified() && config.modelType !== 'gpt2' && config.gemma?.attnSoftcap)
    throw new IgnisError('E_DEVICE', `${op}: config.json: attn_logit_softcapping ${config.gemma.attnSoftcap}: attention score soft-capping is computed on the CPU only, for now (device ${device})`);
  const gen = await generationConfig(dir, raw, config.vocab);
  const eos = gen.eos;
  // the tokenizer, where the directory has one: its ids must be the model's
  let tokenizer: Tokenizer | null = null;
  if (wantTokenizer && (await fsp.stat(path.join(dir, 'tokenizer.json')).catch(() => null))) {
    tokenizer = await loadTokenizer(dir);
    if (tokenizer.vocabSize > config.vocab)
      throw new IgnisError('E_FORMAT', `${op}: tokenizer.json has ${tokenizer.vocabSize} tokens, more than the model's vocab_size ${config.vocab}`);
  }
  const context = config.modelType === 'gpt2' ? config.positions : config.maxPositions;
  // a sliding window of w equals full attention up to w tokens, and dynamic NTK RoPE the default
  // rotation up to the original context: that is all ignis computes
  // (the CPU's attention kernel computes a sliding window; on CUDA it is held to its size)
  const windows = config.modelType === 'gpt2' ? undefined : config.windows;
  const window = windows && (!windows.kernel || (device !== 'cpu' && !cudaAttentionVerified())) ? windows.size : undefined;
  const ropeLimit = config.modelType === 'gpt2' ? undefined : config.rope.limit;
  const maxSeq = Math.min(context, v.int(op, 'maxSeq', o.maxSeq, 1, Math.min(context, 2048, window ?? Infinity, ropeLimit ?? Infinity)));
  if (window !== undefined && maxSeq > window)
    throw new IgnisError('E_ARGUMENT', `${op}: maxSeq ${maxSeq} passes the config's sliding_window ${window}: ${windows!.kernel ? `on ${device} ` : ''}attention is computed over every key, which equals the window's only up to ${window} tokens`);
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
    // int8 activations in the step graph only (generate()'s prefill and decode); forward() keeps f32
    const i8 = int8Activations && mode === 'step';
    if (arch.config.modelType === 'gpt2') buildGpt2(g, arch.config, arch.weights as Gpt2Weights, mode, maxSeq, i8);
    else buildLlama(g, arch.config, arch.weights as LlamaWeights, mode, maxSeq, i8);
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
    await Promise.all(archTensors(arch).map((t) => t.ready()));
    // The tensors read only to be packed or quantized are freed by now, into the host cache:
    // return them to the system, or the process keeps the checkpoint's f32 size resident
    if (device === 'cpu' && (o.quantize === 'int8' || dtype === 'f32')) native().emptyCache('cpu');
  } catch (e) {
    full?.dispose();
    step?.dispose();
    src.disposeRead();
    if (arch.config.modelType === 'gpt2') disposeGpt2(arch.weights as Gpt2Weights);
    else disposeLlama(arch.weights as LlamaWeights);
    throw e;
  }
  return new LanguageModel(arch, full, step, { maxSeq, maxBatch, device, dtype, quantize: o.quantize, int8Activations, eos, tokenizer, defaults: gen.defaults });
}

/** generation_config.json's keys generate() applies, and those that need nothing at their neutral value. */
const APPLIED = new Set(['do_sample', 'temperature', 'top_k', 'top_p', 'max_new_tokens', 'eos_token_id']);
const NEUTRAL: Record<string, unknown> = {
  repetition_penalty: 1, num_beams: 1, num_beam_groups: 1, no_repeat_ngram_size: 0, typical_p: 1, min_p: null,
  epsilon_cutoff: 0, eta_cutoff: 0, encoder_repetition_penalty: 1, length_penalty: 1, diversity_penalty: 0,
  bad_words_ids: null, force_words_ids: null, suppress_tokens: null, begin_suppress_tokens: null, forced_bos_token_id: null,
  forced_eos_token_id: null, penalty_alpha: null, exponential_decay_length_penalty: null, sequence_bias: null,
  min_new_tokens: 0, min_length: 0, renormalize_logits: false, guidance_scale: null,
};

/**
 * generation_config.json (optional) with config.json: the end-of-sequence ids as transformers'
 * generate() takes them (the generation config's eos_token_id when it has one, else config.json's;
 * an id or a list of ids, each a token of the vocabulary, anything else E_FORMAT naming the file),
 * and the sampling defaults (GenerationDefaults). A setting generate() does not apply is listed
 * in notApplied; keys that are not settings (bos/pad ids, max_length, transformers_version, ...)
 * change nothing here.
 */
async function generationConfig(dir: string, cfg: Record<string, unknown>, vocab: number): Promise<{ eos: number[]; defaults: GenerationDefaults }> {
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
  const list = raw == null ? [] : Array.isArray(raw) ? raw : [raw];
  for (const id of list)
    if (!Number.isSafeInteger(id) || (id as number) < 0 || (id as number) >= vocab)
      throw new IgnisError('E_FORMAT', `loadModel: ${file}: eos_token_id ${JSON.stringify(raw)} is not a token id of the vocabulary (0 to ${vocab - 1})`);
  const bad = (k: string, want: string) => new IgnisError('E_FORMAT', `loadModel: generation_config.json: ${k} ${JSON.stringify(gen[k])} ${want}`);
  const num = (k: string, fallback: number, ok: (x: number) => boolean, want: string) => {
    if (gen[k] == null) return fallback;
    if (typeof gen[k] !== 'number' || !ok(gen[k] as number)) throw bad(k, want);
    return gen[k] as number;
  };
  if (gen.do_sample != null && typeof gen.do_sample !== 'boolean') throw bad('do_sample', 'must be true or false');
  const defaults: GenerationDefaults = {
    doSample: gen.do_sample === true,
    temperature: num('temperature', 1, (x) => x > 0 && Number.isFinite(x), 'must be a number > 0'),
    topK: num('top_k', 50, (x) => Number.isSafeInteger(x) && x >= 0, 'must be a whole number >= 0'),
    topP: num('top_p', 1, (x) => x > 0 && x <= 1, 'must be a number in (0, 1]'),
    notApplied: [],
  };
  if (gen.max_new_tokens != null) defaults.maxNewTokens = num('max_new_tokens', 0, (x) => Number.isSafeInteger(x) && x >= 0, 'must be a whole number >= 0');
  for (const [k, value] of Object.entries(gen))
    if (!APPLIED.has(k) && k in NEUTRAL && value != null && JSON.stringify(value) !== JSON.stringify(NEUTRAL[k])) defaults.notApplied.push(`${k}=${JSON.stringify(value)}`);
  return { eos: list as number[], defaults };
}

/**
 * Whether CUDA's attention computes a sliding window and score soft-capping: their kernel paths
 * are written and tested on the CPU's reference, but have not yet run on a GPU, so the backend
 * refuses them (by name) unless IGNIS_CUDA_UNVERIFIED_ATTENTION=1 (the device check's setting).
 */
/** The weights' tensors, each once. */
function archTensors(a: Arch): Tensor[] {
  return a.config.modelType === 'gpt2' ? gpt2Tensors(a.weights as Gpt2Weights) : llamaTensors(a.weights as LlamaWeights);
}

function cudaAttentionVerified(): boolean {
  return process.env.IGNIS_CUDA_UNVERIFIED_ATTENTION === '1';
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
