// The model's work queue: every operation waits its turn in FIFO order instead of failing with ERR_BUSY.
//
// Two kinds of work share the model:
//   exclusive   forward, loss, state dicts, adapters.add/remove, merge …: runs alone, when nothing else runs
//   generation  a generate() request: joins the batched decoder (native/batch_decode_wrap.h) next to the other
//               requests decoding, up to `maxBatch` at once (continuous batching)
// A request at the head of the queue starts as soon as its kind allows; the ones behind it wait, so a forward
// queued behind generations runs once they have ended, and generations queued behind that forward wait for it
// (nothing starves). `maxQueue` bounds how many may wait (ERR_QUEUE_FULL beyond it). dispose() rejects what
// waits with ERR_DISPOSED and frees the model once the running work has ended.
import { fail, LitloraError } from '../errors.js';

/** A generation request as the queue sees it. */
export interface GenerationJob {
  /** Submits to the decoder; `ended` must be called once when the request's last event has arrived. */
  start(ended: () => void): void;
  /** The request will not start: dispose (ERR_DISPOSED), a full queue (ERR_QUEUE_FULL) or a failed start. */
  fail(error: Error): void;
  /** Its AbortSignal fired while it waited: it has left the queue. */
  cancelled(): void;
}

export function checkMaxQueue(value: unknown): number {
  if (value !== Infinity && (!Number.isInteger(value) || (value as number) < 0)) {
    fail('ERR_ARG', `maxQueue: expected an integer ≥ 0 or Infinity, got ${String(value)}`);
  }
  return value as number;
}

interface Waiting {
  kind: 'exclusive' | 'generation';
  start(): void;
  fail(error: Error): void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class Scheduler {
  #queue: Waiting[] = [];
  #exclusive = false;
  #generating = 0;
  #maxQueue = Infinity;
  #maxBatch = 16;
  #disposed = false;
  #idle: (() => void)[] = [];

  /** How many requests may wait (beyond the running ones); Infinity = unbounded. */
  get maxQueue(): number { return this.#maxQueue; }
  set maxQueue(value: number) { this.#maxQueue = checkMaxQueue(value); }

  /** How many generation requests decode together at most (default 16); the others wait in the queue. */
  get maxBatch(): number { return this.#maxBatch; }
  set maxBatch(value: number) {
    if (!Number.isInteger(value) || value < 1) fail('ERR_ARG', `maxBatch: expected an integer ≥ 1, got ${String(value)}`);
    this.#maxBatch = value;
    this.#pump();
  }

  /** Requests waiting their turn (not running). */
  get waiting(): number { return this.#queue.length; }
  /** Generation requests decoding now. */
  get generating(): number { return this.#generating; }
  get disposed(): boolean { return this.#disposed; }

  /** Runs `fn` alone on the model, after everything queued before it. */
  exclusive<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#enqueue(what, {
        kind: 'exclusive',
        start: () => {
          this.#exclusive = true;
          let run: Promise<T>;
          try {
            run = fn();
          } catch (e) {
            run = Promise.reject(e);
          }
          run.then(resolve, reject).finally(() => {
            this.#exclusive = false;
            this.#pump();
          });
        },
        fail: reject,
      });
    });
  }

  /**
   * Queues a generation request; `signal` removes it while it waits. The returned function takes it out of the
   * queue too (quietly: no callback), when it has not started.
   */
  generation(what: string, job: GenerationJob, signal?: AbortSignal): () => void {
    const entry: Waiting = {
      kind: 'generation',
      start: () => {
        this.#generating++;
        let ended = false;
        const end = () => {
          if (ended) return;
          ended = true;
          this.#generating--;
          this.#pump();
        };
        try {
          job.start(end);
        } catch (e) {
          end();
          job.fail(e as Error);
        }
      },
      fail: (e) => job.fail(e),
      signal,
    };
    if (signal) {
      entry.onAbort = () => {
        if (this.#remove(entry)) job.cancelled();
      };
    }
    try {
      this.#enqueue(what, entry);
    } catch (e) {
      job.fail(e as Error);
    }
    return () => { this.#remove(entry); };
  }

  /**
   * Marks the model disposed: what waits is rejected with ERR_DISPOSED, and `free` runs once the running work has
   * ended (at once when none runs). Resolves after `free`.
   */
  dispose(free: () => void): Promise<void> {
    if (this.#disposed) return Promise.resolve();
    this.#disposed = true;
    const waiting = this.#queue;
    this.#queue = [];
    for (const w of waiting) {
      this.#unlisten(w);
      w.fail(new LitloraError('ERR_DISPOSED', 'the model was disposed while this request waited its turn; nothing of it ran'));
    }
    if (this.#busy()) {
      return new Promise<void>((resolve) => this.#idle.push(() => { free(); resolve(); }));
    }
    free();
    return Promise.resolve();
  }

  #busy(): boolean { return this.#exclusive || this.#generating > 0; }

  #enqueue(what: string, entry: Waiting): void {
    if (this.#disposed) fail('ERR_DISPOSED', `${what}: the model was disposed; it can no longer be used`);
    this.#queue.push(entry);
    this.#pump();
    if (this.#queue.includes(entry) && this.#queue.length > this.#maxQueue) {
      this.#remove(entry);
      fail('ERR_QUEUE_FULL', `${what}: ${this.#maxQueue} request(s) already wait for this model (maxQueue ${this.#maxQueue}); ` +
        'retry later or raise model.maxQueue');
    }
    if (entry.signal && entry.onAbort && this.#queue.includes(entry)) entry.signal.addEventListener('abort', entry.onAbort, { once: true });
  }

  #remove(entry: Waiting): boolean {
    const i = this.#queue.indexOf(entry);
    if (i < 0) return false;
    this.#queue.splice(i, 1);
    this.#unlisten(entry);
    return true;
  }

  #unlisten(entry: Waiting): void {
    if (entry.signal && entry.onAbort) entry.signal.removeEventListener('abort', entry.onAbort);
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      if (this.#exclusive) return;
      if (head.kind === 'generation' ? this.#generating >= this.#maxBatch : this.#generating > 0) return;
      this.#queue.shift();
      this.#unlisten(head);
      head.start();
    }
    if (!this.#busy() && this.#idle.length > 0) {
      const idle = this.#idle;
      this.#idle = [];
      for (const fn of idle) fn();
    }
  }
}
