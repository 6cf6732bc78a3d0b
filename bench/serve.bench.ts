// `npm run bench -- --only=serve`: the HTTP service (serveHttp over model.createServer) under
// load from a bounded loopback client: 1, 4, 16 and 64 concurrent clients, each streaming
// completions (a 32-token prompt, 64 new tokens) one after another for a fixed number of
// requests. Reports aggregate decode tokens/s, p50/p99 time to first token and inter-token
// latency, against issue 17's bars (16 clients >= 5x one client's tokens/s, p99 inter-token at
// 16 clients <= 3x one client's). The model is a random Llama of the model bench's quick shape
// (hidden 1024, 6 layers, vocab 32000), f32 and int8. It listens on 127.0.0.1 only and stops by
// itself.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ignis from '../lib/index';
import { writeRandomCheckpoint } from '../lib/models/random';
import { printTable } from './table';

// rows a step: the decoding sequences' rows, then prompt chunks up to this (a bound on the inter-token gap)
const MAX_TOKENS = Number(process.env.IGNIS_BENCH_SERVE_MAX_TOKENS ?? 64);
const SHAPE = { hidden: 1024, layers: 6, heads: 16, kvHeads: 4, intermediate: 2816, vocab: 32000, maxPositions: 2048 };

interface Sample {
  ttft: number;
  gaps: number[];
  tokens: number;
}

/** One streamed completion: its time to first token and the gaps between its tokens (ms). */
function stream(url: string, prompt: number[], maxTokens: number): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let last = 0, ttft = 0, tokens = 0, buf = '';
    const gaps: number[] = [];
    const req = http.request(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let at: number;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, at);
          buf = buf.slice(at + 2);
          if (!ev.startsWith('data: {')) continue;
          const n = (JSON.parse(ev.slice(6)) as { choices: { tokens: number[] }[] }).choices[0].tokens.length;
          if (!n) continue;
          const now = performance.now();
          if (tokens === 0) ttft = now - t0;
          else gaps.push(now - last);
          last = now;
          tokens += n;
        }
      });
      res.on('end', () => resolve({ ttft, gaps, tokens }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(JSON.stringify({ prompt, max_tokens: maxTokens, stream: true }));
  });
}

function q(xs: number[], p: number): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

export async function benchServe(quick: boolean, log: (s: string) => void): Promise<void> {
  const root = path.join(os.tmpdir(), 'ignis-bench-serve-1');
  if (!fs.existsSync(path.join(root, 'complete'))) {
    log('  serve: writing the checkpoint');
    fs.rmSync(root, { recursive: true, force: true });
    await writeRandomCheckpoint(path.join(root, 'f32'), { modelType: 'llama', seed: 11, dtype: 'f32', ...SHAPE });
    fs.writeFileSync(path.join(root, 'complete'), '');
  }
  const newTokens = quick ? 32 : 64;
  const perClient = quick ? 1 : 2; // requests each client makes, one after another
  const body: string[][] = [];
  for (const precision of quick ? ['f32'] : ['f32', 'int8']) {
    const model = await ignis.loadModel(path.join(root, 'f32'), { tokenizer: false, maxSeq: 512, ...(precision === 'int8' ? { quantize: 'int8' as const } : {}) });
    const server = await model.createServer({ maxBatch: 64, maxTokens: MAX_TOKENS });
    const svc = await ignis.serveHttp(model, server, { port: 0 });
    const rows: { clients: number; tps: number; ttft: number[]; gaps: number[] }[] = [];
    try {
      await stream(svc.url, [1, 2, 3], 4); // warm-up
      for (const clients of [1, 4, 16, 64]) {
        log(`  serve: ${precision}, ${clients} client(s)`);
        const samples: Sample[] = [];
        const t0 = performance.now();
        await Promise.all(
          Array.from({ length: clients }, async (_, c) => {
            for (let r = 0; r < perClient; r++) {
              const prompt = Array.from({ length: 32 }, (_, i) => 3 + ((i + 1) * (c * perClient + r + 7) * 7919) % 30000);
              samples.push(await stream(svc.url, prompt, newTokens));
            }
          }),
        );
        const secs = (performance.now() - t0) / 1000;
        const tokens = samples.reduce((a, s) => a + s.tokens, 0);
        rows.push({ clients, tps: tokens / secs, ttft: samples.map((s) => s.ttft), gaps: samples.flatMap((s) => s.gaps) });
      }
    } finally {
      await svc.close();
      model.dispose();
    }
    const one = rows[0];
    for (const r of rows)
      body.push([
        precision,
        String(r.clients),
        r.tps.toFixed(1),
        `${(r.tps / one.tps).toFixed(2)}x`,
        q(r.ttft, 0.5).toFixed(1),
        q(r.ttft, 0.99).toFixed(1),
        q(r.gaps, 0.5).toFixed(1),
        q(r.gaps, 0.99).toFixed(1),
        `${(q(r.gaps, 0.99) / q(one.gaps, 0.99)).toFixed(2)}x`,
      ]);
  }
  printTable(
    `serve: model.createServer() behind serveHttp, loopback clients streaming /v1/completions (32-token prompts, ${newTokens} new tokens, ${perClient} request(s) a client); random Llama hidden ${SHAPE.hidden}, ${SHAPE.layers} layers, vocab ${SHAPE.vocab}; bars: 16 clients >= 5x one client's tokens/s, p99 inter-token at 16 <= 3x one client's`,
    ['weights', 'clients', 'tokens/s', 'vs 1 client', 'TTFT p50 ms', 'TTFT p99 ms', 'ITL p50 ms', 'ITL p99 ms', 'ITL p99 vs 1'],
    body,
  );
}

// Speculative decoding's pair: a target of 8 layers whose layers 1-7 add a fraction alpha of
// their attention and MLP outputs (o_proj and down_proj scaled), and the draft made of its layer
// 0, embedding, norm and head. alpha 0: the draft is the target (every token kept); larger alpha,
// fewer kept. A vocabulary of 4096 keeps the head small beside a layer, as a real draft's would be.
const SPEC = { hidden: 1024, layers: 8, heads: 16, kvHeads: 4, intermediate: 2816, vocab: 4096, maxPositions: 2048 };

async function specPair(root: string, alpha: number): Promise<{ target: string; draft: string }> {
  const base = path.join(root, 'base');
  if (!fs.existsSync(path.join(base, 'config.json'))) await writeRandomCheckpoint(base, { modelType: 'llama', seed: 5, dtype: 'f32', ...SPEC });
  const target = path.join(root, `target-${alpha}`), draft = path.join(root, 'draft');
  const cfg = JSON.parse(fs.readFileSync(path.join(base, 'config.json'), 'utf8')) as Record<string, unknown>;
  const f = await ignis.openSafetensors(path.join(base, 'model.safetensors'));
  try {
    const write = async (dir: string, layers: number, scale: number) => {
      if (fs.existsSync(path.join(dir, 'model.safetensors'))) return;
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: layers }));
      const out: Record<string, ignis.RawTensor> = {};
      for (const name of f.names()) {
        const layer = /layers\.(\d+)\./.exec(name);
        if (layer && +layer[1] >= layers) continue;
        const t = await f.read(name);
        let raw = await ignis.rawTensor(t);
        t.dispose();
        if (layer && +layer[1] > 0 && /(o_proj|down_proj)\.weight$/.test(name)) {
          const d = raw.data;
          const f32 = new Float32Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
          for (let i = 0; i < f32.length; i++) f32[i] *= scale;
          raw = { ...raw, data: f32 };
        }
        out[name] = raw;
      }
      await ignis.saveSafetensors(path.join(dir, 'model.safetensors'), out);
    };
    await write(target, SPEC.layers, alpha);
    await write(draft, 1, 1);
  } finally {
    await f.close();
  }
  return { target, draft };
}

export async function benchSpeculative(quick: boolean, log: (s: string) => void): Promise<void> {
  const root = path.join(os.tmpdir(), 'ignis-bench-spec-1');
  const prompt = Array.from({ length: 32 }, (_, i) => 3 + ((i + 1) * 7919) % 4000);
  const n = quick ? 32 : 96;
  const body: string[][] = [];
  const draftModel = await ignis.loadModel((await specPair(root, 0)).draft, { tokenizer: false, maxSeq: 512 });
  try {
    for (const alpha of quick ? [0, 0.3] : [0, 0.05, 0.15, 0.3, 1]) {
      log(`  speculative: alpha ${alpha}`);
      const { target } = await specPair(root, alpha);
      const model = await ignis.loadModel(target, { tokenizer: false, maxSeq: 512 });
      try {
        const run = async (opts: ignis.GenerateOptions) => {
          const t0 = performance.now();
          const tokens: number[] = [];
          for await (const p of model.generate(prompt, { maxNewTokens: n, eos: false, ...opts })) tokens.push(p.token);
          return { ms: performance.now() - t0, tokens };
        };
        await run({ maxNewTokens: 4 }); // warm-up (and the serving graph's compile)
        await run({ maxNewTokens: 4, draft: draftModel });
        for (const k of [2, 4, 6]) {
          let proposed = 0, kept = 0;
          const plain = await run({});
          const spec = await run({ draft: draftModel, draftTokens: k, onDraftRound: (p, q) => ((proposed += p), (kept += q)) });
          const same = plain.tokens.every((t, i) => t === spec.tokens[i]);
          body.push([String(alpha), String(k), (kept / proposed).toFixed(2), (n / plain.ms * 1000).toFixed(1), (n / spec.ms * 1000).toFixed(1), `${(plain.ms / spec.ms).toFixed(2)}x`, same ? 'yes' : 'NO']);
        }
      } finally {
        model.dispose();
      }
    }
  } finally {
    draftModel.dispose();
  }
  printTable(
    `speculative decoding: greedy, ${n} tokens after a 32-token prompt; target: random Llama hidden ${SPEC.hidden}, ${SPEC.layers} layers, vocab ${SPEC.vocab}, layers 1-7 scaled by alpha; draft: its layer 0 alone (same embedding and head)`,
    ['alpha', 'draft tokens', 'acceptance', 'plain tok/s', 'speculative tok/s', 'speedup', 'same tokens'],
    body,
  );
}
