// convert_peft_to_lora: a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors, as
// PeftModel.save_pretrained writes it) + the litgpt base it was trained on → a litgpt LoRA folder
// (lit_model.pth.lora, hyperparameters.yaml naming the base, model_config.yaml and the base's tokenizer files),
// which Model.load merges and litgpt's merge_lora reads.
//
// Converted exactly (same function of the input, bit for bit where only rows move):
//   * every module of litgpt's targets (peft_layout.ts); a target's layers the adapter leaves out (a subset of
//     the MLP linears, layers_to_transform) get zero A and B, which add nothing;
//   * Llama / Qwen2 q_proj / k_proj / v_proj → the enabled parts of litgpt's attn.qkv (PEFT's common
//     ["q_proj", "v_proj"] → lora_query + lora_value);
//   * GPT-NeoX's query_key_value of the adapter's rank r: its A is shared by q, k and v, so litgpt's A is
//     [A; A; A] over the parts whose rows of B are not all zero, and B's rows are regrouped from HF's per-head
//     order; of rank k·r (k = 2, 3) with B block-diagonal over k parts (what convert_lora_to_peft writes):
//     block i is part i's A and B;
//   * rsLoRA (scale lora_alpha / √r): litgpt's lora_alpha becomes lora_alpha · √r, the same scale.
// Refused, with the reason: ranks or scales that differ per module, DoRA, biases, full modules to save, modules
// outside litgpt's targets, shapes that do not fit the base, non-LoRA PEFT types.
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fail, LitloraError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import type { Hyperparameters } from '../io/hyperparameters.js';
import { OutDir } from '../io/outdir.js';
import { TensorFile } from '../io/tensorfile.js';
import type { Config } from '../model/config.js';
import { LAYER_TARGETS } from '../model/lora_placement.js';
import { LORA_CONFIG_DEFAULTS, loraToKeys, normalizeLora, type LoraSettings } from '../model/lora_settings.js';
import type { Dtype, Tensor } from '../tensor.js';
import { familyOfConfig, type HfFamily } from './hf_config.js';
import { qkvSizes } from './hf_weights.js';
import {
  blockIsZero, copyBlock, linearLayers, matrixOf, neoxRow, PEFT_CONFIG_FILE, PEFT_PREFIX, PEFT_WEIGHTS_BIN,
  PEFT_WEIGHTS_FILE, peftModulesOf, partTarget, QKV_PARTS, shortName, tensorOf, zeros,
  type LoraLayer, type Matrix, type QkvPart,
} from './peft_layout.js';

export interface ConvertPeftToLoraOptions {
  /** The litgpt base checkpoint folder the adapter was trained on (lit_model.pth, model_config.yaml, tokenizer). */
  checkpointDir: string;
  /** The LoRA folder to write. */
  outDir: string;
  /** Replace an existing, non-empty out_dir. */
  force?: boolean;
  /** Where relative paths resolve. Default process.cwd(). */
  cwd?: string;
}

export interface ConvertPeftToLoraResult {
  /** The LoRA folder written (absolute). */
  dir: string;
  /** The base checkpoint folder (absolute), as hyperparameters.yaml names it. */
  base: string;
  family: HfFamily['name'];
  settings: LoraSettings;
  /** PEFT modules converted. */
  modules: number;
  /** HF modules of the enabled targets that the adapter leaves out, written as zero A and B. */
  zeroFilled: string[];
}

/** The adapter_config.json fields the conversion reads. */
interface PeftConfig {
  r: number;
  alpha: number;
  dropout: number;
  rslora: boolean;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
}

function readAdapterConfig(path: string): PeftConfig {
  let raw: any;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code) throw new LitloraError('ERR_IO', `cannot read ${path}: ${(e as Error).message}`);
    fail('ERR_CHECKPOINT_FORMAT', `${path} is not valid JSON (${(e as Error).message}); expected a PEFT adapter config.`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail('ERR_CHECKPOINT_FORMAT', `${path} is not a JSON object; expected a PEFT adapter config.`);
  const refuse = (what: string) => fail('ERR_CONFIG', `${path}: ${what}`);
  const type = raw.peft_type ?? 'LORA';
  if (type !== 'LORA') refuse(`peft_type is ${JSON.stringify(type)}; litgpt's LoRA holds LORA adapters only.`);
  const mergeHint = ' Merge the adapter into the model with PEFT (merge_and_unload, save_pretrained) and convert that model with convert_to_litgpt instead.';
  if (raw.use_dora) refuse(`use_dora is true: DoRA learns a magnitude per output that litgpt's LoRA does not have.${mergeHint}`);
  if ((raw.bias ?? 'none') !== 'none') refuse(`bias is ${JSON.stringify(raw.bias)}; litgpt's LoRA trains no biases (it needs "none").${mergeHint}`);
  if (raw.lora_bias) refuse(`lora_bias is true; litgpt's LoRA has no bias on lora_B.${mergeHint}`);
  if (raw.fan_in_fan_out) refuse('fan_in_fan_out is true, which is for GPT-2-style Conv1D layers; the models litlora runs have Linear layers.');
  const nonEmpty = (v: unknown) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0) &&
    !(typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0);
  for (const key of ['modules_to_save', 'trainable_token_indices', 'layer_replication', 'target_parameters']) {
    if (nonEmpty(raw[key])) refuse(`${key} is ${JSON.stringify(raw[key])}; a litgpt LoRA adapter holds only lora_A / lora_B of its target layers.${mergeHint}`);
  }
  if (typeof raw.r !== 'number' || !Number.isSafeInteger(raw.r) || raw.r <= 0) {
    fail('ERR_CHECKPOINT_FORMAT', `${path}: r must be a positive integer (the LoRA rank), got ${JSON.stringify(raw.r)}.`);
  }
  const alpha = raw.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) fail('ERR_CHECKPOINT_FORMAT', `${path}: lora_alpha must be a number, got ${JSON.stringify(alpha)}.`);
  const pattern = (key: string): Record<string, number> => {
    const v = raw[key] ?? {};
    if (typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'number')) {
      fail('ERR_CHECKPOINT_FORMAT', `${path}: ${key} must map module name patterns to numbers, got ${JSON.stringify(v)}.`);
    }
    return v as Record<string, number>;
  };
  return {
    r: raw.r, alpha, dropout: typeof raw.lora_dropout === 'number' ? raw.lora_dropout : 0, rslora: raw.use_rslora === true,
    rankPattern: pattern('rank_pattern'), alphaPattern: pattern('alpha_pattern'),
  };
}

/** PEFT's get_pattern_key: the first pattern matching the end of the module name (`(.*\.)?(pattern)$`). */
function patternValue(patterns: Record<string, number>, module: string, fallback: number): number {
  for (const [key, value] of Object.entries(patterns)) {
    let re: RegExp;
    try { re = new RegExp(`^(.*\\.)?(${key})$`); } catch { continue; }
    if (re.test(module)) return value;
  }
  return fallback;
}

/** Where a PEFT module sits in litgpt's model: a layer, and for Llama / Qwen2's q/k/v_proj a part of attn.qkv. */
interface Place {
  layer: LoraLayer;
  part?: QkvPart;
}

/** One PEFT module of the adapter, placed in litgpt's model. */
interface Found extends Place {
  module: string;
  a: string;
  b: string;
  rank: number;
  alpha: number;
  scale: number;
}

function weightsFile(dir: string): string {
  for (const f of [PEFT_WEIGHTS_FILE, PEFT_WEIGHTS_BIN]) if (existsSync(join(dir, f))) return join(dir, f);
  fail('ERR_CHECKPOINT_MISSING', `${dir} has no ${PEFT_WEIGHTS_FILE} (or ${PEFT_WEIGHTS_BIN}); a PEFT adapter folder holds ` +
    `${PEFT_CONFIG_FILE} and the adapter weights, as PeftModel.save_pretrained writes them.`);
}

const list = (xs: string[], n = 6) => `${xs.slice(0, n).join(', ')}${xs.length > n ? `, … (${xs.length - n} more)` : ''}`;

/** The adapter's modules, each placed on a litgpt layer; modules litgpt has no LoRA for are refused. */
function placeModules(names: string[], config: Config, family: HfFamily, file: string):
  Map<string, { a?: string; b?: string; place: Place }> {
  const places = new Map<string, Place>();
  for (const layer of linearLayers(config)) {
    for (const { module, part } of peftModulesOf(config, family, layer)) places.set(module, { layer, part });
  }
  const head = [...places.entries()].find(([, p]) => p.layer.kind === 'head');
  if (family.name === 'gpt_neox' && head) places.set('embed_out', head[1]); // transformers 4.x's name of GPT-NeoX's head
  const found = new Map<string, { a?: string; b?: string; place: Place }>();
  const outside = new Set<string>();
  for (const name of names) {
    const m = /^(?:base_model\.model\.)?(.+)\.(lora_A|lora_B)\.weight$/.exec(name);
    if (!m) {
      if (/\.base_layer\.(weight|bias)$/.test(name)) continue; // PEFT's copy of a base weight (save_embedding_layers)
      if (/\.lora_magnitude_vector/.test(name)) fail('ERR_CONFIG', `${file} holds ${name}: a DoRA adapter, which litgpt's LoRA cannot express.`);
      if (/\.lora_B\.bias$/.test(name)) fail('ERR_CONFIG', `${file} holds ${name}: lora_B biases, which litgpt's LoRA does not have.`);
      const emb = /^(?:base_model\.model\.)?(.+)\.lora_embedding_[AB]$/.exec(name);
      if (emb) { outside.add(emb[1]); continue; }
      fail('ERR_CHECKPOINT_FORMAT', `${file} holds ${name}, which is no LoRA tensor of a PEFT LoRA adapter ` +
        '(base_model.model.<module>.lora_A.weight / .lora_B.weight).');
    }
    if (config.mlp_class_name === 'LLaMAMoE' && /\.(block_sparse_moe|mlp)\.(gate|experts)(\.|$)/.test(m[1])) {
      fail('ERR_CONFIG', `${file} adapts ${m[1]}, a router or expert of a mixture of experts; litlora reads PEFT LoRA on attention ` +
        'and the head of LLaMAMoE models only (litgpt\'s expert LoRA has no PEFT form that transformers 5 loads). Merge that ' +
        'adapter into the model with PEFT, then convert_to_litgpt the merged model.');
    }
    const place = places.get(m[1]);
    if (!place) { outside.add(m[1]); continue; }
    const entry = found.get(m[1]) ?? { place };
    entry[m[2] === 'lora_A' ? 'a' : 'b'] = name;
    found.set(m[1], entry);
  }
  if (outside.size) {
    const mods = [...outside];
    // A module of a layer the base does not have: the adapter is for a deeper model.
    const deeper = mods.filter((mod) => places.has(mod.replace(/\.layers\.\d+\./, '.layers.0.')));
    if (deeper.length === mods.length) {
      fail('ERR_SHAPE', `${file} adapts ${list(deeper, 3)}, but config '${config.name}' has ${config.n_layer} layers: ` +
        'the adapter was trained on another (deeper) model. Pass the base it was trained on (--checkpoint_dir).');
    }
    const targets = [...new Set([...places.keys()].map(shortName))].join(', ');
    fail('ERR_CONFIG', `${file} adapts modules outside litgpt's LoRA targets: ${list(mods)}. litgpt puts LoRA on the ` +
      `attention, MLP and head linears only (${family.architecture}: ${targets}).`);
  }
  const seen = new Map<string, string>();
  for (const [module, entry] of found) {
    if (!entry.a || !entry.b) {
      fail('ERR_CHECKPOINT_FORMAT', `${file} has ${entry.a ? 'lora_A' : 'lora_B'} but no ${entry.a ? 'lora_B' : 'lora_A'} for ${module}; the file is incomplete.`);
    }
    const where = `${entry.place.layer.path}:${entry.place.part ?? ''}`;
    if (seen.has(where)) fail('ERR_CHECKPOINT_FORMAT', `${file} adapts the same layer twice: ${seen.get(where)} and ${module}.`);
    seen.set(where, module);
  }
  if (found.size === 0) fail('ERR_CHECKPOINT_FORMAT', `${file} holds no LoRA tensors (base_model.model.<module>.lora_A.weight / .lora_B.weight).`);
  return found;
}

/** The rows of B that one module's output has in the base (a q/k/v part of Llama's qkv, or the whole layer). */
function moduleOut(config: Config, layer: LoraLayer, part?: QkvPart): number {
  return part ? qkvSizes(config)[part] : layer.out;
}

const sameScale = (x: number, y: number) => Math.abs(x - y) <= 1e-12 * Math.max(Math.abs(x), Math.abs(y));

/**
 * GPT-NeoX's query_key_value modules (one per layer, all of rank `rank`), back into litgpt's parts with rank `r`
 * (see the header): rank r → A shared by the parts B uses; rank k·r → k blocks, one per part. Null when B is not
 * k blocks of r columns, one per part.
 */
function neoxQkv(config: Config, mods: { layer: LoraLayer; a: Matrix; b: Matrix }[], rank: number, r: number):
  { parts: QkvPart[]; tensors: Map<string, [Matrix, Matrix]> } | null {
  const hs = config.head_size, partRows = config.n_head * hs;
  const partBlockZero = (b: Matrix, p: QkvPart, col: number, cols: number) => {
    for (let j = 0; j < partRows; j += hs) if (!blockIsZero(b, neoxRow(config, p, j), hs, col, cols)) return false;
    return true;
  };
  let parts: QkvPart[];
  const blocks = rank / r;
  if (blocks === 1) {
    // The parts that B uses anywhere (all three for an adapter that is still zero).
    parts = QKV_PARTS.filter((p) => mods.some(({ b }) => !partBlockZero(b, p, 0, b.cols)));
    if (parts.length === 0) parts = [...QKV_PARTS];
  } else {
    const used = Array.from({ length: blocks }, (_, i) =>
      QKV_PARTS.filter((p) => mods.some(({ b }) => !partBlockZero(b, p, i * r, r))));
    const candidates: QkvPart[][] = blocks === 3 ? [['q', 'k', 'v']] : blocks === 2 ? [['q', 'v'], ['q', 'k'], ['k', 'v']] : [];
    const fits = candidates.find((c) => used.every((u, i) => u.every((p) => p === c[i])) &&
      mods.every(({ b }) => QKV_PARTS.every((p) => c.includes(p) || partBlockZero(b, p, 0, b.cols))));
    if (!fits) return null;
    parts = fits;
  }
  const tensors = new Map<string, [Matrix, Matrix]>();
  for (const { layer, a, b } of mods) {
    const la = zeros(parts.length * r, a.cols, a.dtype), lb = zeros(parts.length * partRows, r, b.dtype);
    for (const [i, p] of parts.entries()) {
      const block = blocks === 1 ? 0 : i;
      copyBlock(a, block * r, la, i * r, r);
      for (let j = 0; j < partRows; j++) copyBlock(b, neoxRow(config, p, j), lb, i * partRows + j, 1, r, block * r, 0);
    }
    tensors.set(layer.path, [la, lb]);
  }
  return { parts, tensors };
}

/** Converts the PEFT adapter folder `peftDir` into a litgpt LoRA folder on the base `checkpointDir` (see the header). */
export async function convertPeftToLora(peftDir: string, options: ConvertPeftToLoraOptions): Promise<ConvertPeftToLoraResult> {
  const cwd = resolve(options.cwd ?? process.cwd());
  if (!options || typeof options.checkpointDir !== 'string' || typeof options.outDir !== 'string') {
    fail('ERR_ARG', 'convertPeftToLora: options.checkpointDir (the base checkpoint) and options.outDir are required.');
  }
  const dir = resolve(cwd, peftDir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    fail('ERR_CHECKPOINT_MISSING', `${dir} is not a folder; expected a PEFT adapter folder (${PEFT_CONFIG_FILE} + ${PEFT_WEIGHTS_FILE}).`);
  }
  const configPath = join(dir, PEFT_CONFIG_FILE);
  if (!existsSync(configPath)) {
    fail('ERR_CHECKPOINT_MISSING', `${dir} has no ${PEFT_CONFIG_FILE}; a PEFT adapter folder holds ${PEFT_CONFIG_FILE} and ` +
      `${PEFT_WEIGHTS_FILE}, as PeftModel.save_pretrained writes them.`);
  }
  const weightsPath = weightsFile(dir);
  const peft = readAdapterConfig(configPath);
  const out = resolve(cwd, options.outDir);
  if (existsSync(out) && statSync(out).isDirectory() && readdirSync(out).length > 0 && !options.force) {
    fail('ERR_EXISTS', `${out} exists already and is not empty; choose another out_dir, or pass --force (force: true) to replace it.`);
  }
  const base = await Checkpoint.open(resolve(cwd, options.checkpointDir));
  if (existsSync(out) && realpathSync(out) === realpathSync(base.dir)) {
    // Rewriting the base's folder as a LoRA folder would drop its lit_model.pth (a LoRA folder has none).
    fail('ERR_ARG', `out_dir ${out} is the base checkpoint ${base.dir}; write the LoRA folder somewhere else.`);
  }
  if (!base.files.model) {
    fail('ERR_CHECKPOINT_MISSING', `${base.dir} has no lit_model.pth (it is a ${base.kind} folder); --checkpoint_dir names the ` +
      'base model the adapter was trained on (converted with convert_to_litgpt, or downloaded with litgpt).');
  }
  const config = base.config;
  const family = familyOfConfig(config, base.files.config);

  const file = await TensorFile.open(weightsPath);
  try {
    const placed = placeModules(file.names, config, family, weightsPath);
    const found: Found[] = [];
    for (const [module, { a, b, place }] of placed) {
      const rank = patternValue(peft.rankPattern, module, peft.r);
      const alpha = patternValue(peft.alphaPattern, module, peft.alpha);
      const wantA = [rank, place.layer.in], wantB = [moduleOut(config, place.layer, place.part), rank];
      for (const [name, want] of [[a!, wantA], [b!, wantB]] as const) {
        const got = file.info(name).shape;
        if (JSON.stringify(got) !== JSON.stringify(want)) {
          fail('ERR_SHAPE', `${weightsPath}: ${name} has shape [${got}], but on the base ${base.dir} (config '${config.name}') ` +
            `with rank ${rank} it needs [${want}]: the adapter was trained on another model. Pass the base it was trained on (--checkpoint_dir).`);
        }
      }
      found.push({ module, ...place, a: a!, b: b!, rank, alpha, scale: peft.rslora ? alpha / Math.sqrt(rank) : alpha / rank });
    }

    // One rank and one scale for every layer (GPT-NeoX's query_key_value aside: see neoxQkv).
    const isNeoxQkv = (f: Found) => family.name === 'gpt_neox' && f.layer.kind === 'qkv';
    const plain = found.filter((f) => !isNeoxQkv(f));
    const qkv = found.filter(isNeoxQkv);
    const describe = (fs: Found[], what: (f: Found) => string) =>
      [...new Map(fs.map((f) => [shortName(f.module), `${shortName(f.module)} ${what(f)}`])).values()].join(', ');
    if (new Set(plain.map((f) => f.rank)).size > 1) {
      fail('ERR_CONFIG', `${configPath}: the ranks differ per module (${describe(plain, (f) => `r=${f.rank}`)}); litgpt's LoRA ` +
        'has one lora_r for every layer, so this adapter (rank_pattern) cannot be converted.');
    }
    if (new Set(qkv.map((f) => f.rank)).size > 1) {
      fail('ERR_CONFIG', `${configPath}: query_key_value has different ranks in different layers; litgpt's LoRA has one lora_r for every layer.`);
    }
    // litgpt's rank: the other modules'; for a query_key_value alone, adapter_config's r when its rank is k·r.
    let r = plain.length ? plain[0].rank : qkv[0].rank;
    if (!plain.length && [2, 3].some((k) => qkv[0].rank === k * peft.r)) r = peft.r;
    if (plain.length && qkv.length && ![1, 2, 3].some((k) => qkv[0].rank === k * r)) {
      fail('ERR_CONFIG', `${configPath}: query_key_value has rank ${qkv[0].rank} where the other modules have rank ${r}; ` +
        'litgpt\'s LoRA has one lora_r for every layer, so this adapter (rank_pattern) cannot be converted.');
    }
    const scales = found.map((f) => f.scale);
    if (!scales.every((s) => sameScale(s, scales[0]))) {
      fail('ERR_CONFIG', `${configPath}: the LoRA scale (lora_alpha / ${peft.rslora ? '√r' : 'r'}) differs per module ` +
        `(${describe(found, (f) => `alpha=${f.alpha} r=${f.rank}`)}); litgpt's LoRA has one lora_alpha / lora_r for every layer.`);
    }
    // litgpt's lora_alpha for rank r: the same scale (alpha / r) as the adapter's modules.
    const ref = plain[0] ?? qkv[0];
    const litAlpha = (rank: number) =>
      peft.rslora ? (ref.alpha * rank) / Math.sqrt(ref.rank) : ref.rank === rank ? ref.alpha : ref.alpha / (ref.rank / rank);

    // The adapter's tensors, in the dtype of its first, by litgpt layer and part.
    const key = (layer: LoraLayer, part?: QkvPart) => `${layer.path}:${part ?? ''}`;
    const dtype: Dtype = file.info(found[0].a).dtype;
    const matrices = new Map<string, { a: Matrix; b: Matrix }>();
    for (const f of found) {
      const get = async (name: string) => {
        const t = await file.get(name, { dtype });
        try { return await matrixOf(t, `${weightsPath}: ${name}`); } finally { t.dispose(); }
      };
      matrices.set(key(f.layer, f.part), { a: await get(f.a), b: await get(f.b) });
    }

    // litgpt's settings and tensors.
    const settings: LoraSettings = { ...LORA_CONFIG_DEFAULTS, r, alpha: litAlpha(r), dropout: peft.dropout };
    const lit = new Map<string, [Matrix, Matrix]>();
    if (qkv.length) {
      const mods = qkv.map((f) => ({ layer: f.layer, ...matrices.get(key(f.layer))! }));
      let neox = neoxQkv(config, mods, qkv[0].rank, r);
      if (!neox && !plain.length) neox = neoxQkv(config, mods, qkv[0].rank, (r = qkv[0].rank)); // one module: A shared
      if (!neox) {
        fail('ERR_CONFIG', `${configPath}: query_key_value has rank ${qkv[0].rank} where the other modules have rank ${r}, and ` +
          `its lora_B is not ${qkv[0].rank / r} blocks of ${r} columns, one per q/k/v part; litgpt's attn.qkv has one rank ` +
          'for q, k and v and cannot express it.');
      }
      settings.r = r;
      settings.alpha = litAlpha(r);
      for (const p of neox.parts) settings[partTarget(p)] = true;
      for (const [path, ab] of neox.tensors) lit.set(path, ab);
    }
    for (const f of plain) {
      if (f.part) settings[partTarget(f.part)] = true;
      else for (const t of LAYER_TARGETS[f.layer.kind]) settings[t] = true;
    }
    const normalized = normalizeLora(settings, { where: configPath });
    const zeroFilled: string[] = [];
    const parts = QKV_PARTS.filter((p) => normalized[partTarget(p)]);
    const sizes = qkvSizes(config);
    for (const layer of linearLayers(config)) {
      if (!LAYER_TARGETS[layer.kind].some((t) => normalized[t]) || lit.has(layer.path)) continue;
      const modules = peftModulesOf(config, family, layer);
      if (layer.kind === 'qkv') {
        // The enabled parts' modules stacked as litgpt's LoRAQKVLinear holds them (zero where the adapter has none).
        const la = zeros(parts.length * r, layer.in, dtype), lb = zeros(parts.reduce((n, p) => n + sizes[p], 0), r, dtype);
        let row = 0;
        for (const [i, p] of parts.entries()) {
          const m = matrices.get(key(layer, p));
          if (m) {
            copyBlock(m.a, 0, la, i * r, r);
            copyBlock(m.b, 0, lb, row, sizes[p]);
          } else {
            const module = (modules.find((x) => x.part === p) ?? modules[0]).module;
            if (!zeroFilled.includes(module)) zeroFilled.push(module);
          }
          row += sizes[p];
        }
        lit.set(layer.path, [la, lb]);
        continue;
      }
      const m = matrices.get(key(layer));
      if (!m) zeroFilled.push(modules[0].module);
      lit.set(layer.path, m ? [m.a, m.b] : [zeros(r, layer.in, dtype), zeros(layer.out, r, dtype)]);
    }

    const loraTensors = new Map<string, Tensor>();
    for (const layer of linearLayers(config)) {
      const ab = lit.get(layer.path);
      if (!ab) continue;
      loraTensors.set(`${layer.path}.lora_A`, tensorOf(ab[0]));
      loraTensors.set(`${layer.path}.lora_B`, tensorOf(ab[1]));
    }
    const hyperparameters: Hyperparameters = { checkpoint_dir: base.dir, out_dir: out, ...loraToKeys(normalized) };
    try {
      await new OutDir(out).writeLoraCheckpoint(out, { loraTensors, config, hyperparameters, tokenizerFrom: base.dir });
    } finally {
      for (const t of loraTensors.values()) t.dispose();
    }
    return { dir: out, base: base.dir, family: family.name, settings: normalized, modules: found.length, zeroFilled };
  } finally {
    await file.close();
  }
}
