// Graceful shutdown of the HTTP server: stop accepting connections at once, let requests in flight finish
// within a grace period, then abort the rest (their generations stop within one decode step and their clients
// get an error), and resolve once every request has ended and every connection is closed.
import type { Server } from 'node:http';

/** The requests in flight: each one's AbortController and a promise that settles when it has ended. */
export class InFlight {
  readonly #running = new Map<AbortController, Promise<void>>();

  /** Runs `work` as a request in flight; `controller` aborts it. */
  async track<T>(controller: AbortController, work: () => Promise<T>): Promise<T> {
    const p = work();
    const settled = p.then(() => undefined, () => undefined);
    this.#running.set(controller, settled);
    try {
      return await p;
    } finally {
      this.#running.delete(controller);
    }
  }

  get size(): number { return this.#running.size; }

  abortAll(): void { for (const c of this.#running.keys()) c.abort(); }

  /** Resolves when no request is in flight. */
  async drained(): Promise<void> {
    while (this.#running.size) await Promise.all(this.#running.values());
  }
}

/**
 * Stops `app` from accepting (its close() stops listening and resolves once every connection is gone), waits up
 * to `graceMs` for `inflight`, aborts what is left, and closes the connections that are left.
 */
export async function shutDown(app: { server: Server; close(): Promise<unknown> }, inflight: InFlight, graceMs: number): Promise<void> {
  const closed = app.close();
  const server = app.server;
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs); });
  await Promise.race([inflight.drained(), grace]);
  clearTimeout(timer);
  inflight.abortAll();
  await inflight.drained();
  // Keep-alive connections that went idle after close() began would hold it open.
  server.closeAllConnections();
  await closed;
}
