// loadTokenizer: a Hugging Face checkpoint's tokenizer.json (+ tokenizer_config.json) -> a
// Tokenizer: text <-> token ids through @huggingface/tokenizers, chat templates through
// @huggingface/jinja, and a Detokenizer for streaming.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import { describe, IgnisError, rangeError, typeError } from '../errors';
import * as v from '../validate';
import { ChatMessage, chatCall, ChatTemplateOptions, ChatTemplates, parseChatTemplates } from './chat';
import { cleanUpTokenization, Detokenizer, DetokenizerOptions } from './detokenizer';
import { checkSupported } from './support';

export interface EncodeOptions {
  /** add what the tokenizer's post-processor adds around a text (Llama's and Gemma's BOS);
   * default true, as in transformers. Pass false for the output of applyChatTemplate, which
   * already holds them. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** leave special tokens (BOS, EOS, <|eot_id|>, ...) out of the text; default false, as in transformers */
  skipSpecialTokens?: boolean;
  /** remove the space before . , ! ? and English contractions; default: the tokenizer's
   * clean_up_tokenization_spaces (tokenizer_config.json; true for Llama 3, false where absent),
   * as in transformers */
  cleanUpTokenizationSpaces?: boolean;
}

type Json = Record<string, unknown>;

// The special-token attributes transformers passes to chat templates (special_tokens_map).
const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

/** What loadTokenizer read, checked. */
interface TokenizerFiles {
  dir: string;
  tokenizerFile: string;
  json: Json;
  config: Json;
  chat: ChatTemplates | null;
}

/**
 * A Hugging Face tokenizer (tokenizer.json): encode, decode, the special tokens, the chat
 * template. Made by loadTokenizer.
 */
export class Tokenizer {
  /** the checkpoint directory it was read from */
  readonly dir: string;
  /** one past the highest token id (a model's embedding may have more rows: they decode to nothing) */
  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosToken: string | null;
  readonly eosTokenId: number | null;
  /** decode's default for cleanUpTokenizationSpaces (tokenizer_config.json's clean_up_tokenization_spaces) */
  readonly cleanUpTokenizationSpaces: boolean;
  private readonly hf: HFTokenizer;
  private readonly file: string;
  private readonly specialIds: ReadonlySet<number>;
  private readonly chatVariables: Record<string, unknown>;
  private readonly chat: ChatTemplates | null;

  /** @internal Tokenizers are made by loadTokenizer. */
  constructor(files: TokenizerFiles) {
    const { json, config } = files;
    this.dir = files.dir;
    this.file = files.tokenizerFile;
    // components a tokenizer.json may leave out (Rust reads them as absent); the library wants the keys
    for (const key of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) json[key] ??= null;
    json.added_tokens ??= [];
    checkSupported(json, this.file);
    try {
      // Only what a fast (tokenizer.json) tokenizer reads from the config: the library would also
      // apply slow-tokenizer options (remove_space, do_lowercase_and_remove_accent) that
      // transformers leaves to tokenizer.json's normalizer. Cleanup and skipping are done here.
      this.hf = new HFTokenizer(json, { clean_up_tokenization_spaces: false });
    } catch (e) {
      throw new IgnisError('E_FORMAT', `loadTokenizer: ${this.file}: ${(e as Error).message} (not supported by @huggingface/tokenizers)`);
    }
    const added = Array.isArray(json.added_tokens) ? (json.added_tokens as Json[]) : [];
    this.specialIds = new Set(added.filter((t) => t.special === true).map((t) => t.id as number));
    this.vocabSize = vocabSize(json);

    const special = (key: string): string | null => {
      const t = config[key];
      if (typeof t === 'string') return t;
      if (v.is.object(t) && typeof t.content === 'string') return t.content; // a serialized AddedToken
      return null;
    };
    this.chatVariables = {};
    for (const key of SPECIAL_TOKEN_KEYS) {
      const t = special(key);
      if (t !== null) this.chatVariables[key] = t;
    }
    const extra = config.additional_special_tokens;
    if (Array.isArray(extra))
      this.chatVariables.additional_special_tokens = extra.map((t) => (v.is.object(t) ? t.content : t)).filter((t) => typeof t === 'string');
    this.bosToken = special('bos_token');
    this.eosToken = special('eos_token');
    this.bosTokenId = this.bosToken === null ? null : this.tokenToId(this.bosToken) ?? null;
    this.eosTokenId = this.eosToken === null ? null : this.tokenToId(this.eosToken) ?? null;
    this.cleanUpTokenizationSpaces = config.clean_up_tokenization_spaces === true;
    this.chat = files.chat;
  }

  /** Whether applyChatTemplate has a template to render. */
  get hasChatTemplate(): boolean {
    return this.chat !== null;
  }

  /** The token ids of `text`. */
  encode(text: string, options?: EncodeOptions): number[] {
    const op = 'tokenizer.encode';
    if (typeof text !== 'string') throw typeError(`${op}: text must be a string, got ${describe(text)}`);
    const o = v.options<EncodeOptions>(op, options, ['addSpecialTokens']);
    const addSpecialTokens = v.bool(op, 'addSpecialTokens', o.addSpecialTokens, true);
    const { ids, tokens } = this.hf.encode(text, { add_special_tokens: addSpecialTokens });
    const missing = ids.findIndex((id) => id === undefined);
    if (missing >= 0)
      throw new IgnisError('E_FORMAT', `${op}: ${this.file} has no id for the piece ${JSON.stringify(tokens[missing])} (an unk_token missing from the vocabulary?)`);
    return ids;
  }

  /**
   * The text of `ids`. Ids that name no token (past the vocabulary, as the padding rows of some
   * models' embeddings) decode to nothing, as in Hugging Face tokenizers. Byte tokens that do not
   * form UTF-8 decode to U+FFFD, one per invalid sequence (Hugging Face's byte-fallback decoder
   * writes one per byte token).
   */
  decode(ids: readonly number[], options?: DecodeOptions): string {
    const op = 'tokenizer.decode';
    tokenIds(op, ids);
    const o = v.options<DecodeOptions>(op, options, ['skipSpecialTokens', 'cleanUpTokenizationSpaces']);
    const skip = v.bool(op, 'skipSpecialTokens', o.skipSpecialTokens, false);
    const cleanUp = v.bool(op, 'cleanUpTokenizationSpaces', o.cleanUpTokenizationSpaces, this.cleanUpTokenizationSpaces);
    const text = this.decodeWindow(ids, skip);
    return cleanUp ? cleanUpTokenization(text) : text;
  }

  /** @internal decode without the checks and the cleanup: the detokenizer's step. */
  decodeWindow(ids: readonly number[], skipSpecialTokens: boolean): string {
    const kept: number[] = [];
    for (const id of ids) {
      if (this.hf.id_to_token(id) === undefined || (skipSpecialTokens && this.specialIds.has(id))) continue;
      kept.push(id);
    }
    return kept.length ? this.hf.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : '';
  }

  /** A token's id (its string as in tokenizer.json: 'Ġthe', '▁the', '<|eot_id|>'), or undefined. */
  tokenToId(token: string): number | undefined {
    if (typeof token !== 'string') throw typeError(`tokenizer.tokenToId: token must be a string, got ${describe(token)}`);
    return this.hf.token_to_id(token);
  }

  /** The token an id names (as in tokenizer.json), or undefined. */
  idToToken(id: number): string | undefined {
    if (typeof id !== 'number') throw typeError(`tokenizer.idToToken: id must be a number, got ${describe(id)}`);
    if (!Number.isInteger(id) || id < 0) throw rangeError(`tokenizer.idToToken: a token id must be a whole number >= 0, got ${id}`);
    return this.hf.id_to_token(id);
  }

  /** Whether `id` is a special token (an added token marked special: BOS, EOS, <|im_end|>, ...). */
  isSpecialToken(id: number): boolean {
    return this.specialIds.has(id);
  }

  /**
   * The prompt text of a conversation, from the checkpoint's chat template. Encode it with
   * { addSpecialTokens: false }: templates write BOS themselves where the model wants it.
   * A template's raise_exception (roles that do not alternate, ...) is E_ARGUMENT.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string {
    const op = 'tokenizer.applyChatTemplate';
    const call = chatCall(op, messages, options);
    if (!this.chat) throw new IgnisError('E_ARGUMENT', `${op}: this tokenizer has no chat template (none in ${this.dir}'s tokenizer_config.json, chat_template.jinja or chat_template.json)`);
    return this.chat.render(op, call, this.chatVariables);
  }

  /** A Detokenizer over this tokenizer, for streaming generated ids as text. */
  detokenizer(options?: DetokenizerOptions): Detokenizer {
    return new Detokenizer(this, options);
  }
}

/**
 * Reads the tokenizer of a Hugging Face checkpoint directory: tokenizer.json (required),
 * tokenizer_config.json (special tokens, chat template, cleanup), special_tokens_map.json (special
 * tokens tokenizer_config.json does not name), chat_template.jinja (a chat template that
 * replaces tokenizer_config.json's, as transformers reads it) or chat_template.json (a processor's).
 * A tokenizer.json the library cannot reproduce exactly is E_FORMAT, never a different tokenization.
 */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const op = 'loadTokenizer';
  if (typeof dir !== 'string') throw typeError(`${op}: dir must be a string (a checkpoint directory), got ${describe(dir)}`);
  const tokenizerFile = path.join(dir, 'tokenizer.json');
  const configFile = path.join(dir, 'tokenizer_config.json');
  const [json, config = {}, specialMap = {}, chatJson, jinja] = await Promise.all([
    readJson(op, tokenizerFile, true),
    readJson(op, configFile, false),
    readJson(op, path.join(dir, 'special_tokens_map.json'), false),
    readJson(op, path.join(dir, 'chat_template.json'), false),
    readText(op, path.join(dir, 'chat_template.jinja')),
  ]);
  for (const [k, value] of Object.entries(specialMap)) if (config[k] === undefined) config[k] = value;
  let chat: ChatTemplates | null = null;
  if (jinja !== undefined) chat = new ChatTemplates(path.join(dir, 'chat_template.jinja'), new Map([['default', jinja]]));
  else {
    const fromConfig = parseChatTemplates(config.chat_template, configFile);
    const processorFile = path.join(dir, 'chat_template.json');
    const fromProcessor = chatJson && parseChatTemplates(chatJson.chat_template, processorFile);
    if (fromConfig) chat = new ChatTemplates(configFile, fromConfig);
    else if (fromProcessor) chat = new ChatTemplates(processorFile, fromProcessor);
  }
  return new Tokenizer({ dir, tokenizerFile, json: json!, config, chat });
}

/** A JSON object file; undefined when an optional one does not exist. */
async function readJson(op: string, file: string, required: boolean): Promise<Json | undefined> {
  const text = await readText(op, file);
  if (text === undefined) {
    if (required) throw new IgnisError('E_ARGUMENT', `${op}: ${file} does not exist`);
    return undefined;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new IgnisError('E_FORMAT', `${op}: ${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (!v.is.object(raw)) throw new IgnisError('E_FORMAT', `${op}: ${file} is not a JSON object`);
  return raw;
}

async function readText(op: string, file: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') return undefined;
    throw new IgnisError('E_ARGUMENT', `${op}: cannot read ${file}: ${err.message}`);
  }
}

/** One past the highest id of the model's vocabulary and the added tokens. */
function vocabSize(json: Json): number {
  const model = json.model as Json;
  let n = 0;
  if (Array.isArray(model.vocab)) n = model.vocab.length; // Unigram: [piece, score], by id
  else if (v.is.object(model.vocab)) for (const id of Object.values(model.vocab)) if (typeof id === 'number' && id >= n) n = id + 1;
  for (const t of Array.isArray(json.added_tokens) ? (json.added_tokens as Json[]) : []) if (typeof t.id === 'number' && t.id >= n) n = t.id + 1;
  return n;
}

function tokenIds(op: string, ids: unknown): asserts ids is readonly number[] {
  if (!Array.isArray(ids)) throw typeError(`${op}: ids must be an array of token ids, got ${describe(ids)}`);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (typeof id !== 'number') throw typeError(`${op}: ids must be an array of token ids, got ${describe(id)} at index ${i}`);
    if (!Number.isInteger(id) || id < 0) throw rangeError(`${op}: a token id must be a whole number >= 0, got ${id} at index ${i}`);
  }
}
