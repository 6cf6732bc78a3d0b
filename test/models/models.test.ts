// loadModel on random GPT-2 and Llama checkpoints written in the exact Hugging Face layout:
// logits against the float64 reference (f32, bf16, int8 weights), generation with the KV cache
// against re-running the whole sequence, sampling, batches, concurrency, and bad checkpoints.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as ignis from '../../lib/index';
import { drawToken } from '../../lib/models/sampling';
import { forDevices } from '../helpers';
import { phi3Layout, randomGemma3, randomGpt2, randomLlama, roundWeights, tinyGemma2Config, tinyGemma3Config, tinyGpt2Config, tinyLlamaConfig } from '../reference/checkpoints';
import { forwardReference, greedyReference, type ModelConfig, type Weights } from '../reference/models';
import { rngFor, testSeed } from '../reference/rng';
import { relError, removeDir, writeCheckpoint } from './helpers';

const FILE = 'test/models/models.test.ts';
const seed = testSeed();
const ctx = (name: string) => `${name} [seed ${seed}; rerun: IGNIS_TEST_SEED=${seed} npx vitest run ${FILE}]`;
const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));

async function checkpoint(cfg: ModelConfig, stored: 'f32' | 'bf16', opts: { shards?: boolean; prefix?: boolean } = {}) {
  const s = rngFor(`${cfg.model_type} ${stored}`, seed).int(0, 1 << 30);
  const w = cfg.model_type === 'gpt2' ? randomGpt2(cfg, s, { transformerPrefix: opts.prefix }) : cfg.model_type === 'gemma3_text' || cfg.model_type === 'gemma2' ? randomGemma3(cfg, s) : randomLlama(cfg, s);
  const dir = await writeCheckpoint(cfg, cfg.model_type === 'phi3' ? phi3Layout(cfg, w) : w, stored, opts.shards);
  dirs.push(dir);
  return { dir, w: stored === 'f32' ? w : roundWeights(w, stored) };
}

function randomIds(name: string, batch: number, seq: number, vocab: number): number[][] {
  const r = rngFor(name, seed);
  return Array.from({ length: batch }, () => Array.from({ length: seq }, () => r.int(0, vocab - 1)));
}

const ARCHS: [string, () => ModelConfig][] = [
  ['gpt2', () => tinyGpt2Config()],
  ['llama', () => tinyLlamaConfig()],
  // Llama with attention_bias and mlp_bias (q, k, v, o, gate, up, down biases)
  ['llama-bias', () => tinyLlamaConfig({ attention_bias: true, mlp_bias: true })],
  // Qwen2: q, k, v biases, a tied head, a large base
  ['qwen2', () => tinyLlamaConfig({ model_type: 'qwen2', tie_word_embeddings: true, rope_theta: 1000000 })],
  // Qwen3: per-head q/k RMSNorm, an explicit head_dim unlike hidden / heads (64 / 4 = 16), no biases
  ['qwen3', () => tinyLlamaConfig({ model_type: 'qwen3', head_dim: 24, rope_theta: 1000000 })],
  // Phi-3: q, k, v in one qkv_proj, gate and up in one gate_up_proj
  ['phi3', () => tinyLlamaConfig({ model_type: 'phi3' })],
  // Mistral: a sliding window no shorter than the context, so attention is the full one
  ['mistral', () => tinyLlamaConfig({ model_type: 'mistral', sliding_window: 64 })],
  // Gemma 3: (1 + w) norms around attention and MLP, scaled embeddings, GELU, q/k norms, sliding
  // and global layers with their own RoPE (linear-scaled global), final soft-capping, tied head
  ['gemma3', () => tinyGemma3Config()],
  // Gemma 2: the same without q/k norms, one RoPE, attention scores soft-capped (the CPU computes
  // that; on CUDA it is refused by name, below)
  ['gemma2', () => tinyGemma2Config()],
];

forDevices((device) => {
  for (const [arch, makeCfg] of ARCHS) {
    describe(arch, () => {
      const cfg = makeCfg();
      if (arch === 'gemma2' && device !== 'cpu' && process.env.IGNIS_CUDA_UNVERIFIED_ATTENTION !== '1') {
        it(`gemma2: refused by name on ${device} (score soft-capping is computed on the CPU only)`, async () => {
          const { dir } = await checkpoint(cfg, 'f32');
          await expect(ignis.loadModel(dir, { device })).rejects.toMatchObject({ code: 'E_DEVICE', message: expect.stringContaining('attn_logit_softcapping') });
        });
        return;
      }
      const vocab = cfg.vocab_size;
      // stored dtype, load options, bound on max|ignis - ref| / max|ref|
      // (Gemma's norms after attention and MLP pass their int8 weights' error on at full size: its
      // int8 logits are checked exactly against the dequantized weights below)
      const int8Tol = arch === 'gemma3' || arch === 'gemma2' ? 6e-2 : 3e-2;
      const variants: [string, 'f32' | 'bf16', ignis.LoadModelOptions, number][] = [
        ['f32', 'f32', {}, 1e-4],
        // bf16 weights under f32 activations (the CPU's default): only the weights are rounded, and
        // the reference computes with the rounded ones; under bf16 activations every op rounds
        ['bf16', 'bf16', { dtype: 'bf16' }, device === 'cpu' ? 1e-4 : 3e-2],
        ['bf16 activations', 'bf16', { dtype: 'bf16', activations: 'weights' }, 3e-2],
        ['int8', 'f32', { quantize: 'int8' }, int8Tol],
        ['int8 g32', 'f32', { quantize: 'int8', groupSize: 32 }, int8Tol],
        // a bf16 checkpoint quantized: its embedding table stays bf16 (cast after the lookup), as an
        // f32 checkpoint's is rounded to bf16
        ['int8 from bf16', 'bf16', { quantize: 'int8' }, int8Tol],
      ];
      for (const [label, stored, opts, tol] of variants) {
        it(`${arch} ${label}: logits match the float64 reference ${device}`, async () => {
          const name = ctx(`${arch} ${label} ${device}`);
          const { dir, w } = await checkpoint(cfg, stored);
          const m = await ignis.loadModel(dir, { ...opts, device, maxBatch: 3 });
          try {
            if (label === 'int8 from bf16' && cfg.model_type !== 'gpt2') {
              // the embedding table stays 2 bytes an element, as an f32 checkpoint's does (rounded to
              // bf16 there): the same weight bytes either way
              const f32 = await checkpoint(cfg, 'f32');
              const m32 = await ignis.loadModel(f32.dir, { ...opts, device });
              expect(m.memory().weights, `${name}: weight bytes`).toBe(m32.memory().weights);
              m32.dispose();
            }
            if (label.startsWith('bf16')) {
              // the matrices kept as stored, 2 bytes an element (the tied head counted once); the
              // vectors (norms, biases) and gpt2's position table in the activations' dtype
              const act = label === 'bf16' && device === 'cpu' ? 4 : 2;
              let bytes = 0;
              for (const [k, t] of w) bytes += t.data.length * (t.shape.length === 1 || k.endsWith('wpe.weight') ? act : 2);
              expect(m.memory().weights, `${name}: weight bytes`).toBe(bytes);
            }
            for (const [batch, seq] of [[1, 1], [3, 9], [2, 33]]) {
              const ids = randomIds(`${name} ${batch}x${seq}`, batch, seq, vocab);
              const logits = m.forward(ids);
              expect(logits.shape).toEqual([batch, seq, vocab]);
              const err = relError(await logits.data(), forwardReference(cfg, w, ids));
              expect(err, `${name}: [${batch}, ${seq}] relative error`).toBeLessThan(tol);
              logits.dispose();
            }
          } finally {
            m.dispose();
          }
        });
      }

      it(`${arch}: greedy generation with the KV cache equals re-running the whole sequence ${device}`, async () => {
        const name = ctx(`${arch} greedy ${device}`);
        const { dir, w } = await checkpoint(cfg, 'f32');
        const m = await ignis.loadModel(dir, { device });
        try {
          const prompt = randomIds(`${name} prompt`, 1, 6, vocab)[0];
          const got: number[] = [];
          for await (const { token: t } of m.generate(prompt, { maxNewTokens: 10 })) got.push(t);
          expect(got).toHaveLength(10);
          // the same model, no cache: the argmax of the last row of forward(prompt + generated)
          const seq = prompt.slice();
          for (let i = 0; i < 10; i++) {
            const logits = m.forward(seq);
            const d = await logits.data();
            logits.dispose();
            let best = 0;
            for (let t = 1; t < vocab; t++) if (d[(seq.length - 1) * vocab + t] > d[(seq.length - 1) * vocab + best]) best = t;
            expect(best, `${name}: step ${i}`).toBe(got[i]);
            seq.push(best);
          }
          expect(got, name).toEqual(greedyReference(cfg, w, prompt, 10));
        } finally {
          m.dispose();
        }
      });

      it(`${arch}: sampling is seeded, stops on a stop token, and concurrent generations do not interfere ${device}`, async () => {
        const name = ctx(`${arch} sampling ${device}`);
        const { dir } = await checkpoint(cfg, 'f32');
        const m = await ignis.loadModel(dir, { device });
        try {
          const prompt = randomIds(`${name} prompt`, 1, 5, vocab)[0];
          const run = async (o: ignis.GenerateOptions) => {
            const out: number[] = [];
            for await (const { token: t } of m.generate(prompt, o)) out.push(t);
            return out;
          };
          const a = await run({ maxNewTokens: 12, temperature: 0.8, topK: 20, topP: 0.95, seed: 5 });
          expect(await run({ maxNewTokens: 12, temperature: 0.8, topK: 20, topP: 0.95, seed: 5 }), name).toEqual(a);
          // the same tokens as running each step, reading its logits and drawing in JS (token k: counter k)
          const manual: number[] = [];
          const st = m.step.createState();
          let ids = ignis.tensor(Int32Array.from(prompt), { shape: [1, prompt.length], dtype: 'i32', device });
          let position = 0;
          for (let k = 0; k < 12; k++) {
            const outs = await m.step.run({ ids, position }, { state: st });
            position += ids.shape[1];
            ids.dispose();
            const row = (await outs.logits.data()) as Float32Array;
            for (const t of Object.values(outs)) t.dispose();
            manual.push(drawToken(row, 0, vocab, { temperature: 0.8, topK: 20, topP: 0.95, seed: 5 }, k));
            ids = ignis.tensor(new Int32Array([manual[k]]), { shape: [1, 1], dtype: 'i32', device });
          }
          ids.dispose();
          st.dispose();
          expect(a, `${name}: generate() against drawing from each step's logits`).toEqual(manual);
          const topK1 = await run({ maxNewTokens: 6, temperature: 1.5, topK: 1, seed: 9 });
          const greedy = await run({ maxNewTokens: 8 });
          expect(topK1, `${name}: topK 1 is greedy`).toEqual(greedy.slice(0, 6));
          // greedy steps run ahead of the reads: a stop token or a break still ends cleanly
          expect(await run({ maxNewTokens: 8, stop: [greedy[2]] }), `${name}: greedy stop`).toEqual(greedy.slice(0, greedy.indexOf(greedy[2]) + 1));
          let k = 0;
          for await (const { token: t } of m.generate(prompt, { maxNewTokens: 8 })) {
            expect(t, `${name}: token ${k} before the break`).toBe(greedy[k]);
            if (++k === 3) break;
          }
          expect(await run({ maxNewTokens: 8 }), `${name}: after a break`).toEqual(greedy);
          // One step queued ahead, no more: while the caller holds token k, step k + 1 (of steps
          // 0 = the prompt, 1, 2, ...) runs to its end, and step k + 2 is not queued yet. (That
          // token k is read back before step k + 1 ends is timing, measured by the bench.)
          m.step.profile(true);
          try {
            let j = 0;
            for await (const { token: t } of m.generate(prompt, { maxNewTokens: 5 })) {
              expect(t).toBe(greedy[j]);
              // wait for step j + 1 however loaded the machine is, then a little more: step j + 2
              // must not come (no wall-clock bound: the wait ends when the count is reached)
              const want = j < 4 ? j + 2 : j + 1;
              for (let waited = 0; m.step.profileTotal().runs < want && waited < 30_000; waited += 5) await new Promise((r) => setTimeout(r, 5));
              await new Promise((r) => setTimeout(r, 20));
              expect(m.step.profileTotal().runs, `${name}: steps run while token ${j} is held`).toBe(want);
              j++;
            }
          } finally {
            m.step.profile(false);
          }
          const stopped = await run({ maxNewTokens: 12, temperature: 0.8, topK: 20, topP: 0.95, seed: 5, stop: [a[3]] });
          expect(stopped, name).toEqual(a.slice(0, a.indexOf(a[3]) + 1));
          // two generators stepped alternately, each with its own state
          const g1 = m.generate(prompt, { maxNewTokens: 8 });
          const g2 = m.generate(prompt.slice(1), { maxNewTokens: 8 });
          const r1: number[] = [], r2: number[] = [];
          for (let i = 0; i < 8; i++) {
            r1.push(((await g1.next()).value as ignis.GeneratedPiece).token);
            r2.push(((await g2.next()).value as ignis.GeneratedPiece).token);
          }
          expect(r1, name).toEqual(await run({ maxNewTokens: 8 }));
          const solo: number[] = [];
          for await (const { token: t } of m.generate(prompt.slice(1), { maxNewTokens: 8 })) solo.push(t);
          expect(r2, name).toEqual(solo);
        } finally {
          m.dispose();
        }
      });
    });
  }

  it(`int8: the logits are the float64 reference's over the weights quantized and dequantized, llama and gemma3 ${device}`, async () => {
    for (const cfg of [tinyLlamaConfig(), tinyGemma3Config({ tie_word_embeddings: false })] as ModelConfig[]) {
      // llama with f32 scales asked for, gemma3 with the default (f16 on the CPU, f32 elsewhere)
      const asked = cfg.model_type === 'llama' ? 'f32' : undefined;
      const scales = asked ?? (device === 'cpu' ? 'f16' : 'f32');
      const name = ctx(`int8 exact ${cfg.model_type} ${scales} scales ${device}`);
      const { dir, w } = await checkpoint(cfg, 'f32');
      const m = await ignis.loadModel(dir, { device, quantize: 'int8', maxBatch: 2, scales: asked });
      try {
        // every linear weight as the loader quantizes it, and the f32 embedding table rounded to
        // bf16 as the loader keeps it
        const wq = new Map(w);
        for (const [n, t] of w) {
          if (n === 'model.embed_tokens.weight') {
            const e = ignis.tensor(Float32Array.from(t.data), { shape: t.shape });
            const r = ignis.cast(e, 'bf16');
            wq.set(n, { shape: t.shape, data: Float64Array.from(await r.data()) });
            e.dispose();
            r.dispose();
            continue;
          }
          if (t.shape.length !== 2) continue;
          const K = t.shape[1];
          const x = ignis.tensor(Float32Array.from(t.data), { shape: t.shape });
          const q = ignis.quantize(x, { groupSize: [128, 64, 32].find((g) => K % g === 0) ?? K, scales });
          wq.set(n, { shape: t.shape, data: Float64Array.from(await ignis.dequantize(q).data()) });
          x.dispose();
          q.dispose();
        }
        const ids = randomIds(name, 2, 11, cfg.vocab_size);
        const logits = m.forward(ids);
        expect(relError(await logits.data(), forwardReference(cfg, wq, ids)), name).toBeLessThan(1e-5);
        logits.dispose();
        // the step graph, one token at a time: exact with int8Activations false; with them (the
        // CPU's default), each layer's input rounded to int8 per group as well
        const seq = ids[0].slice(0, 5);
        const ref = forwardReference(cfg, wq, [seq]);
        const V = cfg.vocab_size;
        const modes = device === 'cpu' ? [false, true] : [false];
        for (const int8Activations of modes) {
          const ms = int8Activations ? m : await ignis.loadModel(dir, { device, quantize: 'int8', int8Activations: false, scales: asked });
          try {
            const st = ms.step.createState();
            let last: Float32Array | undefined;
            for (let p = 0; p < seq.length; p++) {
              const t = ignis.tensor(new Int32Array([seq[p]]), { shape: [1, 1], dtype: 'i32', device });
              const outs = await ms.step.run({ ids: t, position: p }, { state: st });
              last = (await outs.logits.data()) as Float32Array;
              for (const x of Object.values(outs)) x.dispose();
              t.dispose();
            }
            if (int8Activations) {
              // a prefill of more rows than a decode kernel takes (the integer GEMM), all 11 tokens
              const all = ids[0];
              const t = ignis.tensor(Int32Array.from(all), { shape: [1, all.length], dtype: 'i32', device });
              const outs = await ms.step.run({ ids: t, position: 0 }, { state: st });
              const pre = (await outs.logits.data()) as Float32Array;
              for (const x of Object.values(outs)) x.dispose();
              t.dispose();
              const refAll = forwardReference(cfg, wq, [all]).subarray((all.length - 1) * V, all.length * V);
              const e = relError(pre.subarray(pre.length - V), refAll);
              expect(e, `${name}: prefill logits with int8 activations`).toBeLessThan(cfg.model_type === 'gemma3_text' ? 8e-2 : 4e-2);
              expect(e, `${name}: prefill with int8 activations`).toBeGreaterThan(1e-6);
            }
            st.dispose();
            const err = relError(last!, ref.subarray((seq.length - 1) * V, seq.length * V));
            if (int8Activations) {
              expect(err, `${name}: step logits with int8 activations`).toBeLessThan(cfg.model_type === 'gemma3_text' ? 8e-2 : 4e-2);
              expect(err, `${name}: int8 activations are in use`).toBeGreaterThan(1e-6);
            } else {
              expect(err, `${name}: step logits, f32 activations`).toBeLessThan(1e-5);
            }
          } finally {
            if (ms !== m) ms.dispose();
          }
        }
      } finally {
        m.dispose();
      }
    }
  });

  it(`gemma3 in transformers 5's form: rope_parameters per layer type, layer_types ${device}`, async () => {
    const cfg = tinyGemma3Config();
    const name = ctx(`gemma3 5.x config ${device}`);
    const { dir, w } = await checkpoint(cfg, 'f32');
    const { rope_theta: _t, rope_scaling: _s, rope_local_base_freq: _l, sliding_window_pattern: _p, ...rest } = cfg;
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
      ...rest,
      layer_types: ['sliding_attention', 'sliding_attention', 'full_attention'],
      rope_parameters: { full_attention: { rope_type: 'linear', rope_theta: 1000000, factor: 2 }, sliding_attention: { rope_type: 'default', rope_theta: 10000 } },
    }));
    const m = await ignis.loadModel(dir, { device });
    try {
      const ids = randomIds(name, 1, 9, cfg.vocab_size);
      const logits = m.forward(ids);
      expect(relError(await logits.data(), forwardReference(cfg, w, ids)), name).toBeLessThan(1e-4);
      logits.dispose();
    } finally {
      m.dispose();
    }
    const bad = async (patch: object, text: string) => {
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, ...patch }));
      await expect(ignis.loadModel(dir, { device }), text).rejects.toMatchObject({ code: 'E_FORMAT', message: expect.stringContaining(text) });
    };
    await bad({ use_bidirectional_attention: true }, 'use_bidirectional_attention');
    await bad({ hidden_activation: 'silu' }, "hidden_activation 'silu'");
    await bad({ final_logit_softcapping: -1 }, 'final_logit_softcapping');
    await bad({ rope_parameters: { full_attention: { rope_theta: 1e6 }, chunked: {} } }, 'rope_parameters.chunked is not a layer type');
    await bad({ rope_parameters: { full_attention: { rope_theta: 1e6 } } }, 'one form or the other');
    await bad({ sliding_window_pattern: 0 }, 'sliding_window_pattern');
  });

  it(`sliding windows computed in the kernel past their size: mistral on every layer, qwen2 on the layers layer_types / max_window_layers give ${device}`, async () => {
    const cases: ModelConfig[] = [
      tinyLlamaConfig({ model_type: 'mistral', sliding_window: 8 }),
      tinyLlamaConfig({ model_type: 'qwen2', sliding_window: 5, layer_types: ['full_attention', 'sliding_attention'] }),
      tinyLlamaConfig({ model_type: 'qwen2', sliding_window: 3, use_sliding_window: true, max_window_layers: 1 }),
      tinyLlamaConfig({ model_type: 'phi3', sliding_window: 6 }),
      tinyGemma3Config({ sliding_window: 5 }),
    ];
    for (const cfg of cases) {
      const name = ctx(`window ${cfg.model_type} ${JSON.stringify(cfg.layer_types ?? cfg.max_window_layers ?? '')} ${device}`);
      const { dir, w } = await checkpoint(cfg, 'f32');
      if (device !== 'cpu' && process.env.IGNIS_CUDA_UNVERIFIED_ATTENTION !== '1') {
        // computed on the CPU only for now: on CUDA maxSeq is held to the window
        await expect(ignis.loadModel(dir, { device, maxSeq: 40 }), name).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringContaining('sliding_window') });
        continue;
      }
      const m = await ignis.loadModel(dir, { device, maxSeq: 48, maxBatch: 2 });
      try {
        const ids = randomIds(name, 2, 33, cfg.vocab_size);
        const logits = m.forward(ids);
        const ref = forwardReference(cfg, w, ids);
        expect(relError(await logits.data(), ref), name).toBeLessThan(1e-4);
        logits.dispose();
        // the same without the window differs: the test sees the window
        const full = forwardReference(cfg.model_type === 'gemma3_text' ? { ...cfg, sliding_window: 64 } : { ...cfg, sliding_window: null, use_sliding_window: false, layer_types: undefined }, w, ids);
        expect(relError(full, ref), `${name}: the window changes the logits`).toBeGreaterThan(1e-3);
        // generation over the KV cache, past the window: the argmax of forward() each step
        const prompt = ids[0].slice(0, 4);
        const got: number[] = [];
        for await (const { token } of m.generate(prompt, { maxNewTokens: 14 })) got.push(token);
        const seq = [...prompt, ...got.slice(0, -1)];
        const last = forwardReference(cfg, w, [seq]);
        const V = cfg.vocab_size;
        for (let i = 0; i < got.length; i++) {
          const row = last.subarray((prompt.length - 1 + i) * V, (prompt.length + i) * V);
          let best = 0;
          for (let j = 1; j < V; j++) if (row[j] > row[best]) best = j;
          expect(got[i], `${name}: token ${i}`).toBe(best);
        }
      } finally {
        m.dispose();
      }
    }
  });

  it(`layouts and config forms: sharded checkpoints, GPT-2 with the transformer. prefix and its score scalings, a tied Llama head, transformers 5's rope_parameters ${device}`, async () => {
    const cases: [ModelConfig, { shards?: boolean; prefix?: boolean }][] = [
      [tinyGpt2Config(), { shards: true, prefix: true }],
      [tinyLlamaConfig({ tie_word_embeddings: true }), { shards: true }],
      [tinyLlamaConfig({ num_key_value_heads: 1, rope_theta: 500000 }), {}],
      // transformers 5 writes the base inside rope_parameters (before, it was read as 10000)
      [{ ...tinyLlamaConfig({ rope_parameters: { rope_type: 'default', rope_theta: 500000 } }), rope_theta: undefined }, {}],
      // dynamic NTK: the default rotation within the original context (64 here)
      [{ ...tinyLlamaConfig({ rope_parameters: { rope_type: 'dynamic', rope_theta: 500000, factor: 4 } }), rope_theta: undefined }, {}],
      // every scaled RoPE (test/reference/rope-scaling.ts): head_dim 16, so 8 frequencies
      [{ ...tinyLlamaConfig({ rope_parameters: { rope_type: 'linear', rope_theta: 10000, factor: 3 } }), rope_theta: undefined }, {}],
      [{ ...tinyLlamaConfig({ rope_parameters: { rope_type: 'llama3', rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } }), rope_theta: undefined }, {}],
      // the same in transformers 4.x's form
      [tinyLlamaConfig({ rope_theta: 500000, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } }), {}],
      [{ ...tinyLlamaConfig({ rope_parameters: { rope_type: 'yarn', rope_theta: 100, factor: 4, original_max_position_embeddings: 64 } }), rope_theta: undefined }, {}],
      [tinyLlamaConfig({ rope_theta: 100, rope_scaling: { type: 'yarn', factor: 4, beta_fast: 16, beta_slow: 2, mscale: 0.7, mscale_all_dim: 1.3, truncate: false } }), {}],
      [tinyLlamaConfig({ rope_theta: 100, rope_scaling: { type: 'yarn', factor: 2, attention_factor: 1.5 } }), {}],
      // Phi-3 long context: the short factors up to the original context, attention factor from
      // the context ratio
      [{ ...tinyLlamaConfig({ model_type: 'phi3', original_max_position_embeddings: 32, rope_scaling: { type: 'longrope', short_factor: [1, 1.1, 1.3, 1.7, 2.2, 3, 4, 5.5], long_factor: [1, 2, 3, 4, 5, 6, 7, 8] } }) }, {}],
      [tinyGpt2Config({ scale_attn_by_inverse_layer_idx: true }), {}],
      [tinyGpt2Config({ scale_attn_weights: false, scale_attn_by_inverse_layer_idx: true }), {}],
    ];
    for (const [cfg, o] of cases) {
      const name = ctx(`layout ${cfg.model_type} ${JSON.stringify(o)} ${device}`);
      const { dir, w } = await checkpoint(cfg, 'f32', o);
      const m = await ignis.loadModel(dir, { device });
      const ids = randomIds(name, 1, 7, cfg.vocab_size);
      const logits = m.forward(ids);
      expect(relError(await logits.data(), forwardReference(cfg, w, ids)), name).toBeLessThan(1e-4);
      m.dispose();
    }
  });
});

describe('loadModel errors', () => {
  it('names what is missing or wrong', async () => {
    const cfg = tinyLlamaConfig();
    const { dir } = await checkpoint(cfg, 'f32');
    const copy = (edit: (d: string) => void) => {
      const d = fs.mkdtempSync(dir + '-edit');
      dirs.push(d);
      for (const f of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, f), path.join(d, f));
      edit(d);
      return d;
    };
    const cfgWith = (patch: object) => (d: string) =>
      fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify({ ...cfg, ...patch }));
    const expectReject = async (p: Promise<unknown>, code: string, text: string) => {
      const e = await p.then(() => null, (x) => x);
      expect(e, text).toBeInstanceOf(ignis.IgnisError);
      expect(e.code, e.message).toBe(code);
      expect(e.message).toContain(text);
    };
    await expectReject(ignis.loadModel(path.join(dir, 'nope')), 'E_ARGUMENT', 'config.json');
    await expectReject(ignis.loadModel(copy(cfgWith({ model_type: 'bert' }))), 'E_FORMAT', 'bert');
    await expectReject(ignis.loadModel(copy(cfgWith({ hidden_size: 96 }))), 'E_FORMAT', 'model.embed_tokens.weight');
    // every key that would change the math and is not computed: refused, by name
    await expectReject(ignis.loadModel(copy(cfgWith({ rope_scaling: { rope_type: 'llama3', factor: 8 } }))), 'E_FORMAT', 'rope_scaling.low_freq_factor');
    await expectReject(ignis.loadModel(copy(cfgWith({ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 } }))), 'E_FORMAT', 'original_max_position_embeddings');
    await expectReject(ignis.loadModel(copy(cfgWith({ rope_parameters: { rope_type: 'mrope', rope_theta: 10000 } }))), 'E_FORMAT', 'rope_parameters.rope_type "mrope" is not supported');
    await expectReject(ignis.loadModel(copy(cfgWith({ rope_parameters: { rope_type: 'default', rope_theta: 10000, mrope_section: [2, 2, 4] } }))), 'E_FORMAT', 'rope_parameters.mrope_section');
    await expectReject(ignis.loadModel(copy(cfgWith({ rope_parameters: { rope_type: 'linear', rope_theta: 10000, factor: 2, low_freq_factor: 1 } }))), 'E_FORMAT', "rope_parameters.low_freq_factor 1 is not read by rope type 'linear'");
    await expectReject(ignis.loadModel(copy(cfgWith({ rope_parameters: { rope_type: 'linear', rope_theta: 10000 } }))), 'E_FORMAT', 'factor');
    await expectReject(ignis.loadModel(copy(cfgWith({ rope_scaling: { type: 'linear', factor: 2 }, rope_parameters: { rope_type: 'linear', rope_theta: 10000, factor: 4 } }))), 'E_FORMAT', 'rope_scaling.factor 2 and rope_parameters.factor 4 disagree');
    await expectReject(ignis.loadModel(copy(cfgWith({ rope_scaling: { type: 'yarn', factor: 2, truncate: 'no' } }))), 'E_FORMAT', 'rope_scaling.truncate');
    await expectReject(ignis.loadModel(copy(cfgWith({ rope_scaling: { type: 'longrope', short_factor: [1, 2], long_factor: [1, 2] } }))), 'E_FORMAT', 'must be 8 positive numbers');
    await expectReject(ignis.loadModel(copy(cfgWith({ original_max_position_embeddings: 16, rope_scaling: { type: 'longrope', short_factor: Array(8).fill(1), long_factor: Array(8).fill(2) } })), { maxSeq: 32 }), 'E_ARGUMENT', 'maxSeq 32 passes 16');
    await expectReject(ignis.loadModel(copy(cfgWith({ rope_theta: undefined, rope_parameters: { rope_type: 'dynamic', rope_theta: 10000, factor: 0.5 } }))), 'E_FORMAT', 'rope_parameters.factor 0.5 must be a number >= 1');
    // dynamic NTK equals the default rotation only up to the original context: maxSeq held there
    await expectReject(ignis.loadModel(copy(cfgWith({ rope_theta: undefined, rope_parameters: { rope_type: 'dynamic', rope_theta: 10000, factor: 2, original_max_position_embeddings: 16 } })), { maxSeq: 32 }), 'E_ARGUMENT', 'maxSeq 32 passes 16, where the config\'s RoPE scaling changes with the sequence length');
    await expectReject(ignis.loadModel(copy(cfgWith({ rope_parameters: { rope_theta: 500000 } }))), 'E_FORMAT', 'rope_theta 10000 and rope_parameters.rope_theta 500000 disagree');
    await expectReject(ignis.loadModel(copy(cfgWith({ rope_parameters: { rope_theta: 10000, partial_rotary_factor: 0.5 } }))), 'E_FORMAT', 'rope_parameters.partial_rotary_factor');
    await expectReject(ignis.loadModel(copy(cfgWith({ partial_rotary_factor: 0.5 }))), 'E_FORMAT', 'partial_rotary_factor 0.5');
    await expectReject(ignis.loadModel(copy(cfgWith({ rope_parameters: 'default' }))), 'E_FORMAT', 'rope_parameters "default" is not an object');
    await expectReject(ignis.loadModel(copy(cfgWith({ attention_bias: true }))), 'E_FORMAT', "no tensor 'model.layers.0.self_attn.q_proj.bias'");
    // llama reads no sliding window: a layer_types with sliding layers holds maxSeq to it
    await expectReject(ignis.loadModel(copy(cfgWith({ sliding_window: 16, layer_types: ['sliding_attention', 'full_attention'] })), { maxSeq: 32 }), 'E_ARGUMENT', 'maxSeq 32 passes the config\'s sliding_window 16');
    await expectReject(ignis.loadModel(copy(cfgWith({ model_type: 'mistral', sliding_window: 16, layer_types: ['sliding_attention', 'full_attention'] }))), 'E_FORMAT', 'full-attention layers, which mistral does not read');
    await expectReject(ignis.loadModel(copy(cfgWith({ model_type: 'qwen2', layer_types: ['sliding_attention'] }))), 'E_FORMAT', 'layer_types has 1 entries for 2 layers');
    await expectReject(ignis.loadModel(copy(cfgWith({ model_type: 'qwen2', use_sliding_window: true, max_window_layers: -1 }))), 'E_FORMAT', 'max_window_layers');
    await expectReject(ignis.loadModel(copy(cfgWith({ layer_types: ['full_attention', 'chunked'] }))), 'E_FORMAT', 'layer_types');
    await expectReject(ignis.loadModel(copy(cfgWith({ mlp_bias: 'yes' }))), 'E_FORMAT', "'mlp_bias' must be true or false");
    await expectReject(ignis.loadModel(copy(cfgWith({ num_hidden_layers: 3 }))), 'E_FORMAT', 'model.layers.2');
    await expectReject(ignis.loadModel(copy(cfgWith({ num_hidden_layers: 1.5 }))), 'E_FORMAT', 'num_hidden_layers');
    await expectReject(ignis.loadModel(copy(cfgWith({ num_attention_heads: 0 }))), 'E_FORMAT', 'num_attention_heads');
    await expectReject(ignis.loadModel(copy((d) => fs.writeFileSync(path.join(d, 'config.json'), '{ not json'))), 'E_FORMAT', 'config.json');
    await expect(ignis.loadModel(dir, { quantize: 'int4' as 'int8' })).rejects.toMatchObject({ code: 'E_ARGUMENT' });
    await expect(ignis.loadModel(dir, { int8Activations: true })).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringContaining("int8Activations applies with quantize: 'int8' only") });
    await expect(ignis.loadModel(dir, { quantize: 'int8', int8Activations: 'yes' as unknown as boolean })).rejects.toThrow(TypeError);
    await expect(ignis.loadModel(dir, { maxBatch: 0 })).rejects.toMatchObject({ code: 'E_RANGE' });
    await expect(ignis.loadModel(dir, { scales: 'f16' })).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringContaining("scales applies with quantize: 'int8' only") });
    await expect(ignis.loadModel(dir, { quantize: 'int8', scales: 'bf16' as 'f16' })).rejects.toMatchObject({ code: 'E_RANGE', message: expect.stringContaining("unknown scales 'bf16'") });
    await expect(ignis.loadModel(dir, { activations: 'f16' as 'f32' })).rejects.toMatchObject({ code: 'E_RANGE', message: expect.stringContaining("unknown activations 'f16'") });
    await expect(ignis.loadModel(dir, { quantize: 'int8', activations: 'weights' })).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringContaining("activations 'weights' does not apply") });
    if (ignis.info().cuda.available)
      await expect(ignis.loadModel(dir, { device: 'cuda', dtype: 'bf16', activations: 'f32' })).rejects.toMatchObject({ code: 'E_DEVICE', message: expect.stringContaining('mixed-dtype matmul') });
    const m = await ignis.loadModel(dir, { maxSeq: 16 });
    expect(() => m.forward([[1, 2], [3]])).toThrow(/same length/);
    expect(() => m.forward([1, cfg.vocab_size])).toThrow(expect.objectContaining({ code: 'E_INDEX' }));
    expect(() => m.forward([[1, 2], [3, 4]])).toThrow(expect.objectContaining({ code: 'E_SHAPE' })); // maxBatch 1
    await expect(m.generate(Array(17).fill(1)).next()).rejects.toMatchObject({ code: 'E_ARGUMENT' });
    await expect(m.generate([1], { topK: 3 }).next()).rejects.toMatchObject({ code: 'E_RANGE' });
    const out: number[] = [];
    for await (const { token: t } of m.generate([1, 2, 3], { maxNewTokens: 100 })) out.push(t);
    expect(out.length, 'generation stops when the cache (maxSeq 16) is full').toBe(14);
    m.dispose();
    expect(() => m.forward([1])).toThrow(expect.objectContaining({ code: 'E_DISPOSED' }));
  });
});

export type { Weights };

describe('end of sequence', () => {
  it('generate() ends at the eos ids of generation_config.json, else config.json, unless eos: false', async () => {
    const cfg = tinyLlamaConfig();
    const { dir } = await checkpoint(cfg, 'f32');
    const prompt = [3, 17, 5];
    const ids = async (d: string, o: ignis.GenerateOptions = {}) => {
      const m = await ignis.loadModel(d);
      try {
        const out: number[] = [];
        for await (const { token: t } of m.generate(prompt, { maxNewTokens: 10, ...o })) out.push(t);
        return { out, eos: m.eosTokenIds };
      } finally {
        m.dispose();
      }
    };
    const free = (await ids(dir)).out; // no eos_token_id anywhere: runs to maxNewTokens
    expect(free.length).toBe(10);
    const e = free[4], cut = free.slice(0, free.indexOf(e) + 1);
    const other = [...Array(cfg.vocab_size).keys()].find((i) => !free.includes(i))!; // an id this run never emits
    const variant = (cfgPatch: object, gen?: object) => {
      const d = fs.mkdtempSync(dir + '-eos');
      dirs.push(d);
      for (const f of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, f), path.join(d, f));
      fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify({ ...cfg, ...cfgPatch }));
      if (gen) fs.writeFileSync(path.join(d, 'generation_config.json'), JSON.stringify(gen));
      return d;
    };
    const name = ctx(`eos ${e}, free run ${free}`);
    expect(await ids(variant({ eos_token_id: e })), name).toEqual({ out: cut, eos: [e] });
    expect((await ids(variant({ eos_token_id: [other, e] }))).out, name).toEqual(cut);
    // generation_config.json wins over config.json, as in transformers' generate()
    expect((await ids(variant({ eos_token_id: e }, { eos_token_id: [other], do_sample: false }))).out, name).toEqual(free);
    expect((await ids(variant({ eos_token_id: other }, { eos_token_id: [e], do_sample: false }))).out, name).toEqual(cut);
    expect((await ids(variant({ eos_token_id: e }), { eos: false })).out, name).toEqual(free);
    const bad = async (d: string, text: string) => {
      const err = await ignis.loadModel(d).then(() => null, (x) => x);
      expect(err?.code, text).toBe('E_FORMAT');
      expect(err.message).toContain(text);
    };
    await bad(variant({ eos_token_id: 97 }), 'config.json: eos_token_id 97 is not a token id of the vocabulary (0 to 96)');
    await bad(variant({}, { eos_token_id: ['2'] }), 'generation_config.json: eos_token_id ["2"]');
    const broken = variant({});
    fs.writeFileSync(path.join(broken, 'generation_config.json'), '{ nope');
    await bad(broken, 'generation_config.json');
  });
});

describe('progress and abort', () => {
  it('loadModel reports each tensor read, and an abort frees what was read', async () => {
    const cfg = tinyLlamaConfig();
    const { dir } = await checkpoint(cfg, 'f32');
    const seen: ignis.LoadProgress[] = [];
    const m = await ignis.loadModel(dir, { onProgress: (p) => seen.push(p) });
    m.dispose();
    // embed, 9 per layer, the final norm, the head
    expect(seen.length).toBe(1 + 9 * cfg.num_hidden_layers + 2);
    expect(seen.map((p) => p.tensors)).toEqual(seen.map((_, i) => i + 1));
    for (let i = 1; i < seen.length; i++) expect(seen[i].bytes).toBeGreaterThan(seen[i - 1].bytes);
    expect(seen.at(-1)!.bytes).toBe(seen.at(-1)!.totalBytes); // this checkpoint holds exactly what a Llama reads
    expect(seen.at(-1)!.totalTensors).toBe(seen.length);

    const before = ignis.memory('cpu').allocated;
    const early = new AbortController();
    early.abort();
    await expect(ignis.loadModel(dir, { signal: early.signal })).rejects.toMatchObject({ name: 'AbortError' });
    for (const dtype of ['bf16', 'f32'] as const) {
      const ac = new AbortController();
      const err = await ignis.loadModel(dir, { dtype, signal: ac.signal, onProgress: (p) => p.tensors === 5 && ac.abort(new Error('enough')) })
        .then(() => null, (e) => e);
      expect((err as Error)?.message, dtype).toBe('enough');
      // bf16 keeps each tensor as read, so all of it is freed at once (f32's packed copies are the GC's)
      // (at most: other tests' tensors may be collected meanwhile, never added)
      if (dtype === 'bf16') expect(ignis.memory('cpu').allocated, 'bytes left after the aborted bf16 load').toBeLessThanOrEqual(before);
    }
    await expect(ignis.loadModel(dir, { signal: 'stop' as never })).rejects.toMatchObject({ code: 'E_TYPE' });
    await expect(ignis.loadModel(dir, { onProgress: 3 as never })).rejects.toMatchObject({ code: 'E_TYPE' });
  });

  it('generate stops at an abort: the tokens before it, then the reason', async () => {
    const { dir } = await checkpoint(tinyLlamaConfig(), 'f32');
    const m = await ignis.loadModel(dir);
    try {
      const ac = new AbortController();
      const got: number[] = [];
      const err = await (async () => {
        for await (const { token: t } of m.generate([3, 17, 5], { maxNewTokens: 10, signal: ac.signal })) {
          got.push(t);
          if (got.length === 3) ac.abort();
        }
      })().then(() => null, (e) => e);
      expect(got.length).toBe(3);
      expect((err as Error)?.name).toBe('AbortError');
      // the model is fine after it
      const again: number[] = [];
      for await (const { token: t } of m.generate([3, 17, 5], { maxNewTokens: 4 })) again.push(t);
      expect(again.length).toBe(4);
    } finally {
      m.dispose();
    }
  });
});
