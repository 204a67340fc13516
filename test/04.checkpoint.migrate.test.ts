// `litlora migrate`: lit-gpt's pre-unification outputs → litgpt's folders.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Checkpoint } from '../ts/io/checkpoint.js';
import { runCli } from '../ts/cli/main.js';
import { configToYaml } from '../ts/model/config.js';
import { configFromName } from '../ts/model/configs.js';
import { migrateCheckpoint, registerQkvRelayout } from '../ts/model/migrate.js';
import { TensorFile } from '../ts/io/tensorfile.js';
import { assertCode } from './helpers/assert.js';
import { tempFolders } from './helpers/temp.js';
import { py } from './helpers/tensorfiles.js';

const folders = tempFolders();
const tmp = folders.make;
test.after(() => folders.removeAll());

// An era-A base: lit_config.json with lit-gpt's old field names, tokenizer files, weights.
function oldBase(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const c = configFromName('pythia-14m') as any;
  const legacy: Record<string, unknown> = {
    name: c.name, hf_config: c.hf_config, block_size: c.block_size, vocab_size: c.vocab_size, padding_multiple: c.padding_multiple,
    padded_vocab_size: c.padded_vocab_size, n_layer: c.n_layer, n_head: c.n_head, n_embd: c.n_embd,
    rotary_percentage: c.rotary_percentage, parallel_residual: c.parallel_residual, bias: c.bias, lm_head_bias: false,
    n_query_groups: c.n_query_groups, shared_attention_norm: false, _norm_class: 'LayerNorm', norm_eps: 1e-5,
    _mlp_class: 'GptNeoxMLP', gelu_approximate: 'none', intermediate_size: c.intermediate_size, rope_condense_ratio: 1,
    rope_base: 10000, n_expert: 0, n_expert_per_token: 0, head_size: c.head_size,
  };
  // json.dump writes floats as Python does (1e-05, 0.25); the integer-valued ones here are ints in litgpt too.
  writeFileSync(join(dir, 'lit_config.json'), JSON.stringify(legacy, null, 2).replace('"norm_eps": 0.00001', '"norm_eps": 1e-05'));
  writeFileSync(join(dir, 'lit_model.pth'), 'base weights');
  writeFileSync(join(dir, 'tokenizer.json'), '{}');
  writeFileSync(join(dir, 'tokenizer_config.json'), '{}');
  return dir;
}

// An era-A LoRA run folder (finetune/lora.py output).
function oldRun(dir: string): string {
  mkdirSync(join(dir, 'version_0'), { recursive: true });
  writeFileSync(join(dir, 'lit_model_lora_finetuned.pth'), 'final lora');
  writeFileSync(join(dir, 'iter-000100-ckpt.pth'), 'lora at iter 100');
  writeFileSync(join(dir, 'iter-000200-ckpt.pth'), 'lora at iter 200');
  writeFileSync(join(dir, 'version_0', 'metrics.csv'), 'loss\n');
  return dir;
}

test('an old base with lit_config.json gets a model_config.yaml identical to litgpt\'s', async () => {
  const root = tmp('mig-base');
  const base = oldBase(join(root, 'base'));
  await assertCode(() => Checkpoint.open(base), 'ERR_CHECKPOINT_FORMAT', /litlora migrate/);
  const r = await migrateCheckpoint(base);
  assert.equal(r.steps.map((s) => s.action), ['write']);
  assert.is(readFileSync(join(base, 'model_config.yaml'), 'utf8'), configToYaml(configFromName('pythia-14m')));
  assert.is((await Checkpoint.open(base)).kind, 'base');
});

test('a LoRA run: final/ and step-XXXXXX/ folders with litgpt\'s files; dry run changes nothing', async () => {
  const root = tmp('mig-run');
  const base = oldBase(join(root, 'checkpoints', 'base'));
  const run = oldRun(join(root, 'out', 'lora', 'alpaca'));
  await assertCode(() => migrateCheckpoint(run, { cwd: root }), 'ERR_ARG', /--checkpoint_dir/);
  const before = readdirSync(run).sort();
  const plan = await migrateCheckpoint(run, { cwd: root, checkpointDir: 'checkpoints/base', itersPerStep: 2, dryRun: true });
  assert.equal(readdirSync(run).sort(), before, 'dry run touches nothing');
  assert.equal(plan.folders.map((f) => f.slice(run.length + 1)).sort(), ['final', 'step-000050', 'step-000100']);

  await assertCode(() => migrateCheckpoint(run, { cwd: root, checkpointDir: 'checkpoints/base', itersPerStep: 3 }), 'ERR_ARG', /not a multiple of --iters_per_step 3/);
  const r = await migrateCheckpoint(run, { cwd: root, checkpointDir: 'checkpoints/base', itersPerStep: 2, lora: { r: 16, key: true } });
  assert.equal(readdirSync(run).sort(), ['final', 'logs', 'step-000050', 'step-000100']);
  assert.ok(existsSync(join(run, 'logs', 'csv', 'version_0', 'metrics.csv')));
  const files = ['hyperparameters.yaml', 'lit_model.pth.lora', 'model_config.yaml', 'prompt_style.yaml', 'tokenizer.json', 'tokenizer_config.json'];
  for (const d of ['final', 'step-000050', 'step-000100']) assert.equal(readdirSync(join(run, d)).sort(), files, d);
  assert.is(readFileSync(join(run, 'final', 'lit_model.pth.lora'), 'utf8'), 'final lora', 'moved, content unchanged');
  assert.is(readFileSync(join(run, 'step-000050', 'lit_model.pth.lora'), 'utf8'), 'lora at iter 100');
  const ck = await Checkpoint.open(join(run, 'final'));
  assert.is(ck.kind, 'lora');
  assert.equal(ck.hyperparameters, {
    checkpoint_dir: 'checkpoints/base', out_dir: join(run), precision: null, lora_r: 16, lora_alpha: 16, lora_dropout: 0.05,
    lora_query: true, lora_key: true, lora_value: true, lora_projection: false, lora_mlp: false, lora_head: false,
  });
  assert.equal(ck.promptStyle, { class_path: 'litgpt.prompts.Alpaca' });
  assert.is(ck.resolveBase({ cwd: root }).path, base);
  assert.ok(r.notes.some((n) => /attn\.attn/.test(n)), 'says the QKV layout still needs converting');
  // Nothing left to do the second time.
  assert.equal((await migrateCheckpoint(run, { cwd: root, checkpointDir: 'checkpoints/base' })).steps, []);
});

test('a full finetune result and the relayout hook; the CLI prints the plan', async () => {
  const root = tmp('mig-full');
  oldBase(join(root, 'base'));
  const run = join(root, 'full');
  mkdirSync(run);
  writeFileSync(join(run, 'lit_model_finetuned.pth'), 'full weights');
  const seen: string[] = [];
  const out: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t), cwd: root };
  assert.is(await runCli(['migrate', 'full', '--checkpoint_dir', 'base', '--dry_run'], io), 0);
  assert.match(out.join(''), /Would migrate .*full:\n[^]*move\s+lit_model_finetuned\.pth → final\/lit_model\.pth/);
  // (The CLI loads commands with import(), which under the test runner is a separate module instance, so the
  // hook is exercised through the library call.)
  registerQkvRelayout(async (source, target, config, kind) => {
    seen.push(`${source.split('/').pop()}→${target.split('/').pop()}:${readFileSync(source, 'utf8')}:${config.name}:${kind}`);
    writeFileSync(target, `relaid ${readFileSync(source, 'utf8')}`);
    return 'rewritten';
  });
  try {
    await migrateCheckpoint(run, { checkpointDir: join(root, 'base') });
  } finally {
    registerQkvRelayout(null);
  }
  assert.equal(seen, ['lit_model_finetuned.pth→lit_model.pth:full weights:pythia-14m:full']);
  assert.is(readFileSync(join(run, 'final', 'lit_model.pth'), 'utf8'), 'relaid full weights');
  assert.not.ok(existsSync(join(run, 'lit_model_finetuned.pth')), 'the old name goes once the new folder is in place');
  const ck = await Checkpoint.open(join(run, 'final'));
  assert.is(ck.kind, 'full');
  assert.not.ok('lora_r' in ck.hyperparameters!);
  assert.is(await runCli(['migrate', 'missing-dir'], { out: () => {}, err: () => {}, cwd: root }), 1);
});

// Every entry under `dir` (hidden ones too) with a hash of each file's bytes.
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) {
        out[`${rel}${e.name}/`] = 'folder';
        walk(join(d, e.name), `${rel}${e.name}/`);
      } else {
        out[rel + e.name] = createHash('sha256').update(readFileSync(join(d, e.name))).digest('hex');
      }
    }
  };
  walk(dir, '');
  return out;
}

function cli(cwd: string) {
  const out: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => out.push(t), cwd }, text: () => out.join('') };
}

async function tensorsOf(path: string): Promise<Record<string, string>> {
  const f = await TensorFile.open(path);
  const out: Record<string, string> = {};
  try {
    for (const [name, t] of await f.getAll()) {
      const raw = await t.data({ raw: true });
      out[name] = `${t.dtype}${JSON.stringify(t.shape)}:${Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('hex')}`;
      t.dispose();
    }
  } finally {
    await f.close();
  }
  return out;
}

test('litlora migrate reads a legacy (non-zip) lit_model_lora_finetuned.pth with numpy scalars and re-lays it out', async () => {
  const root = tmp('mig-legacy');
  oldBase(join(root, 'base'));
  const run = join(root, 'run');
  mkdirSync(run);
  const file = join(run, 'lit_model_lora_finetuned.pth');
  py(`
import numpy as np
torch.manual_seed(3)
lora = {'transformer.h.0.attn.attn.lora_A': torch.randn(8, 128), 'transformer.h.0.attn.attn.lora_B': torch.randn(256, 8)}
torch.save({'model': lora, 'loss': np.float64(0.75), 'iter_num': np.int64(200)}, ${JSON.stringify(file)}, _use_new_zipfile_serialization=False)
print(1)`);
  const before = await tensorsOf(file);
  const c = cli(root);
  assert.is(await runCli(['migrate', 'run', '--checkpoint_dir', 'base'], c.io), 0, c.text());
  assert.equal(readdirSync(run).sort(), ['final']);
  const lora = join(run, 'final', 'lit_model.pth.lora');
  const after = await tensorsOf(lora);
  assert.equal(after, Object.fromEntries(Object.entries(before).map(([n, v]) => [n.replace('.attn.attn.', '.attn.qkv.'), v])));
  const f = await TensorFile.open(lora);
  assert.is(f.wrapped, 'model');
  await f.close();
});

test('litlora migrate on weights it cannot read (truncated, hostile, not a tensor file): the folder stays exactly as it was', async () => {
  const root = tmp('mig-bad');
  oldBase(join(root, 'base'));
  const marker = join(root, 'PWNED');
  const good = join(root, 'good.pth');
  py(`
import os
class Payload:
    def __reduce__(self):
        return (os.system, ('touch ' + ${JSON.stringify(marker)},))
torch.save({'model': {'a.lora_A': torch.ones(2, 2)}, 'x': Payload()}, ${JSON.stringify(join(root, 'hostile.pth'))})
torch.save({'model': {'transformer.h.0.attn.attn.lora_A': torch.ones(8, 128)}}, ${JSON.stringify(good)}, _use_new_zipfile_serialization=False)
raw = open(${JSON.stringify(good)}, 'rb').read()
open(${JSON.stringify(join(root, 'truncated.pth'))}, 'wb').write(raw[:len(raw) // 2])
print(1)`);
  const cases: [string, Record<string, Buffer | string>, string, RegExp][] = [
    ['truncated', { 'lit_model_lora_finetuned.pth': readFileSync(join(root, 'truncated.pth')) }, 'lit_model_lora_finetuned.pth', /truncated/],
    ['hostile', { 'lit_model_lora_finetuned.pth': readFileSync(join(root, 'hostile.pth')) }, 'lit_model_lora_finetuned.pth', /refused the global 'posix\.system'/],
    ['text', { 'lit_model_lora_finetuned.pth': 'final lora' }, 'lit_model_lora_finetuned.pth', /neither a PyTorch \.pth/],
    // The first folder would be fine; the second file fails: neither is put in place, nothing is moved.
    ['second of two', { 'lit_model_lora_finetuned.pth': readFileSync(good), 'iter-000100-ckpt.pth': readFileSync(join(root, 'truncated.pth')) },
      'iter-000100-ckpt.pth', /truncated/],
  ];
  for (const [name, files, culprit, message] of cases) {
    const run = join(root, name.replace(/ /g, '-'));
    mkdirSync(join(run, 'version_0'), { recursive: true });
    writeFileSync(join(run, 'version_0', 'metrics.csv'), 'loss\n');
    for (const [f, content] of Object.entries(files)) writeFileSync(join(run, f), content);
    const before = snapshot(run);
    const c = cli(root);
    assert.is(await runCli(['migrate', run, '--checkpoint_dir', 'base'], c.io), 1, `${name}: ${c.text()}`);
    assert.match(c.text(), 'error [ERR_CHECKPOINT_FORMAT]', name);
    assert.match(c.text(), join(run, culprit), `${name}: the message names the user's file`);
    assert.match(c.text(), message, name);
    assert.not.match(c.text(), /\.tmp-/, `${name}: no temporary path in the message`);
    assert.equal(snapshot(run), before, `${name}: every file and folder as it was`);
  }
  assert.not.ok(existsSync(marker), 'the payload must not have run');
});

test.run();
