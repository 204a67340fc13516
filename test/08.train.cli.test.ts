// `litlora finetune lora`: litgpt's flags and defaults, errors that name the flag, a whole run from the CLI.
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli } from '../ts/cli/main.js';
import { initCheckpoint, synthetic } from '../ts/index.js';
import { tempDir } from './helpers/tiny_train.js';


let dir = '';
test.before(async () => {
  dir = tempDir();
  await initCheckpoint({
    outDir: join(dir, 'base'), modelName: 'pythia-14m', seed: 1,
    overrides: { n_layer: 1, n_embd: 32, n_head: 2, intermediate_size: 64, block_size: 256 },
  });
  const { train } = synthetic.syntheticInstructionTask({ trainSize: 24, testSize: 2 });
  synthetic.writeInstructionJson(join(dir, 'data.json'), train);
});
test.after(() => { rmSync(dir, { recursive: true, force: true }); });

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await runCli(argv, { out: (t) => { out += t; }, err: (t) => { err += t; }, cwd: dir });
  return { code, out, err };
}

test('--help lists every litgpt flag with its default', async () => {
  const { code, out } = await cli('finetune', 'lora', '--help');
  assert.is(code, 0);
  for (const [flag, def] of [
    ['--lora_r', '8'], ['--lora_alpha', '16'], ['--lora_dropout', '0.05'], ['--lora_query', 'true'], ['--lora_key', 'false'],
    ['--lora_value', 'true'], ['--lora_projection', 'false'], ['--lora_mlp', 'false'], ['--lora_head', 'false'],
    ['--train.global_batch_size', '16'], ['--train.micro_batch_size', '1'], ['--train.lr_warmup_steps', '100'], ['--train.epochs', '5'],
    ['--train.max_steps', 'null'], ['--train.max_seq_length', 'null'], ['--train.save_interval', '1000'], ['--eval.interval', '100'],
    ['--eval.max_iters', '100'], ['--optimizer.lr', '0.001'], ['--optimizer.weight_decay', '0.01'], ['--seed', '1337'],
    ['--out_dir', 'out/finetune/lora'], ['--resume', 'false'], ['--merge', 'true'],
  ]) {
    assert.match(out, new RegExp(`${flag.replace(/\./g, '\\.')} [^\\n]*\\n?[^\\n]*\\(default: ${def.replace(/\./g, '\\.')}\\)`), flag);
  }
  assert.match(out, /--precision/);
  assert.match(out, /--data\.<key>/);
  assert.match(out, /--config FILE/);
});

test('unknown and malformed flags are errors naming the flag (exit 2)', async () => {
  let r = await cli('finetune', 'lora', 'base', '--lora_rank', '4');
  assert.is(r.code, 2);
  assert.match(r.err, /unknown flag --lora_rank.*Did you mean --lora_r\?/);
  r = await cli('finetune', 'lora', 'base', '--train.epochs', 'five');
  assert.is(r.code, 2);
  assert.match(r.err, /--train\.epochs expects an integer, got "five"/);
  r = await cli('finetune', 'lora', 'base', '--precision', 'fp8');
  assert.is(r.code, 2);
  assert.match(r.err, /--precision expects one of 32-true, bf16-true, bf16-mixed/);
  r = await cli('finetune', 'lora');
  assert.is(r.code, 2);
  assert.match(r.err, /needs CHECKPOINT_DIR/);
});

test('bad data: exit 1 with ERR_DATA and the row, before loading the model', async () => {
  writeFileSync(join(dir, 'bad.json'), JSON.stringify([{ instruction: 'a', output: 'b' }, { instruction: 'c', output: 7 }]));
  const r = await cli('finetune', 'lora', 'base', '--data', 'JSON', '--data.json_path', 'bad.json', '--out_dir', 'bad-out');
  assert.is(r.code, 1);
  assert.match(r.err, /\[ERR_DATA\].*bad\.json: row 2: field 'output' must be a string/);
  assert.not.match(r.out, /Loading/);
});

test('a run from the command line writes litgpt\'s folders; hyperparameters.yaml records the arguments as typed', async () => {
  const r = await cli('finetune', 'lora', 'base', '--data', 'JSON', '--data.json_path', 'data.json', '--out_dir', 'out',
    '--lora_r', '4', '--lora_mlp', 'true', '--train.global_batch_size', '4', '--train.micro_batch_size', '2', '--train.max_steps', '2',
    '--train.save_interval', '1', '--train.lr_warmup_steps', '1', '--eval.interval', '2', '--eval.max_iters', '1', '--eval.max_new_tokens', '2',
    '--optimizer.lr', '0.002', '--progress', 'plain');
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /Number of trainable parameters: 1,280\n/);
  assert.match(r.out, /Number of non-trainable parameters: [\d,]+\n/);
  assert.match(r.out, /Epoch 1 \| iter 1 step 0 \| loss train: \d+\.\d{3}, val: n\/a \| iter time: [\d.]+ ms\n/);
  assert.match(r.out, /Epoch 1 \| iter 2 step 1 \| loss train: \d+\.\d{3}, val: n\/a \| iter time: [\d.]+ ms \(step\)\n/);
  assert.match(r.out, /iter 4: val loss \d+\.\d{4}, val time: [\d.]+ ms\n/);
  assert.match(r.out, /Final evaluation \| val loss: \d+\.\d{3} \| val ppl: \d+\.\d{3}\n/);
  assert.equal(readdirSync(join(dir, 'out')).sort(), ['final', 'logs', 'step-000001', 'step-000002']);
  const hp = readFileSync(join(dir, 'out', 'final', 'hyperparameters.yaml'), 'utf8');
  assert.ok(hp.startsWith('checkpoint_dir: base\nout_dir: out\nprecision: null\n'), hp.slice(0, 80));
  for (const line of ['lora_r: 4', 'lora_mlp: true', '  global_batch_size: 4', '  max_steps: 2', '    lr: 0.002', 'seed: 1337']) {
    assert.ok(hp.includes(`${line}\n`), `hyperparameters.yaml has '${line}'`);
  }
});

test.run();
