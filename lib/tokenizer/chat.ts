// Chat templates: the Jinja template a checkpoint ships (chat_template.jinja, tokenizer_config.json's
// chat_template, or a processor's chat_template.json), rendered by @huggingface/jinja with the
// variables transformers' apply_chat_template passes.
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { IgnisError, describe, typeError } from '../errors';
import * as v from '../validate';

/** One turn of a conversation. Keys beyond role and content (tool_calls, reasoning_content, ...)
 * reach the template as they are. */
export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** end with the opening of an assistant turn, for generation; default false */
  addGenerationPrompt?: boolean;
  /** tool (function) descriptions, JSON schema objects, for templates that render them */
  tools?: readonly Record<string, unknown>[];
  /** documents for retrieval-augmented templates */
  documents?: readonly Record<string, unknown>[];
  /** which template where the checkpoint has several by name; default 'tool_use' when tools are
   * given and it has one, else 'default' */
  template?: string;
  /** more template variables (Qwen3's enable_thinking, a fixed date_string, ...); they override
   * the ones above */
  variables?: Record<string, unknown>;
}

/** tokenizer_config.json's chat_template: a string, or a list of {name, template} (or a name map). */
export function parseChatTemplates(raw: unknown, file: string): Map<string, string> | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw === 'string') return new Map([['default', raw]]);
  const entries: [unknown, unknown][] = Array.isArray(raw)
    ? raw.map((e) => (v.is.object(e) ? [e.name, e.template] : [undefined, undefined]))
    : v.is.object(raw) ? Object.entries(raw) : [];
  if (!entries.length || entries.some(([n, t]) => typeof n !== 'string' || typeof t !== 'string'))
    throw new IgnisError('E_FORMAT', `loadTokenizer: ${file}: chat_template must be a string or a list of {"name": string, "template": string}, got ${JSON.stringify(raw).slice(0, 80)}`);
  return new Map(entries as [string, string][]);
}

// A template's raise_exception(...), told apart from the failures of the template itself.
class RaisedByTemplate extends Error {}

/** applyChatTemplate's arguments, checked. */
interface ChatCall {
  messages: readonly ChatMessage[];
  addGenerationPrompt: boolean;
  tools?: readonly Record<string, unknown>[];
  documents?: readonly Record<string, unknown>[];
  template?: string;
  variables?: Record<string, unknown>;
}

export function chatCall(op: string, messages: unknown, options: unknown): ChatCall {
  const o = v.options<ChatTemplateOptions>(op, options, ['addGenerationPrompt', 'tools', 'documents', 'template', 'variables']);
  checkMessages(op, messages);
  if (o.template !== undefined && typeof o.template !== 'string') throw typeError(`${op}: template must be a string (a template's name), got ${describe(o.template)}`);
  if (o.variables !== undefined && !v.is.object(o.variables)) throw typeError(`${op}: variables must be an object, got ${describe(o.variables)}`);
  return {
    messages,
    addGenerationPrompt: v.bool(op, 'addGenerationPrompt', o.addGenerationPrompt, false),
    tools: objectList(op, 'tools', o.tools),
    documents: objectList(op, 'documents', o.documents),
    template: o.template,
    variables: o.variables,
  };
}

/** The chat templates of a checkpoint by name (a single one is 'default'), parsed on first use. */
export class ChatTemplates {
  private readonly compiled = new Map<string, Template>();

  constructor(readonly file: string, private readonly sources: Map<string, string>) {}

  /** Renders the call's template; `specials` are the special-token variables. */
  render(op: string, call: ChatCall, specials: Record<string, unknown>): string {
    const name = call.template ?? (call.tools && this.sources.has('tool_use') ? 'tool_use' : 'default');
    const template = this.template(op, name);
    // transformers: render(messages, tools, documents, add_generation_prompt, **special_tokens_map,
    // **kwargs), with raise_exception and strftime_now as globals
    const env = new Environment();
    for (const [k, value] of Object.entries({
      true: true, false: false, none: null, True: true, False: false, None: null,
      range, strftime_now: strftimeNow,
      raise_exception: (message: unknown) => {
        throw new RaisedByTemplate(String(message));
      },
      ...specials,
      messages: call.messages, tools: call.tools ?? null, documents: call.documents ?? null, add_generation_prompt: call.addGenerationPrompt,
      ...call.variables,
    })) env.set(k, value);
    try {
      return new Interpreter(env).run(template.parsed).value as string;
    } catch (e) {
      if (e instanceof RaisedByTemplate) throw new IgnisError('E_ARGUMENT', `${op}: the chat template refused the messages: ${e.message}`);
      throw new IgnisError('E_FORMAT', `${op}: ${this.file}: chat template '${name}' failed: ${(e as Error).message}`);
    }
  }

  private template(op: string, name: string): Template {
    let template = this.compiled.get(name);
    if (template) return template;
    const source = this.sources.get(name);
    if (source === undefined)
      throw new IgnisError('E_ARGUMENT', `${op}: ${this.file} has no chat template named '${name}' (it has: ${[...this.sources.keys()].join(', ')}); pick one with the template option`);
    try {
      template = new Template(source);
    } catch (e) {
      throw new IgnisError('E_FORMAT', `${op}: ${this.file}: chat template '${name}' does not parse: ${(e as Error).message}`);
    }
    this.compiled.set(name, template);
    return template;
  }
}

function checkMessages(op: string, messages: unknown): asserts messages is ChatMessage[] {
  if (!Array.isArray(messages)) throw typeError(`${op}: messages must be an array of {role, content}, got ${describe(messages)}`);
  messages.forEach((m, i) => {
    if (!v.is.object(m)) throw typeError(`${op}: messages[${i}] must be an object {role, content}, got ${describe(m)}`);
    if (typeof m.role !== 'string') throw typeError(`${op}: messages[${i}].role must be a string, got ${describe(m.role)}`);
    if (typeof m.content !== 'string') throw typeError(`${op}: messages[${i}].content must be a string, got ${describe(m.content)}`);
  });
}

function objectList(op: string, name: string, list: unknown): readonly Record<string, unknown>[] | undefined {
  if (list === undefined) return undefined;
  if (!Array.isArray(list) || !list.every(v.is.object)) throw typeError(`${op}: ${name} must be an array of objects, got ${describe(list)}`);
  return list;
}

// Python's range, as Jinja templates call it.
function range(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error('range() step must not be zero');
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

// @huggingface/jinja's own strftime_now (it is not exported on its own).
let strftimeTemplate: Template | undefined;
function strftimeNow(format: string): string {
  strftimeTemplate ??= new Template('{{ strftime_now(format) }}');
  return strftimeTemplate.render({ format });
}
