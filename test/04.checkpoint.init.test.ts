// `litlora init`: litgpt's file set and parameter names/shapes, a tokenizer.json the `tokenizers` library
// (Python and JS) loads, deterministic weights; and with tensorfile merged, PyTorch loads lit_model.pth.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BYTE_VOCAB_SIZE } from '../ts/data/bytetokenizer.js';
import { Checkpoint } from '../ts/io/checkpoint.js';
import { configToYaml } from '../ts/model/config.js';
import { LitloraError } from '../ts/errors.js';
import { runCli } from '../ts/cli/main.js';
import { baseParameters, initCheckpoint, initConfig } from '../ts/model/init.js';
import type { Tensor } from '../ts/tensor.js';
import type { SaveTensorsFn } from '../ts/io/tensorfile.js';
import { packageRoot } from '../ts/addon_loader.js';
import { assertCode } from './helpers/assert.js';
import { runPython } from './helpers/python.js';
import { tempFolders } from './helpers/temp.js';

const folders = tempFolders();
const tmp = folders.make;
test.after(() => folders.removeAll());

// Records what init asks to save (names, shapes, dtypes and a few values), writing a placeholder file.
function recorder() {
  const saved: { names: string[]; shapes: number[][]; dtypes: string[]; values: Map<string, Float32Array>; options: unknown }[] = [];
  const save: SaveTensorsFn = async (path, tensors, options) => {
    const m = tensors as Map<string, Tensor>;
    const values = new Map<string, Float32Array>();
    for (const [n, t] of m) if (t.numel <= 20000) values.set(n, (await t.data()) as Float32Array);
    saved.push({ names: [...m.keys()], shapes: [...m.values()].map((t) => t.shape), dtypes: [...m.values()].map((t) => t.dtype), values, options });
    (await import('node:fs')).writeFileSync(path, 'weights');
  };
  return { saved, save };
}

// litgpt/model.py's state-dict names (attn.qkv era): 12 keys per GPT-NeoX block + 4.
function pythiaKeys(nLayer: number): string[] {
  const keys = ['lm_head.weight', 'transformer.wte.weight'];
  for (let i = 0; i < nLayer; i++) {
    const h = `transformer.h.${i}`;
    keys.push(`${h}.norm_1.weight`, `${h}.norm_1.bias`, `${h}.attn.qkv.weight`, `${h}.attn.qkv.bias`, `${h}.attn.proj.weight`,
      `${h}.attn.proj.bias`, `${h}.norm_2.weight`, `${h}.norm_2.bias`, `${h}.mlp.fc.weight`, `${h}.mlp.fc.bias`,
      `${h}.mlp.proj.weight`, `${h}.mlp.proj.bias`);
  }
  keys.push('transformer.ln_f.weight', 'transformer.ln_f.bias');
  return keys;
}

test('pythia-14m: litgpt\'s files, 76 parameters with litgpt\'s shapes, coherent vocab', async () => {
  const dir = join(tmp('init'), 'pythia');
  const rec = recorder();
  const result = await initCheckpoint({ outDir: dir, modelName: 'pythia-14m', saveTensors: rec.save });
  assert.equal(readdirSync(dir).sort(), ['generation_config.json', 'lit_model.pth', 'model_config.yaml', 'tokenizer.json', 'tokenizer_config.json']);
  const [s] = rec.saved;
  assert.equal(s.names, pythiaKeys(6));
  assert.equal(s.options, { format: 'pth' });
  const shape = (n: string) => s.shapes[s.names.indexOf(n)];
  assert.equal(shape('lm_head.weight'), [384, 128]); // 259 tokens padded to a multiple of 128
  assert.equal(shape('transformer.wte.weight'), [384, 128]);
  assert.equal(shape('transformer.h.0.attn.qkv.weight'), [384, 128]);
  assert.equal(shape('transformer.h.5.mlp.fc.weight'), [512, 128]);
  assert.equal(shape('transformer.h.5.mlp.proj.weight'), [128, 512]);
  assert.ok(s.dtypes.every((d) => d === 'float32'));
  const c = result.config;
  assert.equal([c.vocab_size, c.padded_vocab_size, c.n_layer, c.n_embd], [BYTE_VOCAB_SIZE, 384, 6, 128]);
  assert.is(readFileSync(join(dir, 'model_config.yaml'), 'utf8'), configToYaml(c));
  assert.match(readFileSync(join(dir, 'model_config.yaml'), 'utf8'), /\npadded_vocab_size: 384\n[^]*\nvocab_size: 259\n$/);
  const ckpt = await Checkpoint.open(dir);
  assert.is(ckpt.kind, 'base');
  // Norms 1, biases 0, weights ~ std 0.02.
  assert.ok(s.values.get('transformer.ln_f.weight')!.every((v) => v === 1));
  assert.ok(s.values.get('transformer.h.0.attn.qkv.bias')!.every((v) => v === 0));
  const w = s.values.get('transformer.h.0.attn.proj.bias')!;
  assert.ok(w.every((v) => v === 0));
  assert.is(result.parameterCount, s.shapes.reduce((a, sh) => a + sh.reduce((x, y) => x * y, 1), 0));
  await assertCode(() => initCheckpoint({ outDir: dir, saveTensors: rec.save }), 'ERR_ARG', /already holds a checkpoint.*--force/);
  await initCheckpoint({ outDir: dir, saveTensors: rec.save, force: true });
  // --force over a folder holding an adapter: a failed init leaves every file as it was, the adapter included;
  // a successful one leaves the adapter out (it was trained for other weights).
  writeFileSync(join(dir, 'lit_model.pth.lora'), 'adapter');
  const contents = () => Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
  const before = contents();
  const failing: SaveTensorsFn = async () => { throw new LitloraError('ERR_IO', 'the disk is full'); };
  await assertCode(() => initCheckpoint({ outDir: dir, saveTensors: failing, force: true }), 'ERR_IO', /the disk is full/);
  assert.equal(contents(), before);
  assert.equal(readdirSync(join(dir, '..')).filter((f) => f.startsWith('.')), [], 'no partial folder left');
  await initCheckpoint({ outDir: dir, saveTensors: rec.save, force: true });
  assert.not.ok(existsSync(join(dir, 'lit_model.pth.lora')));
});

test('Llama-family names and shapes (GQA, no biases, RMSNorm), Qwen2.5 qkv bias, precision dtypes, determinism', async () => {
  const small = { n_layer: 2, n_embd: 64, n_head: 4, n_query_groups: 2, intermediate_size: 96 };
  const llama = initConfig({ modelName: 'Llama-3.2-1B', overrides: small });
  assert.equal([llama.vocab_size, llama.padded_vocab_size], [259, 512]); // padding_multiple 512
  const names = baseParameters(llama).map(([n, sh]) => `${n}:${sh.join('x')}`);
  assert.equal(names, [
    'lm_head.weight:512x64', 'transformer.wte.weight:512x64',
    ...[0, 1].flatMap((i) => [`transformer.h.${i}.norm_1.weight:64`, `transformer.h.${i}.attn.qkv.weight:128x64`,
      `transformer.h.${i}.attn.proj.weight:64x64`, `transformer.h.${i}.norm_2.weight:64`, `transformer.h.${i}.mlp.fc_1.weight:96x64`,
      `transformer.h.${i}.mlp.fc_2.weight:96x64`, `transformer.h.${i}.mlp.proj.weight:64x96`]),
    'transformer.ln_f.weight:64',
  ]);
  const qwen = baseParameters(initConfig({ modelName: 'Qwen2.5-0.5B', overrides: { ...small, n_query_groups: 1 } }));
  assert.ok(qwen.some(([n, sh]) => n === 'transformer.h.0.attn.qkv.bias' && sh[0] === 96));
  assert.not.ok(qwen.some(([n]) => n === 'transformer.h.0.attn.proj.bias'));

  const root = tmp('init2');
  const a = recorder(), b = recorder(), c = recorder();
  await initCheckpoint({ outDir: join(root, 'a'), modelName: 'pythia-14m', overrides: { n_layer: 1 }, seed: 5, saveTensors: a.save, precision: 'bf16-true' });
  await initCheckpoint({ outDir: join(root, 'b'), modelName: 'pythia-14m', overrides: { n_layer: 1 }, seed: 5, saveTensors: b.save, precision: 'bf16-true' });
  await initCheckpoint({ outDir: join(root, 'c'), modelName: 'pythia-14m', overrides: { n_layer: 1 }, seed: 6, saveTensors: c.save });
  assert.ok(a.saved[0].dtypes.every((d) => d === 'bfloat16'));
  // Same seed → the same values (bf16-rounded here); another seed → different values.
  const proj = (r: ReturnType<typeof recorder>) => Array.from(r.saved[0].values.get('transformer.h.0.attn.proj.weight')!);
  assert.is(proj(a).length, 128 * 128);
  assert.equal(proj(a), proj(b));
  assert.not.equal(proj(a), proj(c));
  await assertCode(() => initConfig({ modelName: 'pythia-14m', overrides: { vocab_size: 1000 } }), 'ERR_CONFIG', /vocab_size/);
  const real = initConfig({ modelName: 'pythia-410m', keepVocabSize: true });
  assert.equal([real.vocab_size, real.padded_vocab_size], [50254, 50304]);
  assert.is(baseParameters(real).reduce((s, [, sh]) => s + sh.reduce((x, y) => x * y, 1), 0), 405334016); // ~1.6 GB in fp32
  await assertCode(() => baseParameters(initConfig({ config: { n_embd: 64, n_head: 4, n_expert: 4 } })), 'ERR_CONFIG', /mixture of experts/);
  // query/key norms: per head (Qwen3) or over every head's channels (OLMo 2), after attn.proj as litgpt registers them.
  const qk = (type: 'default' | 'olmo2') => baseParameters(initConfig({ config: { n_layer: 1, n_embd: 64, n_head: 4, n_query_groups: 2,
    norm_class_name: 'RMSNorm', bias: false, norm_qk: true, norm_qk_type: type } })).map(([n, s]) => `${n}:${s.join('x')}`).slice(4, 7);
  assert.equal(qk('default'), ['transformer.h.0.attn.proj.weight:64x64', 'transformer.h.0.attn.norm_q.weight:16', 'transformer.h.0.attn.norm_k.weight:16']);
  assert.equal(qk('olmo2'), ['transformer.h.0.attn.proj.weight:64x64', 'transformer.h.0.attn.norm_q.weight:64', 'transformer.h.0.attn.norm_k.weight:32']);
});

test('weights are random with std 0.02 and depend on the seed', async () => {
  const root = tmp('init3');
  const cfg = { n_layer: 1, n_embd: 32, n_head: 2 };
  const a = recorder(), b = recorder();
  await initCheckpoint({ outDir: join(root, 'a'), modelName: 'pythia-14m', overrides: cfg, seed: 1, saveTensors: a.save });
  await initCheckpoint({ outDir: join(root, 'b'), modelName: 'pythia-14m', overrides: cfg, seed: 2, saveTensors: b.save });
  const wa = a.saved[0].values.get('transformer.h.0.attn.proj.weight')!;
  const wb = b.saved[0].values.get('transformer.h.0.attn.proj.weight')!;
  assert.is(wa.length, 32 * 32);
  const std = Math.sqrt(wa.reduce((s, v) => s + v * v, 0) / wa.length);
  assert.ok(Math.abs(std - 0.02) < 0.002, `std ${std}`);
  assert.not.equal(Array.from(wa), Array.from(wb));
});

test('tokenizer.json: Python tokenizers and @huggingface/tokenizers load it; every string round-trips', async () => {
  const dir = join(tmp('tok'), 'ckpt');
  await initCheckpoint({ outDir: dir, overrides: { n_layer: 1 }, saveTensors: recorder().save });
  const samples = ['Hello, world!', ' leading and trailing  ', 'ünïcödé — 中文 😀', 'tabs\tand\nnewlines\r\n', ''];
  const { stdout } = runPython(`
import json
from tokenizers import Tokenizer
t = Tokenizer.from_file(${JSON.stringify(join(dir, 'tokenizer.json'))})
cfg = json.load(open(${JSON.stringify(join(dir, 'tokenizer_config.json'))}))
samples = json.loads(${JSON.stringify(JSON.stringify(samples))})
out = {'vocab': t.get_vocab_size(), 'bos': t.token_to_id(cfg['bos_token']), 'eos': t.token_to_id(cfg['eos_token']),
       'pad': t.token_to_id(cfg['pad_token']), 'ids': [t.encode(s).ids for s in samples],
       'back': [t.decode(t.encode(s).ids) for s in samples]}
print(json.dumps(out))
`);
  const py = JSON.parse(stdout);
  assert.equal([py.vocab, py.pad, py.bos, py.eos], [259, 0, 1, 2]);
  assert.equal(py.back, samples);
  // One token per UTF-8 byte, id = byte + 3.
  assert.equal(py.ids[0], [...Buffer.from('Hello, world!')].map((b) => b + 3));
  const { Tokenizer } = await import('@huggingface/tokenizers');
  const js = new Tokenizer(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')), JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')));
  samples.forEach((s, i) => {
    const ids = js.encode(s).ids;
    assert.equal(ids, py.ids[i], `JS ids for ${JSON.stringify(s)}`);
    if (ids.length) assert.is(js.decode(ids), s); // its decode refuses an empty list
  });
  // The project's data pipeline reads the folder as litgpt would: BOS from add_bos_token, EOS on request.
  const { Tokenizer: LitTokenizer } = await import('../ts/data/tokenizer.js');
  const lit = LitTokenizer.fromDir(dir);
  assert.equal(Array.from(lit.encode('hi', { eos: true })), [1, 'h'.charCodeAt(0) + 3, 'i'.charCodeAt(0) + 3, 2]);
});

test('litlora init → PyTorch torch.load(weights_only=True) finds litgpt\'s keys and shapes', async () => {
  const root = tmp('init-torch');
  const io = { out: () => {}, err: (t: string) => { throw new Error(t); }, cwd: root };
  const code = await runCli(['init', '--model_name', 'pythia-14m', '--model.n_layer', '2', '--out_dir', 'ckpt', '--precision', 'bf16-true', '--seed', '3'], io);
  assert.is(code, 0);
  const dir = join(root, 'ckpt');
  const expected = Object.fromEntries(baseParameters(initConfig({ modelName: 'pythia-14m', overrides: { n_layer: 2 } })).map(([n, s]) => [n, s]));
  const { stdout } = runPython(`
import json, torch
sd = torch.load(${JSON.stringify(join(dir, 'lit_model.pth'))}, weights_only=True)
print(json.dumps({'type': type(sd).__name__, 'keys': list(sd.keys()), 'shapes': {k: list(v.shape) for k, v in sd.items()},
                  'dtypes': sorted({str(v.dtype) for v in sd.values()}), 'ln': sd['transformer.ln_f.weight'].float().tolist()[:3],
                  'std': sd['transformer.h.0.attn.qkv.weight'].float().std().item()}))
`);
  const r = JSON.parse(stdout);
  assert.is(r.type, 'dict');
  assert.equal(r.keys, Object.keys(expected));
  assert.equal(r.shapes, expected);
  assert.equal(r.dtypes, ['torch.bfloat16']);
  assert.equal(r.ln, [1, 1, 1]);
  assert.ok(Math.abs(r.std - 0.02) < 0.002);
  assert.is((await Checkpoint.open(dir)).kind, 'base');
});

test.run();
