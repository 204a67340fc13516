// The one seam between the HTTP front and the model: every generation the server runs goes through
// ModelGate.generate, and every adapter it serves through addAdapter. The model does the real work (ts/model):
// concurrent generate() calls on one Model wait in its FIFO queue (bounded by Model.maxQueue: ERR_QUEUE_FULL) and
// decode together in continuous batches; adapters are LoRA folders loaded beside the base weights
// (model.adapters), picked per request by the `adapter` option, mixed in one batch. The gate adds what belongs to a
// server: the requests it has running, a close() that refuses new ones and waits for those, and the adapters it
// added taken off the model again (the model stays the caller's).
import { resolve } from 'node:path';
import { LitloraError } from '../errors.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { generate, type GenerationStats, type TextGenerateOptions } from '../generate/generate.js';
import type { LoadOptions } from '../model/load.js';
import type { Model } from '../model/model.js';

export interface GateGenerateOptions extends TextGenerateOptions {
  /** The adapter's name (see addAdapter); null or absent: the base model. */
  adapter?: string | null;
}

export class ModelGate {
  readonly #base: Model;
  readonly #tokenizer: Tokenizer;
  readonly #added: string[] = [];
  #running = 0;
  #idle: (() => void)[] = [];
  #closed = false;

  /** `maxQueue`: calls that may wait for the model (default: no bound); it becomes the model's Model.maxQueue. */
  constructor(base: Model, tokenizer: Tokenizer, options: { maxQueue?: number } = {}) {
    const maxQueue = options.maxQueue ?? Infinity;
    if (!(maxQueue === Infinity || (Number.isInteger(maxQueue) && maxQueue >= 0))) {
      throw new LitloraError('ERR_ARG', `maxQueue: expected an integer ≥ 0, got ${String(options.maxQueue)}`);
    }
    this.#base = base;
    this.#tokenizer = tokenizer;
    base.maxQueue = maxQueue;
  }

  /** Loads the LoRA folder `dir` onto the base as adapter `name` (a relative `dir` is taken from `options.cwd`). */
  async addAdapter(name: string, dir: string, options: Pick<LoadOptions, 'cwd'> = {}): Promise<void> {
    if (this.#closed) throw new LitloraError('ERR_DISPOSED', 'the server is shutting down; it loads no adapters');
    if (this.#base.adapters.has(name)) throw new LitloraError('ERR_ARG', `adapter ${JSON.stringify(name)} is already loaded; give each adapter its own name`);
    await this.#base.adapters.add(name, resolve(options.cwd ?? process.cwd(), dir));
    this.#added.push(name);
  }

  /** The adapters' names, in the order they were added. */
  adapterNames(): string[] { return this.#base.adapters.names(); }

  hasAdapter(name: string): boolean { return this.#base.adapters.has(name); }

  /** Generations running or waiting for the model now. */
  get pending(): number { return this.#running; }

  /**
   * generate() on the base or the named adapter. A full queue or an unknown adapter throw from the first next()
   * (ERR_QUEUE_FULL, ERR_ADAPTER_NOT_FOUND); an aborted signal ends it with reason 'cancelled'.
   */
  async *generate(prompt: string, options: GateGenerateOptions = {}): AsyncGenerator<string, GenerationStats, undefined> {
    if (this.#closed) throw new LitloraError('ERR_DISPOSED', 'the server is shutting down; it takes no new requests');
    const { adapter, ...rest } = options;
    if (adapter != null && !this.#base.adapters.has(adapter)) {
      throw new LitloraError('ERR_ADAPTER_NOT_FOUND', `no adapter named ${JSON.stringify(adapter)}; loaded: ` +
        `${this.adapterNames().length ? this.adapterNames().join(', ') : 'none'}`);
    }
    this.#running++;
    try {
      return yield* generate(this.#base, this.#tokenizer, prompt, { ...rest, adapter: adapter ?? null });
    } finally {
      if (--this.#running === 0) for (const done of this.#idle.splice(0)) done();
    }
  }

  /** Refuses new calls, waits for the running ones, and unloads the adapters this gate added. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#running > 0) await new Promise<void>((done) => this.#idle.push(done));
    for (const name of this.#added.splice(0)) {
      if (this.#base.disposed) break;
      await this.#base.adapters.remove(name).catch(() => {}); // already removed by the model's owner
    }
  }
}
