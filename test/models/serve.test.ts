// model.createServer(): continuous batching over a paged KV cache. Every request's greedy tokens
// equal what model.generate() gives it alone (prompts of awkward lengths, chunked prefill, blocks
// of an odd size, requests joining while others decode, a shared prompt prefix, qwen3's q/k norms,
// an int8 model and GPT-2), sampled ones with the same seed too; the queue bound, abort, timeout
// and a consumer that stops early each end their request and free its blocks; a lost device moves
// the requests to a fallback copy; CUDA is refused by name (for now).
import { afterAll, describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { forDevices } from '../helpers';
import { randomGemma3, randomGpt2, randomLlama, tinyGemma2Config, tinyGemma3Config, tinyGpt2Config, tinyLlamaConfig } from '../reference/checkpoints';
import type { ModelConfig } from '../reference/models';
import { rngFor, testSeed } from '../reference/rng';
import { removeDir, writeCheckpoint } from './helpers';

const FILE = 'test/models/serve.test.ts';
const seed = testSeed();
const ctx = (name: string) => `${name} [seed ${seed}; rerun: IGNIS_TEST_SEED=${seed} npx vitest run ${FILE}]`;
const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));

async function checkpoint(cfg: ModelConfig): Promise<string> {
  const s = rngFor(`serve ${cfg.model_type}`, seed).int(0, 1 << 30);
  const w = cfg.model_type === 'gpt2' ? randomGpt2(cfg, s) : cfg.model_type === 'gemma3_text' || cfg.model_type === 'gemma2' ? randomGemma3(cfg, s) : randomLlama(cfg, s);
  const dir = await writeCheckpoint(cfg, w, 'f32');
  dirs.push(dir);
  return dir;
}

function prompts(name: string, lengths: number[], vocab: number): number[][] {
  const r = rngFor(name, seed);
  return lengths.map((n) => Array.from({ length: n }, () => r.int(0, vocab - 1)));
}

async function collect(gen: AsyncGenerator<ignis.GeneratedPiece, unknown, undefined>): Promise<number[]> {
  const out: number[] = [];
  for await (const p of gen) out.push(p.token);
  return out;
}

forDevices((device) => {
  describe('continuous batching (model.createServer)', () => {
    if (device !== 'cpu') {
      it(`is refused by name on ${device}`, async () => {
        const dir = await checkpoint(tinyLlamaConfig());
        const model = await ignis.loadModel(dir, { device, tokenizer: false });
        const copy = await ignis.loadModel(dir, { tokenizer: false });
        try {
          await expect(model.createServer()).rejects.toMatchObject({ code: 'E_DEVICE', message: expect.stringContaining('CPU only') });
          // with a CPU copy: served there, saying why
          const server = await model.createServer({ fallback: copy });
          const want: number[] = [];
          for await (const p of copy.generate([1, 2, 3], { maxNewTokens: 5, eos: false })) want.push(p.token);
          expect(await collect(server.generate([1, 2, 3], { maxNewTokens: 5, eos: false }))).toEqual(want);
          expect(server.metrics().fallback).toContain('cannot serve');
          expect(server.metrics().device).toBe('cpu');
          await server.close();
        } finally {
          model.dispose();
          copy.dispose();
        }
      });
      return;
    }

    for (const [arch, cfg, load] of [
      ['llama', tinyLlamaConfig(), {}],
      ['qwen3', tinyLlamaConfig({ model_type: 'qwen3', head_dim: 24, rope_theta: 1000000 }), {}],
      ['llama int8', tinyLlamaConfig(), { quantize: 'int8', groupSize: 32 }],
      ['gpt2', tinyGpt2Config(), {}],
      // Gemma 3 (sliding layers of window 8 and global ones, their own rotations, final
      // soft-capping), Gemma 2 (scores soft-capped), Mistral past its window
      ['gemma3', tinyGemma3Config({ sliding_window: 8 }), {}],
      ['gemma2', tinyGemma2Config(), {}],
      ['mistral', tinyLlamaConfig({ model_type: 'mistral', sliding_window: 8 }), {}],
    ] as [string, ModelConfig, object][]) {
      it(`${arch}: each request's greedy tokens are what it gives alone, with requests joining and leaving at every step`, async () => {
        const name = ctx(`serve greedy ${arch}`);
        const model = await ignis.loadModel(await checkpoint(cfg), { tokenizer: false, maxSeq: 64, ...load });
        const server = await model.createServer({ maxBatch: 4, maxTokens: 11, blockSize: 5 });
        try {
          const ps = prompts(`serve ${arch}`, [1, 7, 33, 13, 2, 20], cfg.vocab_size as number);
          const news = [9, 5, 12, 3, 16, 7];
          const alone: number[][] = [];
          for (let i = 0; i < ps.length; i++) alone.push(await collect(model.generate(ps[i], { maxNewTokens: news[i], eos: false })));
          // four at once (more than a step's 11 rows of prompt: chunked), two more joining later
          const first = ps.slice(0, 4).map((p, i) => collect(server.generate(p, { maxNewTokens: news[i], eos: false })));
          await new Promise((r) => setTimeout(r, 5));
          const later = ps.slice(4).map((p, i) => collect(server.generate(p, { maxNewTokens: news[4 + i], eos: false })));
          const got = await Promise.all([...first, ...later]);
          for (let i = 0; i < got.length; i++) {
            const j = got[i].findIndex((t, k) => t !== alone[i][k]);
            if (j >= 0 && arch === 'llama int8') {
              // int8 activations: the batch's attention sums run in another order, and an
              // activation that sits on a rounding boundary of its int8 step can round the other
              // way, which moves the logits by up to the int8 activations' own error (~2%). A
              // token may then differ only where the alone logits of the two tokens are that close.
              const seq = [...ps[i], ...alone[i].slice(0, j)];
              const st = model.step.createState();
              const t = ignis.tensor(Int32Array.from(seq), { shape: [1, seq.length], dtype: 'i32' });
              const o = await model.step.run({ ids: t, position: 0 }, { state: st });
              const d = (await o.logits.data()) as Float32Array;
              const V = cfg.vocab_size as number;
              const row = d.subarray(d.length - V);
              const top = Math.max(...row.map(Math.abs));
              expect(row[alone[i][j]] - row[got[i][j]], `${name}: request ${i} token ${j}: ${got[i][j]} served, ${alone[i][j]} alone`).toBeLessThan(0.02 * top);
              expect(got[i].length, name).toBe(alone[i].length);
              for (const x of Object.values(o)) x.dispose();
              t.dispose();
              continue;
            }
            expect(got[i], `${name}: request ${i} (prompt ${ps[i].length} tokens)`).toEqual(alone[i]);
          }
          const m = server.metrics();
          expect(m.requests.finished, name).toBe(6);
          expect(m.kvBlocks.used, `${name}: every block freed`).toBe(0);
          expect(m.meanBatch, `${name}: requests ran together`).toBeGreaterThan(1);
          expect(m.outputTokens).toBe(news.reduce((a, b) => a + b, 0));
        } finally {
          await server.close();
          model.dispose();
        }
      });
    }

    it('shares the KV blocks of a common prompt prefix, with the same tokens; sampled tokens match generate() with the same seed', async () => {
      const name = ctx('serve prefix');
      const cfg = tinyLlamaConfig();
      const model = await ignis.loadModel(await checkpoint(cfg), { tokenizer: false, maxSeq: 64 });
      const server = await model.createServer({ maxBatch: 4, maxTokens: 64, blockSize: 4 });
      try {
        const [system, a, b] = prompts('serve prefix', [17, 3, 6], 97);
        const metrics: ignis.RequestMetrics[] = [];
        const first = await collect(server.generate([...system, ...a], { maxNewTokens: 6, eos: false, onMetrics: (m) => metrics.push(m) }));
        const second = await collect(server.generate([...system, ...b], { maxNewTokens: 6, eos: false, onMetrics: (m) => metrics.push(m) }));
        expect(first).toEqual(await collect(model.generate([...system, ...a], { maxNewTokens: 6, eos: false })));
        expect(second, name).toEqual(await collect(model.generate([...system, ...b], { maxNewTokens: 6, eos: false })));
        expect(metrics[0].cachedPromptTokens, `${name}: nothing to share yet`).toBe(0);
        expect(metrics[1].cachedPromptTokens, `${name}: the 4 full blocks of the common 17 tokens`).toBe(16);
        expect(metrics[1].promptTokens).toBe(23);
        expect(metrics[1].outputTokens).toBe(6);
        expect(metrics[1].timeToFirstTokenMs).toBeGreaterThan(0);
        expect(metrics[1].interTokenMs).toHaveLength(5);
        expect(metrics[1].stepMs).toBeGreaterThan(0);
        const opts = { maxNewTokens: 8, eos: false, temperature: 0.9, topK: 20, seed: 1234 };
        const sampled = await Promise.all([collect(server.generate(a, opts)), collect(server.generate(b, { ...opts, seed: 99 }))]);
        expect(sampled[0], `${name}: sampled`).toEqual(await collect(model.generate(a, opts)));
        expect(sampled[1], `${name}: sampled`).toEqual(await collect(model.generate(b, { ...opts, seed: 99 })));
      } finally {
        await server.close();
        model.dispose();
      }
    });

    it('shared blocks under a small pool: prefixes reused, evicted and named again, every request its own tokens', async () => {
      const name = ctx('serve prefix eviction');
      const model = await ignis.loadModel(await checkpoint(tinyLlamaConfig()), { tokenizer: false, maxSeq: 64 });
      // 12 blocks of 4 rows: a request of up to 24 prompt tokens and 8 new ones holds 8 of them
      const server = await model.createServer({ maxBatch: 2, maxTokens: 64, blockSize: 4, kvBlocks: 12 });
      try {
        const [a, b, c, x, y] = prompts('serve eviction', [9, 13, 5, 6, 3], 97);
        const order = [[...a, ...x], [...a, ...y], [...b, ...x], [...a, ...x], [...c, ...b], [...b, ...y], [...a, ...b], [...a, ...x]];
        let cached = 0;
        for (const [i, p] of order.entries()) {
          const want = await collect(model.generate(p, { maxNewTokens: 8, eos: false }));
          const got = await collect(server.generate(p, { maxNewTokens: 8, eos: false, onMetrics: (m) => (cached += m.cachedPromptTokens) }));
          expect(got, `${name}: request ${i} (prompt ${p.length})`).toEqual(want);
        }
        expect(cached, `${name}: some prompt blocks were shared`).toBeGreaterThan(0);
        expect(server.metrics().kvBlocks.used).toBe(0);
      } finally {
        await server.close();
        model.dispose();
      }
    });

    it("a lost device: the running requests go on on the fallback copy, token for token; without one they fail with E_DEVICE_LOST", async () => {
      const name = ctx('serve fallback');
      const cfg = tinyLlamaConfig();
      const dir = await checkpoint(cfg);
      const primary = await ignis.loadModel(dir, { tokenizer: false, maxSeq: 64 });
      const copy = await ignis.loadModel(dir, { tokenizer: false, maxSeq: 64 });
      const ps = prompts('serve fallback', [9, 4, 21], 97);
      const alone = await Promise.all(ps.map((p) => collect(primary.generate(p, { maxNewTokens: 12, eos: false }))));
      // the device is lost at the 4th step: every later run on it fails as a lost CUDA context does
      const lose = (server: ignis.Server) => {
        const g = (server as unknown as { graph: { run: (...a: unknown[]) => Promise<unknown> } }).graph;
        const run = g.run.bind(g);
        let steps = 0;
        g.run = (...a: unknown[]) => (++steps >= 4 ? Promise.reject(new ignis.IgnisError('E_DEVICE_LOST', 'cuda:0 is lost (simulated)')) : run(...a));
      };
      const server = await primary.createServer({ maxBatch: 4, maxTokens: 8, blockSize: 4, fallback: copy });
      try {
        expect(server.metrics().fallback).toBeNull();
        lose(server);
        const got = await Promise.all(ps.map((p) => collect(server.generate(p, { maxNewTokens: 12, eos: false }))));
        got.forEach((g, i) => expect(g, `${name}: request ${i}`).toEqual(alone[i]));
        const m = server.metrics();
        expect(m.fallback, name).toContain('was lost');
        expect(m.device).toBe('cpu');
        expect(m.requests.failed).toBe(0);
      } finally {
        await server.close();
      }
      const alone2 = await primary.createServer({ maxBatch: 4, maxTokens: 8, blockSize: 4 });
      try {
        lose(alone2);
        const r = await Promise.allSettled(ps.map((p) => collect(alone2.generate(p, { maxNewTokens: 12, eos: false }))));
        expect(r.every((x) => x.status === 'rejected' && (x.reason as { code?: string }).code === 'E_DEVICE_LOST'), name).toBe(true);
      } finally {
        await alone2.close();
      }
      await expect(primary.createServer({ fallback: {} as ignis.LanguageModel })).rejects.toThrow(TypeError);
      primary.dispose();
      copy.dispose();
    });

    it('limits: a full queue refuses at once; abort, timeout and a consumer that stops end their request and free its blocks', async () => {
      const cfg = tinyLlamaConfig();
      const model = await ignis.loadModel(await checkpoint(cfg), { tokenizer: false, maxSeq: 64 });
      const server = await model.createServer({ maxBatch: 1, maxTokens: 16, blockSize: 8, maxQueue: 1, kvBlocks: 6 });
      try {
        const [p] = prompts('serve limits', [5], 97);
        const running = server.generate(p, { maxNewTokens: 40, eos: false });
        const waiting = server.generate(p, { maxNewTokens: 2, eos: false });
        const refused = server.generate(p, { maxNewTokens: 2, eos: false });
        const r1 = running.next(), r2 = waiting.next();
        await expect(refused.next()).rejects.toMatchObject({ code: 'E_QUEUE_FULL', message: expect.stringContaining('maxQueue 1') });
        await r1;
        await running.return(undefined as never); // the consumer stops: the sequence leaves at the next step
        expect((await r2).done).toBe(false);
        expect((await collect(waiting)).length).toBe(1);
        // abort: the generator throws the signal's reason
        const ac = new AbortController();
        const aborted = server.generate(p, { maxNewTokens: 40, eos: false, signal: ac.signal });
        await aborted.next();
        ac.abort(new Error('client went away'));
        await expect(collect(aborted)).rejects.toThrow('client went away');
        // a deadline
        await expect(collect(server.generate(p, { maxNewTokens: 40, eos: false, timeoutMs: 1 }))).rejects.toMatchObject({ code: 'E_TIMEOUT' });
        // too large for the pool; bad ids; closed
        await expect(collect(server.generate(Array.from({ length: 60 }, () => 1), { maxNewTokens: 4 }))).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringContaining('KV blocks') });
        await expect(collect(server.generate([1, 500], { maxNewTokens: 4 }))).rejects.toMatchObject({ code: 'E_INDEX' });
        await new Promise((r) => setTimeout(r, 20));
        const m = server.metrics();
        expect(m.kvBlocks.used, 'every block freed').toBe(0);
        expect(m.requests.running + m.requests.waiting).toBe(0);
        expect(m.requests.rejected).toBe(1);
      } finally {
        await server.close();
      }
      await expect(collect(server.generate([1], { maxNewTokens: 1 }))).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringContaining('closed') });
      await expect(model.createServer({ maxBatch: 0 })).rejects.toThrow(RangeError);
      model.dispose();
    });
  });
});
