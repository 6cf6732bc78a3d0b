// config.json mutation: a small random Llama and GPT-2 checkpoint, whose config.json is rewritten
// with keys deleted, retyped or set to hostile values (fractions, zeros, negatives, 2^40 and up,
// strings, nulls, arrays, objects, rope_scaling and unknown keys). Each load gives a model that
// runs a forward pass, or a coded error; nothing else. IGNIS_FUZZ_FILES sets the count
// (npm test: 1000 each; npm run fuzz: 5000 each).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { writeRandomCheckpoint } from '../../lib/models/random';
import { rngFor, testSeed } from '../reference/rng';

const CASES = Math.max(1000, Math.floor(Number(process.env.IGNIS_FUZZ_FILES ?? 0) / 4));
const CODES = new Set(['E_FORMAT', 'E_ARGUMENT', 'E_SHAPE', 'E_RANGE', 'E_DTYPE', 'E_TYPE', 'E_DEVICE', 'E_OOM']);
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const HOSTILE: unknown[] = [0, -1, 1.5, 0.5, 2 ** 40, 2 ** 53, 1e300, -0, '4', '', null, true, [], [1, 2], {}, { a: 1 }, 'llama', 'silu',
  'qwen2', 'qwen3', 'mistral', 'phi3', ['full_attention', 'sliding_attention']];

for (const modelType of ['llama', 'gpt2'] as const) {
  describe(`config.json mutation, ${modelType}`, () => {
    it(`${CASES} mutated configs each load and run, or fail with a coded error`, async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ignis-cfgfuzz-${modelType}-`));
      dirs.push(dir);
      await writeRandomCheckpoint(dir, { modelType, hidden: 32, layers: 2, heads: 4, kvHeads: modelType === 'llama' ? 2 : undefined, vocab: 64, maxPositions: 64, seed: 3 });
      const cfgPath = path.join(dir, 'config.json');
      const base = JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
      const seed = testSeed();
      const rng = rngFor(`config fuzz ${modelType}`, seed);
      const keys = [...Object.keys(base), 'rope_scaling', 'rope_parameters', 'partial_rotary_factor', 'attention_bias', 'mlp_bias',
        'scale_attn_weights', 'scale_attn_by_inverse_layer_idx', 'reorder_and_upcast_attn', 'sliding_window', 'use_sliding_window',
        'layer_types', 'eos_token_id', 'head_dim', 'n_inner', 'tie_word_embeddings', 'unknown_key'];
      const pick = <T>(xs: readonly T[]): T => xs[rng.ints(1, 0, xs.length - 1)[0]];
      const counts = { loaded: 0, refused: 0 };
      for (let i = 0; i < CASES; i++) {
        const cfg: Record<string, unknown> = { ...base };
        const edits: string[] = [];
        for (let e = 1 + rng.ints(1, 0, 2)[0]; e > 0; e--) {
          const key = pick(keys);
          const how = rng.ints(1, 0, 3)[0];
          if (how === 0) delete cfg[key];
          else if (how === 1) cfg[key] = pick(HOSTILE);
          else if (how === 2 && typeof base[key] === 'number') cfg[key] = (base[key] as number) * pick([2, 3, 0.5, 7, -1]);
          else if (key === 'rope_scaling' || key === 'rope_parameters') {
            // a whole rope config of some type, one of its keys then made hostile
            const rope: Record<string, unknown> = pick([
              { rope_type: 'linear', factor: 2 },
              { rope_type: 'dynamic', factor: 2 },
              { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 },
              { type: 'yarn', factor: 4, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 0.5, original_max_position_embeddings: 32 },
              { type: 'longrope', short_factor: Array(4).fill(1.5), long_factor: Array(4).fill(3), original_max_position_embeddings: 32 },
              { rope_type: 42 },
            ]);
            rope[pick([...Object.keys(rope), 'rope_theta', 'attention_factor', 'truncate'])] = pick(HOSTILE);
            cfg[key] = rope;
          } else cfg[key] = pick(HOSTILE);
          edits.push(`${key}=${JSON.stringify(cfg[key])}`);
        }
        fs.writeFileSync(cfgPath, JSON.stringify(cfg));
        const ctx = `case ${i} (${edits.join(', ')}) [seed ${seed}; rerun: IGNIS_TEST_SEED=${seed}]`;
        let model: ignis.LanguageModel | undefined;
        try {
          model = await ignis.loadModel(dir, { maxSeq: 16 });
        } catch (e) {
          const code = (e as { code?: string }).code;
          if (!(e instanceof Error) || !code || !CODES.has(code)) throw new Error(`${ctx}: uncoded failure: ${String((e as Error)?.stack ?? e)}`);
          counts.refused++;
          continue;
        }
        try {
          const logits = model.forward([[1, 2, 3]]);
          const d = await logits.data();
          expect(d.length, ctx).toBe(3 * model.vocabSize);
          counts.loaded++;
        } catch (e) {
          const code = (e as { code?: string }).code;
          if (!code || !CODES.has(code)) throw new Error(`${ctx}: a loaded model failed uncoded: ${String((e as Error)?.stack ?? e)}`);
          counts.refused++;
        } finally {
          model.dispose();
        }
      }
      // both outcomes present, or the mutations have drifted
      expect(counts.loaded, JSON.stringify(counts)).toBeGreaterThan(CASES / 20);
      expect(counts.refused, JSON.stringify(counts)).toBeGreaterThan(CASES / 4);
    }, 300_000);
  });
}
