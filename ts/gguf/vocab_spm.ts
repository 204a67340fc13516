// A SentencePiece tokenizer.model as GGUF metadata, as convert_hf_to_gguf.py's _set_vocab_sentencepiece writes it
// (Llama 2, TinyLlama, Mistral: the families whose set_vocab tries tokenizer.model before tokenizer.json):
//
//   tokenizer.ggml.model "llama", pre "default"; tokens, scores and types by id from the ModelProto's pieces
//   (UNKNOWN, CONTROL, UNUSED and BYTE pieces keep their type, every other piece, user-defined ones included, is
//   NORMAL), "[PAD{i}]" / -10000 / UNUSED up to the embedding's rows; added_tokens.json entries, then
//   tokenizer_config.json's added_tokens_decoder (CONTROL when special or special-looking, else USER_DEFINED with
//   ▁ as a space), each scored -1000; then gguf-py's SpecialVocab (vocab.ts) without a tokenizer.json's added tokens.
//
// litlora runs only BPE SentencePiece models (data/sentencepiece.ts); anything else is ERR_GGUF_UNSUPPORTED. Gemma's
// converter adds tokenizer.ggml.add_space_prefix false (llama.cpp then adds no ▁ before the text), so a Gemma model
// whose tokenizer.model adds a dummy prefix is refused: llama.cpp would tokenize it differently.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { readSentencePieceModel } from '../data/sentencepiece.js';
import { looksSpecial, readJson, specialVocab, TOKEN_TYPE, type GgufVocab } from './vocab.js';

/** SentencePiece's piece types that _create_vocab_sentencepiece keeps (sentencepiece_model.proto's numbers). */
const KEPT_TYPES = new Set<number>([TOKEN_TYPE.UNKNOWN, TOKEN_TYPE.CONTROL, TOKEN_TYPE.UNUSED, TOKEN_TYPE.BYTE]);

/** The GGUF vocabulary of `dir`'s tokenizer.model for a model of `vocabRows` embedding rows (see the header). */
export function sentencePieceVocab(dir: string, vocabRows: number, hfConfig: Record<string, unknown>, gemma = false): GgufVocab {
  const path = join(dir, 'tokenizer.model');
  if (!existsSync(path)) {
    fail('ERR_GGUF_UNSUPPORTED', `${dir} has no tokenizer.model; llama.cpp's Gemma vocabulary is the SentencePiece model. ` +
      'Copy the model\'s tokenizer.model into the folder.');
  }
  const model = readSentencePieceModel(readFileSync(path), path);
  if (gemma && model.addDummyPrefix) {
    fail('ERR_GGUF_UNSUPPORTED', `${path} adds a dummy prefix (▁) before the text, which llama.cpp's Gemma vocabulary does not; ` +
      'llama.cpp would tokenize differently from litlora.');
  }
  if (model.modelType !== 2) {
    fail('ERR_GGUF_UNSUPPORTED', `${path} is a ${model.modelType === 1 ? 'Unigram' : `type ${model.modelType}`} SentencePiece model; ` +
      'litlora writes BPE SentencePiece tokenizers (Llama 2, TinyLlama, Mistral) to GGUF.');
  }
  if (model.pieces.length > vocabRows) {
    fail('ERR_GGUF_UNSUPPORTED', `${path} has ${model.pieces.length} pieces, but the model's embedding has ${vocabRows} rows; ` +
      'is this the tokenizer of these weights?');
  }
  const tokens = Array.from({ length: vocabRows }, (_, i) => `[PAD${i}]`);
  const scores = new Array<number>(vocabRows).fill(-10000);
  const tokenTypes = new Array<number>(vocabRows).fill(TOKEN_TYPE.UNUSED);
  model.pieces.forEach((p, id) => {
    tokens[id] = p.piece;
    scores[id] = p.score;
    tokenTypes[id] = KEPT_TYPES.has(p.type) ? p.type : TOKEN_TYPE.NORMAL;
  });
  const set = (id: number, text: string, type: number, what: string) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabRows) {
      fail('ERR_GGUF_UNSUPPORTED', `${what} has token id ${id}, but the model's embedding has ${vocabRows} rows; is this the tokenizer of these weights?`);
    }
    tokens[id] = text;
    scores[id] = -1000;
    tokenTypes[id] = type;
  };
  const addedFile = join(dir, 'added_tokens.json');
  for (const [text, id] of Object.entries(readJson(addedFile) ?? {})) set(Number(id), text, TOKEN_TYPE.USER_DEFINED, addedFile);
  const configFile = join(dir, 'tokenizer_config.json');
  const decoder = (readJson(configFile)?.added_tokens_decoder ?? {}) as Record<string, { content: string; special?: boolean }>;
  for (const [id, token] of Object.entries(decoder)) {
    const control = token.special === true || looksSpecial(token.content);
    set(Number(id), control ? token.content : token.content.replaceAll('\u2581', ' '), control ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED, configFile);
  }
  const vocab: GgufVocab = { model: 'llama', pre: 'default', tokens, scores, tokenTypes, merges: [], ...specialVocab(dir, {}, hfConfig) };
  return gemma ? { ...vocab, addSpacePrefix: false } : vocab;
}
