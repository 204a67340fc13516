// `litlora finetune lora --config FILE` over litgpt's YAML (a config_hub lora.yaml) and over a saved
// hyperparameters.yaml (a saved run re-runs); litgpt's flags --train.min_lr, --train.lr_warmup_fraction,
// --eval.evaluate_example, --optimizer.betas, --optimizer by class name; `litlora finetune` as `finetune lora`.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli } from '../ts/cli/main.js';
import { initCheckpoint, synthetic, TensorFile } from '../ts/index.js';
import { parseYaml } from '../ts/io/yaml.js';
import { tempFolders } from './helpers/temp.js';

const temp = tempFolders();
let dir = '';
const HUB_YAML = join(import.meta.dirname, 'fixtures', 'litgpt', 'lora.llama-3.2-1B.yaml');

test.before(async () => {
  dir = temp.make('config');
  await initCheckpoint({
    outDir: join(dir, 'base'), modelName: 'pythia-14m', seed: 1,
    overrides: { n_layer: 1, n_embd: 32, n_head: 2, intermediate_size: 64, block_size: 256 },
  });
  const { train } = synthetic.syntheticInstructionTask({ trainSize: 24, testSize: 2 });
  synthetic.writeInstructionJson(join(dir, 'data.json'), train);
});
test.after(() => temp.removeAll());

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await runCli(argv, { out: (t) => { out += t; }, err: (t) => { err += t; }, cwd: dir });
  return { code, out, err };
}

const hparams = (out: string) => parseYaml(readFileSync(join(dir, out, 'final', 'hyperparameters.yaml'), 'utf8'), 'h').value as any;
const SHORT = ['--train.max_steps', '2', '--train.global_batch_size', '2', '--train.micro_batch_size', '1', '--eval.interval', '100',
  '--eval.max_iters', '1', '--eval.max_new_tokens', '1', '--train.lr_warmup_steps', '1', '--precision', '32-true', '--progress', 'none'];

test('litgpt\'s config_hub lora.yaml drives `finetune lora` (class_path/init_args, quantize: null, num_nodes, betas)', async () => {
  const r = await cli('finetune', 'lora', 'base', '--config', HUB_YAML, '--data', 'JSON', '--data.json_path', 'data.json',
    '--out_dir', 'hub', ...SHORT);
  assert.is(r.code, 0, r.err);
  const hp = hparams('hub');
  // From the YAML: LoRA, optimizer (class_path/init_args with betas), train and data init_args.
  assert.is(hp.lora_r, 32);
  assert.is(hp.lora_dropout, 0.05);
  assert.equal(hp.optimizer, { class_path: 'torch.optim.AdamW', init_args: { lr: 0.0002, weight_decay: 0.0, betas: [0.9, 0.95] } });
  assert.is(hp.train.save_interval, 200);
  assert.is(hp.train.max_seq_length, 512);
  assert.is(hp.train.min_lr, 6.0e-5);
  assert.is(hp.train.epochs, 2);
  assert.is(hp.data.class_path, 'litgpt.data.JSON');
  assert.is(hp.data.init_args.prompt_style, 'alpaca');
  assert.is(hp.data.init_args.seed, 42);
  // The command line wins over the file.
  assert.is(hp.train.max_steps, 2);
  assert.is(hp.precision, '32-true');
  assert.is(hp.out_dir, 'hub');
});

test('a saved hyperparameters.yaml re-runs the same training: the same hyperparameters and the same LoRA weights', async () => {
  const first = await cli('finetune', 'lora', 'base', '--data', 'JSON', '--data.json_path', 'data.json', '--out_dir', 'run1',
    '--optimizer.betas', '0.8,0.9', '--lora_r', '2', ...SHORT);
  assert.is(first.code, 0, first.err);
  const again = await cli('finetune', '--config', join('run1', 'final', 'hyperparameters.yaml'), '--out_dir', 'run2', '--progress', 'none');
  assert.is(again.code, 0, again.err);
  const a = hparams('run1'), b = hparams('run2');
  assert.equal({ ...b, out_dir: 'run1' }, a);
  assert.equal(a.optimizer.init_args.betas, [0.8, 0.9]);
  // The same adapter, tensor for tensor (the files' bytes differ only by torch's random serialization_id).
  const tensors = async (run: string) => {
    const file = await TensorFile.open(join(dir, run, 'final', 'lit_model.pth.lora'));
    try {
      const out: Record<string, number[]> = {};
      for (const [name, t] of await file.getAll()) out[name] = Array.from((await t.data()) as Float32Array);
      return out;
    } finally {
      await file.close();
    }
  };
  const [w1, w2] = [await tensors('run1'), await tensors('run2')];
  assert.ok(Object.keys(w1).length > 0);
  assert.equal(w2, w1);
});

test('--config keys litlora does not do are refused with the reason; their "off" values are accepted', async () => {
  const base = readFileSync(HUB_YAML, 'utf8');
  const cases: [string, RegExp][] = [
    ['quantize: nf4', /quantize: "nf4" is not supported: litlora trains unquantized weights/],
    ['num_nodes: 2', /num_nodes: 2 is not supported: litlora trains on one machine/],
    ['logger_name: wandb', /logger_name: "wandb" is not supported: litlora writes CSV metrics only/],
    ['log:\n  project: p', /log: \{"project":"p"\} is not supported: log\.\* configures litgpt's wandb/],
  ];
  for (const [line, message] of cases) {
    const key = line.split(':')[0]!;
    const text = base.replace(new RegExp(`^${key}:.*$`, 'm'), line);
    assert.ok(text !== base || key === 'log', key);
    writeFileSync(join(dir, 'bad.yaml'), key === 'log' ? `${base}\n${line}\n` : text);
    const r = await cli('finetune', 'lora', 'base', '--config', 'bad.yaml', '--data', 'JSON', '--data.json_path', 'data.json', '--out_dir', 'bad');
    assert.is(r.code, 1, line);
    assert.match(r.err, /error \[ERR_CONFIG\]/, line);
    assert.match(r.err, message, line);
  }
});

test('--optimizer by class name: Adam (no weight decay) runs and is recorded as torch.optim.Adam; SGD and Adam with decay are refused', async () => {
  const adam = await cli('finetune', 'lora', 'base', '--data', 'JSON', '--data.json_path', 'data.json', '--out_dir', 'adam', '--optimizer', 'Adam', ...SHORT);
  assert.is(adam.code, 0, adam.err);
  assert.equal(hparams('adam').optimizer, { class_path: 'torch.optim.Adam', init_args: { lr: 0.001, weight_decay: 0, betas: [0.9, 0.999] } });
  const sgd = await cli('finetune', 'lora', 'base', '--data', 'JSON', '--data.json_path', 'data.json', '--out_dir', 'sgd', '--optimizer', 'SGD');
  assert.is(sgd.code, 1);
  assert.match(sgd.err, /error \[ERR_ARG\]: --optimizer SGD: litlora's training step implements AdamW/);
  const decay = await cli('finetune', 'lora', 'base', '--data', 'JSON', '--data.json_path', 'data.json', '--out_dir', 'sgd', '--optimizer', 'Adam', '--optimizer.weight_decay', '0.1');
  assert.is(decay.code, 1);
  assert.match(decay.err, /error \[ERR_ARG\]: --optimizer Adam with --optimizer\.weight_decay 0\.1/);
});

test('--train.lr_warmup_fraction is refused as litgpt\'s finetune lora refuses it; --eval.evaluate_example takes first, random or an index', async () => {
  const frac = await cli('finetune', 'lora', 'base', '--data', 'JSON', '--data.json_path', 'data.json', '--out_dir', 'frac', '--train.lr_warmup_fraction', '0.1');
  assert.is(frac.code, 1);
  assert.match(frac.err, /error \[ERR_ARG\]: --train\.lr_warmup_fraction 0\.1: litgpt's finetune lora does not support it/);
  const bad = await cli('finetune', 'lora', 'base', '--data', 'JSON', '--data.json_path', 'data.json', '--out_dir', 'ex', '--eval.evaluate_example', 'last');
  assert.is(bad.code, 1);
  assert.match(bad.err, /--eval\.evaluate_example: expected first, random or an index/);
  const far = await cli('finetune', 'lora', 'base', '--data', 'JSON', '--data.json_path', 'data.json', '--out_dir', 'ex', '--eval.evaluate_example', '999', ...SHORT);
  assert.is(far.code, 1);
  assert.match(far.err, /error \[ERR_CONFIG\]: --eval\.evaluate_example 999 is out of range for both the validation \(1\) and training \(23\) splits/);
  const idx = await cli('finetune', 'lora', 'base', '--data', 'JSON', '--data.json_path', 'data.json', '--out_dir', 'ex', '--eval.evaluate_example', '5',
    '--train.min_lr', '0.0001', ...SHORT);
  assert.is(idx.code, 0, idx.err);
  assert.is(hparams('ex').eval.evaluate_example, 5);
  assert.is(hparams('ex').train.min_lr, 0.0001);
});

test('--data Chat trains through the base\'s chat template; prompt_style.yaml records it and generate on final/ uses it', async () => {
  await initCheckpoint({
    outDir: join(dir, 'chatbase'), modelName: 'pythia-14m', seed: 1,
    overrides: { n_layer: 1, n_embd: 32, n_head: 2, intermediate_size: 64, block_size: 256 },
  });
  const configPath = join(dir, 'chatbase', 'tokenizer_config.json');
  const config = JSON.parse(readFileSync(configPath, 'utf8'));
  config.chat_template = '{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}';
  writeFileSync(configPath, JSON.stringify(config));
  const rows = Array.from({ length: 8 }, (_, i) => ({ messages: [{ role: 'user', content: `Say ${i}` }, { role: 'assistant', content: `${i}` }] }));
  writeFileSync(join(dir, 'chat.json'), JSON.stringify(rows));
  const r = await cli('finetune', 'chatbase', '--data', 'Chat', '--data.json_path', 'chat.json', '--data.val_split_fraction', '0.25',
    '--data.mask_prompt', 'true', '--out_dir', 'chat', ...SHORT);
  assert.is(r.code, 0, r.err);
  assert.is(readFileSync(join(dir, 'chat', 'final', 'prompt_style.yaml'), 'utf8'), 'class_path: litlora.prompts.ChatTemplate\n');
  assert.equal(hparams('chat').data.class_path, 'litlora.data.Chat');
  const g = await cli('generate', 'chat/final', '--prompt', 'Say 3', '--max_new_tokens', '2', '--temperature', '0');
  assert.is(g.code, 0, g.err);
});

test.run();
