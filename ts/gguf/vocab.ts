// The tokenizer of a checkpoint folder as GGUF metadata, as llama.cpp's convert_hf_to_gguf.py writes it for a
// byte-level BPE tokenizer.json (`_set_vocab_gpt2`: get_vocab_base + gguf-py's SpecialVocab):
//
//   tokenizer.ggml.model "gpt2"; tokens by id, padded with "[PAD{i}]" (UNUSED) up to the embedding's rows;
//   token types: NORMAL, CONTROL for special added tokens (and ones that look special, "<|…|>"), USER_DEFINED for
//   other added tokens; merges as "a b" (a space inside a part written as U+0120+…, SpecialVocab's encoding);
//   BOS/EOS/UNK/SEP/PAD/MASK ids from tokenizer_config.json's tokens looked up among the added tokens, then
//   config.json's *_token_id; add_bos/add_eos/add_sep from tokenizer.json's TemplateProcessing and
//   tokenizer_config.json's add_*_token; the chat template from tokenizer_config.json or chat_template.jinja.
//
// tokenizer.ggml.pre names the pre-tokenizer llama.cpp implements. convert_hf_to_gguf.py finds it from a hash
// of the tokens of a test string, which only a known published tokenizer matches; here it is read from the
// tokenizer.json's pre-tokenizer itself (its split regex), so a retrained tokenizer of a known kind is named
// too. A tokenizer llama.cpp would split differently is refused (ERR_GGUF_UNSUPPORTED).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { encodeTokens, scanBpeTokenizerJson } from './tokenizer_json.js';
import type { EncodedStrings, GgufMetadata } from './writer.js';

/** gguf-py's TokenType. */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** Split regexes of tokenizer.json pre-tokenizers and the llama.cpp pre-tokenizer that splits the same way. */
const SPLIT_REGEXES: Record<string, string> = {
  // Llama 3 (and SmolLM3, Llama 3.x)
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": 'llama-bpe',
  // Qwen2 / Qwen2.5: single digits
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": 'qwen2',
};

type Json = Record<string, any>;

function preTokenizers(pre: Json | null): Json[] {
  if (!pre) return [];
  return pre.type === 'Sequence' ? (pre.pretokenizers ?? []) : [pre];
}

/**
 * The llama.cpp pre-tokenizer name for a byte-level BPE tokenizer.json, or a reason it has none. `mergeCount`:
 * how many merges model.merges has, where the object was parsed without them.
 */
export function preTokenizerName(tokenizer: Json, mergeCount?: number): string | { reason: string } {
  const parts = preTokenizers(tokenizer.pre_tokenizer ?? null);
  const kinds = parts.map((p) => p.type).join(' + ') || 'none';
  const byteLevel = parts.filter((p) => p.type === 'ByteLevel');
  if (byteLevel.length !== 1) return { reason: `the pre-tokenizer is ${kinds}, not byte-level` };
  const merges = tokenizer.model?.merges;
  const noMerges = mergeCount !== undefined ? mergeCount === 0 : Array.isArray(merges) && merges.length === 0;
  // GPT-2's own regex inside ByteLevel (GPT-2, GPT-NeoX/Pythia, OLMo, SmolLM's after its digit split).
  if (parts.length === 1 && byteLevel[0].use_regex !== false) return 'gpt-2';
  if (parts.length === 2 && parts[0].type === 'Digits' && parts[0].individual_digits === true && byteLevel[0].use_regex !== false) {
    return 'smollm';
  }
  if (parts.length === 2 && parts[0].type === 'Split' && parts[1].type === 'ByteLevel' && byteLevel[0].use_regex === false) {
    const regex = parts[0].pattern?.Regex;
    const name = typeof regex === 'string' ? SPLIT_REGEXES[regex] : undefined;
    if (name && parts[0].behavior === 'Isolated' && parts[0].invert === false) return name;
    return { reason: `its split regex ${JSON.stringify(regex ?? parts[0].pattern)} is not one llama.cpp implements` };
  }
  // Bytes with no merges (litlora init's tokenizer): any byte-level split gives the same tokens.
  if (parts.length === 1 && noMerges) return 'gpt-2';
  return { reason: `the pre-tokenizer ${kinds} is not one llama.cpp implements` };
}

/** convert_hf_to_gguf.py's does_token_look_special. */
export function looksSpecial(t: string): boolean {
  return ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(t) || (t.startsWith('<|') && t.endsWith('|>')) ||
    (t.startsWith('<｜') && t.endsWith('｜>')) || (t.startsWith('<unused') && t.endsWith('>'));
}

export function readJson(path: string): Json | null {
  if (!existsSync(path)) return null;
  return parseJson(path, readFileSync(path, 'utf8'));
}

function parseJson(path: string, text: string): Json {
  try {
    return JSON.parse(text);
  } catch (e) {
    fail('ERR_CHECKPOINT_FORMAT', `${path} is not valid JSON (${(e as Error).message}); restore the tokenizer files of the model.`);
  }
}

export interface GgufVocab {
  model: string;
  pre: string;
  /** By id; already GGUF-encoded where read from a tokenizer.json's bytes (tokenizer_json.ts). */
  tokens: readonly string[] | EncodedStrings;
  /** SentencePiece's piece scores (tokenizer.ggml.model "llama"); none for BPE. */
  scores?: number[];
  tokenTypes: ArrayLike<number>;
  merges: readonly string[] | EncodedStrings;
  specialIds: [string, number][];
  addSpecial: [string, boolean][];
  chatTemplate: string | null;
  /** tokenizer.ggml.add_space_prefix, where the converter writes it (Gemma: false). */
  addSpacePrefix?: boolean;
}

/** SpecialVocab's ids, add_* flags and chat template (gguf-py vocab.py, the paths a real tokenizer takes). */
export function specialVocab(dir: string, tokenizer: Json, hfConfig: Json): Pick<GgufVocab, 'specialIds' | 'addSpecial' | 'chatTemplate'> {
  const ids = new Map<string, number>();
  const add = new Map<string, boolean>();
  let types = ['bos', 'eos', 'unk', 'sep', 'pad', 'cls', 'mask'];
  const setId = (typ: string, id: unknown) => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || ids.has(typ)) return;
    ids.set(typ, id);
  };
  const added: Json[] = Array.isArray(tokenizer.added_tokens) ? tokenizer.added_tokens : [];
  const config = readJson(join(dir, 'tokenizer_config.json'));
  const content = (v: unknown) => (typeof v === 'string' ? v : v && typeof v === 'object' ? (v as Json).content : undefined);
  let bos = content(config?.bos_token), eos = content(config?.eos_token);
  const cls = content(config?.cls_token), sep = content(config?.sep_token);
  if (!bos && cls && config) config.bos_token = bos = cls;
  if (!eos && sep && config) config.eos_token = eos = sep;
  const post = tokenizer.post_processor;
  for (const p of post ? (post.processors ?? [post]) : []) {
    if (p.type === 'RobertaProcessing') {
      add.set('bos', true); add.set('eos', true); add.set('sep', true);
      continue;
    }
    if (p.type !== 'TemplateProcessing') continue;
    const single: Json[] = p.single ?? [];
    let first: string | undefined, last: string | undefined;
    if (single.length > 1) {
      first = single[0]?.SpecialToken?.id;
      if (first) {
        if (!config) bos = first;
        add.set('bos', first === bos || first === cls);
      }
      last = single[single.length - 1]?.SpecialToken?.id;
      if (last) {
        if (!config) eos = last;
        else if (last !== eos) {
          if (!types.includes('eot')) { types = [...types, 'eot']; config.eot_token = eos; }
          else if (!types.includes('eom')) { types = [...types, 'eom']; config.eom_token = eos; }
          config.eos_token = eos = last;
        }
        add.set('eos', last === eos);
      }
    }
    // The pair template "A [sep] [eos] B" decides add_sep.
    let pair: Json[] = p.pair ?? [];
    if (pair.length) {
      const startAt = first && pair[0]?.SpecialToken?.id === first ? 1 : 0;
      const stopAt = last && pair[pair.length - 1]?.SpecialToken?.id === last ? pair.length - 1 : pair.length;
      pair = pair.slice(startAt, stopAt);
      if (pair.length && pair[0]?.Sequence?.id === 'A' && pair[pair.length - 1]?.Sequence?.id === 'B' && (pair = pair.slice(1, -1)).length) {
        let addSep = false;
        const entry = pair[0]?.SpecialToken?.id;
        if (entry && (entry === sep || entry === eos) && !last) addSep = true;
        const second = pair.length === 2 ? pair[1]?.SpecialToken?.id : undefined;
        if (second && (second === sep || second === eos)) addSep = true;
        add.set('sep', addSep);
      }
    }
  }
  let chatTemplate: string | null = null;
  if (config) {
    const jinja = join(dir, 'chat_template.jinja');
    const alt = existsSync(jinja) ? readFileSync(jinja, 'utf8') : (readJson(join(dir, 'chat_template.json'))?.chat_template ?? null);
    const t = config.chat_template ?? alt;
    if (typeof t === 'string') chatTemplate = t;
    else if (t !== null && t !== undefined) {
      fail('ERR_GGUF_UNSUPPORTED', `${join(dir, 'tokenizer_config.json')}: a chat_template that is not one string is not written yet; keep the default template only.`);
    }
    for (const typ of types) {
      const flag = config[`add_${typ}_token`];
      if (typeof flag === 'boolean') add.set(typ, flag);
      const c = content(config[`${typ}_token`]);
      if (typeof c !== 'string') continue;
      setId(typ, added.find((a) => a.content === c)?.id);
    }
  }
  for (const typ of types) setId(typ, hfConfig[`${typ}_token_id`]);
  // gguf-py's GGUFWriter has no handler for cls ids nor for add_* of other than bos/eos/sep.
  return {
    specialIds: [...ids].filter(([t]) => ['bos', 'eos', 'unk', 'sep', 'pad', 'mask', 'eot', 'eom'].includes(t)),
    addSpecial: [...add].filter(([t]) => ['bos', 'eos', 'sep'].includes(t)),
    chatTemplate,
  };
}

/**
 * The GGUF vocabulary of the tokenizer files in `dir` for a model of `vocabRows` embedding rows. `hfConfig` is
 * the config.json the folder converts to (its *_token_id fill in what tokenizer_config.json leaves out).
 */
export function ggufVocab(dir: string, vocabRows: number, hfConfig: Json): GgufVocab {
  const path = join(dir, 'tokenizer.json');
  if (!existsSync(path)) {
    fail('ERR_GGUF_UNSUPPORTED', `${dir} has no tokenizer.json; llama.cpp needs the tokenizer inside the GGUF file. ` +
      'Copy the model\'s tokenizer.json (and tokenizer_config.json) into the folder.');
  }
  const bytes = readFileSync(path);
  // The vocabulary and merges straight from the bytes where the file is plain (nearly always); else JSON.parse.
  const scan = scanBpeTokenizerJson(bytes);
  const tokenizer = scan ? scan.rest : parseJson(path, bytes.toString('utf8'));
  const model = tokenizer.model ?? {};
  if (model.type !== 'BPE' || model.byte_fallback === true) {
    fail('ERR_GGUF_UNSUPPORTED', `${path}: a ${model.type ?? 'unknown'}${model.byte_fallback ? ' (byte-fallback, SentencePiece-style)' : ''} ` +
      'tokenizer; litlora writes byte-level BPE tokenizers (GPT-2, GPT-NeoX, Llama 3, Qwen2, SmolLM) to GGUF.');
  }
  const pre = preTokenizerName(tokenizer, scan?.merges.length);
  if (typeof pre !== 'string') {
    fail('ERR_GGUF_UNSUPPORTED', `${path}: ${pre.reason}; llama.cpp would split text differently from this tokenizer. ` +
      'Known: GPT-2 byte-level, Llama 3 and Qwen2 split regexes, SmolLM digits.');
  }
  const added = new Map<number, Json>();
  for (const a of (tokenizer.added_tokens ?? []) as Json[]) added.set(a.id, a);
  if (!scan) return { model: 'gpt2', pre, ...bpeTokens(path, model, added, vocabRows), ...specialVocab(dir, tokenizer, hfConfig) };

  let maxId = scan.maxId;
  for (const id of added.keys()) if (id > maxId) maxId = id;
  checkMaxId(path, maxId, vocabRows);
  // Added tokens take their ids' places, as in bpeTokens.
  const texts = new Map<number, string>();
  const tokenTypes = new Int32Array(vocabRows);
  for (let id = 0; id < vocabRows; id++) {
    tokenTypes[id] = id < scan.start.length && scan.start[id] >= 0 ? TOKEN_TYPE.NORMAL : TOKEN_TYPE.UNUSED;
  }
  for (const [id, a] of added) {
    const { text, type } = addedToken(a);
    texts.set(id, text);
    tokenTypes[id] = type;
  }
  const tokens = encodeTokens(scan, vocabRows, texts);
  return { model: 'gpt2', pre, tokens, tokenTypes, merges: scan.merges, ...specialVocab(dir, tokenizer, hfConfig) };
}

/** An added token's text and type: CONTROL when special (or looking so), else USER_DEFINED with ▁ as spaces. */
function addedToken(a: Json): { text: string; type: number } {
  const t: string = a.content;
  return a.special || looksSpecial(t) ? { text: t, type: TOKEN_TYPE.CONTROL } : { text: t.replaceAll('\u2581', ' '), type: TOKEN_TYPE.USER_DEFINED };
}

function checkMaxId(path: string, maxId: number, vocabRows: number): void {
  if (maxId >= vocabRows) {
    fail('ERR_GGUF_UNSUPPORTED', `${path} has token id ${maxId}, but the model's embedding has ${vocabRows} rows; ` +
      'is this the tokenizer of these weights?');
  }
}

/** Tokens, types and merges of a tokenizer.json parsed by JSON.parse (what scanBpeTokenizerJson leaves to it). */
function bpeTokens(path: string, model: Json, added: Map<number, Json>, vocabRows: number): Pick<GgufVocab, 'tokens' | 'tokenTypes' | 'merges'> {
  const byId = new Map<number, string>();
  for (const [text, id] of Object.entries(model.vocab ?? {})) byId.set(Number(id), text);
  for (const [id, a] of added) byId.set(id, a.content);
  // A loop, not Math.max(...ids): spreading a real vocabulary (Llama 3's 128k ids, Qwen2's 151k) as arguments
  // overflows V8's stack.
  let maxId = -1;
  for (const id of byId.keys()) if (id > maxId) maxId = id;
  checkMaxId(path, maxId, vocabRows);
  const tokens: string[] = [], tokenTypes: number[] = [];
  for (let i = 0; i < vocabRows; i++) {
    const t = byId.get(i);
    if (t === undefined) {
      tokens.push(`[PAD${i}]`);
      tokenTypes.push(TOKEN_TYPE.UNUSED);
      continue;
    }
    const a = added.get(i);
    const { text, type } = a ? addedToken(a) : { text: t, type: TOKEN_TYPE.NORMAL };
    tokens.push(text);
    tokenTypes.push(type);
  }
  const rawMerges: unknown[] = Array.isArray(model.merges) ? model.merges : [];
  const merges = rawMerges.map((m) => (typeof m === 'string' ? m
    : (m as string[]).map((part) => [...part].map((c) => (c === ' ' ? String.fromCharCode(32 + 256) : c)).join('')).join(' ')));
  return { tokens, tokenTypes, merges };
}

/** Adds the vocabulary's keys in _set_vocab_gpt2's (and _set_vocab_sentencepiece's) order. */
export function addVocab(md: GgufMetadata, v: GgufVocab): void {
  md.string('tokenizer.ggml.model', v.model);
  md.string('tokenizer.ggml.pre', v.pre);
  md.set('tokenizer.ggml.tokens', { type: 'string[]', value: v.tokens });
  if (v.scores) md.set('tokenizer.ggml.scores', { type: 'f32[]', value: v.scores });
  md.set('tokenizer.ggml.token_type', { type: 'i32[]', value: v.tokenTypes });
  if (v.merges.length) md.set('tokenizer.ggml.merges', { type: 'string[]', value: v.merges });
  const idKey: Record<string, string> = {
    bos: 'bos_token_id', eos: 'eos_token_id', unk: 'unknown_token_id', sep: 'seperator_token_id', pad: 'padding_token_id',
    mask: 'mask_token_id', eot: 'eot_token_id', eom: 'eom_token_id',
  };
  for (const [typ, id] of v.specialIds) md.u32(`tokenizer.ggml.${idKey[typ]}`, id);
  for (const [typ, flag] of v.addSpecial) md.bool(`tokenizer.ggml.add_${typ}_token`, flag);
  if (v.chatTemplate !== null) md.string('tokenizer.chat_template', v.chatTemplate);
  if (v.addSpacePrefix !== undefined) md.bool('tokenizer.ggml.add_space_prefix', v.addSpacePrefix);
}
