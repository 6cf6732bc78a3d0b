#!/usr/bin/env node
// `npx ignis-node serve <model dir> --port N`: loads a checkpoint and serves it over HTTP
// (OpenAI-compatible, http.ts) with continuous batching (models/serve.ts). SIGINT or SIGTERM
// stops taking requests, lets the running ones finish, and exits.
import { loadModel } from './models/index';
import { serveHttp } from './http';

const USAGE = `usage: ignis-node serve <model dir> [--port 8000] [--host 127.0.0.1] [--device cpu]
  [--dtype f32|f16|bf16] [--quantize int8] [--max-seq N] [--max-batch 16] [--max-tokens 64]
  [--max-queue 1024] [--kv-blocks N] [--block-size 16] [--timeout-ms N] [--model-id NAME]`;

const FLAGS = ['port', 'host', 'device', 'dtype', 'quantize', 'max-seq', 'max-batch', 'max-tokens', 'max-queue', 'kv-blocks', 'block-size', 'timeout-ms', 'model-id'];

function fail(msg: string): never {
  process.stderr.write(`ignis-node: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

export function parseArgs(argv: string[]): { dir: string; flags: Record<string, string> } {
  if (argv[0] !== 'serve' || !argv[1] || argv[1].startsWith('--')) fail('expected: serve <model dir>');
  const flags: Record<string, string> = {};
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const [name, inline] = a.startsWith('--') ? a.slice(2).split('=', 2) : [undefined, undefined];
    if (!name || !FLAGS.includes(name)) fail(`unknown argument ${a}`);
    const value = inline ?? argv[++i];
    if (value === undefined) fail(`--${name} needs a value`);
    flags[name] = value;
  }
  return { dir: argv[1], flags };
}

function int(flags: Record<string, string>, name: string): number | undefined {
  if (flags[name] === undefined) return undefined;
  const n = Number(flags[name]);
  if (!Number.isInteger(n) || n < 0) fail(`--${name} must be a whole number, got ${flags[name]}`);
  return n;
}

async function main(): Promise<void> {
  const { dir, flags } = parseArgs(process.argv.slice(2));
  if (flags.quantize !== undefined && flags.quantize !== 'int8') fail(`--quantize takes int8, got ${flags.quantize}`);
  const model = await loadModel(dir, {
    ...(flags.device ? { device: flags.device as 'cpu' } : {}),
    ...(flags.dtype ? { dtype: flags.dtype as 'f32' } : {}),
    ...(flags.quantize ? { quantize: 'int8' as const } : {}),
    ...(flags['max-seq'] ? { maxSeq: int(flags, 'max-seq') } : {}),
  });
  const server = await model.createServer({
    maxBatch: int(flags, 'max-batch'),
    maxTokens: int(flags, 'max-tokens'),
    maxQueue: int(flags, 'max-queue'),
    kvBlocks: int(flags, 'kv-blocks'),
    blockSize: int(flags, 'block-size'),
  });
  const svc = await serveHttp(model, server, { port: int(flags, 'port') ?? 8000, host: flags.host, modelId: flags['model-id'], timeoutMs: int(flags, 'timeout-ms') });
  process.stdout.write(`ignis-node: serving ${dir} at ${svc.url} (POST /v1/completions, /v1/chat/completions; GET /v1/models, /metrics)\n`);
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`ignis-node: ${sig}: finishing the running requests\n`);
    void svc.close().then(() => {
      model.dispose();
      process.exit(0);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`ignis-node: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
