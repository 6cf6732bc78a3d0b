// The OpenAI-compatible HTTP service (serveHttp, and the ignis-node serve command): completions
// as generate() gives them, streamed or not; coded JSON errors (400, 404, 429); Prometheus text;
// a client that disconnects frees its sequence within a step; close() drains a running request;
// the command starts on a given port and exits 0 on SIGTERM. Loopback only, small random Llama.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as ignis from '../lib/index';
import { randomLlama, tinyLlamaConfig } from './reference/checkpoints';
import { removeDir, writeCheckpoint } from './models/helpers';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));
const dist = path.resolve(__dirname, '..', 'dist', 'cli.js');

function post(url: string, body: unknown, onData?: (chunk: string, req: http.ClientRequest) => void): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
        onData?.(c, req);
      });
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      res.on('error', reject);
      res.on('aborted', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const sseTokens = (body: string) =>
  body.split('\n\n').filter((l) => l.startsWith('data: {')).flatMap((l) => (JSON.parse(l.slice(6)) as { choices: { tokens: number[] }[] }).choices[0].tokens);

describe('HTTP service', () => {
  it('completions equal generate(); streaming; errors; metrics; a disconnect frees its sequence; close() drains', async () => {
    const dir = await writeCheckpoint(tinyLlamaConfig(), randomLlama(tinyLlamaConfig(), 7), 'f32');
    dirs.push(dir);
    const model = await ignis.loadModel(dir, { tokenizer: false, maxSeq: 64 });
    const server = await model.createServer({ maxBatch: 2, maxTokens: 16, blockSize: 4, maxQueue: 1 });
    const svc = await ignis.serveHttp(model, server, { port: 0, modelId: 'tiny' });
    try {
      const prompt = [5, 9, 2, 44, 13];
      const alone: number[] = [];
      for await (const p of model.generate(prompt, { maxNewTokens: 6, eos: false })) alone.push(p.token);
      const r = await post(`${svc.url}/v1/completions`, { model: 'tiny', prompt, max_tokens: 6 });
      expect(r.status).toBe(200);
      const j = JSON.parse(r.body);
      expect(j.choices[0].tokens).toEqual(alone);
      expect(j.choices[0].finish_reason).toBe('length');
      expect(j.usage).toEqual({ prompt_tokens: 5, completion_tokens: 6, total_tokens: 11 });
      const s = await post(`${svc.url}/v1/completions`, { prompt, max_tokens: 6, stream: true });
      expect(s.body.trim().endsWith('data: [DONE]')).toBe(true);
      expect(sseTokens(s.body)).toEqual(alone);
      const models = await new Promise<string>((res) => http.get(`${svc.url}/v1/models`, (m) => { let t = ''; m.on('data', (c) => (t += c)); m.on('end', () => res(t)); }));
      expect(JSON.parse(models).data[0].id).toBe('tiny');
      // errors: bad ids, no tokenizer for chat, a bad body, no route
      const bad = await post(`${svc.url}/v1/completions`, { prompt: [1, 5000] });
      expect(bad.status).toBe(400);
      expect(JSON.parse(bad.body).error.code).toBe('E_INDEX');
      expect((await post(`${svc.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }] })).status).toBe(400);
      expect((await post(`${svc.url}/v1/completions`, 'not an object')).status).toBe(400);
      expect((await post(`${svc.url}/v2/nothing`, {})).status).toBe(404);
      const metrics = await new Promise<string>((res) => http.get(`${svc.url}/metrics`, (m) => { let t = ''; m.on('data', (c) => (t += c)); m.on('end', () => res(t)); }));
      expect(metrics).toMatch(/^ignis_output_tokens_total 12$/m);
      expect(metrics).toMatch(/^ignis_time_to_first_token_seconds_count 2$/m);
      // 429: five at once, where two run (maxBatch 2) and one waits (maxQueue 1): the others are refused
      const all = await Promise.all(Array.from({ length: 5 }, () => post(`${svc.url}/v1/completions`, { prompt, max_tokens: 59, stream: true })));
      const refused = all.filter((x) => x.status === 429);
      expect(refused.length, all.map((x) => x.status).join(' ')).toBeGreaterThan(0);
      for (const x of refused) expect(JSON.parse(x.body).error.code).toBe('E_QUEUE_FULL');
      for (const x of all.filter((y) => y.status !== 429)) expect(sseTokens(x.body), `${x.status}`).toHaveLength(59);
      // a client that disconnects after its first token: its sequence leaves at the next step
      let cut = false;
      const gone = post(`${svc.url}/v1/completions`, { prompt, max_tokens: 50, stream: true }, (_c, req) => {
        if (!cut) {
          cut = true;
          req.destroy();
        }
      }).catch(() => null);
      await gone;
      const t0 = Date.now();
      while (server.metrics().requests.running > 0 && Date.now() - t0 < 2000) await new Promise((res) => setTimeout(res, 2));
      expect(server.metrics().requests.running).toBe(0);
      expect(server.metrics().kvBlocks.used).toBe(0);
      // close() while a request runs: it finishes with 200, then the service is gone
      const running = post(`${svc.url}/v1/completions`, { prompt, max_tokens: 20 });
      await new Promise((res) => setTimeout(res, 20));
      const closed = svc.close();
      const done = await running;
      expect(done.status).toBe(200);
      expect(JSON.parse(done.body).choices[0].tokens).toHaveLength(20);
      await closed;
      await expect(post(`${svc.url}/v1/completions`, { prompt })).rejects.toThrow();
    } finally {
      await svc.close().catch(() => undefined);
      model.dispose();
    }
  });

  it.skipIf(!fs.existsSync(dist))('ignis-node serve: usage errors exit 2; it serves on --port and exits 0 on SIGTERM', async () => {
    const u = spawnSync(process.execPath, [dist, 'serve'], { encoding: 'utf8' });
    expect(u.status).toBe(2);
    expect(u.stderr).toContain('usage: ignis-node serve');
    expect(spawnSync(process.execPath, [dist, 'serve', 'x', '--bogus', '1'], { encoding: 'utf8' }).stderr).toContain('unknown argument --bogus');
    const dir = await writeCheckpoint(tinyLlamaConfig(), randomLlama(tinyLlamaConfig(), 8), 'f32');
    dirs.push(dir);
    const child = spawn(process.execPath, [dist, 'serve', dir, '--port', '0', '--max-seq', '64', '--model-id', 'cli'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (c: string) => {
        out += c;
        const m = /at (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]);
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
    });
    const r = await post(`${url}/v1/completions`, { prompt: [1, 2, 3], max_tokens: 3 });
    expect(JSON.parse(r.body).model).toBe('cli');
    const code = await new Promise<number | null>((resolve) => {
      child.on('exit', (c) => resolve(c));
      child.kill('SIGTERM');
    });
    expect(code).toBe(0);
  }, 60_000);
});
