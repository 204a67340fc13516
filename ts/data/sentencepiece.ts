// SentencePiece-only checkpoints (tokenizer.model, no tokenizer.json), as litgpt's Tokenizer supports them: the
// ModelProto is read (protobuf wire format: the few fields a conversion needs) and turned into the tokenizer.json
// that transformers' convert_slow_tokenizer.py writes for it (LlamaConverter: BPE with byte fallback, merges
// generated from the vocabulary order, the ▁ prefix and space replacement, control pieces as special tokens), which
// the @huggingface/tokenizers path then runs. test/07.data.tokenizer.test.ts checks the ids against the
// SentencePiece library itself (test/reference/make_sentencepiece_fixture.py).
//
// Only what that conversion reproduces is accepted: BPE models with the identity normalization (Llama, Mistral,
// TinyLlama…). A Unigram model or one with a normalization rule or whitespace collapsing is ERR_CONFIG naming it.
import { fail } from '../errors.js';

/** sentencepiece_model.proto's SentencePiece.Type values that the conversion tells apart. */
const PieceType = { Normal: 1, Unknown: 2, Control: 3, UserDefined: 4 } as const;
const MODEL_TYPES: Record<number, string> = { 1: 'UNIGRAM', 2: 'BPE', 3: 'WORD', 4: 'CHAR' };

interface Piece { piece: string; score: number; type: number }

/** The fields of sentencepiece_model.proto's ModelProto that the conversion uses (protobuf defaults filled in). */
export interface SentencePieceModel {
  pieces: Piece[];
  modelType: number;
  unkId: number;
  bosId: number;
  eosId: number;
  byteFallback: boolean;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  normalizerName: string;
  precompiledCharsmap: number;
}

/** A minimal protobuf reader: varints, 64/32-bit fixed and length-delimited fields. */
class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array, readonly where: string, readonly end = buf.length) {}
  done(): boolean { return this.pos >= this.end; }
  varint(): number {
    let result = 0, scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.bad('a truncated varint');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 128;
    }
    return this.bad('a varint longer than 10 bytes');
  }
  bytes(): Uint8Array {
    const n = this.varint();
    if (this.pos + n > this.end) this.bad('a field past the end of its message');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  float(): number {
    if (this.pos + 4 > this.end) this.bad('a truncated float');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else this.bad(`wire type ${wire}`);
    if (this.pos > this.end) this.bad('a field past the end of its message');
  }
  /** Calls `field(number, wire)` for each field; the callback reads the value or returns false to skip it. */
  fields(field: (num: number, wire: number) => boolean): void {
    while (!this.done()) {
      const key = this.varint();
      if (!field(Math.floor(key / 8), key & 7)) this.skip(key & 7);
    }
  }
  sub(bytes: Uint8Array): Reader { return new Reader(bytes, this.where); }
  bad(what: string): never {
    return fail('ERR_CONFIG', `${this.where}: not a SentencePiece model (protobuf ModelProto): ${what} at byte ${this.pos}`);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses tokenizer.model (a serialized sentencepiece ModelProto). */
export function readSentencePieceModel(bytes: Uint8Array, where = 'tokenizer.model'): SentencePieceModel {
  const m: SentencePieceModel = {
    pieces: [], modelType: 1, unkId: 0, bosId: 1, eosId: 2, byteFallback: false, addDummyPrefix: true,
    removeExtraWhitespaces: true, normalizerName: '', precompiledCharsmap: 0,
  };
  const r = new Reader(bytes, where);
  const text = (b: Uint8Array) => { try { return utf8.decode(b); } catch { return r.bad('a piece that is not UTF-8'); } };
  r.fields((num, wire) => {
    if (num === 1 && wire === 2) { // pieces
        const p: Piece = { piece: '', score: 0, type: PieceType.Normal };
      const s = r.sub(r.bytes());
      s.fields((n, w) => {
        if (n === 1 && w === 2) p.piece = text(s.bytes());
        else if (n === 2 && w === 5) p.score = s.float();
        else if (n === 3 && w === 0) p.type = s.varint();
        else return false;
        return true;
      });
      m.pieces.push(p);
    } else if (num === 2 && wire === 2) { // trainer_spec
      const s = r.sub(r.bytes());
      s.fields((n, w) => {
        if (w !== 0) return false;
        if (n === 3) m.modelType = s.varint();
        else if (n === 35) m.byteFallback = s.varint() !== 0;
        else if (n === 40) m.unkId = s.varint();
        else if (n === 41) m.bosId = toInt32(s.varint());
        else if (n === 42) m.eosId = toInt32(s.varint());
        else return false;
        return true;
      });
    } else if (num === 3 && wire === 2) { // normalizer_spec
      const s = r.sub(r.bytes());
      s.fields((n, w) => {
        if (n === 1 && w === 2) m.normalizerName = text(s.bytes());
        else if (n === 2 && w === 2) m.precompiledCharsmap = s.bytes().length;
        else if (n === 3 && w === 0) m.addDummyPrefix = s.varint() !== 0;
        else if (n === 4 && w === 0) m.removeExtraWhitespaces = s.varint() !== 0;
        else return false;
        return true;
      });
    } else {
      return false;
    }
    return true;
  });
  if (m.pieces.length === 0) r.bad('no pieces');
  return m;
}

/** A proto int32 of -1 arrives as a 10-byte varint (2^64 - 1). */
const toInt32 = (v: number) => (v >= 2 ** 31 ? v - 2 ** 64 : v);

/** transformers' generate_merges(vocab): each piece's splits into two pieces of the vocabulary, by the piece's rank. */
function generateMerges(vocab: Map<string, number>): [string, string][] {
  const merges: [string, string, number][] = [];
  for (const [merge, rank] of vocab) {
    const local: [string, string, number][] = [];
    const chars = Array.from(merge); // Python slices by code point
    for (let i = 1; i < chars.length; i++) {
      const l = chars.slice(0, i).join(''), r = chars.slice(i).join('');
      if (vocab.has(l) && vocab.has(r)) local.push([l, r, rank]);
    }
    local.sort((a, b) => vocab.get(a[0])! - vocab.get(b[0])! || vocab.get(a[1])! - vocab.get(b[1])!);
    merges.push(...local);
  }
  // sorted(key=(score, len(left), len(right))): a stable sort, as Python's.
  const len = (s: string) => Array.from(s).length;
  merges.sort((a, b) => a[2] - b[2] || len(a[0]) - len(b[0]) || len(a[1]) - len(b[1]));
  return merges.map(([l, r]) => [l, r]);
}

/**
 * The tokenizer.json transformers' LlamaConverter makes of a SentencePiece BPE model, with the dummy prefix done as
 * the SentencePiece library does it, which litgpt calls for a tokenizer.model: a ▁ before the whole text, always.
 * (transformers' legacy form, a Prepend normalizer, adds one after every added token too; its non-legacy
 * Metaspace 'first' adds none to a text that starts with a space.) So the prefix is returned apart, as a space
 * the Tokenizer puts before each text, and the Metaspace pre-tokenizer only turns spaces into ▁.
 * `config` is tokenizer_config.json: `add_prefix_space` overrides the model's add_dummy_prefix,
 * add_bos_token/add_eos_token the post-processor (LlamaTokenizerFast's defaults: BOS yes, EOS no).
 */
export function sentencePieceToTokenizerJson(model: SentencePieceModel, config: Record<string, unknown> | null = null, where = 'tokenizer.model'):
  { tokenizerJson: any; textPrefix: string } {
  if (model.modelType !== 2) {
    fail('ERR_CONFIG', `${where} is a SentencePiece ${MODEL_TYPES[model.modelType] ?? model.modelType} model; litlora converts BPE models ` +
      '(Llama, Mistral…) only. Convert it to tokenizer.json with transformers (AutoTokenizer.from_pretrained(dir).save_pretrained(dir))');
  }
  if (model.precompiledCharsmap > 0 || model.removeExtraWhitespaces) {
    fail('ERR_CONFIG', `${where} normalizes text (${model.precompiledCharsmap > 0 ? `rule '${model.normalizerName || 'precompiled'}'` : 'collapses whitespace'}), ` +
      'which the tokenizer.json conversion does not reproduce; convert it with transformers (AutoTokenizer.from_pretrained(dir).save_pretrained(dir))');
  }
  const vocab = new Map<string, number>();
  model.pieces.forEach((p, i) => { if (!vocab.has(p.piece)) vocab.set(p.piece, i); });
  const unk = model.pieces[model.unkId]?.piece ?? '<unk>';
  const addPrefixSpace = typeof config?.add_prefix_space === 'boolean' ? config.add_prefix_space : model.addDummyPrefix;
  const addedTokens = model.pieces.flatMap((p, id) => ([PieceType.Control, PieceType.Unknown, PieceType.UserDefined] as number[]).includes(p.type) ? [{
    id, content: p.piece, single_word: false, lstrip: false, rstrip: false, normalized: false, special: p.type !== PieceType.UserDefined,
  }] : []);
  const addBos = config?.add_bos_token !== false, addEos = config?.add_eos_token === true;
  const bos = model.bosId >= 0 ? model.pieces[model.bosId]?.piece : undefined;
  const eos = model.eosId >= 0 ? model.pieces[model.eosId]?.piece : undefined;
  const single: any[] = [];
  const specialTokens: Record<string, any> = {};
  if (addBos && bos) { single.push({ SpecialToken: { id: bos, type_id: 0 } }); specialTokens[bos] = { id: bos, ids: [model.bosId], tokens: [bos] }; }
  single.push({ Sequence: { id: 'A', type_id: 0 } });
  if (addEos && eos) { single.push({ SpecialToken: { id: eos, type_id: 0 } }); specialTokens[eos] = { id: eos, ids: [model.eosId], tokens: [eos] }; }
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'never', split: false },
    post_processor: { type: 'TemplateProcessing', single, pair: [...single, ...single.map((s) => (s.Sequence ? { Sequence: { id: 'B', type_id: 1 } } : s))], special_tokens: specialTokens },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        ...(addPrefixSpace ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
      ],
    },
    model: {
      type: 'BPE', dropout: null, unk_token: unk, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: model.byteFallback, ignore_merges: false,
      vocab: Object.fromEntries(vocab), merges: generateMerges(vocab),
    },
  };
  return { tokenizerJson, textPrefix: addPrefixSpace ? ' ' : '' };
}
