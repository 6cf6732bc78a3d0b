// Streaming detokenization: text that is final as each generated id arrives. A window of ids is
// decoded and only the text past what the window's first ids decode to is emitted, once it no
// longer ends in U+FFFD (a character whose UTF-8 bytes are still arriving). The same scheme as
// Hugging Face tokenizers' DecodeStream and TGI/vLLM's incremental detokenizers.
import { IgnisError, describe, rangeError, typeError } from '../errors';
import * as v from '../validate';
import type { Tokenizer } from './tokenizer';

export interface DetokenizerOptions {
  /** leave special tokens (EOS, <|eot_id|>, ...) out of the text; default true, as vLLM streams
   * (transformers' TextStreamer passes on the decode options it is given; decode's default is false) */
  skipSpecialTokens?: boolean;
  /** remove the space before . , ! ? and English contractions as decode does; default: the
   * tokenizer's clean_up_tokenization_spaces (tokenizer_config.json) */
  cleanUpTokenizationSpaces?: boolean;
}

const REPLACEMENT = '\uFFFD';

/**
 * Turns generated token ids into text as they come: `push(id)` returns the text that became final
 * with that id ('' while a character's bytes or a word's cleanup are still pending), `flush()` the
 * rest. All pushes plus the flush concatenate to exactly `tokenizer.decode(ids, { skipSpecialTokens,
 * cleanUpTokenizationSpaces })` with this detokenizer's two settings. Each push decodes a window
 * of ids that starts at the previous emission, not the whole sequence. After flush() the
 * detokenizer starts a new sequence.
 */
export class Detokenizer {
  readonly skipSpecialTokens: boolean;
  readonly cleanUpTokenizationSpaces: boolean;
  private readonly tokenizer: Tokenizer;
  // ids[0, prefixLength) decode to `prefix`, text already emitted; the ids after it are pending
  private ids: number[] = [];
  private prefix = '';
  private prefixLength = 0;
  private readonly cleaner: SpaceCleaner | null;

  constructor(tokenizer: Tokenizer, options?: DetokenizerOptions) {
    const op = 'Detokenizer';
    if (typeof tokenizer !== 'object' || tokenizer === null || typeof (tokenizer as Tokenizer).decodeWindow !== 'function')
      throw typeError(`${op}: tokenizer must be a Tokenizer (from loadTokenizer), got ${describe(tokenizer)}`);
    const o = v.options<DetokenizerOptions>(op, options, ['skipSpecialTokens', 'cleanUpTokenizationSpaces']);
    this.tokenizer = tokenizer;
    this.skipSpecialTokens = v.bool(op, 'skipSpecialTokens', o.skipSpecialTokens, true);
    this.cleanUpTokenizationSpaces = v.bool(op, 'cleanUpTokenizationSpaces', o.cleanUpTokenizationSpaces, tokenizer.cleanUpTokenizationSpaces);
    this.cleaner = this.cleanUpTokenizationSpaces ? new SpaceCleaner() : null;
  }

  /** Adds one generated id; returns the text that is now final ('' when none is yet). */
  push(id: number): string {
    if (typeof id !== 'number') throw typeError(`detokenizer.push: id must be a token id (a number), got ${describe(id)}`);
    if (!Number.isInteger(id) || id < 0) throw rangeError(`detokenizer.push: a token id must be a whole number >= 0, got ${id}`);
    this.ids.push(id);
    const text = this.tokenizer.decodeWindow(this.ids, this.skipSpecialTokens);
    if (text.length <= this.prefix.length || text.endsWith(REPLACEMENT)) return '';
    const piece = this.newText(text);
    // the next window starts after the ids that decoded to the old prefix
    this.ids = this.ids.slice(this.prefixLength);
    this.prefix = this.tokenizer.decodeWindow(this.ids, this.skipSpecialTokens);
    this.prefixLength = this.ids.length;
    return this.cleaner ? this.cleaner.push(piece) : piece;
  }

  /** The text still held back (an unfinished character decodes to U+FFFD, as in decode). */
  flush(): string {
    const text = this.ids.length > this.prefixLength ? this.tokenizer.decodeWindow(this.ids, this.skipSpecialTokens) : this.prefix;
    const piece = text.length > this.prefix.length ? this.newText(text) : '';
    this.ids = [];
    this.prefix = '';
    this.prefixLength = 0;
    return this.cleaner ? this.cleaner.push(piece) + this.cleaner.flush() : piece;
  }

  private newText(text: string): string {
    // Holds for the decoders of the tokenizers ignis tests (byte-level BPE, SentencePiece-style
    // byte fallback with a stripped leading space); a decoder for which it fails cannot stream.
    if (!text.startsWith(this.prefix))
      throw new IgnisError('E_INTERNAL', `detokenizer.push: the window decodes to ${JSON.stringify(text)}, which does not extend the text already emitted (${JSON.stringify(this.prefix)}): this tokenizer's decoder cannot be streamed`);
    return text.slice(this.prefix.length);
  }
}

/**
 * transformers' clean_up_tokenization: the space before . ? ! , and English contractions removed,
 * each replacement in turn over the whole text (Python str.replace, left to right).
 */
export function cleanUpTokenization(text: string): string {
  return text
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

// The longest pattern above less one: a match can reach back this far across a cut.
const CLEANUP_REACH = 3;

/**
 * cleanUpTokenization over text that arrives in pieces. Every pattern starts with a space, so a
 * cut with no space among the CLEANUP_REACH characters before it splits no match and cleaning the
 * two sides apart equals cleaning them together; text after the last such cut waits.
 */
export class SpaceCleaner {
  private pending = '';

  push(text: string): string {
    this.pending += text;
    const p = this.pending;
    // the last cut k with no space in p[k - CLEANUP_REACH, k): the text emitted before p ends
    // in such a cut, so p[0, k) may be cleaned alone
    let k = p.length;
    for (let i = p.length - 1; i >= 0 && i >= k - CLEANUP_REACH; i--) if (p[i] === ' ') k = i;
    if (k === 0) return '';
    this.pending = p.slice(k);
    return cleanUpTokenization(p.slice(0, k));
  }

  flush(): string {
    const rest = cleanUpTokenization(this.pending);
    this.pending = '';
    return rest;
  }
}
