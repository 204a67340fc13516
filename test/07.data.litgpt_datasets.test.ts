// litgpt's instruction data sets over local copies: Alpaca found where litgpt downloads it (./data/alpaca/),
// AlpacaGPT4, LIMA (multi-turn pairs), Deita (train_sft/test_sft) and LongForm (input → instruction), with
// litgpt's splits (torch's random_split with the seed, checked against torch) and row shapes.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli } from '../ts/cli/main.js';
import { createDataModule, dataModuleFromArgs, initCheckpoint, PromptStyle, Tokenizer } from '../ts/index.js';
import { assertCode } from './helpers/assert.js';
import { runPython } from './helpers/python.js';
import { tempFolders } from './helpers/temp.js';

const temp = tempFolders();
test.after(() => temp.removeAll());
const tok = () => Tokenizer.fromDir(join(import.meta.dirname, 'fixtures', 'tokenizers', 'bytes'));

/** torch's random_split(range(n), [1 - f, f], generator=manual_seed(seed)) → [train indices, val indices]. */
function torchSplit(n: number, f: number, seed: number): [number[], number[]] {
  const py = runPython(`import torch, json\nfrom torch.utils.data import random_split\n` +
    `a, b = random_split(list(range(${n})), [1.0 - ${f}, ${f}], generator=torch.Generator().manual_seed(${seed}))\nprint(json.dumps([list(a), list(b)]))`);
  return JSON.parse(py.stdout);
}

test('--data Alpaca reads ./data/alpaca/ where litgpt downloads it; without the file it says where to put it', async () => {
  const dir = temp.make('alpaca');
  await initCheckpoint({ outDir: join(dir, 'base'), modelName: 'pythia-14m', seed: 1, overrides: { n_layer: 1, n_embd: 32, n_head: 2, intermediate_size: 64, block_size: 256 } });
  let err = '';
  const io = { out: () => {}, err: (t: string) => { err += t; }, cwd: dir };
  const args = ['finetune', 'lora', 'base', '--data', 'Alpaca', '--data.val_split_fraction', '0.25', '--out_dir', 'out', '--train.max_steps', '1',
    '--train.global_batch_size', '1', '--eval.max_new_tokens', '1', '--eval.max_iters', '1', '--progress', 'none'];
  assert.is(await runCli(args, io), 1);
  assert.match(err, /error \[ERR_DATA\]: --data Alpaca: no local copy of its file at .*data\/alpaca\/alpaca_data_cleaned_archive\.json \(litgpt downloads it there; litlora does not download\)/);
  mkdirSync(join(dir, 'data', 'alpaca'), { recursive: true });
  const rows = Array.from({ length: 8 }, (_, i) => ({ instruction: `Reverse: ${i}`, input: '', output: `${i}` }));
  writeFileSync(join(dir, 'data', 'alpaca', 'alpaca_data_cleaned_archive.json'), JSON.stringify(rows));
  err = '';
  assert.is(await runCli(args, io), 0, err);
});

test('AlpacaGPT4: its file name, default split (0.03847) and litgpt\'s random_split with the seed', async () => {
  const dir = temp.make('gpt4');
  const rows = Array.from({ length: 60 }, (_, i) => ({ instruction: `q${i}`, input: i % 3 ? '' : `in${i}`, output: `a${i}` }));
  writeFileSync(join(dir, 'alpacagpt4_data_cleaned_archive.json'), JSON.stringify(rows));
  const data = dataModuleFromArgs('AlpacaGPT4', { download_dir: dir, val_split_fraction: '0.2' }) as any;
  await data.setup(tok());
  const [train, val] = torchSplit(60, 0.2, 42);
  assert.equal(data.trainSamples.map((s: any) => s.instruction), train.map((i) => `q${i}`));
  assert.equal(data.valSamples.map((s: any) => s.instruction), val.map((i) => `q${i}`));
  assert.is(data.toHyperparameters().class_path, 'litgpt.data.AlpacaGPT4');
  assert.is(dataModuleFromArgs('AlpacaGPT4', { download_dir: dir }).toHyperparameters().init_args.val_split_fraction, 0.03847);
});

test('LIMA: conversations of strings → the first exchange, or every pair with include_multiturn_conversations; split 0.1, seed 42', async () => {
  const dir = temp.make('lima');
  const rows = Array.from({ length: 30 }, (_, i) => ({ conversations: i % 2 ? [`u${i}`, `a${i}`, `u${i}b`, `a${i}b`] : [`u${i}`, `a${i}`], source: 'x' }));
  writeFileSync(join(dir, 'lima.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
  const single = dataModuleFromArgs('LIMA', { json_path: join(dir, 'lima.jsonl') }) as any;
  await single.setup(tok());
  const [train, val] = torchSplit(30, 0.1, 42);
  assert.equal(single.valSamples, val.map((i) => ({ instruction: `u${i}`, input: '', output: `a${i}` })));
  assert.equal(single.trainSamples.length, train.length);
  const multi = dataModuleFromArgs('LIMA', { json_path: join(dir, 'lima.jsonl'), include_multiturn_conversations: 'true' }) as any;
  await multi.setup(tok());
  const pairs = rows.flatMap((r, i) => (i % 2 ? [[`u${i}`, `a${i}`], [`u${i}b`, `a${i}b`]] : [[`u${i}`, `a${i}`]]));
  const [, mval] = torchSplit(pairs.length, 0.1, 42);
  assert.equal(multi.valSamples.map((s: any) => [s.instruction, s.output]), mval.map((i) => pairs[i]));
  writeFileSync(join(dir, 'bad.json'), JSON.stringify([{ conversations: ['only one'] }]));
  await assertCode(() => (dataModuleFromArgs('LIMA', { json_path: join(dir, 'bad.json') }) as any).setup(tok()), 'ERR_DATA', /bad\.json: row 1: expected a LIMA row/);
});

test('Deita: train_sft/test_sft files of messages; LongForm: train/val of {input, output}, the input is the instruction', async () => {
  const dir = temp.make('deita');
  const row = (i: number) => ({ messages: [{ role: 'user', content: `u${i}` }, { role: 'assistant', content: `a${i}` }], prompt_id: String(i) });
  writeFileSync(join(dir, 'train_sft.jsonl'), [0, 1, 2].map((i) => JSON.stringify(row(i))).join('\n'));
  writeFileSync(join(dir, 'test_sft.jsonl'), JSON.stringify(row(9)));
  const deita = dataModuleFromArgs('Deita', { download_dir: dir }) as any;
  await deita.setup(tok());
  assert.equal(deita.trainSamples.map((s: any) => s.output), ['a0', 'a1', 'a2']);
  assert.equal(deita.valSamples, [{ instruction: 'u9', input: '', output: 'a9' }]);

  const lf = temp.make('longform');
  writeFileSync(join(lf, 'train.json'), JSON.stringify([{ input: 'Write a poem', output: 'Roses', source: 's', subset: 'x' }]));
  writeFileSync(join(lf, 'val.json'), JSON.stringify([{ input: 'Write a story', output: 'Once', source: 's', subset: 'x' }]));
  const longform = createDataModule('LongForm' as never, { download_dir: lf } as never) as any;
  await longform.setup(tok());
  assert.is(longform.valSamples[0].instruction, 'Write a story');
  assert.is(longform.promptStyle.className, 'Longform');
  assert.equal(longform.promptStyle.apply('Write a story'), PromptStyle.fromName('longform').apply('Write a story'));
  await assertCode(() => dataModuleFromArgs('LongForm', { download_dir: join(lf, 'nowhere') }).setup(tok()), 'ERR_DATA', /--data LongForm: no local copy at/);
});

test.run();
