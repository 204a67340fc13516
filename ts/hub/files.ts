// Which files of a model repo a download takes, after litgpt's download.py: from the repo's top folder, the
// config and tokenizer files (config.json, generation_config.json, tokenizer*) and one set of weights.
//
// Weights: the safetensors files (with their index) where the repo has them, else the PyTorch .bin files (with
// pytorch_model.bin.index.json). litgpt takes .bin first when a repo has both; safetensors are preferred here
// since they hold the same tensors and are read without unpickling anything. Where some weight files carry
// "model" in their name (model-00001-of-00002.safetensors, pytorch_model.bin) only those are taken, as litgpt
// finds .bin weights by '*model*.bin*': a repo with both model-*.safetensors and consolidated.safetensors (two
// copies of the same weights) is fetched once; .bin files count only when so named (training_args.bin is not weights).
import { fail } from '../errors.js';
import type { HubTarget, RepoFile } from './client.js';

export interface Selection {
  /** config.json, generation_config.json, tokenizer* files. */
  tokenizer: RepoFile[];
  /** The weight files (with their index), empty for a tokenizer-only download. */
  weights: RepoFile[];
  weightFormat: 'safetensors' | 'bin' | null;
}

function isTokenizerFile(name: string): boolean {
  return name === 'config.json' || name === 'generation_config.json' || name.startsWith('tokenizer');
}

/** The files ending `suffix` (with their indexes); those named *model* where there are some, or always (.bin). */
function weightsOf(top: RepoFile[], suffix: string, onlyNamedModel: boolean): RepoFile[] {
  const all = top.filter((f) => f.path.endsWith(suffix) || f.path.endsWith(`${suffix}.index.json`));
  const named = all.filter((f) => f.path.includes('model'));
  return onlyNamedModel || named.some((f) => f.path.endsWith(suffix)) ? named : all;
}

/** The files to fetch of `files` (the repo's listing); ERR_HUB_NOT_FOUND when it has none to fetch. */
export function selectFiles(files: RepoFile[], tokenizerOnly: boolean, target: HubTarget): Selection {
  const top = files.filter((f) => !f.path.includes('/')).sort((a, b) => a.path.localeCompare(b.path));
  const tokenizer = top.filter((f) => isTokenizerFile(f.path));
  const at = `${target.repoId} (revision ${JSON.stringify(target.revision)} on ${target.endpoint})`;
  const listing = top.length ? top.slice(0, 12).map((f) => f.path).join(', ') + (top.length > 12 ? ', …' : '') : 'nothing';
  if (tokenizerOnly) {
    if (!tokenizer.length) {
      fail('ERR_HUB_NOT_FOUND', `${at} has no tokenizer or config files (tokenizer*, config.json, generation_config.json) ` +
        `in its top folder, which holds: ${listing}. Check the repo id: is it a model repo?`);
    }
    return { tokenizer, weights: [], weightFormat: null };
  }
  for (const [format, suffix] of [['safetensors', '.safetensors'], ['bin', '.bin']] as const) {
    const weights = weightsOf(top, suffix, format === 'bin');
    if (weights.some((f) => f.path.endsWith(suffix))) return { tokenizer, weights, weightFormat: format };
  }
  return fail('ERR_HUB_NOT_FOUND', `${at} has no weights litlora can read in its top folder (*.safetensors, or PyTorch ` +
    `*model*.bin files); it holds: ${listing}. Check the repo id and --revision, or pass --tokenizer_only true to ` +
    'fetch only its tokenizer.');
}
