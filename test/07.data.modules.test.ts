import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  createDataModule, dataModuleFromArgs, dataModuleFromHyperparameters, loadInstructionFile, Tokenizer, type AlpacaData, type Batch,
  type JSONData, type TextFilesData,
} from '../ts/index.js';
import { assertCode } from './helpers/assert.js';

const tok = Tokenizer.fromDir(join(import.meta.dirname, 'fixtures', 'tokenizers', 'bytes'));
const BOS = 256, EOS = 257;
let dir = '';
const file = (name: string, text: string) => { const p = join(dir, name); writeFileSync(p, text); return p; };
const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ instruction: `q${i}`, input: i % 2 ? 'in' : '', output: `a${i}` }));

test.before.each(() => { dir = mkdtempSync(join(tmpdir(), 'litlora-data-')); });
test.after.each(() => { rmSync(dir, { recursive: true, force: true }); });

test('JSON and JSONL files give the same samples; input is optional', () => {
  const data = [{ instruction: 'a', output: 'b' }, { instruction: 'c', input: 'd', output: 'e' }, { instruction: 'f', input: null, output: 'g' }];
  const json = loadInstructionFile(file('d.json', JSON.stringify(data)));
  const jsonl = loadInstructionFile(file('d.jsonl', data.map((r) => JSON.stringify(r)).join('\n') + '\n\n'));
  assert.equal(json.samples, data);
  assert.equal(jsonl.samples, data);
  assert.equal(jsonl.sources.map((s) => s.row), [1, 2, 3]);
});

test('bad data → ERR_DATA naming the file and the 1-based row', async () => {
  const bad = async (name: string, text: string, re: RegExp) => {
    const p = file(name, text);
    await assertCode(() => loadInstructionFile(p), 'ERR_DATA', re);
  };
  await bad('missing.json', JSON.stringify([{ instruction: 'a', output: 'b' }, { instruction: 'c' }]), /missing\.json: row 2: missing field 'output'/);
  await bad('type.json', JSON.stringify([{ instruction: 'a', output: 'b' }, { instruction: 'a', output: 'b' }, { instruction: 5, output: 'b' }]), /type\.json: row 3: field 'instruction' must be a string, got number 5/);
  await bad('input.jsonl', '{"instruction":"a","output":"b"}\n{"instruction":"a","input":[1],"output":"b"}\n', /input\.jsonl: row 2: field 'input' must be a string/);
  await bad('notobj.jsonl', '{"instruction":"a","output":"b"}\n\n"text"\n', /notobj\.jsonl: row 3: expected an object/);
  await bad('empty.json', '  \n', /empty\.json is empty/);
  await bad('empty.jsonl', '', /empty\.jsonl is empty/);
  await bad('emptylist.json', '[]', /has no samples/);
  await bad('dict.json', '{"instruction": "a", "output": "b"}', /expected a JSON list.*got an object/);
  await bad('broken.json', '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "a" "output": "b"}\n]', /broken\.json: invalid JSON at line 3, column 23/);
  await bad('broken.jsonl', '{"instruction":"a","output":"b"}\n{"instruction":"a","output":"b"}\n{"instruction": oops}\n', /broken\.jsonl: invalid JSON at line 3, column 17 \(row 3\)/);
  await bad('data.csv', 'instruction,output\n', /unsupported data file format '\.csv'/);
  await assertCode(() => loadInstructionFile(join(dir, 'nope.json')), 'ERR_DATA', /nope\.json: it does not exist/);
});

test('bad data fails in setup, before any batch; an empty split is ERR_DATA', async () => {
  const broken = file('bad.json', JSON.stringify([...rows(5), { instruction: 'x', output: 3 }]));
  const m = createDataModule('JSON', { json_path: broken });
  await assertCode(() => m.setup(tok), 'ERR_DATA', /bad\.json: row 6: field 'output' must be a string/);
  await assertCode(() => m.trainSize, 'ERR_CONFIG', /not set up/);
  const one = createDataModule('JSON', { json_path: file('one.json', JSON.stringify(rows(1))) });
  await assertCode(() => one.setup(tok), 'ERR_DATA', /one\.json: splitting 1 samples with val_split_fraction 0\.05 leaves the validation split empty/);
  const nothing = createDataModule('JSON', { json_path: join(dir, 'missing.json') });
  await assertCode(() => nothing.setup(tok), 'ERR_DATA', /does not exist/);
});

test('JSON module: defaults, batches per epoch, last batch smaller, val in order, hyperparameters', async () => {
  const path = file('d.json', JSON.stringify(rows(41)));
  const m = dataModuleFromArgs('JSON', { json_path: path, mask_prompt: 'true', prompt_style: 'default' }); // a CLI string
  await m.setup(tok, { maxSeqLength: 6 });
  assert.equal([m.trainSize, m.valSize], [39, 2]); // floor(41·0.95)=38, floor(41·0.05)=2, remainder → train
  assert.is(m.trainBatchCount(4), 10);
  const batches = [...m.trainBatches(0, 4)] as Batch[];
  assert.is(batches.length, 10);
  assert.equal(batches.map((b) => b.batchSize), [4, 4, 4, 4, 4, 4, 4, 4, 4, 3]);
  assert.equal(new Set(batches.flatMap((b) => b.sampleIndices)).size, 39);
  for (const b of batches) {
    assert.ok(b.seqLength <= 6);
    assert.is(b.inputIds.length, b.batchSize * b.seqLength);
    assert.is(b.labels.length, b.inputIds.length);
  }
  // 'q1'+'in' under the default style is 'q1' (Default ignores input): [BOS q 1] + [a 1 EOS] → 6 tokens, prompt masked.
  assert.equal(m.longestSeqLength, 6);
  const val = [...m.valBatches(1)];
  assert.equal(val.map((b) => b.sampleIndices), [[0], [1]]);
  const first = val[0]!;
  assert.equal([...first.labels].slice(0, 3), [-100, -100, -100]);
  assert.is(first.inputIds[0], BOS);
  assert.equal(m.toHyperparameters(), {
    class_path: 'litgpt.data.JSON',
    init_args: { json_path: path, mask_prompt: true, val_split_fraction: 0.05, prompt_style: 'default', ignore_index: -100, seed: 42, num_workers: 4 },
  });
  assert.is(m.promptStyle.className, 'Default');
  // The hyperparameters rebuild an equivalent module.
  const again = dataModuleFromHyperparameters(m.toHyperparameters());
  await again.setup(tok, { maxSeqLength: 6 });
  assert.equal([...again.trainBatches(1, 4)].map((b) => [...b.inputIds]), [...m.trainBatches(1, 4)].map((b) => [...b.inputIds]));
});

test('JSON module over a folder with train.json and val.jsonl', async () => {
  const folder = join(dir, 'split');
  mkdirSync(folder);
  writeFileSync(join(folder, 'train.json'), JSON.stringify(rows(5)));
  writeFileSync(join(folder, 'val.jsonl'), rows(3).map((r) => JSON.stringify(r)).join('\n'));
  const m = createDataModule('JSON', { json_path: folder });
  await m.setup(tok);
  assert.equal([m.trainSize, m.valSize], [5, 3]);
  assert.equal(m.firstValInstruction, { instruction: 'q0' });
  assert.is(m.toHyperparameters().init_args.val_split_fraction, null);
  await assertCode(() => createDataModule('JSON', { json_path: folder, val_split_fraction: 0.1 }).setup(tok), 'ERR_CONFIG', /must not be set/);
  rmSync(join(folder, 'val.jsonl'));
  await assertCode(() => createDataModule('JSON', { json_path: folder }).setup(tok), 'ERR_DATA', /lacks val\.json\(l\)/);
});

test('CLI arguments: parsed from strings; unknown or malformed ones are ERR_CONFIG naming the flag', async () => {
  await assertCode(() => dataModuleFromArgs('CSV', {}), 'ERR_CONFIG', /unknown data module 'CSV'/);
  await assertCode(() => dataModuleFromArgs('JSON', {}), 'ERR_CONFIG', /--data\.json_path is required/);
  await assertCode(() => dataModuleFromArgs('JSON', { json_path: 'x.json', val_split: '0.1' }), 'ERR_CONFIG', /does not take --data\.val_split\b/);
  await assertCode(() => dataModuleFromArgs('JSON', { json_path: 'x.json', mask_prompt: 'yes' }), 'ERR_CONFIG', /--data\.mask_prompt: expected true or false/);
  await assertCode(() => dataModuleFromArgs('JSON', { json_path: 'x.json', val_split_fraction: '1.5' }), 'ERR_CONFIG', /--data\.val_split_fraction: expected a number in \(0, 1\]/);
  await assertCode(() => dataModuleFromArgs('JSON', { json_path: 'x.json', val_split_fraction: '0' }), 'ERR_CONFIG', /val_split_fraction/);
  await assertCode(() => dataModuleFromArgs('JSON', { json_path: 'x.json', prompt_style: 'nope' }), 'ERR_CONFIG', /unknown prompt style/);
  await assertCode(() => dataModuleFromArgs('JSON', { json_path: 'x.json', seed: '1.5' }), 'ERR_CONFIG', /--data\.seed: expected an integer/);
});

// The @ts-expect-error lines are checked by the suite's typecheck (tsc over test/): each must be a type error.
test('createDataModule is typed per module: a wrong name or argument does not compile, and is ERR_CONFIG at run time', async () => {
  const json: JSONData = createDataModule('JSON', { json_path: 'x.json', val_split_fraction: 0.1, mask_prompt: true, seed: 7 });
  const alpaca: AlpacaData = createDataModule('Alpaca', { download_dir: join(dir, 'alpaca') });
  const text: TextFilesData = createDataModule('litgpt.data.TextFiles', { train_data_path: 'corpus', val_data_path: null });
  assert.equal([json.name, alpaca.name, text.name], ['JSON', 'Alpaca', 'TextFiles']);
  // @ts-expect-error: no module of that name
  await assertCode(() => createDataModule('Nope'), 'ERR_CONFIG', /unknown data module 'Nope'; expected one of JSON, Chat, Alpaca, AlpacaGPT4, Alpaca2k, LIMA, Deita, LongForm, TextFiles/);
  // @ts-expect-error: JSON takes no `bogus`
  await assertCode(() => createDataModule('JSON', { json_path: 'x.json', bogus: 1 }), 'ERR_CONFIG', /does not take --data\.bogus/);
  // @ts-expect-error: json_path is required
  await assertCode(() => createDataModule('JSON', { mask_prompt: true }), 'ERR_CONFIG', /--data\.json_path is required/);
  // @ts-expect-error: mask_prompt is a boolean
  await assertCode(() => createDataModule('JSON', { json_path: 'x.json', mask_prompt: 'yes' }), 'ERR_CONFIG', /--data\.mask_prompt: expected true or false/);
  // @ts-expect-error: train_data_path is TextFiles', not JSON's
  await assertCode(() => createDataModule('JSON', { train_data_path: 'corpus' }), 'ERR_CONFIG', /--data\.json_path is required/);
  // Alpaca without json_path or download_dir reads litgpt's download folder, ./data/alpaca/.
  assert.is(createDataModule('Alpaca', { mask_prompt: true }).toHyperparameters().init_args.download_dir, 'data/alpaca');
});

test('Alpaca module: a local file, litgpt defaults (val 0.03865, alpaca style), litgpt hyperparameters', async () => {
  const path = file('alpaca_data_cleaned_archive.json', JSON.stringify(rows(100)));
  const m = createDataModule('Alpaca', { json_path: path });
  await m.setup(tok);
  assert.equal([m.trainSize, m.valSize], [97, 3]);
  assert.is(m.promptStyle.className, 'Alpaca');
  const hp = m.toHyperparameters();
  assert.is(hp.class_path, 'litgpt.data.Alpaca');
  assert.equal(hp.init_args, {
    mask_prompt: false, val_split_fraction: 0.03865, prompt_style: 'alpaca', ignore_index: -100, seed: 42, num_workers: 4,
    download_dir: dir, file_url: 'https://raw.githubusercontent.com/tloen/alpaca-lora/main/alpaca_data_cleaned_archive.json',
    file_name: 'alpaca_data_cleaned_archive.json',
  });
  const again = dataModuleFromHyperparameters(hp); // litgpt's own init_args (download_dir + file_name) work too
  await again.setup(tok);
  assert.is(again.valSize, 3);
  // Without a path it looks where litgpt downloads the file (./data/alpaca/) and says so when it is not there.
  await assertCode(() => dataModuleFromArgs('Alpaca', {}).setup(tok), 'ERR_DATA', /no local copy of its file at .*data\/alpaca\/alpaca_data_cleaned_archive\.json.*--data\.json_path/);
});

test('TextFiles: BOS-prefixed files concatenated into max_seq_length+1 blocks; first file is validation', async () => {
  const folder = join(dir, 'corpus');
  mkdirSync(folder);
  writeFileSync(join(folder, 'b.txt'), '  hello world  \n'); // stripped → 'hello world'
  writeFileSync(join(folder, 'a.txt'), 'valid text here');
  writeFileSync(join(folder, 'c.txt'), 'abc');
  writeFileSync(join(folder, 'notes.md'), 'ignored');
  const m = createDataModule('TextFiles', { train_data_path: folder });
  await m.setup(tok, { maxSeqLength: 4 });
  const stream = [BOS, ...Buffer.from('hello world'), BOS, ...Buffer.from('abc')]; // 16 tokens → 3 blocks of 5
  assert.equal([m.trainSize, m.valSize, m.longestSeqLength], [3, 3, 5]); // val: [BOS]+15 bytes = 16 → 3 blocks
  const blocks = [...m.trainBatches(0, 1)].sort((x, y) => x.sampleIndices[0]! - y.sampleIndices[0]!);
  assert.equal(blocks.map((b) => [...b.inputIds]), [stream.slice(0, 5), stream.slice(5, 10), stream.slice(10, 15)]);
  for (const b of blocks) assert.equal([...b.labels], [...b.inputIds]);
  assert.is([...m.trainBatches(0, 2)].length, 1); // drop_last for training
  assert.equal([...m.valBatches(2)].map((b) => b.batchSize), [2, 1]);
  assert.equal(m.toHyperparameters(), { class_path: 'litgpt.data.TextFiles', init_args: { train_data_path: folder, val_data_path: null, seed: 42, num_workers: 4 } });
  const lonely = join(dir, 'lonely');
  mkdirSync(lonely);
  writeFileSync(join(lonely, 'only.txt'), 'x');
  await assertCode(() => createDataModule('TextFiles', { train_data_path: lonely }).setup(tok, { maxSeqLength: 4 }), 'ERR_DATA', /expected at least two/);
  await assertCode(() => m.setup(tok), 'ERR_CONFIG', /positive --train\.max_seq_length/);
  await assertCode(() => m.setup(tok, { maxSeqLength: 100 }), 'ERR_DATA', /fewer than 101 tokens/);
});

test.run();
