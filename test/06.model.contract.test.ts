// One model/LoRA contract across the TS ↔ C++ boundary: LoRA settings are validated once, by one function, so a
// bad value is the same coded error whether it comes from the API, a config, hyperparameters.yaml or a CLI flag;
// litgpt's defaults live in one table that every source takes; native code receives one typed struct (and only
// re-checks what keeps it safe); the model and the streaming merge place LoRA on the same layers.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packageRoot } from '../ts/addon_loader.js';
import { runCli } from '../ts/cli/main.js';
import {
  CONFIG_DEFAULTS, normalizeConfig,
} from '../ts/model/config.js';
import {
  initCheckpoint, LORA_DEFAULTS, loraSettings, mergeLora, Model, OutDir, synthetic, Tensor, TensorFile, writeHyperparameters,
  type Hyperparameters, type LoraSettings, type ModelConfig,
} from '../ts/index.js';
import { LORA_CONFIG_DEFAULTS, LORA_FIELDS, loraToKeys } from '../ts/model/lora_settings.js';
import { adaptedLayers } from '../ts/model/lora_placement.js';
import { nativeGptConfig } from '../ts/model/native_config.js';
import { assertCode } from './helpers/assert.js';
import { llamaTiny, moeTiny, pythiaTiny, randomizeAdapter } from './helpers/model.js';
import { tempFolders } from './helpers/temp.js';

const folders = tempFolders();
const root = folders.make('contract');
const baseDir = join(root, 'checkpoints', 'base');
const runDir = join(root, 'out');
const finalDir = join(runDir, 'final');
const GOOD: LoraSettings = { r: 2, alpha: 4, dropout: 0, query: true, key: false, value: true, projection: false, mlp: true, head: false };

async function errorOf(fn: () => unknown): Promise<{ code: string; message: string }> {
  try {
    await fn();
  } catch (e: any) {
    return { code: e?.code, message: String(e?.message) };
  }
  return assert.unreachable('expected an error') as never;
}

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await runCli(argv, { out: (t) => { out += t; }, err: (t) => { err += t; }, cwd: root });
  return { code, out, err };
}

function hyperparameters(lora: Record<string, unknown>): Hyperparameters {
  return { checkpoint_dir: baseDir, out_dir: runDir, precision: null, ...loraToKeys(GOOD), ...lora };
}

test.before(async () => {
  await initCheckpoint({ outDir: baseDir, modelName: 'pythia-14m', overrides: { n_layer: 1, n_embd: 32, n_head: 2, intermediate_size: 64, block_size: 64 }, seed: 1 });
  const model = await Model.load(baseDir, { lora: GOOD });
  await randomizeAdapter(model, 3);
  await new OutDir(runDir).writeLoraCheckpoint(finalDir, {
    loraTensors: await model.adapter!.tensors(), config: model.config as never, hyperparameters: hyperparameters({}),
    promptStyle: { class_path: 'litgpt.prompts.Alpaca' }, tokenizerFrom: baseDir,
  });
  model.dispose();
  synthetic.writeInstructionJson(join(root, 'data.json'), synthetic.syntheticInstructionTask({ trainSize: 8, testSize: 2 }).train);
});
test.after(() => folders.removeAll());

// Each bad value, and the words every source uses for it after the field's name.
const BAD: [keyof LoraSettings, unknown, string][] = [
  ['r', -1, ': expected an integer ≥ 0 (the LoRA rank; 0 turns LoRA off), got -1'],
  ['dropout', 1.5, ': expected a probability 0 ≤ p < 1, got 1.5'],
  ['dropout', -0.25, ': expected a probability 0 ≤ p < 1, got -0.25'],
];

test('a bad LoRA setting is the same ERR_ARG, naming the field, from the API, a config, hyperparameters.yaml and the CLI', async () => {
  const hparams = join(finalDir, 'hyperparameters.yaml');
  for (const [field, value, words] of BAD) {
    const what = `${field}=${value}`;
    const api = await errorOf(() => Model.fromConfig(pythiaTiny, { lora: { [field]: value } }));
    assert.equal(api, { code: 'ERR_ARG', message: `lora.${field}${words}` }, what);
    const fromConfig = await errorOf(() => Model.fromConfig({ ...pythiaTiny, [`lora_${field}`]: value }));
    assert.equal(fromConfig, { code: 'ERR_ARG', message: `lora.${field}${words}` }, what);
    assert.equal(await errorOf(() => loraSettings({ checkpoint_dir: 'x', [`lora_${field}`]: value })),
      { code: 'ERR_ARG', message: `lora_${field}${words}` }, what);

    // A finetune folder whose hyperparameters.yaml records it: loading and merging refuse it alike, naming the file.
    await writeHyperparameters(hparams, hyperparameters({ [`lora_${field}`]: value }));
    const fileWords = { code: 'ERR_ARG', message: `${hparams}: lora_${field}${words}` };
    assert.equal(await errorOf(() => Model.load(finalDir)), fileWords, `Model.load ${what}`);
    assert.equal(await errorOf(() => mergeLora(finalDir)), fileWords, `mergeLora ${what}`);
    const merged = await cli('merge_lora', finalDir);
    assert.is(merged.code, 1, merged.err);
    assert.is(merged.err, `litlora merge_lora: error [ERR_ARG]: ${hparams}: lora_${field}${words}\n`);
    assert.not.ok(existsSync(join(finalDir, 'lit_model.pth')), 'nothing merged');

    // The CLI flag: refused before the run touches --out_dir.
    const run = await cli('finetune', 'lora', 'checkpoints/base', '--data', 'JSON', '--data.json_path', 'data.json',
      '--out_dir', 'never', `--lora_${field}`, String(value));
    assert.is(run.code, 1, run.err);
    assert.is(run.err, `litlora finetune lora: error [ERR_ARG]: --lora_${field}${words}\n`);
    assert.not.ok(existsSync(join(root, 'never')), '--out_dir was not created');
  }
  await writeHyperparameters(hparams, hyperparameters({}));

  // Types the CLI's parser cannot produce: the same checks, by the same names.
  await assertCode(() => Model.fromConfig(pythiaTiny, { lora: { r: 2.5 } }), 'ERR_ARG', /^lora\.r: expected an integer ≥ 0/);
  await assertCode(() => Model.fromConfig(pythiaTiny, { lora: { alpha: '16' as never } }), 'ERR_ARG', /^lora\.alpha: expected a number .*got "16"$/);
  await assertCode(() => Model.fromConfig(pythiaTiny, { lora: { mlp: 'yes' as never } }), 'ERR_ARG', /^lora\.mlp: expected true or false, got "yes"$/);
  await assertCode(() => loraSettings({ checkpoint_dir: 'x', lora_r: 'eight' as never }, 'h.yaml'), 'ERR_ARG', /^h\.yaml: lora_r: expected an integer ≥ 0 .*got "eight"$/);
  await assertCode(() => Model.fromConfig(pythiaTiny, { lora: { rank: 4 } as never }), 'ERR_ARG', /^lora\.rank: unknown option; expected one of lora\.r, lora\.alpha/);
});

test("litgpt's defaults come from one table: CLI --help, absent hyperparameters, absent lora fields, absent config fields", async () => {
  assert.equal({ ...LORA_DEFAULTS }, { r: 8, alpha: 16, dropout: 0.05, query: true, key: false, value: true, projection: false, mlp: false, head: false });
  for (const command of [['finetune', 'lora'], ['migrate']]) {
    const help = await cli(...command, '--help');
    for (const field of LORA_FIELDS) {
      assert.match(help.out, new RegExp(`--lora_${field} [^\\n]*\\(default: ${String(LORA_DEFAULTS[field]).replace('.', '\\.')}\\)`), `${command} ${field}`);
    }
  }
  assert.equal(loraSettings({ checkpoint_dir: 'x' }), LORA_DEFAULTS);
  assert.equal(loraSettings({ checkpoint_dir: 'x', lora_r: null as never, lora_mlp: undefined }), LORA_DEFAULTS, 'null and absent alike');
  const model = await Model.fromConfig(pythiaTiny, { lora: {} });
  assert.equal(model.lora, LORA_DEFAULTS);
  model.dispose();
  const partial = await Model.fromConfig(pythiaTiny, { lora: { r: undefined, dropout: null as never, mlp: true } });
  assert.equal(partial.lora, { ...LORA_DEFAULTS, mlp: true }, 'undefined and null fields take the default');
  partial.dispose();
  // A config's own lora_* fields are litgpt's lora Config: its dataclass defaults fill the rest.
  const fromConfig = await Model.fromConfig({ ...pythiaTiny, lora_r: 4, lora_query: true });
  assert.equal(fromConfig.lora, { ...LORA_CONFIG_DEFAULTS, r: 4, query: true });
  fromConfig.dispose();

  // Model config defaults: native code gets litgpt's, from CONFIG_DEFAULTS, and defaults nothing itself.
  const spec = nativeGptConfig(normalizeConfig({}), null);
  assert.equal([spec.blockSize, spec.nLayer, spec.nHead, spec.nEmbd, spec.normEps, spec.ropeBase, spec.parallelResidual, spec.bias],
    [CONFIG_DEFAULTS.block_size, CONFIG_DEFAULTS.n_layer, CONFIG_DEFAULTS.n_head, CONFIG_DEFAULTS.n_embd, CONFIG_DEFAULTS.norm_eps,
      CONFIG_DEFAULTS.rope_base, CONFIG_DEFAULTS.parallel_residual, CONFIG_DEFAULTS.bias]);
  assert.equal(spec.lora, LORA_CONFIG_DEFAULTS);
});

test('native code takes one typed struct: what the TS layer did not make is ERR_CONFIG naming the field, never a crash', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(packageRoot, 'test', 'helpers', 'crash-child.ts'), 'hostileConfig'],
    { cwd: packageRoot, encoding: 'utf8', timeout: 120_000 });
  assert.is(r.signal, null, `the child was killed by ${r.signal}: ${r.stderr.slice(-2000)}`);
  assert.is(r.status, 0, `the child exited with ${r.status}: ${r.stderr.slice(-2000)}`);
  const { create, merge, uncaught, message } = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.is(uncaught, undefined, message);
  assert.is(create.good, 'ok');
  const expected: Record<string, RegExp> = {
    litgptTree: /^config\.blockSize: missing$/,
    noLora: /^config\.lora: missing$/,
    nHeadZero: /^config field nHead: expected a positive integer, got 0$/,
    groups: /^config field nQueryGroups: nHead \(4\) must be divisible by it, got 3$/,
    embdString: /^config\.nEmbd: expected a number$/,
    blockHuge: /^config\.blockSize: expected an integer, got 1e\+300$/,
    blockNaN: /^config\.blockSize: expected a finite number, got nan$/,
    ropeOdd: /^config field ropeNElem: expected an even number ≤ headSize \(8\), got 3$/,
    norm: /^config\.norm: expected one of 'LayerNorm', 'RMSNorm', got 'BatchNorm'$/,
    loraDropout: /^config field lora\.dropout: expected 0 ≤ p < 1, got 1$/,
    loraRank: /^config field lora\.r: expected an integer ≥ 0, got -1$/,
    loraTarget: /^config\.lora\.mlp: expected true or false$/,
    array: /^config: expected the config object litlora's TS layer makes \(NativeGptConfig\)$/,
  };
  for (const [key, pattern] of Object.entries(expected)) {
    for (const [entry, outcome] of [['create', create[key]], ['merge', merge[key]]]) {
      assert.is(outcome.code, 'ERR_CONFIG', `${entry} ${key}: ${JSON.stringify(outcome)}`);
      assert.match(outcome.message, pattern, `${entry} ${key}`);
    }
  }
  // A getter that throws is the caller's own error, passed through.
  assert.match(create.throwing.message, /a getter that throws/);
  assert.match(merge.throwing.message, /a getter that throws/);
});

test('features the GPT does not implement are refused in TS, before native code, naming the field', async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ n_expert: 8, n_expert_per_token: 2 }, /^config field n_expert = 8 switches on a mixture of experts/],
    [{ mlp_class_name: 'LLaMAMoE', intermediate_size: 64 }, /^config field n_expert: LLaMAMoE needs a positive number of experts, got 0\./],
    [{ mlp_class_name: 'LLaMAMoE', n_expert: 4, n_expert_per_token: 5 },
      /^config field n_expert_per_token: LLaMAMoE needs 1 ≤ n_expert_per_token ≤ n_expert \(4\), got 5\./],
    [{ mlp_class_name: 'LLaMAMoE', n_expert: 4, n_expert_per_token: 0 }, /^config field n_expert_per_token: .* got 0\./],
    [{ mlp_class_name: 'LLaMAMoE', n_expert: 4, n_expert_per_token: 2, n_shared_expert: 1 },
      /^config field n_shared_expert = 1 switches on shared experts/],
    [{ rope_indices: [1, 0] }, /^config field rope_indices = a list switches on per-layer rope selection without a local rope base/],
    [{ rope_local_base_freq: 10000, rope_indices: [1] }, /^config field rope_indices: expected 2 entries/],
    [{ sliding_window_size: 16, sliding_window_indices: [1] }, /^config field sliding_window_indices: expected 2 entries/],
    [{ rope_adjustments: { factor: 4, beta_fast: 32 } }, /YaRN/],
    [{ rope_adjustments: { factor: 4, mystery: 1 } }, /^config field rope_adjustments\.mystery is not known to litgpt/],
    [{ gelu_approximate: 'erf' }, /^config field gelu_approximate: expected 'none' or 'tanh', got 'erf'/],
    [{ rotary_percentage: 0.375 }, /^config field rotary_percentage: rope_n_elem .* must be even/],
  ];
  for (const [patch, pattern] of cases) {
    const config = normalizeConfig({ ...pythiaTiny, ...patch });
    await assertCode(() => nativeGptConfig(config, null), 'ERR_CONFIG', pattern);
  }
});

test('the model and the streaming merge place LoRA alike: every target on a GQA Llama and on a LLaMAMoE merges to the model\'s own merge', async () => {
  for (const [what, config, mlp] of [['llama', llamaTiny, ['mlp.fc_1', 'mlp.fc_2', 'mlp.proj']],
    ['moe', moeTiny, ['mlp.gate', 'mlp.experts.0.fc_1', 'mlp.experts.3.fc_2', 'mlp.experts.3.proj']]] as const) {
    await checkStreamMerge(what, config, mlp);
  }
});

async function checkStreamMerge(what: string, config: ModelConfig, mlp: readonly string[]): Promise<void> {
  const base = join(root, 'checkpoints', what);
  const all: LoraSettings = { r: 2, alpha: 3, dropout: 0, query: true, key: true, value: true, projection: true, mlp: true, head: true };
  await initCheckpoint({ outDir: base, config, seed: 2 });
  const model = await Model.load(base, { lora: all, mode: 'runtime' });
  await randomizeAdapter(model, 11);
  const adapter = await model.adapter!.tensors();
  assert.equal(adaptedLayers(adapter.keys()), ['query/key/value', 'projection', 'mlp', 'head']);
  assert.ok(mlp.every((m) => adapter.has(`transformer.h.0.${m}.lora_A`)), [...adapter.keys()].join());
  const dir = join(root, `${what}-out`, 'final');
  await new OutDir(join(root, `${what}-out`)).writeLoraCheckpoint(dir, {
    loraTensors: adapter, config: model.config as never, tokenizerFrom: base, promptStyle: { class_path: 'litgpt.prompts.Alpaca' },
    hyperparameters: { checkpoint_dir: base, precision: null, ...loraToKeys(all) },
  });
  const result = await mergeLora(dir);
  assert.is(result.method, 'stream');
  const expected = await model.mergedStateDict();
  const file = await TensorFile.open(result.outFile);
  try {
    assert.equal([...file.names].sort(), [...expected.keys()].sort());
    const bytes = async (t: Tensor) => {
      const v = await t.data({ raw: true });
      return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    };
    for (const [name, t] of expected) assert.ok((await bytes(await file.get(name))).equals(await bytes(t)), `${what}: ${name} differs`);
  } finally {
    await file.close();
  }
  model.dispose();
  // hyperparameters.yaml as litlora writes it records every setting under litgpt's names.
  assert.match(readFileSync(join(dir, 'hyperparameters.yaml'), 'utf8'), /lora_r: 2\nlora_alpha: 3\nlora_dropout: 0\.0\nlora_query: true\n/);
  rmSync(join(root, `${what}-out`), { recursive: true, force: true });
}

test.run();
