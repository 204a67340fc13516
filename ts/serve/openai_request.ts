// OpenAI request bodies (/v1/completions, /v1/chat/completions) checked and reduced to what litlora runs, and
// OpenAI's error shape: {error: {message, type, param, code}} with its HTTP status. Fields OpenAI clients send
// by default and that change nothing here (user, logprobs: false, frequency_penalty: 0, …) are accepted; a
// field that would change the output and is not supported (n > 1, echo, logprobs, …) is a 400 naming it, so a
// client never gets a silently different answer.
import type { ServeChatMessage, ChatRole } from './chat_render.js';

export class OpenAIError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'OpenAIError';
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** Sampling a request may set; unset fields take the server's defaults. */
export interface RequestSampling {
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number | null;
  seed?: number;
}

/** What every generation request has. */
export interface RequestCommon {
  model: string;
  /** OpenAI's stop strings (up to 4): the text ends before the first one. */
  stop: string[];
  sampling: RequestSampling;
  /** undefined: the server's default (--stream). */
  stream?: boolean;
  /** stream_options.include_usage: a last chunk with the usage counts. */
  includeUsage: boolean;
}

export interface CompletionRequest extends RequestCommon { prompt: string }
export interface ChatRequest extends RequestCommon { messages: ServeChatMessage[] }

const invalid = (param: string, message: string) => new OpenAIError(400, message, 'invalid_request_error', param, 'invalid_value');
const unsupported = (param: string, message: string) => new OpenAIError(400, message, 'invalid_request_error', param, 'unsupported_parameter');

function object(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new OpenAIError(400, 'The request body must be a JSON object.', 'invalid_request_error', null, 'invalid_body');
  }
  return body as Record<string, unknown>;
}

const given = (v: unknown) => v !== undefined && v !== null;

function int(b: Record<string, unknown>, name: string, min: number): number | undefined {
  const v = b[name];
  if (!given(v)) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw invalid(name, `${name}: expected an integer ≥ ${min}, got ${JSON.stringify(v)}.`);
  return v;
}

function num(b: Record<string, unknown>, name: string, min: number, max: number): number | undefined {
  const v = b[name];
  if (!given(v)) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw invalid(name, `${name}: expected a number from ${min} to ${max}, got ${JSON.stringify(v)}.`);
  }
  return v;
}

function common(b: Record<string, unknown>): RequestCommon {
  if (typeof b.model !== 'string' || b.model === '') throw invalid('model', 'model: expected the name of a model (GET /v1/models lists them).');
  if (given(b.stream) && typeof b.stream !== 'boolean') throw invalid('stream', `stream: expected true or false, got ${JSON.stringify(b.stream)}.`);
  const n = int(b, 'n', 1);
  if (n !== undefined && n !== 1) throw unsupported('n', 'n: only one choice per request is supported (n = 1); send several requests instead.');
  let stop: string[] = [];
  if (given(b.stop)) {
    stop = typeof b.stop === 'string' ? [b.stop] : Array.isArray(b.stop) ? b.stop as string[] : [];
    if (!(typeof b.stop === 'string' || Array.isArray(b.stop)) || stop.length > 4 || stop.some((x) => typeof x !== 'string' || x === '')) {
      throw invalid('stop', `stop: expected a non-empty string or up to 4 of them, got ${JSON.stringify(b.stop)}.`);
    }
  }
  for (const name of ['logprobs', 'top_logprobs', 'tools', 'functions', 'response_format', 'logit_bias', 'echo', 'suffix']) {
    const v = b[name];
    if (given(v) && v !== false && !(name === 'logit_bias' && typeof v === 'object' && Object.keys(v as object).length === 0)) {
      throw unsupported(name, `${name} is not supported by litlora serve; leave it out.`);
    }
  }
  const bestOf = int(b, 'best_of', 1);
  if (bestOf !== undefined && bestOf !== 1) throw unsupported('best_of', 'best_of: only 1 is supported.');
  const maxTokens = int(b, 'max_completion_tokens', 1) ?? int(b, 'max_tokens', 1);
  const topK = b.top_k === null ? null : int(b, 'top_k', 1);
  const so = b.stream_options;
  if (given(so) && (typeof so !== 'object' || Array.isArray(so))) throw invalid('stream_options', 'stream_options: expected an object like {"include_usage": true}.');
  const includeUsage = (so as { include_usage?: unknown } | null | undefined)?.include_usage === true;
  return {
    model: b.model,
    stop,
    stream: typeof b.stream === 'boolean' ? b.stream : undefined,
    includeUsage,
    sampling: { maxTokens, temperature: num(b, 'temperature', 0, 2), topP: num(b, 'top_p', 0, 1), topK, seed: int(b, 'seed', 0) },
  };
}

export function parseCompletionRequest(body: unknown): CompletionRequest {
  const b = object(body);
  let prompt = b.prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === 'string') prompt = prompt[0];
  if (typeof prompt !== 'string') {
    throw invalid('prompt', Array.isArray(prompt)
      ? 'prompt: one prompt string per request is supported (token-id prompts and batches are not); send several requests.'
      : `prompt: expected a string, got ${prompt === undefined ? 'nothing' : JSON.stringify(prompt)}.`);
  }
  return { ...common(b), prompt };
}

const ROLES = new Set<ChatRole>(['system', 'developer', 'user', 'assistant']);

function messageText(content: unknown, i: number): string {
  if (typeof content === 'string') return content;
  // The content-parts form: text parts only.
  if (Array.isArray(content) && content.every((p) => p && typeof p === 'object' && (p as { type?: unknown }).type === 'text' && typeof (p as { text?: unknown }).text === 'string')) {
    return content.map((p) => (p as { text: string }).text).join('');
  }
  throw invalid(`messages[${i}].content`, `messages[${i}].content: expected a string (or text parts); images, audio and tool calls are not supported.`);
}

export function parseChatRequest(body: unknown): ChatRequest {
  const b = object(body);
  if (!Array.isArray(b.messages) || b.messages.length === 0) {
    throw invalid('messages', 'messages: expected a non-empty array of {role, content}.');
  }
  const messages = b.messages.map((m: unknown, i): ServeChatMessage => {
    if (m === null || typeof m !== 'object') throw invalid(`messages[${i}]`, `messages[${i}]: expected an object {role, content}.`);
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== 'string' || !ROLES.has(role as ChatRole)) {
      throw invalid(`messages[${i}].role`, `messages[${i}].role: expected one of ${[...ROLES].join(', ')}, got ${JSON.stringify(role)}.`);
    }
    return { role: role as ChatRole, content: messageText(content, i) };
  });
  if (messages[messages.length - 1].role !== 'user') {
    throw invalid(`messages[${messages.length - 1}].role`, 'messages: the last message must be the user\'s (the reply continues it).');
  }
  return { ...common(b), messages };
}
