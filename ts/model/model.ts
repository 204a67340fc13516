// Model: litgpt's GPT (Pythia/GPT-NeoX, Llama, Gemma-style) with optional LoRA layers, in native memory.
// `Model.fromConfig` builds one with litgpt's initialisation; `Model.load` reads any checkpoint folder (ts/model/load.ts).
// Weights stay in libtorch; JS passes token ids in and gets a logits Tensor (or a loss) back.
import { binding, type NativeGpt, type NativeTensor } from '../binding.js';
import type { FromConfigOptions, ModelConfig, ModelDtype, ModelOptions } from './options.js';
export type { FromConfigOptions, ModelConfig, ModelDtype, ModelOptions } from './options.js';
import { normalizeConfig, type Config } from './config.js';
import { LORA_CONFIG_DEFAULTS, loraFromKeys, normalizeLora, type LoraOptions, type LoraSettings } from './lora_settings.js';
import { nativeGptConfig } from './native_config.js';
import { fail, LitloraError } from '../errors.js';
import { Tensor, type Device } from '../tensor.js';
import { saveTensors, TensorFile } from '../io/tensorfile.js';
import { Adapter } from './adapter.js';
import { loadModel, type LoadOptions, type ModelSource } from './load.js';
import { checkMaxQueue, Scheduler, type GenerationJob } from './scheduler.js';
import { ModelAdapters } from './adapters.js';

/** Token ids: a flat array (one sequence) or a typed array with an explicit [batch, time] shape. */
export type Tokens = Int32Array | BigInt64Array | readonly number[] | readonly (readonly number[])[];

/**
 * Splits a config into the model config and the LoRA settings. LoRA comes from `lora` (litgpt's finetune
 * defaults for what it leaves out) or, without it, from the config's own lora_* fields (litgpt's lora Config,
 * whose dataclass defaults fill the rest). Both are named `lora.<field>` in errors.
 */
function splitConfig(config: ModelConfig, lora: LoraOptions | undefined): { config: Config; lora: LoraSettings | null } {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    fail('ERR_CONFIG', `expected a config object (litgpt's model_config.yaml fields), got ${config === null ? 'null' : typeof config}`);
  }
  const plain: ModelConfig = {};
  for (const [key, value] of Object.entries(config)) if (!key.startsWith('lora_')) plain[key] = value;
  const normalized = normalizeConfig(plain);
  if (lora !== undefined && lora !== null) return { config: normalized, lora: normalizeLora(lora) };
  const fromConfig = loraFromKeys(config, { unknown: 'keep' });
  if (!Object.keys(fromConfig).length) return { config: normalized, lora: null };
  return { config: normalized, lora: normalizeLora(fromConfig, { defaults: LORA_CONFIG_DEFAULTS }) };
}

function checkModelOptions(options: ModelOptions): { dtype: ModelDtype; device: Device } {
  const dtype = options.dtype ?? 'float32';
  if (!['float32', 'bfloat16', 'float16'].includes(dtype)) {
    fail('ERR_DTYPE', `dtype: expected 'float32', 'bfloat16' or 'float16', got '${dtype}'`);
  }
  const device = options.device ?? 'cpu';
  if (dtype === 'float16' && device === 'cpu') {
    fail('ERR_DTYPE', "dtype 'float16' needs a CUDA device; on the CPU use 'bfloat16' or 'float32'");
  }
  return { dtype, device };
}

/** Token ids → (typed array, [batch, time]). */
export function tokensToBatch(tokens: Tokens, shape?: readonly number[], what = 'tokens'): { data: Int32Array | BigInt64Array; shape: number[] } {
  if (tokens instanceof Int32Array || tokens instanceof BigInt64Array) {
    const s = shape ? [...shape] : [1, tokens.length];
    if (s.length !== 2 || s[0] * s[1] !== tokens.length) {
      fail('ERR_SHAPE', `${what}: expected a [batch, time] shape covering ${tokens.length} ids, got [${s.join(', ')}]`);
    }
    return { data: tokens, shape: s };
  }
  if (!Array.isArray(tokens)) fail('ERR_TYPE', `${what}: expected an Int32Array, BigInt64Array or an array of ids`);
  const rows: readonly (readonly number[])[] = tokens.length > 0 && Array.isArray(tokens[0])
    ? tokens as readonly (readonly number[])[] : [tokens as readonly number[]];
  const time = rows[0]?.length ?? 0;
  const data = new Int32Array(rows.length * time);
  rows.forEach((row, b) => {
    if (row.length !== time) fail('ERR_SHAPE', `${what}: row ${b} has ${row.length} ids, row 0 has ${time}; pad them to one length`);
    row.forEach((id, t) => {
      if (!Number.isInteger(id) || id < -2147483648 || id > 2147483647) fail('ERR_TYPE', `${what}[${b}][${t}]: expected an integer id, got ${id}`);
      data[b * time + t] = id;
    });
  });
  return { data, shape: [rows.length, time] };
}

export class Model {
  #native: NativeGpt;
  #config: Readonly<Config>;
  #lora: Readonly<LoraSettings> | null;
  #adapter: Adapter<Model> | null = null;
  #scheduler = new Scheduler();
  #adapters: ModelAdapters | null = null;

  /** @internal */
  constructor(handle: NativeGpt, config: Config, lora: LoraSettings | null) {
    this.#native = handle;
    this.#config = Object.freeze({ ...config });
    this.#lora = lora ? Object.freeze({ ...lora }) : null;
  }

  /** Where Model.load found the weights (folder kind, base, adapter, merged or runtime); null otherwise. */
  source: ModelSource | null = null;

  /**
   * Loads any litgpt checkpoint folder: a base or merged folder's lit_model.pth (with optional new LoRA layers,
   * `lora`, initialised as litgpt's finetune does; files of litgpt ≤ 0.5.4 load too), or a LoRA-only folder
   * (final/, step-XXXXXX/) as base + adapter, merged in memory or kept at runtime (see ts/model/load.ts).
   */
  static async load(dir: string, options: LoadOptions = {}): Promise<Model> {
    const { maxQueue, ...rest } = options;
    if (maxQueue !== undefined) checkMaxQueue(maxQueue);  // before anything is read
    const model = await loadModel(Model, dir, rest);
    if (maxQueue !== undefined) model.maxQueue = maxQueue;
    return model;
  }

  /** A new model with litgpt's initialisation (seeded), on `device` in `dtype`. */
  static async fromConfig(config: ModelConfig, options: FromConfigOptions = {}): Promise<Model> {
    const { dtype, device } = checkModelOptions(options);
    const seed = options.seed ?? 0;
    if (!Number.isInteger(seed) || seed < 0) fail('ERR_ARG', `seed: expected an integer ≥ 0, got ${seed}`);
    const split = splitConfig(config, options.lora);
    const handle = await binding().NativeGpt.create(nativeGptConfig(split.config, split.lora), { dtype, device, seed });
    return new Model(handle, split.config, split.lora);
  }

  /**
   * @internal A model whose base weights (and optionally lora_* tensors) come from `entries` (litgpt names;
   * litgpt ≤ 0.5.4 `attn.attn` keys are re-laid out). Loading is strict: missing, unexpected or misshapen keys
   * are an error listing them. Used by Model.load and by checkpoint code.
   */
  static async fromStateDict(config: ModelConfig, entries: Iterable<[string, Tensor]>, options: ModelOptions = {}): Promise<Model> {
    const { dtype, device } = checkModelOptions(options);
    const split = splitConfig(config, options.lora);
    const handle = await binding().NativeGpt.create(nativeGptConfig(split.config, split.lora), { dtype, device });
    const model = new Model(handle, split.config, split.lora);
    try {
      await handle.loadStateDict([...entries].map(([n, t]) => [n, t.handle]), 'base');
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  }

  /** litgpt's model config of this model (model_config.yaml's fields with defaults and derived values). */
  get config(): Readonly<Config> { return this.#config; }

  /** The LoRA settings (r, alpha, dropout and targets), or null for a model built without LoRA. */
  get lora(): Readonly<LoraSettings> | null { return this.#lora; }

  /** The LoRA adapter, or null when the model has no LoRA layers. */
  get adapter(): Adapter<Model> | null {
    const info = this.#handle('adapter').info();
    if (!info.hasLora) return null;
    this.#adapter ??= new Adapter(this);
    return this.#adapter;
  }

  /**
   * Runtime adapters on this base (`add(name, dir)` loads a LoRA folder without reloading the base); a
   * generation request picks one with its `adapter` option. See ts/model/adapters.ts.
   */
  get adapters(): ModelAdapters {
    this.#adapters ??= new ModelAdapters(this);
    return this.#adapters;
  }

  /**
   * How many requests may wait for this model (generation requests beyond the decoding batch, and other
   * operations while it is busy); one more is refused with ERR_QUEUE_FULL. Default Infinity (unbounded).
   */
  get maxQueue(): number { return this.#scheduler.maxQueue; }
  set maxQueue(value: number) { this.#scheduler.maxQueue = value; }

  /** How many generate() requests decode together at most (continuous batching; default 16); more wait in the queue. */
  get maxBatch(): number { return this.#scheduler.maxBatch; }
  set maxBatch(value: number) { this.#scheduler.maxBatch = value; }

  get dtype(): ModelDtype { return this.#handle('dtype').info().dtype as ModelDtype; }
  get device(): Device { return this.#handle('device').info().device as Device; }
  /** All parameters, base and LoRA. */
  get parameterCount(): number { return this.#handle('parameterCount').info().parameterCount; }
  get disposed(): boolean { return this.#scheduler.disposed || this.#native.disposed; }

  /**
   * Logits (batch, time, padded_vocab_size) in the model's dtype. With `inputPos`, the tokens continue at that
   * position using the KV cache (see setKvCache); `lastOnly` returns only the last position's logits.
   */
  async forward(tokens: Tokens, options: { shape?: readonly number[]; inputPos?: number; lastOnly?: boolean } = {}): Promise<Tensor> {
    const batch = tokensToBatch(tokens, options.shape);
    const opts: { inputPos?: number; lastOnly?: boolean } = { lastOnly: options.lastOnly ?? false };
    if (options.inputPos !== undefined) {
      if (!Number.isInteger(options.inputPos) || options.inputPos < 0) fail('ERR_ARG', `inputPos: expected an integer ≥ 0, got ${options.inputPos}`);
      opts.inputPos = options.inputPos;
    }
    return new Tensor(await this.exclusive('forward', () => this.#handle('forward').forward(batch.data, batch.shape, opts)));
  }

  /**
   * Mean cross-entropy over targets ≠ −100 (targets[b][t] is the id that should follow tokens[b][t]).
   * With `backward`, gradients of loss·gradScale accumulate into the LoRA parameters.
   */
  async loss(tokens: Tokens, targets: Tokens, options: { shape?: readonly number[]; backward?: boolean; gradScale?: number } = {}):
    Promise<{ loss: number; tokens: number }> {
    const x = tokensToBatch(tokens, options.shape);
    const y = tokensToBatch(targets, options.shape ?? x.shape, 'targets');
    if (y.shape[0] !== x.shape[0] || y.shape[1] !== x.shape[1]) {
      fail('ERR_SHAPE', `targets: expected shape [${x.shape.join(', ')}] like tokens, got [${y.shape.join(', ')}]`);
    }
    const o = { backward: options.backward ?? false, gradScale: options.gradScale ?? 1 };
    return this.exclusive('loss', () => this.#handle('loss').loss(x.data, y.data, x.shape, o));
  }

  /** Allocates the KV cache for generation: up to `batch` sequences of `maxLength` positions. */
  async setKvCache(batch: number, maxLength: number): Promise<void> {
    await this.exclusive('setKvCache', () => this.#handle('setKvCache').setKvCache(batch, maxLength));
  }
  clearKvCache(): void { this.#handle('clearKvCache').clearKvCache(); }

  /** The base weights with plain litgpt names (as they are now: merged weights if the adapter is merged). */
  async stateDict(): Promise<Map<string, Tensor>> {
    return this.#entries(await this.exclusive('stateDict', () => this.#handle('stateDict').stateDict('base')));
  }

  /**
   * Exactly what litgpt's merge_lora writes: every base key, LoRA folded in (W + alpha/r·B·A, rounded once to
   * the base dtype), lora_* dropped. Tensors of layers without LoRA are shared with the model, not copied.
   */
  async mergedStateDict(): Promise<Map<string, Tensor>> {
    return this.#entries(await this.exclusive('mergedStateDict', () => this.#handle('mergedStateDict').stateDict('merged')));
  }

  /** Loads base weights (strict); lora_* entries present are loaded too. */
  async loadStateDict(entries: Iterable<[string, Tensor]>): Promise<void> {
    const pairs: [string, NativeTensor][] = [...entries].map(([n, t]) => [n, t.handle]);
    await this.exclusive('loadStateDict', () => this.#handle('loadStateDict').loadStateDict(pairs, 'base'));
  }

  /**
   * Frees the model's memory: at once when nothing runs, else once the running operation (or every decoding
   * generation request) has ended. Requests still waiting their turn are rejected with ERR_DISPOSED. `disposed` is
   * true from this call on, and later use throws ERR_DISPOSED. Idempotent; the promise says when the memory is free.
   */
  dispose(): Promise<void> {
    return this.#scheduler.dispose(() => this.#native.dispose());
  }

  /** @internal Runs `fn` alone on the model in its queue's turn (the adapter, the adapters registry). */
  exclusive<T>(what: string, fn: () => Promise<T>): Promise<T> { return this.#scheduler.exclusive(what, fn); }

  /** @internal Queues a generation request for the batched decoder (ts/generate/generate.ts). */
  scheduleGeneration(job: GenerationJob, signal?: AbortSignal): () => void { return this.#scheduler.generation('generate', job, signal); }

  /** @internal The native handle (trainer, generation, adapter). */
  get handle(): NativeGpt { return this.#handle('handle'); }

  #handle(what: string): NativeGpt {
    if (this.disposed) throw new LitloraError('ERR_DISPOSED', `${what}: the model was disposed; it can no longer be used`);
    return this.#native;
  }

  #entries(pairs: [string, NativeTensor][]): Map<string, Tensor> {
    return new Map(pairs.map(([n, t]) => [n, new Tensor(t)]));
  }

  toString(): string {
    return this.disposed ? 'Model(disposed)' : `Model(${String(this.#config.name ?? '')}, ${this.dtype}, ${this.device})`;
  }
}

/**
 * Rewrites a weights file of litgpt ≤ 0.5.4 in today's layout, in place (atomically): `attn.attn` keys become
 * `attn.qkv`, and base QKV weights/biases get [Q|K|V] rows (litgpt's qkv_reassemble). LoRA tensors keep their
 * values — their packed rows mean the same in both layouts — except when q, k and v were all adapted in a model
 * with n_query_groups > 1: litgpt ≤ 0.5.4 then added the packed rows in interleaved storage order, which today's
 * names cannot express, so such a file is left unchanged (litlora's model loads it with its old meaning).
 * With `target`, the rewritten file goes there and `file` is left as it is (migrate's registerQkvRelayout hook;
 * nothing is written when the file needs no change). Returns whether the file was rewritten.
 */
export async function relayoutQkvFile(file: string, config: ModelConfig, _kind?: 'lora' | 'full', target: string = file):
  Promise<'rewritten' | 'unchanged'> {
  const c = normalizeConfig(config);
  const f = await TensorFile.open(file);
  let tensors: Map<string, Tensor>;
  try {
    if (!f.names.some((n) => n.includes('.attn.attn.'))) return 'unchanged';
    const hs = c.head_size, nh = c.n_head, nqg = c.n_query_groups;
    const allParts = (nh + 2 * nqg) * hs;
    for (const name of f.names) {
      if (/\.attn\.attn\.lora_B$/.test(name) && f.info(name).shape[0] === allParts && nqg > 1) return 'unchanged';
    }
    tensors = new Map();
    for (const name of f.names) {
      let t = await f.get(name);
      if (name.includes('.attn.attn.') && /\.(weight|bias)$/.test(name)) {
        const relaid = new Tensor(await binding().gptQkvReassemble(t.handle, nh, nqg, hs));
        t.dispose();
        t = relaid;
      }
      tensors.set(name.replace('.attn.attn.', '.attn.qkv.'), t);
    }
    await saveTensors(target, tensors, f.wrapped ? { format: 'pth', wrap: 'model' } : { format: 'pth' });
  } finally {
    await f.close();
  }
  for (const t of tensors.values()) t.dispose();
  return 'rewritten';
}
