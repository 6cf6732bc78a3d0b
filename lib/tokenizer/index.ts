// The tokenizer module's public surface: loadTokenizer, Tokenizer, Detokenizer and their options.
export { loadTokenizer, Tokenizer } from './tokenizer';
export type { EncodeOptions, DecodeOptions } from './tokenizer';
export { Detokenizer } from './detokenizer';
export type { DetokenizerOptions } from './detokenizer';
export type { ChatMessage, ChatTemplateOptions } from './chat';
