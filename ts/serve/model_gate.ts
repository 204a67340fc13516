// The one seam between the HTTP front and the model: every generation the server runs goes through
// ModelGate.generate. Today a Model runs one operation at a time (a second one throws ERR_BUSY) and holds one
// set of weights, so the gate
//   - queues calls FIFO and runs them one after another (a bounded queue: a call that finds `maxQueue` calls
//     already waiting is refused with ERR_QUEUE_FULL; an AbortSignal takes a waiting call out of the queue), and
//   - serves each named adapter from a Model of its own, loaded from the LoRA folder merged in memory.
// When Model queues and batches concurrent generate() calls itself and holds adapters (`model.adapters.add`,
// the `adapter` sampling option), this file shrinks to a pass-through: generate() calls
// generate(base, tokenizer, prompt, { ...options, adapter }) and addAdapter() calls base.adapters.add(name, dir).
import { LitloraError } from '../errors.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { generate, type GenerationStats, type TextGenerateOptions } from '../generate/generate.js';
import type { LoadOptions } from '../model/load.js';
import { Model } from '../model/model.js';

export interface GateGenerateOptions extends TextGenerateOptions {
  /** The adapter's name (see addAdapter); null or absent: the base model. */
  adapter?: string | null;
}

interface Waiter {
  start: () => void;
  cancel: () => void;
}

export class ModelGate {
  readonly #base: Model;
  readonly #tokenizer: Tokenizer;
  readonly #maxQueue: number;
  readonly #adapters = new Map<string, Model>();
  readonly #waiting: Waiter[] = [];
  #running = false;
  #idle: (() => void)[] = [];
  #closed = false;

  /** `maxQueue`: calls that may wait while one runs (default: no bound). */
  constructor(base: Model, tokenizer: Tokenizer, options: { maxQueue?: number } = {}) {
    const maxQueue = options.maxQueue ?? Infinity;
    if (!(maxQueue === Infinity || (Number.isInteger(maxQueue) && maxQueue >= 0))) {
      throw new LitloraError('ERR_ARG', `maxQueue: expected an integer ≥ 0, got ${String(options.maxQueue)}`);
    }
    this.#base = base;
    this.#tokenizer = tokenizer;
    this.#maxQueue = maxQueue;
  }

  /** Makes the LoRA folder `dir` available as `name` (its own merged Model until Model holds adapters). */
  async addAdapter(name: string, dir: string, options: LoadOptions = {}): Promise<void> {
    if (this.#adapters.has(name)) throw new LitloraError('ERR_ARG', `adapter ${JSON.stringify(name)} is already loaded; give each adapter its own name`);
    const model = await Model.load(dir, { ...options, mode: 'merged' });
    if (this.#closed) { model.dispose(); throw new LitloraError('ERR_DISPOSED', 'the model gate was closed while the adapter loaded'); }
    this.#adapters.set(name, model);
  }

  /** The adapters' names, in the order they were added. */
  adapterNames(): string[] { return [...this.#adapters.keys()]; }

  hasAdapter(name: string): boolean { return this.#adapters.has(name); }

  /** Calls running or waiting now. */
  get pending(): number { return this.#waiting.length + (this.#running ? 1 : 0); }

  /**
   * generate() on the base or the named adapter, after the calls before it. A full queue, an unknown adapter or a
   * closed gate throw from the first next(); an aborted signal while waiting ends it at once with reason 'cancelled'.
   */
  async *generate(prompt: string, options: GateGenerateOptions = {}): AsyncGenerator<string, GenerationStats, undefined> {
    const { adapter, ...rest } = options;
    const model = this.#modelFor(adapter ?? null);
    if (!(await this.#acquire(options.signal))) {
      return { reason: 'cancelled', promptTokens: 0, generatedTokens: 0, emittedTokens: 0, prefillSeconds: 0, decodeSeconds: 0, decodeTokensPerSecond: 0 };
    }
    try {
      return yield* generate(model, this.#tokenizer, prompt, rest);
    } finally {
      this.#release();
    }
  }

  /** Refuses new calls, ends waiting ones with ERR_DISPOSED, waits for the running one, disposes the adapters' models. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#waiting.splice(0)) w.cancel();
    if (this.#running) await new Promise<void>((resolve) => this.#idle.push(resolve));
    for (const m of this.#adapters.values()) m.dispose();
    this.#adapters.clear();
  }

  #modelFor(adapter: string | null): Model {
    if (this.#closed) throw new LitloraError('ERR_DISPOSED', 'the server is shutting down; it takes no new requests');
    if (adapter === null) return this.#base;
    const model = this.#adapters.get(adapter);
    if (!model) {
      throw new LitloraError('ERR_ADAPTER_NOT_FOUND', `no adapter named ${JSON.stringify(adapter)}; loaded: ` +
        `${this.#adapters.size ? [...this.#adapters.keys()].join(', ') : 'none'}`);
    }
    return model;
  }

  /** Resolves true when the call may run, false when its signal aborted while it waited. */
  #acquire(signal: AbortSignal | undefined): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    if (!this.#running) {
      this.#running = true;
      return Promise.resolve(true);
    }
    if (this.#waiting.length >= this.#maxQueue) {
      throw new LitloraError('ERR_QUEUE_FULL', `the model is busy and ${this.#waiting.length} request(s) already wait ` +
        `(the queue holds ${this.#maxQueue}); retry later, or raise --max_queue`);
    }
    return new Promise<boolean>((resolve, reject) => {
      const onAbort = () => {
        const i = this.#waiting.indexOf(waiter);
        if (i >= 0) this.#waiting.splice(i, 1);
        resolve(false);
      };
      const waiter: Waiter = {
        start: () => { signal?.removeEventListener('abort', onAbort); resolve(true); },
        cancel: () => {
          signal?.removeEventListener('abort', onAbort);
          reject(new LitloraError('ERR_DISPOSED', 'the server shut down before this request\'s turn came'));
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) { next.start(); return; }
    this.#running = false;
    for (const resolve of this.#idle.splice(0)) resolve();
  }
}
