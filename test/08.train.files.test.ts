// What a finetune run writes: litgpt's folders and files (checked by name, by content and by PyTorch's
// weights_only loader), metrics.csv, and resume: a run stopped after a checkpoint and resumed gives the same
// losses as one that ran through.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createDataModule, initCheckpoint, Model, synthetic } from '../ts/index.js';
import { readConfig } from '../ts/model/config.js';
import { TensorFile } from '../ts/io/tensorfile.js';
import { Trainer, type StepEvent, type TrainerEvent } from '../ts/train/trainer.js';
import { runPython } from './helpers/python.js';
import { tempDir } from './helpers/tiny_train.js';

const it = test;
let dir = '';
let base = '';
let dataPath = '';
test.before(async () => {
  dir = tempDir();
  base = join(dir, 'base');
  await initCheckpoint({
    outDir: base, modelName: 'pythia-14m', seed: 3,
    overrides: { n_layer: 2, n_embd: 64, n_head: 4, intermediate_size: 256, block_size: 256 },
  });
  const { train } = synthetic.syntheticInstructionTask({ trainSize: 60, testSize: 4, tasks: ['reverse', 'uppercase'] });
  dataPath = join(dir, 'data.json');
  synthetic.writeInstructionJson(dataPath, train);
});
test.after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

async function loadBase(lora = { r: 4, alpha: 8, dropout: 0.1 }): Promise<Model> {
  const config = await readConfig(join(base, 'model_config.yaml'));
  const file = await TensorFile.open(join(base, 'lit_model.pth'));
  const entries = new Map<string, any>();
  for (const name of file.names) entries.set(name, await file.get(name));
  await file.close();
  return Model.fromStateDict(config as Record<string, unknown>, entries, { lora });
}

function trainer(model: Model, outDir: string, extra: Partial<ConstructorParameters<typeof Trainer>[0]> = {}) {
  return new Trainer({
    model, data: createDataModule('JSON', { json_path: dataPath, prompt_style: 'alpaca', val_split_fraction: 0.1 }),
    checkpointDir: base, outDir, progress: 'none', seed: 42,
    train: { globalBatchSize: 4, microBatchSize: 2, lrWarmupSteps: 2, maxSteps: 6, saveInterval: 2, epochs: 3 },
    eval: { interval: 3, maxIters: 2, maxNewTokens: 3 },
    optimizer: { lr: 5e-3 },
    ...extra,
  });
}

async function collect(t: Trainer, stopAfter?: (e: TrainerEvent) => boolean): Promise<TrainerEvent[]> {
  const events: TrainerEvent[] = [];
  for await (const e of t.fit()) {
    events.push(e);
    if (stopAfter?.(e)) break;
  }
  return events;
}

const LITGPT_FILES = ['hyperparameters.yaml', 'lit_model.pth.lora', 'model_config.yaml', 'prompt_style.yaml', 'tokenizer.json', 'tokenizer_config.json'];

it('step-%06d/ and final/ hold litgpt\'s files; metrics.csv has litgpt\'s columns; PyTorch loads every file', async () => {
  const out = join(dir, 'run');
  const model = await loadBase();
  const events = await collect(trainer(model, out));
  model.dispose();
  const extra = readdirSync(base).filter((f) => ['generation_config.json', 'config.json'].includes(f));
  assert.equal(readdirSync(out).sort(), ['final', 'logs', 'step-000002', 'step-000004', 'step-000006']);
  for (const s of ['step-000002', 'step-000004', 'step-000006']) {
    assert.equal(readdirSync(join(out, s)).sort(), [...LITGPT_FILES, ...extra, 'training_state.pth'].sort(), s);
  }
  assert.equal(readdirSync(join(out, 'final')).sort(), [...LITGPT_FILES, ...extra, 'lit_model.pth'].sort());
  assert.is(readFileSync(join(out, 'final', 'model_config.yaml'), 'utf8'), readFileSync(join(base, 'model_config.yaml'), 'utf8'));
  assert.is(readFileSync(join(out, 'final', 'prompt_style.yaml'), 'utf8'), 'class_path: litgpt.prompts.Alpaca\n');
  const hp = readFileSync(join(out, 'step-000002', 'hyperparameters.yaml'), 'utf8');
  assert.match(hp, new RegExp(`^checkpoint_dir: ${base.replace(/[/\\.]/g, '\\$&')}\n`));
  for (const line of ['lora_r: 4', 'lora_alpha: 8', 'lora_dropout: 0.1', 'lora_query: true', 'lora_value: true', 'precision: 32-true',
    'class_path: litgpt.data.JSON', 'seed: 42']) assert.ok(hp.includes(line), `hyperparameters.yaml has ${line}`);

  // Events: 6 steps, 2 validations + the final one, 3 step saves, final and merged.
  assert.is(events.filter((e) => e.type === 'step').length, 6);
  assert.equal(events.filter((e) => e.type === 'eval').map((e) => e.type === 'eval' && e.step), [3, 6, 6]);
  assert.equal(events.filter((e) => e.type === 'save').map((e) => e.type === 'save' && `${e.kind}:${e.step}`),
    ['step:2', 'step:4', 'step:6', 'final:6', 'merged:6']);
  const done = events.at(-1)!;
  assert.ok(done.type === 'done' && done.steps === 6 && done.iters === 12 && done.reason === 'max_steps');

  // metrics.csv: Lightning's CSVLogger layout.
  const csv = readFileSync(join(out, 'logs', 'csv', 'version_0', 'metrics.csv'), 'utf8');
  const lines = csv.split('\r\n').filter(Boolean);
  assert.is(lines[0], 'loss,iter,step,epoch,iter_time,tokens,total_tokens,learning_rate,val_loss,val_ppl');
  assert.is(lines.length, 1 + 12 + 3);
  const row3 = lines[3]!.split(',');
  assert.is(row3[1], '3');
  assert.is(row3[2], '3', 'the step column holds iter_num (Lightning overwrites it)');
  assert.is(row3[8], '');
  const valRow = lines[7]!.split(',');
  assert.is(valRow.slice(0, 2).join(','), ',', 'a validation row only has step, val_loss, val_ppl');
  assert.is(valRow[2], '6');
  assert.ok(Number(valRow[8]) > 0 && Math.abs(Math.exp(Number(valRow[8])) - Number(valRow[9])) < 1e-6 * Number(valRow[9]));

  // PyTorch, weights_only=True: every .lora is {"model": {lora_*}}, the merged file has the base's keys.
  const py = runPython(`
import torch, glob, os
out_dir = ${JSON.stringify(out)}
base = torch.load(os.path.join(${JSON.stringify(base)}, "lit_model.pth"), weights_only=True)
for f in sorted(glob.glob(os.path.join(out_dir, "*", "lit_model.pth.lora"))):
    sd = torch.load(f, weights_only=True)
    assert list(sd.keys()) == ["model"], sd.keys()
    print(os.path.basename(os.path.dirname(f)), sorted((k, tuple(v.shape), str(v.dtype)) for k, v in sd["model"].items()))
merged = torch.load(os.path.join(out_dir, "final", "lit_model.pth"), weights_only=True)
assert sorted(merged) == sorted(base), (set(merged) ^ set(base))
assert all(merged[k].shape == base[k].shape and merged[k].dtype == base[k].dtype for k in base)
lora = torch.load(os.path.join(out_dir, "final", "lit_model.pth.lora"), weights_only=True)["model"]
w = base["transformer.h.0.attn.qkv.weight"].double()
A, B = lora["transformer.h.0.attn.qkv.lora_A"].double(), lora["transformer.h.0.attn.qkv.lora_B"].double()
r = 4
d = torch.cat([B[:64] @ A[:r], torch.zeros(64, 64, dtype=torch.float64), B[64:] @ A[r:]]) * 2.0
print("merge_err", float((merged["transformer.h.0.attn.qkv.weight"].double() - (w + d)).abs().max()))
st = torch.load(os.path.join(out_dir, "step-000004", "training_state.pth"), weights_only=True)
print("state", int(st["trainer.step_count"]), int(st["trainer.iter_num"]), float(st["optimizer.step"]), sorted(k for k in st if k.startswith("optimizer."))[:2])
`);
  const lines2 = py.stdout.trim().split('\n');
  const expected = "[('transformer.h.0.attn.qkv.lora_A', (8, 64), 'torch.float32'), ('transformer.h.0.attn.qkv.lora_B', (128, 4), 'torch.float32'), " +
    "('transformer.h.1.attn.qkv.lora_A', (8, 64), 'torch.float32'), ('transformer.h.1.attn.qkv.lora_B', (128, 4), 'torch.float32')]";
  assert.equal(lines2.slice(0, 4), ['final', 'step-000002', 'step-000004', 'step-000006'].map((s) => `${s} ${expected}`));
  assert.ok(Number(lines2[4]!.split(' ')[1]) < 1e-6, lines2[4]);
  assert.is(lines2[5], "state 4 8 4.0 ['optimizer.step', 'optimizer.transformer.h.0.attn.qkv.lora_A.exp_avg']");
});

it('resume: stopped after step 4 and resumed gives the same losses as an uninterrupted run', async () => {
  const losses = (evs: TrainerEvent[]) => evs.filter((e): e is StepEvent => e.type === 'step').map((e) => [e.step, ...e.microLosses]);
  const full = join(dir, 'full'), cut = join(dir, 'cut');
  let model = await loadBase();
  const uninterrupted = losses(await collect(trainer(model, full, { merge: false })));
  model.dispose();

  model = await loadBase();
  const first = await collect(trainer(model, cut, { merge: false }), (e) => e.type === 'save' && e.step === 4);
  model.dispose();
  assert.equal(readdirSync(cut).filter((f) => f.startsWith('step-')).sort(), ['step-000002', 'step-000004']);
  assert.not.ok(existsSync(join(cut, 'final')));

  model = await loadBase(); // fresh LoRA init: everything must come from the step folder
  const second = await collect(trainer(model, cut, { merge: false, resume: true }));
  model.dispose();
  const done = second.at(-1)!;
  assert.ok(done.type === 'done' && done.resumedFrom?.endsWith('step-000004'));
  assert.equal([...losses(first), ...losses(second)], uninterrupted);
  // The resumed run logs into a new version folder.
  assert.equal(readdirSync(join(cut, 'logs', 'csv')).sort(), ['version_0', 'version_1']);
});

it('a NaN/Inf step stops the run and leaves the checkpoints already written untouched', async () => {
  const out = join(dir, 'nan');
  let model = await loadBase();
  await collect(trainer(model, out, { train: { globalBatchSize: 4, microBatchSize: 2, lrWarmupSteps: 0, maxSteps: 2, saveInterval: 2 } }));
  model.dispose();
  const before = readFileSync(join(out, 'step-000002', 'lit_model.pth.lora'));
  const finalBefore = readFileSync(join(out, 'final', 'lit_model.pth.lora'));
  model = await loadBase();
  const t = trainer(model, out, { resume: true, optimizer: { lr: 1e30 }, train: { globalBatchSize: 4, microBatchSize: 2, lrWarmupSteps: 0, maxSteps: 4, saveInterval: 1 } });
  let error: any = null;
  try { await collect(t); } catch (e) { error = e; }
  model.dispose();
  assert.is(error?.code, "ERR_NONFINITE", error?.message);
  assert.match(error.message, /iter 6 \(optimizer step 3, epoch \d\).*(NaN|infinite).*checkpoints already written are untouched/);
  assert.equal(readdirSync(out).filter((f) => f.startsWith('step-')), ['step-000002']);
  assert.ok(readFileSync(join(out, 'step-000002', 'lit_model.pth.lora')).equals(before));
  assert.ok(readFileSync(join(out, 'final', 'lit_model.pth.lora')).equals(finalBefore));
});

test.run();
