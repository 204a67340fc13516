// PEFT adapters both ways, against PEFT itself (the project's .venv: transformers + peft): for a tiny GPT-NeoX,
// a Llama with grouped-query attention and a Qwen2 with tied embeddings (random fp32 weights made by transformers,
// converted to litgpt with convertToLitgpt):
//   * export: a litgpt LoRA folder → convertLoraToPeft → PeftModel.from_pretrained on the transformers model gives
//     litlora's logits;
//   * import: PEFT's own adapters (get_peft_model, non-zero B, save_pretrained) → convertPeftToLora → Model.load
//     gives PEFT's logits; rsLoRA and partial target lists too;
//   * a round trip litgpt → PEFT → litgpt gives back the adapter bit for bit;
//   * adapters litgpt's LoRA cannot express are refused with their codes, and nothing is written.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../ts/addon_loader.js';
import { runCli } from '../ts/cli/main.js';
import { Model, OutDir, Tensor, TensorFile, convertLoraToPeft, convertPeftToLora, normalizeLora, saveTensors, type LoraOptions } from '../ts/index.js';
import { convertToLitgpt } from '../ts/interop/convert_to_litgpt.js';
import { initCheckpoint } from '../ts/model/init.js';
import { readHyperparameters } from '../ts/io/hyperparameters.js';
import { readConfig } from '../ts/model/config.js';
import { loraToKeys } from '../ts/model/lora_settings.js';
import { assertCode, seededRandom } from './helpers/assert.js';
import { moeTiny, randomizeAdapter } from './helpers/model.js';
import type { NpyArray } from './helpers/npy.js';
import { runPython } from './helpers/python.js';
import { tempFolders } from './helpers/temp.js';

const folders = tempFolders();
const root = folders.make('peft');
const FAMILIES = ['neox', 'llama', 'qwen2'] as const;
type Family = (typeof FAMILIES)[number];
const hfDir = (name: string) => join(root, 'hf', name);
const baseDir = (name: string) => join(root, 'base', name);
const peftDir = (name: string) => join(root, 'peft', name);

const VOCAB = 96, BATCH = 2, TIME = 10;
const tokens = new Int32Array(BATCH * TIME);
{
  const rand = seededRandom(5);
  for (let i = 0; i < tokens.length; i++) tokens[i] = Math.floor(rand() * VOCAB);
}

// PEFT adapters made by PEFT itself: [name, base model, LoraConfig keyword arguments].
const ALL_LLAMA = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'];
const PEFT_CASES: [string, string, Record<string, unknown>][] = [
  ['neox-all', 'neox', { r: 4, lora_alpha: 8, target_modules: ['query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h', 'lm_head'] }],
  ['neox-rslora', 'neox', { r: 4, lora_alpha: 6, use_rslora: true, target_modules: ['query_key_value', 'dense'] }],
  ['llama-all', 'llama', { r: 4, lora_alpha: 8, target_modules: ALL_LLAMA }],
  ['llama-qv', 'llama', { r: 8, lora_alpha: 16, lora_dropout: 0.1, target_modules: ['q_proj', 'v_proj'] }],
  ['llama-rslora', 'llama', { r: 4, lora_alpha: 3, use_rslora: true, target_modules: ['q_proj', 'k_proj', 'o_proj'] }],
  ['qwen2-all', 'qwen2', { r: 4, lora_alpha: 8, target_modules: ALL_LLAMA }],
  ['qwen2-gate', 'qwen2', { r: 2, lora_alpha: 4, target_modules: ['v_proj', 'gate_proj'] }],
  ['llama-layer0', 'llama', { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], layers_to_transform: [0] }],
  ['neox-layer1', 'neox', { r: 2, lora_alpha: 2, target_modules: ['query_key_value'], layers_to_transform: [1] }],
  // Refused.
  ['llama-dora', 'llama', { r: 4, lora_alpha: 8, use_dora: true, target_modules: ['q_proj', 'v_proj'] }],
  ['llama-mixed', 'llama', { r: 4, lora_alpha: 8, rank_pattern: { o_proj: 8 }, target_modules: ['q_proj', 'o_proj'] }],
  ['llama-embed', 'llama', { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'embed_tokens'] }],
  ['llama-wide', 'llama-wide', { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] }],
];
const IMPORTED = PEFT_CASES.slice(0, 9).map(([name]) => name);

const ALL: LoraOptions = { r: 4, alpha: 8, dropout: 0.05, query: true, key: true, value: true, projection: true, mlp: true, head: true };
const QV: LoraOptions = { r: 2, alpha: 3, dropout: 0, query: true, key: false, value: true };
const EXPORT_CASES: [string, LoraOptions][] = [['all', ALL], ['qv', QV]];
const litDir = (family: Family, c: string) => join(root, 'lit', `${family}-${c}`);
const exportDir = (family: Family, c: string) => join(root, 'export', `${family}-${c}`);

let pefts: Record<string, NpyArray> = {};

test.before(async () => {
  const { outputs } = runPython(`
import json, torch
from transformers import (AutoModelForCausalLM, GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)
from peft import LoraConfig, get_peft_model
torch.set_num_threads(2)
root = ${JSON.stringify(root)}
small = dict(vocab_size=${VOCAB}, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64)
makers = {
    "neox": lambda: GPTNeoXForCausalLM(GPTNeoXConfig(**small, intermediate_size=64, rotary_pct=0.25, tie_word_embeddings=False)),
    "llama": lambda: LlamaForCausalLM(LlamaConfig(**small, num_key_value_heads=2, intermediate_size=48, tie_word_embeddings=False)),
    "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(**small, num_key_value_heads=2, intermediate_size=48, tie_word_embeddings=True)),
    "llama-wide": lambda: LlamaForCausalLM(LlamaConfig(**{**small, "hidden_size": 64}, num_key_value_heads=2, intermediate_size=48)),
}
for i, (name, make) in enumerate(makers.items()):
    torch.manual_seed(i)
    make().save_pretrained(f"{root}/hf/{name}")
tok = torch.as_tensor(inp["tokens"]).long().view(${BATCH}, ${TIME})
for i, (name, base, kwargs) in enumerate(json.loads(${JSON.stringify(JSON.stringify(PEFT_CASES))})):
    torch.manual_seed(100 + i)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(f"{root}/hf/{base}"),
                           LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, **kwargs)).eval()
    model.save_pretrained(f"{root}/peft/{name}")
    with torch.no_grad():
        out(name, model(tok).logits.numpy())
`, { tokens: { data: tokens, shape: [BATCH * TIME] } });
  pefts = outputs;
  for (const family of FAMILIES) {
    cpSync(hfDir(family), baseDir(family), { recursive: true });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
      copyFileSync(join(packageRoot, 'test', 'fixtures', 'tokenizers', 'bytes', f), join(baseDir(family), f));
    }
    await convertToLitgpt(baseDir(family));
    for (const [c, lora] of EXPORT_CASES) {
      const model = await Model.load(baseDir(family), { lora });
      await randomizeAdapter(model, family.length * 10 + c.length);
      await new OutDir(join(root, 'lit')).writeLoraCheckpoint(litDir(family, c), {
        loraTensors: await model.adapter!.tensors(), config: await readConfig(join(baseDir(family), 'model_config.yaml')),
        hyperparameters: { checkpoint_dir: baseDir(family), ...loraToKeys(normalizeLora(lora)) }, tokenizerFrom: baseDir(family),
      });
      model.dispose();
    }
  }
});
test.after(() => folders.removeAll());

async function logitsOf(dir: string, options: { mode?: 'runtime' | 'merged' } = {}): Promise<Float32Array> {
  const model = await Model.load(dir, options);
  try {
    return (await (await model.forward(tokens, { shape: [BATCH, TIME] })).data()) as Float32Array;
  } finally {
    model.dispose();
  }
}

/** max |a − b| / max |b| must be ≤ 1e-5. */
function assertRelClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  let diff = 0, scale = 0;
  for (let i = 0; i < actual.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  assert.ok(scale > 0 && diff / scale <= 1e-5, `${what}: relative error ${diff / scale}`);
}

test('export: PeftModel.from_pretrained on the transformers model gives litlora\'s logits (every target, and q+v)', async () => {
  const mine: Record<string, Float32Array> = {};
  for (const family of FAMILIES) {
    for (const [c] of EXPORT_CASES) {
      const result = await convertLoraToPeft(litDir(family, c), exportDir(family, c));
      assert.is(result.dir, exportDir(family, c));
      mine[`${family}-${c}`] = await logitsOf(litDir(family, c), { mode: 'runtime' });
    }
  }
  const { outputs } = runPython(`
import torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
torch.set_num_threads(2)
tok = torch.as_tensor(inp["tokens"]).long().view(${BATCH}, ${TIME})
for family in ${JSON.stringify(FAMILIES)}:
    for case in ${JSON.stringify(EXPORT_CASES.map(([c]) => c))}:
        base = AutoModelForCausalLM.from_pretrained(${JSON.stringify(join(root, 'hf'))} + "/" + family)
        with torch.no_grad():
            plain = base(tok).logits.numpy()
        model = PeftModel.from_pretrained(base, ${JSON.stringify(join(root, 'export'))} + f"/{family}-{case}").eval()
        with torch.no_grad():
            out(f"{family}-{case}", model(tok).logits.numpy())
        out(f"{family}-{case}.base", plain)
`, { tokens: { data: tokens, shape: [BATCH * TIME] } });
  for (const [key, logits] of Object.entries(mine)) {
    assertRelClose(logits, outputs[key].data as Float32Array, `${key}: PEFT vs litlora`);
    // The adapter changes the logits (a converter that wrote zeros would pass the check above only with it).
    const base = outputs[`${key}.base`].data as Float32Array;
    assert.ok(base.some((v, i) => Math.abs(v - logits[i]) > 1e-3), `${key}: the adapter changes the logits`);
  }
});

test('export: adapter_config.json and the safetensors header are PEFT\'s (GPT-NeoX: rank_pattern for the fused query_key_value)', async () => {
  const config = JSON.parse(readFileSync(join(exportDir('neox', 'all'), 'adapter_config.json'), 'utf8'));
  assert.equal(
    [config.peft_type, config.task_type, config.r, config.lora_alpha, config.lora_dropout, config.bias, config.use_rslora,
      config.use_dora, config.fan_in_fan_out, config.inference_mode, config.base_model_name_or_path],
    ['LORA', 'CAUSAL_LM', 4, 8, 0.05, 'none', false, false, false, true, baseDir('neox')]);
  assert.equal(config.target_modules, ['lm_head', 'query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h']);
  assert.equal([config.rank_pattern, config.alpha_pattern], [{ query_key_value: 12 }, { query_key_value: 24 }]);
  const qv = JSON.parse(readFileSync(join(exportDir('llama', 'qv'), 'adapter_config.json'), 'utf8'));
  assert.equal([qv.target_modules, qv.r, qv.lora_alpha, qv.rank_pattern, qv.alpha_pattern], [['q_proj', 'v_proj'], 2, 3, {}, {}]);
  const file = await TensorFile.open(join(exportDir('neox', 'qv'), 'adapter_model.safetensors'));
  try {
    assert.equal(file.metadata, { format: 'pt' });
    assert.equal(file.info('base_model.model.gpt_neox.layers.1.attention.query_key_value.lora_A.weight').shape, [4, 32]);
    assert.equal(file.info('base_model.model.gpt_neox.layers.1.attention.query_key_value.lora_B.weight').shape, [96, 4]);
    assert.is(file.names.length, 4);
    assert.is(file.info(file.names[0]).dtype, 'float32');
  } finally {
    await file.close();
  }
});

test('import: PEFT\'s own adapters give PEFT\'s logits on Model.load (every target, q+v, rsLoRA, a subset of the MLP or layers)', async () => {
  const expected: Record<string, Partial<Record<string, unknown>>> = {
    'neox-all': { lora_r: 4, lora_alpha: 8, lora_query: true, lora_key: true, lora_value: true, lora_projection: true, lora_mlp: true, lora_head: true },
    'neox-rslora': { lora_r: 4, lora_alpha: 12, lora_query: true, lora_key: true, lora_value: true, lora_projection: true, lora_mlp: false },
    'llama-all': { lora_r: 4, lora_alpha: 8, lora_query: true, lora_key: true, lora_value: true, lora_mlp: true, lora_head: true },
    'llama-qv': { lora_r: 8, lora_alpha: 16, lora_dropout: 0.1, lora_query: true, lora_key: false, lora_value: true, lora_projection: false, lora_head: false },
    'llama-rslora': { lora_r: 4, lora_alpha: 6, lora_query: true, lora_key: true, lora_value: false, lora_projection: true },
    'qwen2-all': { lora_r: 4, lora_alpha: 8, lora_query: true, lora_key: true, lora_value: true, lora_mlp: true, lora_head: true },
    'qwen2-gate': { lora_r: 2, lora_alpha: 4, lora_query: false, lora_value: true, lora_mlp: true },
    'llama-layer0': { lora_r: 4, lora_alpha: 8, lora_query: true, lora_key: false, lora_value: true },
    'neox-layer1': { lora_r: 2, lora_alpha: 2, lora_query: true, lora_key: true, lora_value: true, lora_mlp: false },
  };
  const zeroFilled: Record<string, string[]> = {
    'qwen2-gate': ['model.layers.0.mlp.up_proj', 'model.layers.0.mlp.down_proj', 'model.layers.1.mlp.up_proj', 'model.layers.1.mlp.down_proj'],
    'llama-layer0': ['model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj'],
    'neox-layer1': ['gpt_neox.layers.0.attention.query_key_value'],
  };
  for (const name of IMPORTED) {
    const family = name.split('-')[0];
    const out = join(root, 'imported', name);
    const result = await convertPeftToLora(peftDir(name), { checkpointDir: baseDir(family), outDir: out });
    const h = await readHyperparameters(join(out, 'hyperparameters.yaml'));
    assert.is(h.checkpoint_dir, baseDir(family), `${name}: checkpoint_dir`);
    for (const [k, v] of Object.entries(expected[name])) assert.is(h[k], v, `${name}: ${k}`);
    for (const f of ['lit_model.pth.lora', 'model_config.yaml', 'tokenizer.json', 'tokenizer_config.json']) {
      assert.ok(existsSync(join(out, f)), `${name}: ${f}`);
    }
    assert.equal(result.zeroFilled, zeroFilled[name] ?? [], `${name}: modules left out`);
    assertRelClose(await logitsOf(out), pefts[name].data as Float32Array, `${name}: litlora vs PEFT`);
  }
});

test('import: GPT-NeoX\'s head under transformers 4.x\'s name (embed_out) is the head; both names at once are refused', async () => {
  const source = await TensorFile.open(join(peftDir('neox-all'), 'adapter_model.safetensors'));
  const tensors = await source.getAll();
  await source.close();
  const write = (dir: string, entries: [string, Tensor][]) => {
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(peftDir('neox-all'), 'adapter_config.json'), join(dir, 'adapter_config.json'));
    return saveTensors(join(dir, 'adapter_model.safetensors'), new Map(entries), { metadata: { format: 'pt' } });
  };
  const renamed = [...tensors].map(([n, t]): [string, Tensor] => [n.replace('.model.lm_head.', '.model.embed_out.'), t]);
  assert.ok(renamed.some(([n]) => n === 'base_model.model.embed_out.lora_A.weight'));
  await write(join(root, 'peft', 'neox-embed_out'), renamed);
  const out = join(root, 'imported', 'neox-embed_out');
  await convertPeftToLora(join(root, 'peft', 'neox-embed_out'), { checkpointDir: baseDir('neox'), outDir: out });
  assertRelClose(await logitsOf(out), pefts['neox-all'].data as Float32Array, 'embed_out: litlora vs PEFT');
  await write(join(root, 'peft', 'neox-two-heads'), [...tensors, ...renamed.filter(([n]) => n.includes('embed_out'))]);
  await assertCode(() => convertPeftToLora(join(root, 'peft', 'neox-two-heads'), { checkpointDir: baseDir('neox'), outDir: join(root, 'refused', 'two') }),
    'ERR_CHECKPOINT_FORMAT', /adapts the same layer twice: (lm_head and embed_out|embed_out and lm_head)/);
});

test('round trip: litgpt → PEFT → litgpt gives back the adapter bit for bit and the same LoRA settings', async () => {
  for (const family of FAMILIES) {
    for (const [c] of EXPORT_CASES) {
      const back = join(root, 'back', `${family}-${c}`);
      await convertPeftToLora(exportDir(family, c), { checkpointDir: baseDir(family), outDir: back });
      const [a, b] = await Promise.all([litDir(family, c), back].map((d) => TensorFile.open(join(d, 'lit_model.pth.lora'))));
      try {
        assert.equal(b.names.slice().sort(), a.names.slice().sort(), `${family}-${c}: names`);
        assert.is(b.wrapped, 'model');
        for (const name of a.names) {
          const [x, y] = await Promise.all([a.get(name), b.get(name)]);
          assert.equal(y.shape, x.shape, `${family}-${c}: ${name} shape`);
          assert.ok(Buffer.from((await x.data({ raw: true })).buffer).equals(Buffer.from((await y.data({ raw: true })).buffer)),
            `${family}-${c}: ${name} bits`);
        }
      } finally {
        await a.close();
        await b.close();
      }
      const [h0, h1] = await Promise.all([litDir(family, c), back].map((d) => readHyperparameters(join(d, 'hyperparameters.yaml'))));
      for (const k of Object.keys(h0).filter((k) => k.startsWith('lora_'))) assert.is(h1[k], h0[k], `${family}-${c}: ${k}`);
    }
  }
});

test('round trip in bfloat16, GPT-NeoX LoRA on the queries only: the PEFT file keeps the dtype, the bits come back', async () => {
  const lora: LoraOptions = { r: 3, alpha: 5, dropout: 0, query: true, key: false, value: false, mlp: true };
  const model = await Model.load(baseDir('neox'), { lora });
  await randomizeAdapter(model, 77);
  const bf16 = new Map<string, Tensor>();
  for (const [name, t] of await model.adapter!.tensors()) bf16.set(name, await t.to({ dtype: 'bfloat16' }));
  model.dispose();
  const lit = join(root, 'lit', 'neox-bf16'), peft = join(root, 'export', 'neox-bf16'), back = join(root, 'back', 'neox-bf16');
  await new OutDir(join(root, 'lit')).writeLoraCheckpoint(lit, {
    loraTensors: bf16, config: await readConfig(join(baseDir('neox'), 'model_config.yaml')),
    hyperparameters: { checkpoint_dir: baseDir('neox'), ...loraToKeys(normalizeLora(lora)) }, tokenizerFrom: baseDir('neox'),
  });
  const result = await convertLoraToPeft(lit, peft, { baseModelNameOrPath: 'my-org/my-neox' });
  assert.equal([result.adapterConfig.base_model_name_or_path, result.adapterConfig.rank_pattern], ['my-org/my-neox', {}]);
  const file = await TensorFile.open(join(peft, 'adapter_model.safetensors'));
  try {
    assert.equal([...new Set(file.names.map((n) => file.info(n).dtype))], ['bfloat16']);
    assert.equal(file.info('base_model.model.gpt_neox.layers.0.attention.query_key_value.lora_A.weight').shape, [3, 32]);
  } finally {
    await file.close();
  }
  await convertPeftToLora(peft, { checkpointDir: baseDir('neox'), outDir: back });
  const h = await readHyperparameters(join(back, 'hyperparameters.yaml'));
  assert.equal([h.lora_r, h.lora_alpha, h.lora_query, h.lora_key, h.lora_value, h.lora_mlp], [3, 5, true, false, false, true]);
  const [a, b] = await Promise.all([lit, back].map((d) => TensorFile.open(join(d, 'lit_model.pth.lora'))));
  try {
    assert.equal(b.names.slice().sort(), a.names.slice().sort());
    for (const name of a.names) {
      assert.is(b.info(name).dtype, 'bfloat16');
      const [x, y] = await Promise.all([a.get(name), b.get(name)]);
      assert.equal(await y.data({ raw: true }), await x.data({ raw: true }), name);
    }
  } finally {
    await a.close();
    await b.close();
  }
});

test('refused: DoRA, per-module ranks, a module outside litgpt\'s targets, an adapter of another size; nothing is written', async () => {
  const cases: [string, string, RegExp][] = [
    ['llama-dora', 'ERR_CONFIG', /use_dora is true/],
    ['llama-mixed', 'ERR_CONFIG', /ranks differ per module \((q_proj r=4, o_proj r=8|o_proj r=8, q_proj r=4)\)/],
    ['llama-embed', 'ERR_CONFIG', /outside litgpt's LoRA targets: model\.embed_tokens\b/],
    ['llama-wide', 'ERR_SHAPE', /model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight has shape \[4,64\].*needs \[4,32\]/],
  ];
  for (const [name, code, message] of cases) {
    const out = join(root, 'refused', name);
    await assertCode(() => convertPeftToLora(peftDir(name), { checkpointDir: baseDir('llama'), outDir: out }), code, message);
    assert.not.ok(existsSync(out), `${name}: nothing written`);
  }
  // A Llama adapter on the GPT-NeoX base names modules GPT-NeoX does not have.
  await assertCode(() => convertPeftToLora(peftDir('llama-qv'), { checkpointDir: baseDir('neox'), outDir: join(root, 'refused', 'x') }),
    'ERR_CONFIG', /model\.layers\.0\.self_attn\.q_proj.*GPTNeoXForCausalLM: .*query_key_value/);
  // The base's own folder as out_dir, even with force: a LoRA folder there would drop the base's lit_model.pth.
  const weights = readFileSync(join(baseDir('llama'), 'lit_model.pth'));
  await assertCode(() => convertPeftToLora(peftDir('llama-qv'), { checkpointDir: baseDir('llama'), outDir: baseDir('llama'), force: true }),
    'ERR_ARG', /is the base checkpoint/);
  assert.ok(readFileSync(join(baseDir('llama'), 'lit_model.pth')).equals(weights), 'the base weights are untouched');
  assert.not.ok(existsSync(join(baseDir('llama'), 'lit_model.pth.lora')));
  // Missing files.
  const empty = join(root, 'refused', 'empty');
  mkdirSync(empty, { recursive: true });
  await assertCode(() => convertPeftToLora(empty, { checkpointDir: baseDir('llama'), outDir: join(root, 'refused', 'y') }),
    'ERR_CHECKPOINT_MISSING', /has no adapter_config\.json/);
  writeFileSync(join(empty, 'adapter_config.json'), '{"peft_type": "LORA", "r": 4}');
  await assertCode(() => convertPeftToLora(empty, { checkpointDir: baseDir('llama'), outDir: join(root, 'refused', 'y') }),
    'ERR_CHECKPOINT_MISSING', /has no adapter_model\.safetensors/);
  await assertCode(() => convertLoraToPeft(baseDir('llama'), join(root, 'refused', 'z')), 'ERR_CHECKPOINT_MISSING', /no lit_model\.pth\.lora/);
});

test('refused: LoRA on a LLaMAMoE\'s router and experts (no PEFT form for transformers 5\'s fused experts), both ways; nothing is written', async () => {
  const base = join(root, 'base', 'moe');
  await initCheckpoint({ outDir: base, config: moeTiny, seed: 3 });
  const model = await Model.load(base, { lora: ALL });
  const loraDir = join(root, 'lit', 'moe-all');
  await new OutDir(join(root, 'lit')).writeLoraCheckpoint(loraDir, {
    loraTensors: await model.adapter!.tensors(), config: model.config, tokenizerFrom: base,
    hyperparameters: { checkpoint_dir: base, precision: null, ...loraToKeys(normalizeLora(ALL)) } as never,
  });
  await model.dispose();
  const out = join(root, 'refused', 'moe-export');
  await assertCode(() => convertLoraToPeft(loraDir, out), 'ERR_CONFIG', /lora_mlp puts LoRA on LLaMAMoE's router and every expert/);
  assert.not.ok(existsSync(out), 'export: nothing written');
  const peft = join(root, 'refused', 'moe-peft');
  mkdirSync(peft, { recursive: true });
  writeFileSync(join(peft, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['w1'] }));
  await saveTensors(join(peft, 'adapter_model.safetensors'), new Map([
    ['base_model.model.model.layers.0.block_sparse_moe.experts.1.w1.lora_A.weight', Tensor.from(new Float32Array(2 * 32), [2, 32])],
    ['base_model.model.model.layers.0.block_sparse_moe.experts.1.w1.lora_B.weight', Tensor.from(new Float32Array(48 * 2), [48, 2])],
  ]));
  const imported = join(root, 'refused', 'moe-import');
  await assertCode(() => convertPeftToLora(peft, { checkpointDir: base, outDir: imported }), 'ERR_CONFIG',
    /adapts model\.layers\.0\.block_sparse_moe\.experts\.1\.w1, a router or expert of a mixture of experts/);
  assert.not.ok(existsSync(imported), 'import: nothing written');
});

test('CLI: convert_lora_to_peft and convert_peft_to_lora; an existing output is kept unless --force', async () => {
  const io = () => {
    let text = '';
    return { io: { out: (t: string) => { text += t; }, err: (t: string) => { text += t; }, cwd: root }, text: () => text };
  };
  const out = join(root, 'cli', 'peft');
  let run = io();
  assert.is(await runCli(['convert_lora_to_peft', litDir('llama', 'qv'), out], run.io), 0, run.text());
  assert.match(run.text(), /Saved the PEFT adapter to/);
  assert.ok(existsSync(join(out, 'adapter_model.safetensors')));
  const before = readFileSync(join(out, 'adapter_model.safetensors'));
  run = io();
  assert.is(await runCli(['convert_lora_to_peft', litDir('llama', 'all'), out], run.io), 1);
  assert.match(run.text(), /error \[ERR_EXISTS\]/);
  assert.ok(readFileSync(join(out, 'adapter_model.safetensors')).equals(before), 'the existing adapter is untouched');
  run = io();
  assert.is(await runCli(['convert_lora_to_peft', litDir('llama', 'all'), out, '--force', 'true'], run.io), 0, run.text());
  assert.not.ok(readFileSync(join(out, 'adapter_model.safetensors')).equals(before), 'replaced with --force');
  const lora = join(root, 'cli', 'lora');
  run = io();
  assert.is(await runCli(['convert_peft_to_lora', out, '--checkpoint_dir', baseDir('llama'), '--out_dir', lora], run.io), 0, run.text());
  assert.match(run.text(), /Saved the LoRA checkpoint to/);
  assertRelClose(await logitsOf(lora), await logitsOf(litDir('llama', 'all')), 'CLI round trip');
});

test.run();
