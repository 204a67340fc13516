// convert_to_litgpt: a Hugging Face model folder → litgpt's lit_model.pth + model_config.yaml next to its files,
// what litgpt's `convert_hf_checkpoint` writes for the same model:
//
//   * the config: `--model_name` when given (checked against config.json); else the named litgpt config whose
//     architecture config.json describes (the folder's name or config.json's _name_or_path settles base vs
//     instruct twins); else, for a model of a supported family that no named config describes (a user's own or
//     shrunken model), a model_config.yaml built from config.json's fields;
//   * the weights: litgpt's names, fused QKV in litgpt's [Q|K|V] layout, a tied head stored as the embedding's
//     storage (as litgpt's converter saves it), dtype as `dtype` or as stored;
//   * streamed tensor by tensor in native code (native/core/tensor_plan): peak memory is a few MB blocks, not
//     the model; written atomically, and an existing lit_model.pth is kept unless `force`.
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { binding, type NativeTensorPlanOutput } from '../binding.js';
import { fail } from '../errors.js';
import { CONFIG_FILE, extendCheckpointDir, MODEL_FILE } from '../io/checkpoint.js';
import { removeStalePartials } from '../io/atomic.js';
import { configFromName, configNames } from '../model/configs.js';
import { normalizeConfig, writeConfig, type Config } from '../model/config.js';
import { baseParameters } from '../model/init.js';
import type { Dtype } from '../tensor.js';
import { architectureDifferences, configInputFromHf, familyOfHfConfig, type HfConfigJson, type HfFamily } from './hf_config.js';
import { openHfFolder, type HfFolder } from './hf_folder.js';
import { hfTopNames, litgptFromHf } from './hf_weights.js';

export const CONVERT_DTYPES: readonly Dtype[] = ['float32', 'bfloat16', 'float16', 'float64'];

export interface ConvertToLitgptOptions {
  /** A litgpt config name (litgpt's --model_name); default: inferred from config.json. */
  modelName?: string | null;
  /** Weights dtype of lit_model.pth; default: as stored. */
  dtype?: Dtype | null;
  /** Replace an existing lit_model.pth (and model_config.yaml). */
  force?: boolean;
  /** Where a relative folder resolves (also tried under `checkpoints/`, as litgpt does). Default process.cwd(). */
  cwd?: string;
  /** Called as the conversion moves on. */
  onProgress?: (event: ConvertProgress) => void;
}

export interface ConvertProgress {
  phase: 'config' | 'merge' | 'weights' | 'done';
  /** The config chosen (from 'weights' on). */
  modelName?: string;
  /** Tensors written so far ('weights', 'done'). */
  tensors?: number;
  /** Tensors to write in all. */
  total?: number;
  bytes?: number;
}

export interface ConvertToLitgptResult {
  dir: string;
  outFile: string;
  configFile: string;
  config: Config;
  /** How the config was chosen: given, a named litgpt config that config.json matches, or built from config.json. */
  configVia: 'model_name' | 'named' | 'config.json';
  family: HfFamily['name'];
  tensors: number;
  bytesWritten: number;
  seconds: number;
}

/** HF buffers that are not parameters (older GPT-NeoX and Llama files carry them); litgpt's converter drops them. */
const BUFFERS = /\.(rotary_emb\.inv_freq|attention\.bias|attention\.masked_bias)$/;

function candidateNames(dir: string, hf: HfConfigJson): string[] {
  const out = [basename(dir), `${basename(dirname(dir))}/${basename(dir)}`];
  if (typeof hf._name_or_path === 'string' && hf._name_or_path) out.push(hf._name_or_path, basename(hf._name_or_path));
  return out;
}

/** Chooses the litgpt config for an HF folder (see the header). */
export function chooseConfig(folder: HfFolder, family: HfFamily, modelName: string | null | undefined):
  { config: Config; via: ConvertToLitgptResult['configVia'] } {
  const where = folder.configPath;
  const input = configInputFromHf(folder.config, family, where);
  const fromJson = normalizeConfig({ ...input, name: basename(folder.dir) }, where);
  if (modelName) {
    const named = configFromName(modelName);
    const diff = architectureDifferences(named, fromJson);
    if (diff.length) {
      fail('ERR_CONFIG', `--model_name ${modelName} does not describe ${where}: ${diff.join('; ')}. ` +
        'Leave --model_name out to use config.json as it is.');
    }
    return { config: named, via: 'model_name' };
  }
  const matches = configNames().map((n) => configFromName(n)).filter((c) => architectureDifferences(c, fromJson).length === 0);
  if (matches.length === 1) return { config: matches[0], via: 'named' };
  if (matches.length > 1) {
    const hints = candidateNames(folder.dir, folder.config);
    const byHint = matches.filter((c) => hints.some((h) => h === c.name || h === c.hf_config.name ||
      h === `${c.hf_config.org}/${c.hf_config.name}`));
    if (byHint.length === 1) return { config: byHint[0], via: 'named' };
    fail('ERR_CONFIG', `${where} describes ${matches.length} litgpt configs (${matches.map((c) => c.name).join(', ')}), ` +
      'and the folder\'s name does not tell which; pass --model_name with one of them.');
  }
  const org = basename(dirname(folder.dir));
  // litgpt's RMSNorm scales by (1 + weight) for a config whose name contains "Gemma" (litgpt's Config.norm_class),
  // so a Gemma model keeps that word in its name.
  const gemma = { gemma2: 'Gemma-2-', gemma3: 'Gemma-3-' }[family.name as string];
  const name = gemma && !basename(folder.dir).includes('Gemma') ? `${gemma}${basename(folder.dir)}` : basename(folder.dir);
  return { config: normalizeConfig({ ...input, name, hf_config: { org, name } }, where), via: 'config.json' };
}

/** The plan's outputs, with every source tensor checked against the shapes the config gives litgpt's tensors. */
export function litgptPlan(folder: HfFolder, config: Config, family: HfFamily, dtype: Dtype | null):
  { outputs: NativeTensorPlanOutput[]; unexpected: string[] } {
  const hasHead = folder.tensors.has(hfTopNames(family).lmHead);
  const recipes = litgptFromHf(config, family, hasHead);
  const expected = new Map(baseParameters(config));
  const used = new Set<string>();
  const missing: string[] = [];
  const shapes: string[] = [];
  const outputs: NativeTensorPlanOutput[] = [];
  for (const recipe of recipes) {
    const pieces = [];
    let rows = 0;
    let trailing: number[] | null = null;
    for (const piece of recipe.pieces) {
      const t = folder.tensors.get(piece.name);
      if (!t) {
        if (!missing.includes(piece.name)) missing.push(piece.name);
        continue;
      }
      used.add(piece.name);
      rows += piece.rows ?? t.info.shape[0] - (piece.rowStart ?? 0);
      trailing = t.info.shape.slice(1);
      pieces.push({ source: t.file, name: piece.name, rowStart: piece.rowStart ?? 0, rows: piece.rows ?? -1 });
    }
    const want = expected.get(recipe.name);
    if (want && trailing && JSON.stringify([rows, ...trailing]) !== JSON.stringify(want)) {
      shapes.push(`${recipe.pieces[0].name} (${recipe.name} needs [${want}], the file gives [${[rows, ...trailing]}])`);
    }
    outputs.push({ name: recipe.name, pieces, ...(dtype ? { dtype } : {}) });
  }
  const where = folder.files.length === 1 ? folder.files[0] : `the weights of ${folder.dir}`;
  if (missing.length) {
    fail('ERR_CHECKPOINT_FORMAT', `${where} lack${folder.files.length === 1 ? 's' : ''} tensors that config '${config.name}' needs: ` +
      `${missing.slice(0, 6).join(', ')}${missing.length > 6 ? `, … (${missing.length - 6} more)` : ''}. ` +
      'Is the download complete, and is config.json the one of these weights?');
  }
  if (shapes.length) {
    fail('ERR_SHAPE', `${where}: tensors of the wrong shape for config '${config.name}': ${shapes.slice(0, 4).join('; ')}. ` +
      'Is config.json the one of these weights (or --model_name the right model)?');
  }
  if (!hasHead) outputs.push({ name: 'lm_head.weight', aliasOf: 'transformer.wte.weight' });
  const unexpected = [...folder.tensors.keys()].filter((n) => !used.has(n) && !BUFFERS.test(n));
  return { outputs, unexpected };
}

/** Converts the HF folder `checkpointDir` in place (see the header). */
export async function convertToLitgpt(checkpointDir: string, options: ConvertToLitgptOptions = {}): Promise<ConvertToLitgptResult> {
  const cwd = resolve(options.cwd ?? process.cwd());
  if (options.dtype && !CONVERT_DTYPES.includes(options.dtype)) {
    fail('ERR_ARG', `dtype must be one of ${CONVERT_DTYPES.join(', ')}, got '${String(options.dtype)}'`);
  }
  const folder = await openHfFolder(extendCheckpointDir(checkpointDir, cwd));
  const outFile = join(folder.dir, MODEL_FILE);
  const configFile = join(folder.dir, CONFIG_FILE);
  await removeStalePartials(folder.dir, MODEL_FILE);
  if (existsSync(outFile) && !options.force) {
    fail('ERR_EXISTS', `${outFile} exists already; pass --force (force: true) to convert again and replace it.`);
  }
  options.onProgress?.({ phase: 'config' });
  const family = familyOfHfConfig(folder.config, folder.configPath);
  const { config, via } = chooseConfig(folder, family, options.modelName);
  const { outputs, unexpected } = litgptPlan(folder, config, family, options.dtype ?? null);
  if (unexpected.length) {
    fail('ERR_CHECKPOINT_FORMAT', `${folder.dir}: the weights hold tensors a ${family.architecture} of config '${config.name}' ` +
      `does not have: ${unexpected.slice(0, 6).join(', ')}${unexpected.length > 6 ? ', …' : ''}. ` +
      'Is config.json the one of these weights?');
  }
  const report = options.onProgress;
  report?.({ phase: 'weights', modelName: config.name, tensors: 0, total: outputs.length });
  const stats = await binding().writeTensorPlan({ sources: folder.files, outputs, outPath: outFile, format: 'pth' },
    report ? (done, total) => report({ phase: 'weights', modelName: config.name, tensors: done, total }) : undefined);
  await writeConfig(configFile, config);
  report?.({ phase: 'done', modelName: config.name, tensors: stats.tensors, total: outputs.length, bytes: stats.bytesWritten });
  return {
    dir: folder.dir, outFile, configFile, config, configVia: via, family: family.name,
    tensors: stats.tensors, bytesWritten: stats.bytesWritten, seconds: stats.seconds,
  };
}
