// The tokenizer `litlora init` writes: a real Hugging Face tokenizer.json that needs no download. It is a
// byte-level BPE with no merges: one token per UTF-8 byte (GPT-2's byte-to-unicode alphabet, ByteLevel
// pre-tokenizer and decoder), so every string round-trips, plus three special tokens. The `tokenizers`
// library (Python and JS) loads it; litgpt's Tokenizer reads BOS/EOS from tokenizer_config.json.
//
//   id 0 <|pad|>   id 1 <|bos|>   id 2 <|eos|>   ids 3..258: bytes 0x00..0xFF

export const PAD_TOKEN = '<|pad|>';
export const BOS_TOKEN = '<|bos|>';
export const EOS_TOKEN = '<|eos|>';
export const SPECIAL_TOKENS = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN] as const;
/** The id of byte b is BYTE_OFFSET + b. */
export const BYTE_OFFSET = SPECIAL_TOKENS.length;
/** 256 bytes + 3 special tokens. */
export const BYTE_VOCAB_SIZE = 256 + SPECIAL_TOKENS.length;

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to code points from 256 up. */
export function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table = new Array<string>(256);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = String.fromCodePoint(printable.includes(b) ? b : 256 + next++);
  }
  return table;
}

export interface ByteTokenizerFiles {
  /** tokenizer.json (HF tokenizers format). */
  tokenizer: object;
  /** tokenizer_config.json: add_bos_token true, so litgpt prepends BOS; EOS ends every finetune sample. */
  tokenizerConfig: object;
  /** generation_config.json, which litgpt's Tokenizer also reads ids from. */
  generationConfig: object;
}

export function byteLevelTokenizerFiles(options: { modelMaxLength?: number } = {}): ByteTokenizerFiles {
  const vocab: Record<string, number> = {};
  SPECIAL_TOKENS.forEach((t, i) => { vocab[t] = i; });
  bytesToUnicode().forEach((ch, b) => { vocab[ch] = BYTE_OFFSET + b; });
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, id) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [],
    },
  };
  const tokenizerConfig = {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: BOS_TOKEN,
    eos_token: EOS_TOKEN,
    pad_token: PAD_TOKEN,
    clean_up_tokenization_spaces: false,
    model_max_length: options.modelMaxLength ?? 2048,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  const generationConfig = { bos_token_id: 1, eos_token_id: 2, pad_token_id: 0 };
  return { tokenizer, tokenizerConfig, generationConfig };
}
