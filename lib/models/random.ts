// Seeded random checkpoints in the Hugging Face layout (config.json + model.safetensors), for the
// demo and the benchmarks: a model of any size to load and time, with no download. The weights
// come from ignis.randn, so one seed gives the same checkpoint on every machine.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { FloatDType } from '../dtype';
import { rangeError } from '../errors';
import { cast, mul } from '../ops';
import { saveSafetensors } from '../safetensors';
import { full, randn, Tensor } from '../tensor';

export interface RandomCheckpointOptions {
  modelType: 'llama' | 'gpt2';
  hidden: number;
  layers: number;
  heads: number;
  /** llama only: key/value heads (grouped-query attention); default `heads` */
  kvHeads?: number;
  /** the MLP's inner width; default llama 2/3 of 4 * hidden rounded up to a multiple of 256 (SwiGLU), gpt2 4 * hidden */
  intermediate?: number;
  vocab: number;
  maxPositions: number;
  seed: number;
  /** the stored dtype; default f32 */
  dtype?: FloatDType;
}

export interface RandomCheckpoint {
  dir: string;
  /** the parameter count and the bytes of model.safetensors */
  params: number;
  bytes: number;
}

const TORCH_DTYPE: Record<FloatDType, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };

/**
 * Writes config.json and model.safetensors into `dir` (made if missing). Linear weights are
 * N(0, 1 / fan_in), so activations keep unit scale through the layers; embeddings N(0, 1 / hidden)
 * (the tied GPT-2 head then gives logits of unit scale); norm weights 1, norm biases 0, linear
 * biases N(0, 0.02^2).
 */
export async function writeRandomCheckpoint(dir: string, o: RandomCheckpointOptions): Promise<RandomCheckpoint> {
  const op = 'writeRandomCheckpoint';
  const pos = (name: string, x: unknown) => {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 1) throw rangeError(`${op}: ${name} must be a whole number >= 1, got ${String(x)}`);
    return x;
  };
  const H = pos('hidden', o.hidden), L = pos('layers', o.layers), heads = pos('heads', o.heads);
  const V = pos('vocab', o.vocab), P = pos('maxPositions', o.maxPositions);
  const kvHeads = pos('kvHeads', o.kvHeads ?? heads);
  const dtype: FloatDType = o.dtype ?? 'f32';
  if (H % heads || (H / heads) % 2) throw rangeError(`${op}: hidden ${H} must split into ${heads} heads of even size`);
  if (heads % kvHeads) throw rangeError(`${op}: heads ${heads} must be a multiple of kvHeads ${kvHeads}`);
  if (!Number.isSafeInteger(o.seed) || o.seed < 0) throw rangeError(`${op}: seed must be a whole number >= 0, got ${String(o.seed)}`);
  const headDim = H / heads;

  // Tensor k of the checkpoint draws from its own stream: seed and k mixed into 32 bits.
  let k = 0;
  const nextSeed = () => (Math.imul(o.seed + 1, 0x9e3779b1) + Math.imul(++k, 0x85ebca6b)) >>> 0;
  const tensors: Record<string, Tensor> = {};
  let params = 0;
  const put = (name: string, t: Tensor) => {
    const stored = t.dtype === dtype ? t : cast(t, dtype);
    if (stored !== t) t.dispose();
    tensors[name] = stored;
    params += stored.size;
  };
  // x ~ N(0, std^2): randn, then one multiply by a broadcast [1] scalar.
  const normal = (shape: number[], std: number) => {
    const z = randn(shape, { seed: nextSeed() });
    const s = full([1], std);
    const t = mul(z, s);
    z.dispose();
    s.dispose();
    return t;
  };
  const linear = (name: string, shape: number[], fanIn: number) => put(name, normal(shape, 1 / Math.sqrt(fanIn)));
  const fill = (name: string, n: number, value: number) => put(name, full([n], value));

  let config: Record<string, unknown>;
  try {
    if (o.modelType === 'llama') {
      const I = pos('intermediate', o.intermediate ?? 256 * Math.ceil((8 * H) / 3 / 256));
      const qd = heads * headDim, kd = kvHeads * headDim;
      config = {
        architectures: ['LlamaForCausalLM'],
        model_type: 'llama',
        vocab_size: V,
        hidden_size: H,
        intermediate_size: I,
        num_hidden_layers: L,
        num_attention_heads: heads,
        num_key_value_heads: kvHeads,
        head_dim: headDim,
        rms_norm_eps: 1e-5,
        rope_theta: 10000,
        max_position_embeddings: P,
        tie_word_embeddings: false,
        hidden_act: 'silu',
        torch_dtype: TORCH_DTYPE[dtype],
      };
      put('model.embed_tokens.weight', normal([V, H], 1 / Math.sqrt(H)));
      for (let i = 0; i < L; i++) {
        const p = `model.layers.${i}.`;
        fill(`${p}input_layernorm.weight`, H, 1);
        linear(`${p}self_attn.q_proj.weight`, [qd, H], H); // [out, in], as nn.Linear stores it
        linear(`${p}self_attn.k_proj.weight`, [kd, H], H);
        linear(`${p}self_attn.v_proj.weight`, [kd, H], H);
        linear(`${p}self_attn.o_proj.weight`, [H, qd], qd);
        fill(`${p}post_attention_layernorm.weight`, H, 1);
        linear(`${p}mlp.gate_proj.weight`, [I, H], H);
        linear(`${p}mlp.up_proj.weight`, [I, H], H);
        linear(`${p}mlp.down_proj.weight`, [H, I], I);
      }
      fill('model.norm.weight', H, 1);
      linear('lm_head.weight', [V, H], H);
    } else if (o.modelType === 'gpt2') {
      const I = pos('intermediate', o.intermediate ?? 4 * H);
      if (I !== 4 * H) throw rangeError(`${op}: gpt2 checkpoints here have intermediate = 4 * hidden (${4 * H}), got ${I}`);
      config = {
        architectures: ['GPT2LMHeadModel'],
        model_type: 'gpt2',
        vocab_size: V,
        n_embd: H,
        n_layer: L,
        n_head: heads,
        n_positions: P,
        n_ctx: P,
        layer_norm_epsilon: 1e-5,
        activation_function: 'gelu_new',
        torch_dtype: TORCH_DTYPE[dtype],
      };
      const bias = (name: string, n: number) => put(name, normal([n], 0.02));
      put('wte.weight', normal([V, H], 1 / Math.sqrt(H)));
      put('wpe.weight', normal([P, H], 1 / Math.sqrt(H)));
      for (let i = 0; i < L; i++) {
        const p = `h.${i}.`;
        fill(`${p}ln_1.weight`, H, 1);
        fill(`${p}ln_1.bias`, H, 0);
        linear(`${p}attn.c_attn.weight`, [H, 3 * H], H); // Conv1D: [in, out]
        bias(`${p}attn.c_attn.bias`, 3 * H);
        linear(`${p}attn.c_proj.weight`, [H, H], H);
        bias(`${p}attn.c_proj.bias`, H);
        fill(`${p}ln_2.weight`, H, 1);
        fill(`${p}ln_2.bias`, H, 0);
        linear(`${p}mlp.c_fc.weight`, [H, I], H);
        bias(`${p}mlp.c_fc.bias`, I);
        linear(`${p}mlp.c_proj.weight`, [I, H], I);
        bias(`${p}mlp.c_proj.bias`, H);
      }
      fill('ln_f.weight', H, 1);
      fill('ln_f.bias', H, 0);
    } else {
      throw rangeError(`${op}: modelType must be 'llama' or 'gpt2', got ${String((o as { modelType: unknown }).modelType)}`);
    }
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    const file = path.join(dir, 'model.safetensors');
    await saveSafetensors(file, tensors, { format: 'pt' });
    return { dir, params, bytes: (await fsp.stat(file)).size };
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}

