// Writing the reference's random checkpoints to disk in the Hugging Face layout (config.json +
// model.safetensors, or shards + index) with ignis's own safetensors writer.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ignis from '../../lib/index';
import { f32ToBf16Bits, f32ToF16Bits } from '../../lib/dtype';
import type { ModelConfig, Weights } from '../reference/models';

export type StoredDtype = 'f32' | 'bf16' | 'f16';

/** A temp dir holding config.json and the weights as safetensors (2 shards if `shards`). */
export async function writeCheckpoint(cfg: ModelConfig, w: Weights, dtype: StoredDtype, shards = false): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-ckpt-'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, torch_dtype: dtype === 'f32' ? 'float32' : dtype === 'bf16' ? 'bfloat16' : 'float16' }, null, 2));
  const raw: Record<string, ignis.RawTensor>[] = [{}, {}];
  let i = 0;
  for (const [name, t] of w) {
    const f32 = Float32Array.from(t.data);
    const data = dtype === 'f32' ? f32 : Uint16Array.from(f32, (x) => (dtype === 'bf16' ? f32ToBf16Bits(x) : f32ToF16Bits(x)));
    raw[shards ? i++ % 2 : 0][name] = { dtype, shape: t.shape, data };
  }
  if (!shards) {
    await ignis.saveSafetensors(path.join(dir, 'model.safetensors'), raw[0], { format: 'pt' });
  } else {
    const files = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    const weightMap: Record<string, string> = {};
    for (let s = 0; s < 2; s++) {
      await ignis.saveSafetensors(path.join(dir, files[s]), raw[s], { format: 'pt' });
      for (const name of Object.keys(raw[s])) weightMap[name] = files[s];
    }
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  }
  return dir;
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** max |a - b| / max |b| */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}
