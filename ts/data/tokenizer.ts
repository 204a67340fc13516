// The checkpoint's tokenizer, as litgpt's litgpt/tokenizer.py uses it: HF tokenizer.json through
// @huggingface/tokenizers (pure JS; its ids equal the Rust `tokenizers` library's on our fixtures, see
// test/07.data.tokenizer.test.ts), bos/eos from tokenizer_config.json (then generation_config.json), and litgpt's
// `use_bos` rule and `encode(bos, eos, max_length)` semantics. A tokenizer.model (SentencePiece) without tokenizer.json is
// converted to tokenizer.json in memory (./sentencepiece.ts).
// The file's regexes are checked for catastrophic backtracking first (./regex_safety.ts).
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import { fail } from '../errors.js';
import { readSentencePieceModel, sentencePieceToTokenizerJson } from './sentencepiece.js';
import { checkTokenizerPatterns } from './regex_safety.js';

export interface EncodeOptions {
  /** true: prepend BOS (unless already there); false: never (and strip one the processor added);
   *  undefined: as the checkpoint says (`useBos`). */
  bos?: boolean;
  /** Append EOS (unless already there). When false, an EOS the processor appended is removed, as litgpt does. */
  eos?: boolean;
  /** Keep at most this many ids (after BOS/EOS); ≤ 0 or undefined keeps all. */
  maxLength?: number;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS/EOS/PAD…) from the text; default true, as the Rust library's `decode`. */
  skipSpecialTokens?: boolean;
}

export class Tokenizer {
  /** Whether `encode` adds BOS by default (litgpt's `check_if_bos_token_used`). */
  readonly useBos: boolean;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** The model's vocabulary size without added tokens (`get_vocab_size(with_added_tokens=False)`). */
  readonly vocabSize: number;
  /** The folder the files came from, or null for an in-memory tokenizer. */
  readonly dir: string | null;
  /** tokenizer_config.json as parsed (its chat_template and special tokens), or null without one. */
  readonly config: Record<string, unknown> | null;
  readonly #hf: HFTokenizer;
  readonly #specialIds: Set<number>;
  readonly #idToToken: Map<number, string>;
  /** Put before every non-empty text: SentencePiece's dummy prefix (a space, which becomes ▁) for a tokenizer.model. */
  readonly #textPrefix: string;

  /** Builds a tokenizer from parsed tokenizer.json (+ tokenizer_config.json, + generation_config.json). */
  constructor(tokenizerJson: any, options: {
    tokenizerConfig?: any; generationConfig?: any; dir?: string | null; source?: string; useBos?: boolean; textPrefix?: string;
  } = {}) {
    const source = options.source ?? 'tokenizer.json';
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || !tokenizerJson.model || typeof tokenizerJson.model !== 'object') {
      fail('ERR_CONFIG', `${source}: expected a Hugging Face tokenizer.json object with a 'model' field`);
    }
    // The Rust library ignores tokenizer_config.json; pass the JS library only what keeps it equal to Rust.
    const json = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...tokenizerJson };
    // A hostile pattern would hang every encode/decode: reject it before the library compiles it.
    checkTokenizerPatterns(json, source);
    try {
      this.#hf = new HFTokenizer(json, { clean_up_tokenization_spaces: false });
    } catch (e: any) {
      fail('ERR_CONFIG', `${source}: cannot build the tokenizer (${e?.message ?? e}); is it a valid tokenizer.json?`);
    }
    this.dir = options.dir ?? null;
    this.#textPrefix = options.textPrefix ?? '';
    this.#specialIds = new Set<number>();
    this.#idToToken = new Map();
    for (const t of json.added_tokens as any[]) {
      if (t?.special) this.#specialIds.add(t.id);
      this.#idToToken.set(t.id, t.content);
    }
    const vocab = json.model.vocab;
    this.vocabSize = Array.isArray(vocab) ? vocab.length : vocab && typeof vocab === 'object' ? Object.keys(vocab).length : 0;

    const config = options.tokenizerConfig ?? null;
    this.config = config && typeof config === 'object' ? config : null;
    let bosId: number | null = null, eosId: number | null = null;
    if (config) {
      const bos = tokenContent(config.bos_token), eos = tokenContent(config.eos_token);
      if (bos != null) bosId = this.tokenToId(bos);
      if (eos != null) eosId = this.tokenToId(eos);
    }
    const gen = options.generationConfig ?? null;
    if (gen) {
      if (bosId === null && Number.isInteger(gen.bos_token_id)) bosId = gen.bos_token_id;
      if (eosId === null && Number.isInteger(gen.eos_token_id)) eosId = gen.eos_token_id;
      // Some generation configs list several eos ids; litgpt would keep the list, we keep the first.
      if (eosId === null && Array.isArray(gen.eos_token_id) && Number.isInteger(gen.eos_token_id[0])) eosId = gen.eos_token_id[0];
    }
    this.bosId = bosId;
    this.eosId = eosId;
    this.useBos = options.useBos ?? useBosFromConfig(config, this.dir);
  }

  /**
   * litgpt's `Tokenizer(checkpoint_dir)` for a folder with tokenizer.json (tokenizer_config.json and
   * generation_config.json are optional). A missing or broken file is ERR_CHECKPOINT_MISSING / ERR_CONFIG.
   */
  static fromDir(checkpointDir: string): Tokenizer {
    const dir = resolve(checkpointDir);
    const tokenizerPath = join(dir, 'tokenizer.json');
    const modelPath = join(dir, 'tokenizer.model');
    const configPath = join(dir, 'tokenizer_config.json');
    let tokenizerConfig = existsSync(configPath) ? readJson(configPath) : undefined;
    let tokenizerJson: any;
    let source = tokenizerPath;
    let textPrefix = '';
    if (existsSync(tokenizerPath)) {
      tokenizerJson = readJson(tokenizerPath);
    } else if (existsSync(modelPath)) {
      // litgpt's SentencePiece backend: tokenizer.json is preferred, tokenizer.model read when it is the only one.
      // Its BOS/EOS are the model's own ids (SentencePieceProcessor.bos_id()/eos_id()).
      let bytes: Uint8Array;
      try { bytes = readFileSync(modelPath); } catch (e: any) { fail('ERR_CHECKPOINT_MISSING', `cannot read ${modelPath}: ${e?.message ?? e}`); }
      const model = readSentencePieceModel(bytes, modelPath);
      ({ tokenizerJson, textPrefix } = sentencePieceToTokenizerJson(model, tokenizerConfig ?? null, modelPath));
      const piece = (id: number) => (id >= 0 ? model.pieces[id]?.piece ?? null : null);
      tokenizerConfig = { ...tokenizerConfig, bos_token: piece(model.bosId), eos_token: piece(model.eosId) };
      source = modelPath;
    } else {
      fail('ERR_CHECKPOINT_MISSING', `no tokenizer.json in '${dir}' (nor a SentencePiece tokenizer.model).`);
    }
    const genPath = join(dir, 'generation_config.json');
    let generationConfig: any;
    if (existsSync(genPath)) {
      // litgpt repairs some broken generation_config.json files; we just ignore one that does not parse.
      try { generationConfig = JSON.parse(readFileSync(genPath, 'utf8')); } catch { generationConfig = undefined; }
    }
    return new Tokenizer(tokenizerJson, { tokenizerConfig, generationConfig, dir, source, textPrefix });
  }

  /** The id of a token string; ERR_CONFIG if the vocabulary lacks it (litgpt raises ValueError). */
  tokenToId(token: string): number {
    const id = this.#hf.token_to_id(token);
    if (id === undefined) fail('ERR_CONFIG', `token ${JSON.stringify(token)} not found in the tokenizer's vocabulary`);
    return id;
  }

  /** The token string of an id, or undefined. */
  idToToken(id: number): string | undefined {
    return this.#idToToken.get(id) ?? this.#hf.id_to_token(id);
  }

  /** Whether `id` is a special added token (BOS/EOS/PAD…). */
  isSpecial(id: number): boolean {
    return this.#specialIds.has(id);
  }

  /** The ids the tokenizer.json pipeline gives, post-processor included (`processor.encode(text).ids`). */
  encodeRaw(text: string): number[] {
    if (typeof text !== 'string') fail('ERR_TYPE', `encode: expected a string, got ${typeof text}`);
    return text.length === 0 ? this.#emptyEncoding() : this.#hf.encode(this.#textPrefix + text).ids;
  }

  /** litgpt's `Tokenizer.encode(string, bos=None, eos=False, max_length=-1)` → int32 ids. */
  encode(text: string, options: EncodeOptions = {}): Int32Array {
    let ids = this.encodeRaw(text);
    const { bos, eos = false, maxLength = -1 } = options;
    if (bos || (bos === undefined && this.useBos)) {
      if (this.bosId === null) fail('ERR_CONFIG', 'this tokenizer has no BOS token (tokenizer_config.json has no bos_token)');
      if (ids.length === 0 || ids[0] !== this.bosId) ids = [this.bosId, ...ids];
    } else if (ids.length > 0 && ids[0] === this.bosId) {
      ids = ids.slice(1); // the processor added BOS on its own
    }
    if (eos && (ids.length === 0 || ids[ids.length - 1] !== this.eosId)) {
      if (this.eosId === null) fail('ERR_CONFIG', 'this tokenizer has no EOS token (tokenizer_config.json has no eos_token)');
      ids = [...ids, this.eosId];
    } else if (!eos && ids.length > 0 && ids[ids.length - 1] === this.eosId) {
      ids = ids.slice(0, -1); // the processor added EOS on its own
    }
    if (maxLength > 0 && ids.length > maxLength) ids = ids.slice(0, maxLength);
    return Int32Array.from(ids);
  }

  /** Text of the ids (litgpt's `decode`: `processor.decode(ids)`, special tokens skipped). */
  decode(ids: ArrayLike<number> | Iterable<number>, options: DecodeOptions = {}): string {
    const list = Array.from(ids as ArrayLike<number>, Number);
    const skip = options.skipSpecialTokens ?? true;
    const kept = skip ? list.filter((id) => !this.#specialIds.has(id)) : list;
    if (kept.length === 0) return '';
    for (const id of kept) {
      if (!Number.isInteger(id) || id < 0 || this.idToToken(id) === undefined) {
        fail('ERR_RANGE', `cannot decode token id ${id}: not in the vocabulary (size ${this.vocabSize} + added tokens)`);
      }
    }
    return this.#hf.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  /** A detokenizer for a growing list of ids that emits only complete text (see StreamDecoder). */
  streamDecoder(options: DecodeOptions = {}): StreamDecoder {
    return new StreamDecoder(this, options);
  }

  // The Rust library still runs the post-processor on empty input (e.g. Llama's TemplateProcessing adds BOS).
  #emptyEncoding(): number[] {
    try { return this.#hf.encode('').ids; } catch { return []; }
  }
}

/**
 * Incremental detokenization: `push(id)` returns the text that the new id completes, never a partial UTF-8
 * character (a byte-level or byte-fallback token can end in the middle of one) and with the spacing the whole
 * sequence would decode to (Metaspace/SentencePiece decoders drop a leading space when a token is decoded alone).
 * It keeps a short window of ids as context, as text-generation-inference and HF's DecodeStream do.
 */
export class StreamDecoder {
  #ids: number[] = [];
  #prefixOffset = 0;
  #readOffset = 0;
  #emitted = '';

  constructor(private readonly tokenizer: Tokenizer, private readonly options: DecodeOptions = {}) {}

  /** Adds one id; returns the newly completed text ('' while a character is still incomplete). */
  push(id: number): string {
    this.#ids.push(id);
    const prefixText = this.tokenizer.decode(this.#ids.slice(this.#prefixOffset, this.#readOffset), this.options);
    const newText = this.tokenizer.decode(this.#ids.slice(this.#prefixOffset), this.options);
    if (newText.length > prefixText.length && !newText.endsWith('\uFFFD')) {
      const delta = newText.slice(prefixText.length);
      this.#prefixOffset = this.#readOffset;
      this.#readOffset = this.#ids.length;
      this.#emitted += delta;
      return delta;
    }
    return '';
  }

  /** Adds several ids; returns the text they complete. */
  pushAll(ids: Iterable<number>): string {
    let out = '';
    for (const id of ids) out += this.push(id);
    return out;
  }

  /** Whatever is still held back (an incomplete character decodes to U+FFFD, as a full decode would). */
  flush(): string {
    const prefixText = this.tokenizer.decode(this.#ids.slice(this.#prefixOffset, this.#readOffset), this.options);
    const rest = this.tokenizer.decode(this.#ids.slice(this.#prefixOffset), this.options);
    this.#prefixOffset = this.#readOffset = this.#ids.length;
    const delta = rest.length > prefixText.length ? rest.slice(prefixText.length) : '';
    this.#emitted += delta;
    return delta;
  }

  /** All text emitted so far. */
  get text(): string {
    return this.#emitted;
  }

  /** All ids pushed so far. */
  get ids(): readonly number[] {
    return this.#ids;
  }
}

function tokenContent(token: unknown): string | null {
  if (typeof token === 'string') return token;
  if (token && typeof token === 'object' && typeof (token as any).content === 'string') return (token as any).content;
  return null;
}

/**
 * litgpt's `check_if_bos_token_used`: false without tokenizer_config.json; true for folders named Meta-Llama-3* /
 * Llama-3*, and SmolLM2*Instruct; else `add_bos_token` if present; else whether the class is LlamaTokenizer.
 */
export function useBosFromConfig(config: any, dir: string | null): boolean {
  if (!config || typeof config !== 'object') return false;
  if (dir) {
    const name = basename(dir);
    const stem = name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : name; // Path.stem
    if (stem.startsWith('Meta-Llama-3') || stem.startsWith('Llama-3')) return true;
    if (stem.startsWith('SmolLM2') && name.endsWith('Instruct')) return true;
  }
  if ('add_bos_token' in config) return Boolean(config.add_bos_token);
  return config.tokenizer_class === 'LlamaTokenizer';
}

function readJson(path: string): any {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (e: any) {
    fail('ERR_CHECKPOINT_MISSING', `cannot read ${path}: ${e?.message ?? e}`);
  }
  try {
    return JSON.parse(raw);
  } catch (e: any) {
    fail('ERR_CONFIG', `${path} is not valid JSON (${e?.message ?? e})`);
  }
}
