// convert_lora_to_peft: a litgpt LoRA folder (lit_model.pth.lora + hyperparameters.yaml + model_config.yaml) →
// a PEFT adapter folder (adapter_config.json + adapter_model.safetensors) that
// `PeftModel.from_pretrained(<the base in transformers>, folder)` loads, computing what litlora's LoRA computes.
//
//   * proj, mlp.* and lm_head: the same A and B under the HF module's name (peft_layout.ts);
//   * Llama / Qwen2 attn.qkv: part i of the enabled q/k/v becomes q_proj / k_proj / v_proj with A block i and
//     part i's rows of B;
//   * GPT-NeoX attn.qkv: one query_key_value module of rank N·r (N enabled parts): A is the N blocks stacked,
//     B is block-diagonal (part i's rows use only columns of block i) with rows in HF's per-head order and zero
//     rows for disabled parts. rank_pattern / alpha_pattern give that module rank N·r and alpha N·lora_alpha,
//     so its scale stays lora_alpha / r.
//
// Tensors keep the adapter's dtype. The output folder appears whole (outdir.ts writeCheckpointFolder); an existing
// non-empty folder is left alone unless `force`.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { fail } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { Checkpoint } from '../io/checkpoint.js';
import { adapterLoraSettings } from '../io/hyperparameters.js';
import { writeCheckpointFolder } from '../io/outdir.js';
import { saveTensors, TensorFile } from '../io/tensorfile.js';
import type { Config } from '../model/config.js';
import { configFromName, configNames } from '../model/configs.js';
import type { LoraSettings } from '../model/lora_settings.js';
import type { Tensor } from '../tensor.js';
import { architectureDifferences, familyOfConfig, type HfFamily } from './hf_config.js';
import { qkvSizes } from './hf_weights.js';
import {
  copyBlock, enabledParts, loraLayers, matrixOf, neoxRow, PEFT_CONFIG_FILE, PEFT_PREFIX, PEFT_WEIGHTS_FILE,
  peftModulesOf, shortName, tensorOf, zeros, type LoraLayer, type Matrix,
} from './peft_layout.js';

export interface ConvertLoraToPeftOptions {
  /** adapter_config.json's base_model_name_or_path; default: the base's Hugging Face name (a named litgpt
   *  config's hf_config org/name), else the base folder hyperparameters.yaml names. */
  baseModelNameOrPath?: string | null;
  /** Replace an existing, non-empty output folder. */
  force?: boolean;
  /** Where relative paths resolve (the folders, hyperparameters.yaml's checkpoint_dir). Default process.cwd(). */
  cwd?: string;
}

export interface ConvertLoraToPeftResult {
  /** The PEFT adapter folder (absolute). */
  dir: string;
  family: HfFamily['name'];
  /** adapter_config.json as written. */
  adapterConfig: Record<string, unknown>;
  /** Tensors in adapter_model.safetensors. */
  tensors: number;
}

function isNonEmptyDir(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory() && readdirSync(path).length > 0;
}

/**
 * The name PEFT users load the base by (see ConvertLoraToPeftOptions.baseModelNameOrPath): the hub name of a
 * named litgpt config when the model is that config's architecture (not a shrunken or changed copy of it).
 */
function baseNameOf(checkpoint: Checkpoint, cwd: string): string | null {
  const c = checkpoint.config;
  const hfName = c.hf_config?.org && c.hf_config?.name ? `${c.hf_config.org}/${c.hf_config.name}` : null;
  if (hfName && configNames().includes(c.name) && architectureDifferences(configFromName(c.name), c).length === 0) return hfName;
  try {
    return checkpoint.resolveBase({ cwd }).path;
  } catch {
    return hfName;
  }
}

/** The PEFT tensors of one litgpt LoRA layer, by PEFT module name. */
function peftTensorsOf(config: Config, family: HfFamily, settings: LoraSettings, layer: LoraLayer, a: Matrix, b: Matrix):
  [string, Matrix, Matrix][] {
  const r = settings.r;
  const modules = peftModulesOf(config, family, layer);
  if (layer.kind !== 'qkv') return [[modules[0].module, a, b]];
  const parts = enabledParts(settings);
  const sizes = qkvSizes(config);
  if (family.name !== 'gpt_neox') {
    const out: [string, Matrix, Matrix][] = [];
    let row = 0;
    for (const [i, part] of parts.entries()) {
      const pa = zeros(r, a.cols, a.dtype), pb = zeros(sizes[part], r, b.dtype);
      copyBlock(a, i * r, pa, 0, r);
      copyBlock(b, row, pb, 0, sizes[part]);
      row += sizes[part];
      out.push([modules.find((m) => m.part === part)!.module, pa, pb]);
    }
    return out;
  }
  // GPT-NeoX: B block-diagonal, rows in HF's per-head order (see the header).
  const pb = zeros(layer.out, parts.length * r, b.dtype);
  let row = 0;
  for (const [i, part] of parts.entries()) {
    for (let j = 0; j < sizes[part]; j++) copyBlock(b, row + j, pb, neoxRow(config, part, j), 1, r, 0, i * r);
    row += sizes[part];
  }
  return [[modules[0].module, a, pb]];
}

/** adapter_config.json, with the fields PEFT 0.x writes for a plain LoRA (defaults where litgpt has no setting). */
function adapterConfigJson(settings: LoraSettings, targets: string[], baseName: string | null,
  qkvRank: number | null): Record<string, unknown> {
  const patterns = qkvRank !== null && qkvRank !== settings.r;
  return {
    alpha_pattern: patterns ? { query_key_value: settings.alpha * (qkvRank! / settings.r) } : {},
    auto_mapping: null,
    base_model_name_or_path: baseName,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: settings.alpha,
    lora_bias: false,
    lora_dropout: settings.dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r: settings.r,
    rank_pattern: patterns ? { query_key_value: qkvRank } : {},
    revision: null,
    target_modules: targets,
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: false,
  };
}

/** Converts the LoRA folder `loraDir` into a PEFT adapter folder `outputDir` (see the header). */
export async function convertLoraToPeft(loraDir: string, outputDir: string, options: ConvertLoraToPeftOptions = {}):
  Promise<ConvertLoraToPeftResult> {
  const cwd = resolve(options.cwd ?? process.cwd());
  const out = resolve(cwd, outputDir);
  const checkpoint = await Checkpoint.open(resolve(cwd, loraDir), { ignoreTokenizerFiles: true });
  if (!checkpoint.files.lora) {
    fail('ERR_CHECKPOINT_MISSING', `${checkpoint.dir} has no lit_model.pth.lora (it is a ${checkpoint.kind} folder); ` +
      'convert_lora_to_peft takes a LoRA finetune folder (out_dir/final or out_dir/step-XXXXXX).');
  }
  if (isNonEmptyDir(out) && !options.force) {
    fail('ERR_EXISTS', `${out} exists already and is not empty; choose another output folder, or pass --force (force: true) to replace it.`);
  }
  const where = checkpoint.files.hyperparameters ?? checkpoint.dir;
  const settings = adapterLoraSettings(checkpoint.hyperparameters ?? {}, where, checkpoint.files.lora);
  const config = checkpoint.config;
  const family = familyOfConfig(config, checkpoint.files.config);
  if (config.mlp_class_name === 'LLaMAMoE' && settings.mlp) {
    fail('ERR_CONFIG', `${where}: lora_mlp puts LoRA on LLaMAMoE's router and every expert; transformers 5 holds a layer's experts ` +
      'as fused 3-D parameters, not the per-expert Linear modules a PEFT LoRA adapts, so PEFT cannot express it. Merge the ' +
      'adapter instead (merge_lora, then convert_from_litgpt), or train it without lora_mlp.');
  }

  const tensors = new Map<string, Tensor>();
  const targets: string[] = [];
  let qkvRank: number | null = null;
  const file = await TensorFile.open(checkpoint.files.lora);
  try {
    const layers = loraLayers(config, settings);
    const expected = new Set(layers.flatMap((l) => [`${l.path}.lora_A`, `${l.path}.lora_B`]));
    const extra = file.names.filter((n) => !expected.has(n));
    if (extra.length) {
      fail('ERR_CHECKPOINT_FORMAT', `${file.path} holds tensors that the LoRA settings of ${where} do not place on ` +
        `config '${config.name}': ${extra.slice(0, 4).join(', ')}${extra.length > 4 ? ', …' : ''}. ` +
        'Is hyperparameters.yaml the one of the run that wrote it?');
    }
    const parts = enabledParts(settings);
    for (const layer of layers) {
      const aRows = layer.kind === 'qkv' ? parts.length * settings.r : settings.r;
      const bRows = layer.kind === 'qkv' ? parts.reduce((n, p) => n + qkvSizes(config)[p], 0) : layer.out;
      const matrices: Matrix[] = [];
      for (const [suffix, shape] of [['lora_A', [aRows, layer.in]], ['lora_B', [bRows, settings.r]]] as const) {
        const name = `${layer.path}.${suffix}`;
        if (!file.has(name)) {
          fail('ERR_CHECKPOINT_FORMAT', `${file.path} has no ${name}, which the LoRA settings of ${where} put on config ` +
            `'${config.name}'. Is hyperparameters.yaml the one of the run that wrote it?`);
        }
        const info = file.info(name);
        if (JSON.stringify(info.shape) !== JSON.stringify(shape)) {
          fail('ERR_SHAPE', `${file.path}: ${name} has shape [${info.shape}], but config '${config.name}' with lora_r ` +
            `${settings.r} needs [${shape}]. Is model_config.yaml the one of the base this adapter was trained on?`);
        }
        const t = await file.get(name);
        try { matrices.push(await matrixOf(t, `${file.path}: ${name}`)); } finally { t.dispose(); }
      }
      for (const [module, a, b] of peftTensorsOf(config, family, settings, layer, matrices[0], matrices[1])) {
        tensors.set(`${PEFT_PREFIX}${module}.lora_A.weight`, tensorOf(a));
        tensors.set(`${PEFT_PREFIX}${module}.lora_B.weight`, tensorOf(b));
        if (!targets.includes(shortName(module))) targets.push(shortName(module));
        if (layer.kind === 'qkv' && family.name === 'gpt_neox') qkvRank = a.rows;
      }
    }
  } finally {
    await file.close();
  }

  const adapterConfig = adapterConfigJson(settings, targets,
    options.baseModelNameOrPath ?? baseNameOf(checkpoint, cwd), qkvRank);
  try {
    await writeCheckpointFolder(out,
      [{ name: PEFT_CONFIG_FILE, write: (p) => writeFileAtomic(p, `${JSON.stringify(adapterConfig, null, 2)}\n`) }],
      { name: PEFT_WEIGHTS_FILE, write: (p) => saveTensors(p, tensors, { format: 'safetensors', metadata: { format: 'pt' } }) });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  return { dir: out, family: family.name, adapterConfig, tensors: tensors.size };
}
