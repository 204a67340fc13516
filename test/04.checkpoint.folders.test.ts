// Checkpoint folders: kinds, litgpt's validity rules and messages, pre-unification names, hyperparameters.yaml
// and base resolution, OutDir naming and the LoRA folder file set, crash safety of folder writes.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Checkpoint } from '../ts/io/checkpoint.js';
import { configToYaml } from '../ts/model/config.js';
import { configFromName } from '../ts/model/configs.js';
import {
  hyperparametersToYaml, loraSettings, readHyperparameters, resolveCheckpointDir, writeHyperparameters, writePromptStyle,
} from '../ts/io/hyperparameters.js';
import { OutDir, writeCheckpointFolder } from '../ts/io/outdir.js';
import { Tensor } from '../ts/tensor.js';
import type { SaveTensorsFn } from '../ts/io/tensorfile.js';
import { packageRoot } from '../ts/addon_loader.js';
import { assertCode } from './helpers/assert.js';
import { runPython } from './helpers/python.js';
import { tempFolders } from './helpers/temp.js';

const folders = tempFolders();
const tmp = folders.make;
test.after(() => folders.removeAll());

/** A base checkpoint folder with litgpt's files (weights are placeholder bytes: Checkpoint.open never reads them). */
function makeBase(dir: string, extra: Record<string, string> = {}): string {
  mkdirSync(dir, { recursive: true });
  const files: Record<string, string> = {
    'lit_model.pth': 'weights',
    'model_config.yaml': configToYaml(configFromName('pythia-14m')),
    'tokenizer.json': '{}',
    'tokenizer_config.json': '{}',
    'generation_config.json': '{}',
    ...extra,
  };
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  return dir;
}

// A saveTensors stand-in that records what it was asked to write.
const fakeSave: SaveTensorsFn = async (path, tensors, options) => {
  const names = tensors instanceof Map ? [...tensors.keys()] : Object.keys(tensors);
  writeFileSync(path, JSON.stringify({ names, options }));
};

test('kinds: base, lora, merged, full', async () => {
  const root = tmp('kinds');
  const base = await Checkpoint.open(makeBase(join(root, 'base')));
  assert.is(base.kind, 'base');
  assert.is(base.config.name, 'pythia-14m');
  assert.is(base.hyperparameters, null);
  assert.equal(base.tokenizerFiles.map((f) => f.split('/').pop()), ['tokenizer.json', 'tokenizer_config.json']);
  assert.ok(base.files.generationConfig);

  const loraDir = makeBase(join(root, 'lora'), { 'hyperparameters.yaml': 'checkpoint_dir: ../base\nlora_r: 4\n', 'prompt_style.yaml': 'class_path: litgpt.prompts.Alpaca\n' });
  const { rmSync, renameSync } = await import('node:fs');
  renameSync(join(loraDir, 'lit_model.pth'), join(loraDir, 'lit_model.pth.lora'));
  const lora = await Checkpoint.open(loraDir);
  assert.is(lora.kind, 'lora');
  assert.is(lora.weightsFile, null);
  assert.is(lora.hyperparameters!.lora_r, 4);
  assert.equal(lora.promptStyle, { class_path: 'litgpt.prompts.Alpaca' });
  const found = lora.resolveBase({ cwd: root });
  assert.is(found.via, 'folder');
  assert.is(found.path, join(root, 'base'));

  writeFileSync(join(loraDir, 'lit_model.pth'), 'merged');
  assert.is((await Checkpoint.open(loraDir)).kind, 'merged');

  const full = makeBase(join(root, 'full'), { 'hyperparameters.yaml': 'checkpoint_dir: base\n' });
  assert.is((await Checkpoint.open(full)).kind, 'full');
  rmSync(join(root, 'full', 'hyperparameters.yaml'));
});

test('missing files: litgpt\'s message, listing exactly what is missing', async () => {
  const root = tmp('missing');
  const dir = join(root, 'empty');
  mkdirSync(dir);
  await assertCode(() => Checkpoint.open(dir), 'ERR_CHECKPOINT_MISSING',
    `checkpoint_dir '${dir}' is missing the files: ['lit_model.pth', 'model_config.yaml', 'tokenizer.json OR tokenizer.model', 'tokenizer_config.json']`);
  const partial = makeBase(join(root, 'partial'));
  (await import('node:fs')).rmSync(join(partial, 'tokenizer_config.json'));
  await assertCode(() => Checkpoint.open(partial), 'ERR_CHECKPOINT_MISSING', /is missing the files: \['tokenizer_config\.json'\]/);
  assert.is((await Checkpoint.open(partial, { ignoreTokenizerFiles: true })).kind, 'base');
  // A LoRA-only folder missing its config names the .lora weights as present (litgpt's merge_lora check).
  const loraOnly = join(root, 'loraonly');
  mkdirSync(loraOnly);
  writeFileSync(join(loraOnly, 'lit_model.pth.lora'), 'x');
  await assertCode(() => Checkpoint.open(loraOnly, { ignoreTokenizerFiles: true }), 'ERR_CHECKPOINT_MISSING', /missing the files: \['model_config\.yaml'\]/);
  await assertCode(() => Checkpoint.open(join(root, 'nope')), 'ERR_CHECKPOINT_MISSING', /is not a checkpoint directory/);
});

test('pre-unification names are ERR_CHECKPOINT_FORMAT with the migrate command', async () => {
  const root = tmp('legacy');
  for (const file of ['lit_model_lora_finetuned.pth', 'lit_model_finetuned.pth', 'iter-000200-ckpt.pth']) {
    const dir = join(root, file);
    mkdirSync(dir);
    writeFileSync(join(dir, file), 'x');
    await assertCode(() => Checkpoint.open(dir), 'ERR_CHECKPOINT_FORMAT', new RegExp(`${file.replace(/\./g, '\\.')}.*litlora migrate`));
  }
  const oldBase = makeBase(join(root, 'oldbase'), { 'lit_config.json': '{"name": "pythia-14m"}' });
  (await import('node:fs')).rmSync(join(oldBase, 'model_config.yaml'));
  await assertCode(() => Checkpoint.open(oldBase), 'ERR_CHECKPOINT_FORMAT', /lit_config\.json \(the model config \(now model_config\.yaml\)\)/);
});

test('hyperparameters.yaml: litgpt key order and floats; checkpoint_dir resolution order and failure message', async () => {
  const root = tmp('hparams');
  const h = {
    seed: 1337, checkpoint_dir: 'checkpoints/EleutherAI/pythia-14m', out_dir: 'out/finetune/lora', precision: null,
    lora_r: 8, lora_alpha: 16, lora_dropout: 0.05, lora_query: true, lora_value: true,
    data: { class_path: 'litgpt.data.Alpaca', init_args: { mask_prompt: false, val_split_fraction: 0.03865 } },
    train: { save_interval: 1000, global_batch_size: 16, max_norm: null, min_lr: 6e-5, weight_decay: 0 },
    optimizer: { class_path: 'torch.optim.AdamW', init_args: { lr: 0.0002, weight_decay: 0, betas: [0.9, 0.95] } },
    logger_name: 'csv',
  };
  const text = hyperparametersToYaml(h);
  assert.ok(text.startsWith('checkpoint_dir: checkpoints/EleutherAI/pythia-14m\nout_dir: out/finetune/lora\nprecision: null\n'));
  assert.ok(text.endsWith('logger_name: csv\nseed: 1337\n'));
  assert.match(text, /\n  weight_decay: 0\.0\n/);
  assert.match(text, /\n  min_lr: 6\.0e-05\n/);
  await writeHyperparameters(join(root, 'hyperparameters.yaml'), h);
  const back = await readHyperparameters(join(root, 'hyperparameters.yaml'));
  assert.equal(back, h);
  assert.is(hyperparametersToYaml(back), text, 'round trip keeps the text');
  // PyYAML reads it back to the same values.
  const { stdout } = runPython(`import yaml, json; print(json.dumps(yaml.safe_load(open(${JSON.stringify(join(root, 'hyperparameters.yaml'))}))))`);
  assert.equal(JSON.parse(stdout), h);
  assert.equal(loraSettings({ checkpoint_dir: 'x', lora_r: 4 }), {
    r: 4, alpha: 16, dropout: 0.05, query: true, key: false, value: true, projection: false, mlp: false, head: false,
  });

  // Resolution: cwd first (litgpt), then checkpoints/<path> (extend_checkpoint_dir), then the folder.
  const cwd = join(root, 'work');
  const folder = join(root, 'run', 'final');
  mkdirSync(join(cwd, 'checkpoints', 'org', 'm'), { recursive: true });
  mkdirSync(folder, { recursive: true });
  assert.equal(resolveCheckpointDir('org/m', { cwd, folder }).via, 'checkpoints');
  mkdirSync(join(cwd, 'org', 'm'), { recursive: true });
  const r = resolveCheckpointDir('org/m', { cwd, folder });
  assert.equal([r.via, r.path], ['cwd', join(cwd, 'org', 'm')]);
  mkdirSync(join(root, 'run', 'base'));
  assert.equal(resolveCheckpointDir('../base', { cwd, folder }).via, 'folder');
  assert.equal(resolveCheckpointDir(join(root, 'run', 'base'), { cwd, folder }).via, 'absolute');
  await assertCode(() => resolveCheckpointDir('gone/m', { cwd, folder }), 'ERR_CHECKPOINT_MISSING',
    new RegExp(`hyperparameters\\.yaml \\(checkpoint_dir: gone/m\\) was not found\\. Tried:\\n  ${cwd}/gone/m\\n  ${cwd}/checkpoints/gone/m\\n  ${folder}/gone/m`));
});

test('prompt_style.yaml is written as litgpt writes it', async () => {
  const dir = tmp('prompt');
  await writePromptStyle(join(dir, 'prompt_style.yaml'), 'Alpaca');
  assert.is(readFileSync(join(dir, 'prompt_style.yaml'), 'utf8'), 'class_path: litgpt.prompts.Alpaca\n');
});

test('OutDir: step-%06d, final, logs/csv/version_N (highest + 1)', async () => {
  const root = tmp('outdir');
  const out = new OutDir(root);
  assert.is(out.stepDir(100), join(root, 'step-000100'));
  assert.is(out.stepDir(1234567), join(root, 'step-1234567'));
  assert.is(out.finalDir, join(root, 'final'));
  assert.is(await out.nextLogDir(), join(root, 'logs', 'csv', 'version_0'));
  assert.is(await out.nextLogDir(), join(root, 'logs', 'csv', 'version_1'));
  mkdirSync(join(root, 'logs', 'csv', 'version_7'));
  assert.is(await out.nextLogDir(), join(root, 'logs', 'csv', 'version_8'));
  await assertCode(() => out.stepDir(-1), 'ERR_ARG');
});

test('writeLoraCheckpoint writes exactly litgpt\'s file set, weights {"model": ...} and last', async () => {
  const root = tmp('write');
  const base = makeBase(join(root, 'base'));
  const out = new OutDir(join(root, 'out'), { saveTensors: fakeSave });
  const tensors = { 'transformer.h.0.attn.qkv.lora_A': Tensor.from(new Float32Array(8), [2, 4]) };
  const contents = {
    loraTensors: tensors,
    config: configFromName('pythia-14m'),
    hyperparameters: { checkpoint_dir: base, lora_r: 2 },
    promptStyle: { class_path: 'litgpt.prompts.Alpaca' },
    tokenizerFrom: base,
  };
  for (const dir of [out.stepDir(2), out.stepDir(4), out.finalDir]) await out.writeLoraCheckpoint(dir, contents);
  // litgpt tests/test_lora.py: each folder holds these files (plus generation_config.json copied when the base has one).
  const expected = ['generation_config.json', 'hyperparameters.yaml', 'lit_model.pth.lora', 'model_config.yaml',
    'prompt_style.yaml', 'tokenizer.json', 'tokenizer_config.json'];
  assert.equal(readdirSync(join(root, 'out')).sort(), ['final', 'step-000002', 'step-000004']);
  for (const d of ['step-000002', 'step-000004', 'final']) assert.equal(readdirSync(join(root, 'out', d)).sort(), expected);
  const saved = JSON.parse(readFileSync(join(out.finalDir, 'lit_model.pth.lora'), 'utf8'));
  assert.equal(saved, { names: ['transformer.h.0.attn.qkv.lora_A'], options: { format: 'pth', wrap: 'model' } });
  assert.is(readFileSync(join(out.finalDir, 'model_config.yaml'), 'utf8'), configToYaml(configFromName('pythia-14m')));
  const ckpt = await Checkpoint.open(out.finalDir);
  assert.is(ckpt.kind, 'lora');
  assert.is(ckpt.resolveBase().path, base);
  assert.equal((await out.steps()).map((s) => [s.step, s.complete]), [[2, true], [4, true]]);
  assert.is((await out.latestCompleteStep())!.step, 4);

  // Rewriting final/ after a merge removes the stale merged weights first.
  writeFileSync(join(out.finalDir, 'lit_model.pth'), 'merged');
  await out.writeLoraCheckpoint(out.finalDir, contents);
  assert.not.ok(existsSync(join(out.finalDir, 'lit_model.pth')));
  await assertCode(() => out.writeLoraCheckpoint(join(root, 'x'), { ...contents, loraTensors: { 'lm_head.weight': tensors['transformer.h.0.attn.qkv.lora_A'] } }), 'ERR_ARG', /lora_/);
  await assertCode(() => out.writeLoraCheckpoint(join(root, 'y'), { ...contents, tokenizerFrom: root }), 'ERR_CHECKPOINT_MISSING', /tokenizer/);
  tensors['transformer.h.0.attn.qkv.lora_A'].dispose();
});

test('a failed or killed folder write leaves no folder behind (the previous state stays intact)', async () => {
  const root = tmp('atomic');
  const target = join(root, 'step-000001');
  await assertCode(() => writeCheckpointFolder(target, [{ name: 'a.yaml', write: async (p) => writeFileSync(p, 'a') }],
    { name: 'lit_model.pth.lora', write: async () => { throw new (await import('../ts/errors.js')).LitloraError('ERR_TORCH', 'disk full'); } }),
  'ERR_TORCH');
  assert.equal(readdirSync(root), []);

  // Rewriting an existing folder: a failure leaves it as it was; success replaces the written files, keeps the
  // others, and leaves no temp folder.
  mkdirSync(target);
  writeFileSync(join(target, 'a.yaml'), 'old');
  writeFileSync(join(target, 'lit_model.pth.lora'), 'old weights');
  writeFileSync(join(target, 'notes.txt'), 'keep me');
  const rewrite = (weights: (p: string) => Promise<void>) => writeCheckpointFolder(target,
    [{ name: 'a.yaml', write: async (p) => writeFileSync(p, 'new') }], { name: 'lit_model.pth.lora', write: weights });
  await assertCode(() => rewrite(async () => { throw new (await import('../ts/errors.js')).LitloraError('ERR_TORCH', 'disk full'); }), 'ERR_TORCH');
  assert.equal(readdirSync(root), ['step-000001']);
  assert.equal(['a.yaml', 'lit_model.pth.lora', 'notes.txt'].map((f) => readFileSync(join(target, f), 'utf8')), ['old', 'old weights', 'keep me']);
  await rewrite(async (p) => writeFileSync(p, 'new weights'));
  assert.equal(readdirSync(root), ['step-000001']);
  assert.equal(['a.yaml', 'lit_model.pth.lora', 'notes.txt'].map((f) => readFileSync(join(target, f), 'utf8')), ['new', 'new weights', 'keep me']);
  rmSync(target, { recursive: true });

  // SIGKILL while the weights are being written: the target folder never appears.
  const script = `
import { writeFileSync } from 'node:fs';
import { writeCheckpointFolder } from ${JSON.stringify(join(packageRoot, 'ts', 'io', 'outdir.ts'))};
await writeCheckpointFolder(${JSON.stringify(target)}, [{ name: 'model_config.yaml', write: async (p) => writeFileSync(p, 'x') }],
  { name: 'lit_model.pth.lora', write: async (p) => { writeFileSync(p, 'partial'); process.stdout.write('writing\\n'); await new Promise((r) => setTimeout(r, 60000)); } });
`;
  writeFileSync(join(root, 'child.mts'), script);
  const child = (await import('node:child_process')).spawn(process.execPath, ['--import', 'tsx', join(root, 'child.mts')], { cwd: packageRoot });
  await new Promise<void>((res, rej) => {
    child.stdout.on('data', (d) => { if (String(d).includes('writing')) { child.kill('SIGKILL'); res(); } });
    child.on('exit', (code) => rej(new Error(`child exited early (${code})`)));
  });
  await new Promise((r) => child.on('close', r));
  assert.not.ok(existsSync(target), 'no half-written folder under the real name');
  assert.ok(readdirSync(root).some((f) => f.startsWith('.step-000001.tmp-')), 'only a hidden temp folder remains');
  assert.equal((await new OutDir(root).steps()), []);
  void spawnSync;
});

test.run();
