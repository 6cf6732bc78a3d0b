// An OpenAI-compatible HTTP service over a Server (continuous batching), on node:http: an example
// of using the library, kept small. POST /v1/completions (prompt as text or token ids) and
// /v1/chat/completions, streamed with server-sent events when asked; GET /v1/models, /metrics
// (Prometheus text through prom-client, an optional peer dependency) and /health. Errors are
// JSON { error: { message, type, code } }: 400 for a bad request, 404, 429 when the queue is
// full, 503 while shutting down or past a request's deadline. A client that disconnects aborts
// its request: its sequence leaves the batch at the next step.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { IgnisError } from './errors';
import type { ChatMessage } from './tokenizer/chat';
import type { FinishReason, GeneratedPiece, LanguageModel } from './models/index';
import type { RequestMetrics, Server, ServeGenerateOptions } from './models/serve';

export interface HttpOptions {
  port?: number;
  /** default 127.0.0.1 */
  host?: string;
  /** the id /v1/models lists and responses name; default 'ignis' */
  modelId?: string;
  /** per request, unless the request's own is shorter; default none */
  timeoutMs?: number;
}

export interface HttpService {
  readonly port: number;
  readonly url: string;
  /** Stops taking connections and requests (503), lets the running ones finish, then closes. */
  close(): Promise<void>;
}

interface Body {
  model?: string;
  prompt?: string | number[];
  messages?: ChatMessage[];
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  seed?: number;
  stop?: string | (string | number)[];
  stream?: boolean;
}

class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

function statusOf(e: unknown): [number, string] {
  if (e instanceof HttpError) return [e.status, e.code];
  const code = (e as { code?: string })?.code ?? 'E_INTERNAL';
  if (code === 'E_QUEUE_FULL') return [429, code];
  if (code === 'E_TIMEOUT' || code === 'E_DEVICE_LOST') return [503, code];
  if (e instanceof TypeError || e instanceof RangeError || ['E_ARGUMENT', 'E_INDEX', 'E_SHAPE', 'E_TYPE', 'E_RANGE'].includes(code)) return [400, code];
  return [500, code];
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: http.ServerResponse, e: unknown): void {
  const [status, code] = statusOf(e);
  const message = e instanceof Error ? e.message : String(e);
  const error = { message, type: status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error', code };
  if (res.headersSent) {
    if (!res.writableEnded) res.end(`data: ${JSON.stringify({ error })}\n\ndata: [DONE]\n\n`);
    return;
  }
  sendJson(res, status, { error });
}

async function readBody(req: http.IncomingMessage, limit = 16 << 20): Promise<Body> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new HttpError(413, 'E_ARGUMENT', `the request body is over ${limit} bytes`);
    chunks.push(c as Buffer);
  }
  try {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('not an object');
    return body as Body;
  } catch (e) {
    throw new HttpError(400, 'E_ARGUMENT', `the request body must be a JSON object (${(e as Error).message})`);
  }
}

/** The request's generation options, OpenAI's names to ignis's. */
function generateOptions(b: Body, signal: AbortSignal, timeoutMs: number | undefined, onMetrics: (m: RequestMetrics) => void): ServeGenerateOptions {
  const stop = b.stop === undefined ? undefined : typeof b.stop === 'string' ? [b.stop] : b.stop;
  const o: ServeGenerateOptions = { maxNewTokens: b.max_completion_tokens ?? b.max_tokens ?? 16, signal, onMetrics };
  if (stop !== undefined) o.stop = stop;
  if (b.temperature !== undefined) o.temperature = b.temperature;
  if (b.top_p !== undefined) o.topP = b.top_p;
  if (b.top_k !== undefined) o.topK = b.top_k;
  if (b.seed !== undefined) o.seed = b.seed;
  if (timeoutMs !== undefined) o.timeoutMs = timeoutMs;
  return o;
}

/** Prometheus metrics over the server's figures, where prom-client is installed; else null. */
function prometheus(server: Server): { text: () => Promise<string>; observe: (m: RequestMetrics) => void; contentType: string } | null {
  let prom: typeof import('prom-client');
  try {
    prom = require('prom-client') as typeof import('prom-client'); // eslint-disable-line @typescript-eslint/no-require-imports
  } catch {
    return null;
  }
  const registry = new prom.Registry();
  const m = () => server.metrics();
  const gauge = (name: string, help: string, value: () => number) =>
    new prom.Gauge({ name, help, registers: [registry], collect() { this.set(value()); } });
  gauge('ignis_requests_waiting', 'requests waiting for a slot', () => m().requests.waiting);
  gauge('ignis_requests_running', 'requests in the running batch', () => m().requests.running);
  gauge('ignis_kv_blocks_used', 'KV blocks held by sequences', () => m().kvBlocks.used);
  gauge('ignis_kv_blocks_free', 'KV blocks free (some keeping a prompt prefix)', () => m().kvBlocks.free);
  gauge('ignis_batch_mean', 'mean sequences a step', () => m().meanBatch);
  gauge('ignis_output_tokens_per_second', 'generated tokens per second since start', () => m().outputTokensPerSecond);
  const counter = (name: string, help: string, value: () => number) =>
    new prom.Counter({ name, help, registers: [registry], collect() { this.reset(); this.inc(value()); } });
  counter('ignis_output_tokens_total', 'tokens generated', () => m().outputTokens);
  counter('ignis_requests_finished_total', 'requests finished', () => m().requests.finished);
  counter('ignis_requests_failed_total', 'requests failed', () => m().requests.failed);
  counter('ignis_requests_rejected_total', 'requests refused with a full queue', () => m().requests.rejected);
  const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
  const hist = (name: string, help: string) => new prom.Histogram({ name, help, buckets, registers: [registry] });
  const ttft = hist('ignis_time_to_first_token_seconds', 'time from a request to its first token');
  const itl = hist('ignis_inter_token_seconds', 'time between a request\'s tokens');
  const queue = hist('ignis_queue_seconds', 'time a request waited for a slot');
  return {
    contentType: registry.contentType,
    text: () => registry.metrics(),
    observe: (r) => {
      queue.observe(r.queueMs / 1000);
      if (r.timeToFirstTokenMs !== null) ttft.observe(r.timeToFirstTokenMs / 1000);
      for (const g of r.interTokenMs) itl.observe(g / 1000);
    },
  };
}

/** Serves `server` (made by model.createServer()) over HTTP. */
export async function serveHttp(model: LanguageModel, server: Server, opts: HttpOptions = {}): Promise<HttpService> {
  const modelId = opts.modelId ?? 'ignis';
  const prom = prometheus(server);
  let closing = false;
  const inFlight = new Set<Promise<void>>();

  const complete = async (req: http.IncomingMessage, res: http.ServerResponse, chat: boolean) => {
    const b = await readBody(req);
    if (closing) throw new HttpError(503, 'E_CLOSING', 'the server is shutting down');
    if (chat ? !Array.isArray(b.messages) : b.prompt === undefined)
      throw new HttpError(400, 'E_ARGUMENT', chat ? 'messages (an array of { role, content }) is required' : 'prompt (a text or token ids) is required');
    if (chat && !model.tokenizer) throw new HttpError(400, 'E_ARGUMENT', "chat needs the model's tokenizer (tokenizer.json), and this model has none");
    const ac = new AbortController();
    // a client that goes away aborts its request: the sequence leaves at the next step
    res.on('close', () => {
      if (!res.writableFinished) ac.abort(new IgnisError('E_ARGUMENT', 'the client disconnected'));
    });
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
    const created = Math.floor(Date.now() / 1000);
    let usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
    const o = generateOptions(b, ac.signal, opts.timeoutMs, (m) => {
      usage = { prompt_tokens: m.promptTokens, completion_tokens: m.outputTokens, total_tokens: m.promptTokens + m.outputTokens };
      prom?.observe(m);
    });
    const gen = server.generate((chat ? b.messages : b.prompt) as never, o);
    const object = chat ? 'chat.completion' : 'text_completion';
    const chunk = (piece: GeneratedPiece | null, finish: FinishReason | null) => {
      const finish_reason = finish === 'eos' || finish === 'stop' ? 'stop' : finish;
      return chat
        ? { id, object: 'chat.completion.chunk', created, model: modelId, choices: [{ index: 0, delta: piece ? { content: piece.text } : {}, finish_reason }] }
        : { id, object, created, model: modelId, choices: [{ index: 0, text: piece?.text ?? '', tokens: piece ? [piece.token] : [], finish_reason }] };
    };
    if (b.stream) {
      // the first piece before the headers: a refused request still gets its status code
      let first = await gen.next();
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      for (;;) {
        if (first.done) {
          res.write(`data: ${JSON.stringify({ ...chunk(null, first.value), usage })}\n\n`);
          break;
        }
        res.write(`data: ${JSON.stringify(chunk(first.value, null))}\n\n`);
        first = await gen.next();
      }
      res.end('data: [DONE]\n\n');
      return;
    }
    let text = '';
    const tokens: number[] = [];
    let r = await gen.next();
    for (; !r.done; r = await gen.next()) {
      text += r.value.text;
      tokens.push(r.value.token);
    }
    const finish_reason = r.value === 'eos' || r.value === 'stop' ? 'stop' : r.value;
    const choice = chat ? { index: 0, message: { role: 'assistant', content: text }, finish_reason } : { index: 0, text, tokens, finish_reason };
    sendJson(res, 200, { id, object, created, model: modelId, choices: [choice], usage });
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = (req.url ?? '/').split('?')[0];
    try {
      if (req.method === 'GET' && url === '/v1/models') return sendJson(res, 200, { object: 'list', data: [{ id: modelId, object: 'model', created: 0, owned_by: 'ignis' }] });
      if (req.method === 'GET' && url === '/health') return sendJson(res, closing ? 503 : 200, { status: closing ? 'closing' : 'ok' });
      if (req.method === 'GET' && url === '/metrics') {
        if (!prom) throw new HttpError(501, 'E_UNAVAILABLE', 'Prometheus metrics need the prom-client package (npm install prom-client)');
        const text = await prom.text();
        res.writeHead(200, { 'content-type': prom.contentType });
        return void res.end(text);
      }
      if (req.method === 'POST' && (url === '/v1/completions' || url === '/v1/chat/completions')) return await complete(req, res, url === '/v1/chat/completions');
      throw new HttpError(404, 'E_NOT_FOUND', `no route ${req.method} ${url}`);
    } catch (e) {
      sendError(res, e);
    }
  };

  const srv = http.createServer((req, res) => {
    const p = handle(req, res);
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(opts.port ?? 8000, opts.host ?? '127.0.0.1', () => resolve());
  });
  const port = (srv.address() as AddressInfo).port;
  return {
    port,
    url: `http://${opts.host ?? '127.0.0.1'}:${port}`,
    async close() {
      closing = true;
      const stopped = new Promise<void>((r) => srv.close(() => r()));
      srv.closeIdleConnections();
      while (inFlight.size) await Promise.allSettled([...inFlight]);
      await server.close();
      srv.closeAllConnections();
      await stopped;
    },
  };
}
