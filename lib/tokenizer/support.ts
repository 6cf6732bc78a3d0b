// What @huggingface/tokenizers (0.2.0, pinned) would read differently from Hugging Face's own Rust
// tokenizers, found by reading both: a tokenizer.json that relies on one of these is refused with
// E_FORMAT instead of being tokenized differently. Component types the library does not know it
// throws on by itself (loadTokenizer turns that into E_FORMAT too).
import { IgnisError } from '../errors';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Throws E_FORMAT naming `file` and the component where the tokenizer.json uses a feature the
 * library does not reproduce. Rewrites what the library misreads into what it reads the same way
 * as Rust: Metaspace's legacy add_prefix_space: false is prepend_scheme 'never'; Digits is a
 * Split on \p{N}.
 */
export function checkSupported(json: Json, file: string): void {
  const bad = (where: string, what: string) =>
    new IgnisError('E_FORMAT', `loadTokenizer: ${file}: ${where}: ${what}, which @huggingface/tokenizers does not reproduce`);
  if (!isObject(json.model)) throw new IgnisError('E_FORMAT', `loadTokenizer: ${file} has no "model" object`);
  const model: Json = json.model;
  if (!['BPE', 'WordPiece', 'Unigram'].includes(model.type as string))
    throw bad('model', `type ${JSON.stringify(model.type)} (supported: BPE, WordPiece, Unigram)`);
  if (model.type === 'BPE') {
    if (typeof model.continuing_subword_prefix === 'string' && model.continuing_subword_prefix !== '')
      throw bad('model', `BPE continuing_subword_prefix ${JSON.stringify(model.continuing_subword_prefix)}`);
    // Rust fuses a run of unknown characters into one unk token; the library emits one per character
    if (model.fuse_unk === true && model.byte_fallback !== true && typeof model.unk_token === 'string')
      throw bad('model', 'BPE fuse_unk without byte_fallback');
  }
  walk(json.normalizer, 'normalizer', 'normalizers', (c, where) => {
    if (c.type === 'Replace') replaceable(c, where);
  });
  walk(json.pre_tokenizer, 'pre_tokenizer', 'pretokenizers', (c, where) => {
    if (c.type === 'Split') split(c, where);
    else if (c.type === 'Replace') replaceable(c, where);
    else if (c.type === 'Metaspace') metaspace(c, where);
    else if (c.type === 'Digits') {
      // Rust splits at char::is_numeric (\p{N}); the library at ASCII digits: the same split, written as one
      const individual = c.individual_digits === true;
      for (const k of Object.keys(c)) delete c[k];
      Object.assign(c, { type: 'Split', pattern: { Regex: individual ? '\\p{N}' : '\\p{N}+' }, behavior: 'Isolated', invert: false });
    } else if (c.type === 'Punctuation') {
      // the library always merges a run of punctuation (Contiguous); Rust's default isolates each
      if ((c.behavior ?? 'Isolated') !== 'Contiguous') throw bad(where, `Punctuation with behavior ${JSON.stringify(c.behavior ?? 'Isolated')}`);
    } else if (c.type === 'Whitespace') {
      // Rust's \w+|[^\w\s]+ is Unicode-aware, the library's ASCII-only: 'über' would split
      throw bad(where, 'the Whitespace pre-tokenizer (\\w over non-ASCII letters)');
    }
  });
  walk(json.decoder, 'decoder', 'decoders', (c, where) => {
    if (c.type === 'Replace') replaceable(c, where);
    else if (c.type === 'Metaspace') {
      // Rust keeps the first token's leading space under 'never'; the library always strips it.
      // (Otherwise Rust drops every '▁' of a first token like '▁▁' and the library only one: the
      // library's decode gives the encoded text back there, and streams consistently, so it stays.)
      if (c.prepend_scheme === 'never' || c.add_prefix_space === false) throw bad(where, "Metaspace decoder with prepend_scheme 'never'");
    }
  });

  function replaceable(c: Json, where: string) {
    const p = pattern(c, where);
    // the library passes content to String.prototype.replaceAll, which reads $1, $& ...; Rust does not
    if (typeof c.content === 'string' && c.content.includes('$')) throw bad(where, `Replace content ${JSON.stringify(c.content)} with a '$'`);
    return p;
  }

  function pattern(c: Json, where: string): { regex?: string; string?: string } {
    const p = c.pattern;
    if (isObject(p) && typeof p.Regex === 'string') {
      const construct = unsupportedRegex(p.Regex);
      if (construct) throw bad(where, `the regex ${JSON.stringify(p.Regex)} uses ${construct}`);
      return { regex: p.Regex };
    }
    if (isObject(p) && typeof p.String === 'string') return { string: p.String };
    throw bad(where, `a pattern that is neither {"String": ...} nor {"Regex": ...} (${JSON.stringify(p)})`);
  }

  function split(c: Json, where: string) {
    const p = pattern(c, where);
    const behavior = c.behavior, invert = c.invert === true;
    if (behavior === 'Isolated' && !invert) return;
    // the library keeps only the matches when invert is set: Rust's Removed
    if (behavior === 'Removed' && invert) return;
    // the library calls String.prototype.split, which also returns a regex's captured groups (and
    // wraps a String pattern in one)
    if (behavior === 'Removed' && p.regex !== undefined && !hasCapturingGroup(p.regex)) return;
    // Gemma's Split on ' ' after a normalizer that has replaced every ' ': it never matches
    if (p.string !== undefined && normalizerRemoves(json.normalizer, p.string)) return;
    throw bad(where, `Split with behavior ${JSON.stringify(behavior)}${invert ? ' and invert: true' : ''}`);
  }

  function metaspace(c: Json, where: string) {
    if (c.add_prefix_space === false) {
      if (c.prepend_scheme !== undefined && c.prepend_scheme !== 'never') throw bad(where, 'Metaspace add_prefix_space false with a prepend_scheme other than never');
      c.prepend_scheme = 'never';
    }
    // Rust splits the text before each replacement character ('split', default true) and the
    // library does not: the same unless a token holds the character past its start ('▁▁', 'a▁b')
    if (c.split !== false) {
      const rep = typeof c.replacement === 'string' ? c.replacement : '\u2581';
      const tokens = Array.isArray(model.vocab)
        ? (model.vocab as unknown[]).map((e) => (Array.isArray(e) ? String(e[0]) : ''))
        : Object.keys(isObject(model.vocab) ? model.vocab : {});
      const joined = tokens.find((t) => t.indexOf(rep, 1) > 0);
      if (joined !== undefined) throw bad(where, `Metaspace with split: true over a vocabulary whose token ${JSON.stringify(joined)} holds '${rep}' past its start`);
    }
  }
}

/** Calls `visit` on a component and, through Sequence, on each one it holds. */
function walk(c: unknown, where: string, children: string, visit: (c: Json, where: string) => void): void {
  if (!isObject(c)) return;
  visit(c, where);
  const list = c[children];
  if (c.type === 'Sequence' && Array.isArray(list)) list.forEach((x, i) => walk(x, `${where}.${children}[${i}]`, children, visit));
}

/** Whether the normalizer ends by replacing every `s` with something that does not contain it. */
function normalizerRemoves(n: unknown, s: string): boolean {
  if (!isObject(n)) return false;
  if (n.type === 'Sequence' && Array.isArray(n.normalizers)) return normalizerRemoves(n.normalizers.at(-1), s);
  return n.type === 'Replace' && isObject(n.pattern) && n.pattern.String === s && typeof n.content === 'string' && !n.content.includes(s);
}

/**
 * The first Oniguruma construct in `src` that the library's translation to a JavaScript RegExp
 * does not reproduce (it takes atomic groups and possessive quantifiers for plain ones), or null.
 * Ruby syntax, as Rust's tokenizers compiles it: `{n,m}+` is a quantifier applied twice there,
 * not a possessive one.
 */
export function unsupportedRegex(src: string): string | null {
  return scanRegex(src, (i, escaped) => {
    if (escaped) return src[i + 1] === 'G' ? 'the anchor \\G' : null;
    const ch = src[i];
    if (ch === '(' && src[i + 1] === '?' && src[i + 2] === '>') return 'an atomic group (?>...)';
    const quantifier = ch === '*' || ch === '+' || (ch === '?' && src[i - 1] !== '(');
    return quantifier && src[i + 1] === '+' ? `the possessive quantifier ${ch}+` : null;
  });
}

/** Whether `src` has a group that captures: '(' not followed by '?', or a named group. */
export function hasCapturingGroup(src: string): boolean {
  return scanRegex(src, (i, escaped) => {
    if (escaped || src[i] !== '(') return null;
    if (src[i + 1] !== '?') return true;
    return (src[i + 2] === '<' && src[i + 3] !== '=' && src[i + 3] !== '!') || src[i + 2] === 'P' ? true : null;
  }) ?? false;
}

/**
 * Walks a regex source outside character classes (Oniguruma nests them: [a-z&&[^aeiou]]),
 * calling visit at each character (escaped: at a backslash, whose next character is skipped);
 * the first non-null it returns is the result.
 */
function scanRegex<T>(src: string, visit: (i: number, escaped: boolean) => T | null): T | null {
  let depth = 0;
  for (let i = 0; i < src.length; i++) {
    const ch = src[i];
    if (ch === '\\') {
      const r = depth === 0 ? visit(i, true) : null;
      if (r !== null) return r;
      i++;
      continue;
    }
    if (depth > 0) {
      if (ch === '[') depth++;
      else if (ch === ']') depth--;
      continue;
    }
    if (ch === '[') {
      depth = 1;
      if (src[i + 1] === '^') i++;
      if (src[i + 1] === ']') i++; // a ']' first in a class is literal
      continue;
    }
    const r = visit(i, false);
    if (r !== null) return r;
  }
  return null;
}
