// Supervised finetuning samples and batches, as litgpt's SFTDataset and _sft_collate_fn (era C,
// litgpt/data/base.py):
//   prompt   = style.apply(instruction, **example)
//   enc_p    = encode(prompt, max_length=L)                       (BOS as the tokenizer decides)
//   enc_r    = encode(output, bos=False, eos=True, max_length=L)
//   input    = cat(enc_p, enc_r)[:L]            (no cut when L ≤ 0)
//   labels   = input, with labels[:len(enc_p)] = ignore_index when mask_prompt
// Collation right-pads to the longest sample (input_ids with 0, labels with ignore_index), then truncates to L.
import type { PromptStyle } from './prompts.js';
import type { Tokenizer } from './tokenizer.js';

/** One instruction sample in litgpt's Alpaca shape. */
export interface InstructionSample {
  instruction: string;
  input?: string | null;
  output: string;
  [key: string]: unknown;
}

/** A tokenized sample: ids and labels of equal length. */
export interface EncodedSample {
  inputIds: Int32Array;
  labels: Int32Array;
  /** Tokens of the prompt part (before any cut to maxSeqLength). */
  promptLength: number;
}

/**
 * A micro-batch, row-major B×T. Labels are aligned with inputIds (not shifted): the loss compares the logits at
 * position t with labels[t+1], as litgpt's `chunked_cross_entropy(logits[..., :-1, :], targets[..., 1:])`.
 */
export interface Batch {
  inputIds: Int32Array;
  labels: Int32Array;
  batchSize: number;
  seqLength: number;
  /** Real (non-padding) tokens in the batch. */
  tokenCount: number;
  /** Indices of the samples in their split, row by row. */
  sampleIndices: number[];
}

export interface SftOptions {
  promptStyle: PromptStyle;
  /** L: truncate to this many tokens; ≤ 0 keeps everything. */
  maxSeqLength: number;
  maskPrompt: boolean;
  ignoreIndex: number;
}

/** litgpt's `SFTDataset.__getitem__` for one sample. */
export function encodeSample(tokenizer: Tokenizer, sample: InstructionSample, options: SftOptions): EncodedSample {
  const L = options.maxSeqLength;
  const fields: Record<string, unknown> = { ...sample };
  if (typeof sample.sys_prompt === 'string') fields.sysPrompt = sample.sys_prompt;
  const prompt = options.promptStyle.apply(sample.instruction, fields as any);
  const encPrompt = tokenizer.encode(prompt, { maxLength: L });
  const encResponse = tokenizer.encode(sample.output, { bos: false, eos: true, maxLength: L });
  let length = encPrompt.length + encResponse.length;
  if (L > 0 && length > L) length = L;
  const inputIds = new Int32Array(length);
  inputIds.set(encPrompt.subarray(0, Math.min(encPrompt.length, length)));
  if (length > encPrompt.length) inputIds.set(encResponse.subarray(0, length - encPrompt.length), encPrompt.length);
  const labels = inputIds.slice();
  if (options.maskPrompt) labels.fill(options.ignoreIndex, 0, Math.min(encPrompt.length, length));
  return { inputIds, labels, promptLength: encPrompt.length };
}

/** litgpt's `_sft_collate_fn`: right-pad (ids with padId, labels with ignoreIndex), then cut to maxSeqLength. */
export function collate(
  samples: readonly EncodedSample[],
  { maxSeqLength = -1, padId = 0, ignoreIndex = -100, sampleIndices }: {
    maxSeqLength?: number; padId?: number; ignoreIndex?: number; sampleIndices?: number[];
  } = {},
): Batch {
  const batchSize = samples.length;
  let seqLength = 0;
  for (const s of samples) seqLength = Math.max(seqLength, s.inputIds.length);
  if (maxSeqLength > 0) seqLength = Math.min(seqLength, maxSeqLength);
  const inputIds = new Int32Array(batchSize * seqLength).fill(padId);
  const labels = new Int32Array(batchSize * seqLength).fill(ignoreIndex);
  let tokenCount = 0;
  samples.forEach((s, row) => {
    const n = Math.min(s.inputIds.length, seqLength);
    inputIds.set(s.inputIds.subarray(0, n), row * seqLength);
    labels.set(s.labels.subarray(0, n), row * seqLength);
    tokenCount += n;
  });
  return { inputIds, labels, batchSize, seqLength, tokenCount, sampleIndices: sampleIndices ?? samples.map((_, i) => i) };
}

/** Batches of `samples` in `order`, microBatchSize at a time; the last one may be smaller unless dropLast. */
export function* batchesInOrder(
  samples: readonly EncodedSample[], order: readonly number[], microBatchSize: number,
  options: { maxSeqLength: number; ignoreIndex: number; padId?: number; dropLast?: boolean },
): Generator<Batch> {
  for (let start = 0; start < order.length; start += microBatchSize) {
    const indices = order.slice(start, start + microBatchSize);
    if (options.dropLast && indices.length < microBatchSize) return;
    yield collate(indices.map((i) => samples[i]!), { ...options, sampleIndices: indices });
  }
}
