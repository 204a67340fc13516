// Server-sent events as OpenAI streams them: `data: <json>\n\n` per chunk and `data: [DONE]\n\n` at the end,
// written to the raw response of a route that took it over from fastify (reply.hijack()).
import type { ServerResponse } from 'node:http';

export class SseStream {
  #res: ServerResponse;

  constructor(res: ServerResponse) {
    this.#res = res;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      // Proxies such as nginx would otherwise buffer the stream.
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
  }

  /** False once the client is gone (nothing more can be delivered). */
  get open(): boolean { return !this.#res.destroyed && !this.#res.writableEnded; }

  send(data: unknown): void {
    if (this.open) this.#res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** Ends the stream with OpenAI's `[DONE]` sentinel. */
  done(): void {
    if (!this.open) return;
    this.#res.write('data: [DONE]\n\n');
    this.#res.end();
  }

  /** Ends the stream with an error event (OpenAI's clients raise it), for failures after the first chunk. */
  fail(error: unknown): void {
    this.send(error);
    if (this.open) this.#res.end();
  }
}
