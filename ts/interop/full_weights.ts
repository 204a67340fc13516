// The full weights a converter reads from a litgpt folder (convert_from_litgpt, convert_to_gguf): its
// lit_model.pth, or for a LoRA-only folder the base and adapter merged, streamed, into a hidden folder next to the
// converter's output. The merge is removed once the converter is done, whether it succeeded or not; one left behind
// by a killed run is cleared by the next run for the same output.
import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { removeStalePartials, tempSibling } from '../io/atomic.js';
import type { Checkpoint } from '../io/checkpoint.js';
import { mergeLora } from '../model/merge.js';

export interface FullWeightsOptions {
  /** Where a LoRA-only folder's base is, when its hyperparameters.yaml does not say (merge_lora's option). */
  pretrainedCheckpointDir?: string | null;
  cwd: string;
  /** Called before a LoRA-only folder is merged. */
  onMerge?: () => void;
}

/** Runs `use` with the path of `checkpoint`'s full weights (`merged`: they were merged first, for `out`). */
export async function withFullWeights<T>(checkpoint: Checkpoint, out: string, options: FullWeightsOptions,
  use: (weightsFile: string, merged: boolean) => Promise<T>): Promise<T> {
  const mergedName = `${basename(out)}.merging`;
  await removeStalePartials(dirname(out), mergedName);
  let mergedDir: string | null = null;
  try {
    let weightsFile = checkpoint.files.model;
    if (!weightsFile) {
      options.onMerge?.();
      mergedDir = tempSibling(join(dirname(out), mergedName));
      const merged = await mergeLora(checkpoint.dir, { outDir: mergedDir, pretrainedCheckpointDir: options.pretrainedCheckpointDir, cwd: options.cwd });
      weightsFile = merged.outFile;
    }
    return await use(weightsFile, mergedDir !== null);
  } finally {
    if (mergedDir) await rm(mergedDir, { recursive: true, force: true });
  }
}
