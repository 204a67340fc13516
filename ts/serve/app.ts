// An OpenAI-compatible HTTP server over a loaded Model (fastify): POST /v1/completions, POST
// /v1/chat/completions (server-sent events with `stream: true`), GET /v1/models (the base and each adapter;
// a request's `model` picks one). Generations go through the ModelGate (a FIFO with a bound: 429 when full).
// A client that disconnects aborts its generation; close() shuts down gracefully (see shutdown.ts).
//
//   const { address, close } = await serve(model, tokenizer, { port: 0, adapters: { sql: 'out/sql/final' } });
import { timingSafeEqual, randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { loadPromptStyle, PromptStyle } from '../data/prompts.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { LitloraError } from '../errors.js';
import type { GenerationStats, StopReason, TextGenerateOptions } from '../generate/generate.js';
import type { LoadOptions } from '../model/load.js';
import type { Model } from '../model/model.js';
import { promptStyleRenderer, type ChatRenderer } from './chat_render.js';
import { ModelGate } from './model_gate.js';
import { OpenAIError, parseChatRequest, parseCompletionRequest, type RequestCommon, type RequestSampling } from './openai_request.js';
import { InFlight, shutDown } from './shutdown.js';
import { SseStream } from './sse.js';
import { StopStrings } from './stop_strings.js';

export interface ServeOptions {
  /** Default 127.0.0.1 (only this machine); '0.0.0.0' serves the network. */
  host?: string;
  /** Default 8000 (litgpt's); 0 picks a free port (see the returned address). */
  port?: number;
  /** Requests must send `Authorization: Bearer <apiKey>` (else 401). Default: none needed. */
  apiKey?: string | null;
  /** Requests that may wait for a place in the decoding batch; more get 429. Default 1024. */
  maxQueue?: number;
  /** Requests that decode together (the model's maxBatch). Default: the model's (16). */
  maxBatch?: number;
  /** Largest request body in bytes (413 above it). Default 1 MiB. */
  bodyLimit?: number;
  /** The base model's id in /v1/models and `model` (default: the model's config name). */
  modelName?: string;
  /** The base's prompt style for chat requests (default: from its config name, as litgpt picks it). */
  promptStyle?: PromptStyle;
  /** Adapters by name: LoRA folders on this base, served as models of that name. */
  adapters?: Record<string, string>;
  /** How adapter folders load (cwd for relative paths, dtype, device). */
  adapterLoad?: LoadOptions;
  /** Sampling for requests that leave it out (litgpt serve's defaults: 50 tokens, temperature 0.8, top_k 50, top_p 1). */
  defaults?: { maxNewTokens?: number; temperature?: number; topK?: number | null; topP?: number; stream?: boolean };
  /** Chat messages → prompt text (the chat_template hook); default: the prompt style's (chat_render.ts). */
  renderChat?: ChatRenderer;
  /** One line per finished request (method, path, model, status, token counts, finish reason). */
  log?: (line: string) => void;
}

export interface ServerHandle {
  /** `http://host:port`, the port as bound (useful with port 0). */
  address: string;
  port: number;
  /** Stops accepting, lets requests in flight finish for `graceMs` (default 10 s), aborts the rest, unloads the adapters. */
  close(options?: { graceMs?: number }): Promise<void>;
}

interface Target {
  adapter: string | null;
  style: PromptStyle;
}

const created = () => Math.floor(Date.now() / 1000);
const finishReason = (r: StopReason) => (r === 'stop' ? 'stop' : 'length');
const usage = (s: GenerationStats) => ({ prompt_tokens: s.promptTokens, completion_tokens: s.generatedTokens, total_tokens: s.promptTokens + s.generatedTokens });

/** A LitloraError (or anything else) as the OpenAI error a client gets. */
function toOpenAIError(e: unknown): OpenAIError {
  if (e instanceof OpenAIError) return e;
  const code = (e as { code?: unknown })?.code;
  const message = e instanceof Error ? e.message : String(e);
  switch (code) {
    case 'ERR_QUEUE_FULL': return new OpenAIError(429, message, 'rate_limit_error', null, 'queue_full');
    case 'ERR_ADAPTER_NOT_FOUND': return new OpenAIError(404, message, 'invalid_request_error', 'model', 'model_not_found');
    case 'ERR_DISPOSED': return new OpenAIError(503, message, 'server_error', null, 'server_shutting_down');
    case 'ERR_ARG': case 'ERR_RANGE': return new OpenAIError(400, message, 'invalid_request_error', null, 'invalid_value');
    default: return new OpenAIError(500, `${typeof code === 'string' ? `[${code}] ` : ''}${message}`, 'server_error', null, 'internal_error');
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed || res.writableEnded) { resolve(); return; }
    res.once('close', () => resolve());
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(body), () => resolve());
  });
}

function sameKey(given: string, expected: string): boolean {
  const a = Buffer.from(given), b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Serves `model` (and `options.adapters`) over HTTP until close(). The model stays the caller's to dispose. */
export async function serve(model: Model, tokenizer: Tokenizer, options: ServeOptions = {}): Promise<ServerHandle> {
  const baseName = options.modelName ?? String(model.config.name);
  const baseStyle = options.promptStyle ?? PromptStyle.fromConfig({ name: String(model.config.name) });
  const render = options.renderChat ?? promptStyleRenderer;
  const defaults = options.defaults ?? {};
  const log = options.log ?? (() => {});
  const gate = new ModelGate(model, tokenizer, { maxQueue: options.maxQueue ?? 1024 });
  if (options.maxBatch !== undefined) model.maxBatch = options.maxBatch;
  const styles = new Map<string, PromptStyle>();
  try {
    for (const [name, dir] of Object.entries(options.adapters ?? {})) {
      if (name === baseName) throw new LitloraError('ERR_ARG', `adapter name ${JSON.stringify(name)} is the base model's id; pick another name`);
      await gate.addAdapter(name, dir, options.adapterLoad);
      styles.set(name, loadPromptStyle(dir));
    }
  } catch (e) {
    await gate.close(); // the adapters loaded before the failure
    throw e;
  }
  const inflight = new InFlight();
  let closing = false;

  // Loaded on first use: `import 'litlora'` does not pay for the HTTP stack.
  const { default: Fastify } = await import('fastify');
  const app = Fastify({ bodyLimit: options.bodyLimit ?? 1024 * 1024, logger: false, return503OnClosing: true });

  app.setErrorHandler((error, _req, reply) => {
    // fastify's own errors (body too large, bad JSON, wrong content type) carry their HTTP status.
    const status = (error as { statusCode?: number }).statusCode;
    const e = error instanceof OpenAIError || !status ? toOpenAIError(error)
      : new OpenAIError(status, (error as Error).message, status >= 500 ? 'server_error' : 'invalid_request_error', null, (error as { code?: string }).code ?? null);
    reply.code(e.status).send(e.body());
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send(new OpenAIError(404, `${req.method} ${req.url} is not a route of litlora serve; it has POST /v1/completions, POST /v1/chat/completions and GET /v1/models.`, 'invalid_request_error', null, 'unknown_url').body());
  });
  app.addHook('onRequest', async (req, reply) => {
    if (closing) {
      return reply.code(503).send(new OpenAIError(503, 'the server is shutting down', 'server_error', null, 'server_shutting_down').body());
    }
    if (!options.apiKey) return;
    const header = req.headers.authorization ?? '';
    const key = header.startsWith('Bearer ') ? header.slice(7) : '';
    if (!sameKey(key, options.apiKey)) {
      return reply.code(401).send(new OpenAIError(401, header ? 'Incorrect API key provided.' : 'No API key provided: send `Authorization: Bearer <key>` (the server\'s --api_key).', 'invalid_request_error', null, 'invalid_api_key').body());
    }
  });

  const targetFor = (name: string): Target => {
    if (name === baseName) return { adapter: null, style: baseStyle };
    const style = styles.get(name);
    if (!style) {
      throw new OpenAIError(404, `The model ${JSON.stringify(name)} does not exist here; GET /v1/models lists ${[baseName, ...styles.keys()].join(', ')}.`, 'invalid_request_error', 'model', 'model_not_found');
    }
    return { adapter: name, style };
  };

  const sampling = (s: RequestSampling): TextGenerateOptions => ({
    maxNewTokens: s.maxTokens ?? defaults.maxNewTokens ?? 50,
    temperature: s.temperature ?? defaults.temperature ?? 0.8,
    topK: s.topK !== undefined ? s.topK : defaults.topK !== undefined ? defaults.topK : 50,
    topP: s.topP ?? defaults.topP ?? 1,
    seed: s.seed ?? 1234,
  });

  type Kind = 'completion' | 'chat';
  /** Runs one generation for a route, streamed or whole; errors before the first token are plain HTTP errors. */
  async function run(kind: Kind, req: FastifyRequest, reply: FastifyReply, r: RequestCommon, text: string,
    options: TextGenerateOptions & { adapter: string | null }): Promise<void> {
    const { model, includeUsage, stop } = r;
    const stream = r.stream ?? defaults.stream ?? false;
    reply.hijack();
    const res = reply.raw;
    const controller = new AbortController();
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
    const when = created();
    let status = 200;
    let stats: GenerationStats | null = null;
    // Stop strings end the generation through a signal of their own, so that its stats (token counts) still come back.
    const stopper = new StopStrings(stop);
    const stopAt = new AbortController();
    const finish = (s: GenerationStats) => (stopper.stopped ? 'stop' : s.reason === 'cancelled' ? 'cancelled' : finishReason(s.reason));
    // A client that goes away before its response is complete: stop its generation (or its wait in the queue).
    res.on('close', () => { if (!res.writableFinished) controller.abort(); });
    await inflight.track(controller, async () => {
      const it = gate.generate(text, { ...options, signal: AbortSignal.any([controller.signal, stopAt.signal]) });
      try {
        let next: IteratorResult<string, GenerationStats>;
        try {
          next = await it.next();
        } catch (e) {
          const err = toOpenAIError(e);
          status = err.status;
          await sendJson(res, err.status, err.body());
          return;
        }
        const chunk = (piece: string | null, finish: string | null) => kind === 'chat'
          ? { id, object: 'chat.completion.chunk', created: when, model, choices: [{ index: 0, delta: piece === null ? {} : { content: piece }, logprobs: null, finish_reason: finish }] }
          : { id, object: 'text_completion', created: when, model, choices: [{ index: 0, text: piece ?? '', logprobs: null, finish_reason: finish }] };
        // Cancelled before its first token (a disconnect or shutdown while it waited): a plain HTTP answer, no stream.
        const sse = stream && !(next.done && next.value.reason === 'cancelled') ? new SseStream(res) : null;
        if (sse && kind === 'chat') {
          sse.send({ id, object: 'chat.completion.chunk', created: when, model, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
        }
        let whole = '';
        const emit = (piece: string) => {
          if (!piece) return;
          if (sse) sse.send(chunk(piece, null));
          else whole += piece;
        };
        try {
          while (!next.done) {
            emit(stopper.push(next.value));
            if (stopper.stopped) stopAt.abort();
            next = await it.next();
          }
          emit(stopper.flush());
        } catch (e) {
          const err = toOpenAIError(e);
          status = err.status;
          if (sse) sse.fail(err.body());
          else await sendJson(res, err.status, err.body());
          return;
        }
        stats = next.value;
        if (finish(stats) === 'cancelled') {
          // Aborted by a disconnect (nobody to answer) or by shutdown (the client is told).
          const err = new OpenAIError(503, 'the server shut down before this request finished', 'server_error', null, 'server_shutting_down');
          status = closing ? 503 : 499;
          if (sse) sse.fail(err.body());
          else await sendJson(res, 503, err.body());
          return;
        }
        if (sse) {
          sse.send(chunk(null, finish(stats)));
          if (includeUsage) sse.send({ id, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: when, model, choices: [], usage: usage(stats) });
          sse.done();
          return;
        }
        const choice = kind === 'chat'
          ? { index: 0, message: { role: 'assistant', content: whole }, logprobs: null, finish_reason: finish(stats) }
          : { index: 0, text: whole, logprobs: null, finish_reason: finish(stats) };
        await sendJson(res, 200, { id, object: kind === 'chat' ? 'chat.completion' : 'text_completion', created: when, model, choices: [choice], usage: usage(stats) });
      } finally {
        await it.return(undefined as never);
        const s = stats as GenerationStats | null;
        log(`${req.method} ${req.url} model=${model} status=${status} prompt_tokens=${s?.promptTokens ?? 0} ` +
          `completion_tokens=${s?.generatedTokens ?? 0} finish=${s ? finish(s) : 'none'}`);
      }
    });
  }

  app.post('/v1/completions', async (req, reply) => {
    const r = parseCompletionRequest(req.body);
    const target = targetFor(r.model);
    await run('completion', req, reply, r, r.prompt, { ...sampling(r.sampling), adapter: target.adapter });
  });

  app.post('/v1/chat/completions', async (req, reply) => {
    const r = parseChatRequest(req.body);
    const target = targetFor(r.model);
    const text = render(r.messages, target.style);
    await run('chat', req, reply, r, text, { ...sampling(r.sampling), adapter: target.adapter, stopTokens: target.style.stopTokens(tokenizer) });
  });

  app.get('/v1/models', async () => ({
    object: 'list',
    data: [baseName, ...gate.adapterNames()].map((id) => ({ id, object: 'model', created: 0, owned_by: 'litlora' })),
  }));

  try {
    await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 8000 });
  } catch (e) {
    await gate.close();
    throw new LitloraError('ERR_IO', `cannot listen on ${options.host ?? '127.0.0.1'}:${options.port ?? 8000}: ${(e as Error).message}`);
  }
  const addr = app.server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closed: Promise<void> | null = null;
  return {
    address: `http://${host}:${addr.port}`,
    port: addr.port,
    close: (o = {}) => {
      closed ??= (async () => {
        closing = true;
        await shutDown(app, inflight, o.graceMs ?? 10_000);
        await gate.close();
      })();
      return closed;
    },
  };
}
