// Speculative decoding (generate()'s draft option): greedy tokens are the target's own, whatever
// the draft and however many tokens it proposes a round; sampled tokens keep the target's
// distribution (the rejection rule), checked with a chi-square test over many seeds against the
// distribution computed from the target's logits; bad drafts are refused by name.
import { afterAll, describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { distribution } from '../../lib/models/sampling';
import { forDevices } from '../helpers';
import { randomGpt2, randomLlama, tinyGpt2Config, tinyLlamaConfig } from '../reference/checkpoints';
import type { ModelConfig, Weights } from '../reference/models';
import { rngFor, testSeed } from '../reference/rng';
import { removeDir, writeCheckpoint } from './helpers';

const FILE = 'test/models/speculative.test.ts';
const seed = testSeed();
const ctx = (name: string) => `${name} [seed ${seed}; rerun: IGNIS_TEST_SEED=${seed} npx vitest run ${FILE}]`;
const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));

async function load(cfg: ModelConfig, w: Weights): Promise<ignis.LanguageModel> {
  const dir = await writeCheckpoint(cfg, w, 'f32');
  dirs.push(dir);
  return ignis.loadModel(dir, { tokenizer: false, maxSeq: 64 });
}

function model(cfg: ModelConfig, s: number): Promise<ignis.LanguageModel> {
  return load(cfg, cfg.model_type === 'gpt2' ? randomGpt2(cfg, s) : randomLlama(cfg, s));
}

async function collect(gen: AsyncGenerator<ignis.GeneratedPiece, unknown, undefined>): Promise<number[]> {
  const out: number[] = [];
  for await (const p of gen) out.push(p.token);
  return out;
}

forDevices((device) => {
  if (device !== 'cpu') return;
  describe('speculative decoding', () => {
    it("greedy: the target's own tokens for any draft and any number of draft tokens", async () => {
      const name = ctx('speculative greedy');
      const r = rngFor('speculative', seed);
      const target = await model(tinyLlamaConfig(), r.int(0, 1 << 30));
      // a smaller draft of the same vocabulary (one layer, its own weights)
      const draft = await model(tinyLlamaConfig({ num_hidden_layers: 1 }), r.int(0, 1 << 30));
      try {
        for (const len of [1, 6, 17]) {
          const prompt = Array.from({ length: len }, () => r.int(0, 96));
          const alone = await collect(target.generate(prompt, { maxNewTokens: 20, eos: false }));
          for (const k of [1, 3, 7]) {
            let proposed = 0, kept = 0;
            const got = await collect(target.generate(prompt, { maxNewTokens: 20, eos: false, draft, draftTokens: k, onDraftRound: (p, q) => ((proposed += p), (kept += q)) }));
            expect(got, `${name}: prompt ${len}, ${k} draft tokens`).toEqual(alone);
            expect(proposed).toBeGreaterThan(0);
            expect(kept).toBeLessThanOrEqual(proposed);
          }
          // the target as its own draft: every proposed token is kept
          let proposed = 0, kept = 0;
          expect(await collect(target.generate(prompt, { maxNewTokens: 20, eos: false, draft: target, onDraftRound: (p, q) => ((proposed += p), (kept += q)) }))).toEqual(alone);
          expect(kept, name).toBe(proposed);
        }
      } finally {
        target.dispose();
        draft.dispose();
      }
    });

    it("sampled: the first token's frequencies over 3000 seeds fit the target's distribution (chi-square)", async () => {
      const name = ctx('speculative sampled');
      const r = rngFor('speculative sampled', seed);
      const cfg = tinyLlamaConfig();
      const w = randomLlama(cfg, r.int(0, 1 << 30));
      const target = await load(cfg, w);
      // the draft: the target's first layer alone (its embedding, norms and head), so that the two
      // distributions overlap and the rule both keeps and replaces draft tokens
      const draft = await load(tinyLlamaConfig({ num_hidden_layers: 1 }), new Map([...w].filter(([n]) => !n.includes('layers.1.'))));
      try {
        const prompt = Array.from({ length: 5 }, () => r.int(0, 96));
        const params = { temperature: 1.5, topK: 6, topP: 1, seed: 0 };
        const logits = target.forward(prompt);
        const all = (await logits.data()) as Float32Array;
        logits.dispose();
        const p = distribution(all, (prompt.length - 1) * 97, 97, params);
        const N = 3000;
        const counts = new Float64Array(97);
        let proposed = 0, kept = 0;
        for (let s = 0; s < N; s++) {
          const [first] = await collect(target.generate(prompt, { maxNewTokens: 2, eos: false, temperature: 1.5, topK: 6, seed: s, draft, draftTokens: 1, onDraftRound: (a, b) => ((proposed += a), (kept += b)) }));
          counts[first]++;
        }
        let chi = 0, cells = 0;
        for (let i = 0; i < 97; i++) {
          if (p[i] === 0) {
            expect(counts[i], `${name}: token ${i} is outside the target's top 6`).toBe(0);
            continue;
          }
          chi += (counts[i] - N * p[i]) ** 2 / (N * p[i]);
          cells++;
        }
        // 5 degrees of freedom: P(chi2 > 25.7) = 1e-4
        expect(cells).toBe(6);
        expect(chi, `${name}: chi-square ${chi.toFixed(2)}, counts ${Array.from(counts).filter((c) => c > 0).join(' ')}`).toBeLessThan(25.7);
        // the rule ran both ways: some draft tokens were kept, some replaced
        expect(kept, name).toBeGreaterThan(0);
        expect(kept, name).toBeLessThan(proposed);
      } finally {
        target.dispose();
        draft.dispose();
      }
    }, 60_000);

    it('refuses a draft of another vocabulary, too many draft tokens and a non-model, by name; a GPT-2 pair gives its own greedy tokens', async () => {
      const target = await model(tinyLlamaConfig(), 1);
      const other = await model(tinyLlamaConfig({ vocab_size: 101 }), 2);
      const gpt2 = await model(tinyGpt2Config(), 3);
      try {
        await expect(collect(target.generate([1, 2], { draft: other }))).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringContaining("draft's vocabulary (101)") });
        await expect(collect(target.generate([1, 2], { draft: target, draftTokens: 16 }))).rejects.toThrow(RangeError);
        await expect(collect(target.generate([1, 2], { draft: {} as ignis.LanguageModel }))).rejects.toThrow(TypeError);
        const alone = await collect(gpt2.generate([5, 9, 1], { maxNewTokens: 12, eos: false }));
        expect(await collect(gpt2.generate([5, 9, 1], { maxNewTokens: 12, eos: false, draft: gpt2, draftTokens: 3 }))).toEqual(alone);
      } finally {
        target.dispose();
        other.dispose();
        gpt2.dispose();
      }
    });
  });
});
