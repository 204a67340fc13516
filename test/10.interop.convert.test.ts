// convert_to_litgpt / convert_from_litgpt against transformers itself: Hugging Face folders made by transformers
// (test/reference/make_hf_model.py: real config classes and file layouts, random weights) → litgpt files whose
// logits equal transformers' → back to a folder transformers loads strictly, with the same logits and the same
// tensors bit for bit.
import { cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Model } from '../ts/index.js';
import { configFromName } from '../ts/model/configs.js';
import { configToYaml, normalizeConfig, type ConfigInput } from '../ts/model/config.js';
import { chooseConfig, convertToLitgpt, type ConvertProgress } from '../ts/interop/convert_to_litgpt.js';
import { convertFromLitgpt, parseShardSize } from '../ts/interop/convert_from_litgpt.js';
import { architectureDifferences, configInputFromHf, familyOfConfig, familyOfHfConfig, HF_FAMILIES, hfConfigFromConfig } from '../ts/interop/hf_config.js';
import { runCli } from '../ts/cli/main.js';
import { OutDir } from '../ts/io/outdir.js';
import { assertCode } from './helpers/assert.js';
import { randomizeAdapter } from './helpers/model.js';
import { runPython } from './helpers/python.js';
import { tempFolders } from './helpers/temp.js';
import { collect } from './helpers/tokens.js';
import { generateTokens } from '../ts/generate/generate.js';
import { BYTES_DIR } from './helpers/tiny_train.js';
import { packageRoot } from '../ts/addon_loader.js';

const temp = tempFolders();
test.after(() => temp.removeAll());

const REF = JSON.stringify(join(packageRoot, 'test', 'reference'));
const TOKENS = [1, 5, 9, 3, 200, 7, 42, 299, 0, 17];

/** Makes HF folders with transformers in one Python process: [family, dir, layout, dtype?][]. */
function makeHfModels(specs: [string, string, string, string?][]): void {
  const calls = specs.map(([f, d, l, dt]) => `m.save(${JSON.stringify(f)}, ${JSON.stringify(d)}, ${JSON.stringify(l)}, ${JSON.stringify(dt ?? 'float32')})`);
  runPython(`sys.path.insert(0, ${REF})\nimport make_hf_model as m\n${calls.join('\n')}`);
}

/** transformers' logits for TOKENS (float32), and what from_pretrained reported as missing/unexpected. */
function hfLogits(dirs: string[]): { logits: Float32Array[]; info: string[] } {
  const code = `
import torch, json
from transformers import AutoModelForCausalLM
torch.set_num_threads(2)
infos = []
for i, d in enumerate(${JSON.stringify(dirs)}):
    # eager: transformers' SDPA path leaves out Gemma 2's attention softcapping; eager is its definition.
    model, info = AutoModelForCausalLM.from_pretrained(d, output_loading_info=True, dtype=torch.float32, attn_implementation="eager")
    infos.append(sorted(info["missing_keys"]) + sorted(info["unexpected_keys"]) + sorted(info["mismatched_keys"]))
    with torch.no_grad():
        out(f"l{i}", model(torch.tensor([[${TOKENS.join(",")}]])).logits[0].float().numpy())
print(json.dumps(infos))`;
  const r = runPython(code);
  const info = JSON.parse(r.stdout.trim().split('\n').pop()!) as string[][];
  return { logits: dirs.map((_, i) => r.outputs[`l${i}`].data as Float32Array), info: info.map((x) => x.join(',')) };
}

async function litLogits(dir: string): Promise<Float32Array> {
  const model = await Model.load(dir);
  try {
    const logits = await model.forward(new Int32Array(TOKENS));
    return (await logits.data()) as Float32Array;
  } finally {
    model.dispose();
  }
}

function assertRelClose(actual: Float32Array, expected: Float32Array, what: string, tol = 1e-5): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  let maxDiff = 0, maxRef = 0;
  for (let i = 0; i < actual.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
  }
  assert.ok(maxDiff / maxRef <= tol, `${what}: relative error ${maxDiff / maxRef} > ${tol}`);
}

/** Every tensor of two HF folders equal bit for bit (by name, dtype and bytes). */
function assertSameHfTensors(a: string, b: string): void {
  const r = runPython(`
from safetensors.torch import load_file
import glob, os, torch
def load(d):
    sd = {}
    for f in sorted(glob.glob(os.path.join(d, "*.safetensors"))): sd.update(load_file(f))
    if not sd: sd = torch.load(os.path.join(d, "pytorch_model.bin"), weights_only=True)
    return sd
x, y = load(${JSON.stringify(a)}), load(${JSON.stringify(b)})
bad = [k for k in x if k not in y or x[k].dtype != y[k].dtype or x[k].shape != y[k].shape or not torch.equal(x[k].view(torch.uint8) if x[k].dtype == torch.bfloat16 else x[k], y[k].view(torch.uint8) if y[k].dtype == torch.bfloat16 else y[k])]
print("BAD", sorted(set(bad) | (set(y) - set(x))))`);
  assert.is(r.stdout.trim().split('\n').pop(), 'BAD []');
}

const root = temp.make('convert');
const FAMILIES: { family: string; layout: string; dir: string }[] = [
  { family: 'gpt_neox', layout: 'single', dir: join(root, 'neox') },
  { family: 'llama', layout: 'bin', dir: join(root, 'llama') },
  { family: 'qwen2', layout: 'sharded', dir: join(root, 'qwen2') },
  { family: 'qwen3', layout: 'single', dir: join(root, 'qwen3') },
  { family: 'gemma2', layout: 'single', dir: join(root, 'gemma2') },
  { family: 'gemma3', layout: 'single', dir: join(root, 'gemma3') },
  { family: 'mistral', layout: 'single', dir: join(root, 'mistral') },
  { family: 'olmo2', layout: 'single', dir: join(root, 'olmo2') },
  { family: 'phi3', layout: 'single', dir: join(root, 'phi3') },
  { family: 'mixtral', layout: 'single', dir: join(root, 'mixtral') },
  { family: 'qwen3_moe', layout: 'sharded', dir: join(root, 'qwen3_moe') },
];
let made = false;
function ensureModels(): void {
  if (made) return;
  makeHfModels([...FAMILIES.map((f) => [f.family, f.dir, f.layout] as [string, string, string]),
    ['qwen2', join(root, 'qwen2-bf16'), 'single', 'bfloat16']]);
  made = true;
}

test('convert_to_litgpt: every family and file layout gives transformers\' logits (fp32, relative error ≤ 1e-5)', async () => {
  ensureModels();
  const reference = hfLogits(FAMILIES.map((f) => f.dir));
  for (const [i, f] of FAMILIES.entries()) {
    const events: ConvertProgress[] = [];
    const result = await convertToLitgpt(f.dir, { onProgress: (e) => events.push(e) });
    assert.is(result.configVia, 'config.json', f.family);
    const weights = events.filter((e) => e.phase === 'weights');
    assert.is(weights[0].tensors, 0);
    assert.ok(weights.length >= 2 && weights.every((e, k) => k === 0 || e.tensors! >= weights[k - 1].tensors!), 'progress moves forward');
    assert.equal(events.at(-1), { phase: 'done', modelName: result.config.name, tensors: result.tensors, total: result.tensors, bytes: result.bytesWritten });
    assert.ok(existsSync(join(f.dir, 'lit_model.pth')) && existsSync(join(f.dir, 'model_config.yaml')), f.family);
    assertRelClose(await litLogits(f.dir), reference.logits[i], `${f.family} (${f.layout})`);
  }
});

test('convert_to_litgpt: every family\'s KV-cache greedy decode equals transformers\' generate token for token, past the sliding window', async () => {
  ensureModels();
  for (const f of FAMILIES) if (!existsSync(join(f.dir, 'lit_model.pth'))) await convertToLitgpt(f.dir);
  const NEW = 24;  // the windowed families (Gemma 2/3, Mistral, Phi-3) have 4-token windows: the decode runs far past them
  // transformers' generate (its own KV cache; an explicit attention mask, else it takes the prompt's token 0 for
  // padding), and, as a check on the check, its greedy decode by definition: a full forward of the whole sequence per token.
  const r = runPython(`
import torch, json
from transformers import AutoModelForCausalLM
torch.set_num_threads(2)
out = []
for d in ${JSON.stringify(FAMILIES.map((f) => f.dir))}:
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    prompt = [${TOKENS.join(',')}]
    with torch.no_grad():
        x = torch.tensor([prompt])
        generated = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=${NEW}, min_new_tokens=${NEW}, do_sample=False,
                                   eos_token_id=None, pad_token_id=0)[0, len(prompt):].tolist()
        ids = list(prompt)
        for _ in range(${NEW}):
            ids.append(int(model(torch.tensor([ids]), use_cache=False).logits[0, -1].argmax()))
    out.append({"generate": generated, "full": ids[len(prompt):]})
print(json.dumps(out))`);
  const expected = JSON.parse(r.stdout.trim().split('\n').pop()!) as { generate: number[]; full: number[] }[];
  for (const [i, f] of FAMILIES.entries()) {
    const model = await Model.load(f.dir);
    try {
      const { ids } = await collect(generateTokens(model, TOKENS, { temperature: 0, topK: null, stopTokens: [], vocabLimit: null, maxNewTokens: NEW }));
      assert.equal(expected[i].generate, expected[i].full, `${f.family}: transformers' generate against its own full forward`);
      assert.equal(ids, expected[i].generate, `${f.family}: litlora's greedy decode against transformers' generate`);
    } finally {
      model.dispose();
    }
  }
});

test('convert_to_litgpt: litgpt\'s layout — fused [Q|K|V], tied head sharing the embedding\'s storage, dtype as stored or --dtype', async () => {
  ensureModels();
  const r = runPython(`
import torch
from safetensors.torch import load_file
lit = torch.load(${JSON.stringify(join(root, 'qwen2', 'lit_model.pth'))}, weights_only=True)
import glob
hf = {}
for f in glob.glob(${JSON.stringify(join(root, 'qwen2'))} + "/*.safetensors"): hf.update(load_file(f))
q, k, v = (hf[f"model.layers.1.self_attn.{p}_proj.weight"] for p in "qkv")
print(torch.equal(lit["transformer.h.1.attn.qkv.weight"], torch.cat((q, k, v))),
      torch.equal(lit["transformer.h.1.attn.qkv.bias"], torch.cat([hf[f"model.layers.1.self_attn.{p}_proj.bias"] for p in "qkv"])),
      lit["lm_head.weight"].untyped_storage().data_ptr() == lit["transformer.wte.weight"].untyped_storage().data_ptr(),
      sorted(set(str(t.dtype) for t in lit.values())))`);
  assert.is(r.stdout.trim(), "True True True ['torch.float32']");
  // bf16 as stored; --dtype float32 converts.
  const bf = join(root, 'qwen2-bf16');
  await convertToLitgpt(bf);
  const check = (dir: string) => runPython(`
import torch
import zipfile
lit = torch.load(${JSON.stringify(join(dir, 'lit_model.pth'))}, weights_only=True)
# Every record's CRC-32 (computed apart from the write, on the reading thread) as zip readers check it.
print(sorted(set(str(t.dtype) for t in lit.values())), zipfile.ZipFile(${JSON.stringify(join(dir, 'lit_model.pth'))}).testzip())`).stdout.trim();
  assert.is(check(bf), "['torch.bfloat16'] None");
  await convertToLitgpt(bf, { dtype: 'float32', force: true });
  assert.is(check(bf), "['torch.float32'] None");
});

test('convert_from_litgpt: transformers loads the folder strictly, same logits, every tensor bit for bit', async () => {
  ensureModels();
  const outs = FAMILIES.map((f) => join(root, `${f.family}-hf`));
  for (const [i, f] of FAMILIES.entries()) {
    if (!existsSync(join(f.dir, 'lit_model.pth'))) await convertToLitgpt(f.dir);
    const result = await convertFromLitgpt(f.dir, outs[i], { maxShardSize: f.family === 'qwen2' ? '100KB' : undefined });
    assert.is(result.tied, !['gpt_neox', 'mistral', 'olmo2', 'phi3'].includes(f.family), f.family);
  }
  assert.ok(readdirSync(outs[2]).includes('model.safetensors.index.json'), 'sharded above max_shard_size');
  const reference = hfLogits([...FAMILIES.map((f) => f.dir), ...outs]);
  for (const [i, f] of FAMILIES.entries()) {
    assert.is(reference.info[FAMILIES.length + i], '', `${f.family}: missing/unexpected weights`);
    assertRelClose(reference.logits[FAMILIES.length + i], reference.logits[i], `${f.family} back`, 0);
    assertSameHfTensors(f.dir, outs[i]);
  }
});

test('convert_from_litgpt: a LoRA-only folder is merged on the fly; transformers gives litlora\'s runtime-LoRA logits', async () => {
  ensureModels();
  const base = join(root, 'llama');
  if (!existsSync(join(base, 'lit_model.pth'))) await convertToLitgpt(base);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) cpSync(join(BYTES_DIR, f), join(base, f));
  const lora = { r: 4, alpha: 8, query: true, key: true, value: true, projection: true, mlp: true, head: true };
  const model = await Model.load(base, { lora });
  await randomizeAdapter(model, 7);
  const loraDir = join(root, 'llama-lora');
  await new OutDir(root).writeLoraCheckpoint(loraDir, {
    loraTensors: await model.adapter!.tensors(), config: model.config,
    hyperparameters: {
      checkpoint_dir: base, lora_r: 4, lora_alpha: 8, lora_dropout: 0, lora_query: true, lora_key: true, lora_value: true,
      lora_projection: true, lora_mlp: true, lora_head: true,
    } as any,
    tokenizerFrom: base,
  });
  model.dispose();
  const out = join(root, 'llama-lora-hf');
  const result = await convertFromLitgpt(loraDir, out);
  assert.ok(result.merged);
  assert.is(result.tied, false, 'a LoRA on the head unties it');
  assert.equal(readdirSync(root).filter((n) => n.includes('merging')), [], 'the temporary merge is removed');
  const reference = hfLogits([out]);
  assert.is(reference.info[0], '');
  assertRelClose(await litLogits(loraDir), reference.logits[0], 'LoRA folder → HF', 1e-5);
  assert.ok(existsSync(join(out, 'tokenizer.json')), 'tokenizer files copied');
});

test('convert_to_litgpt: a named config is inferred from config.json (pythia-14m), its model_config.yaml is litgpt\'s', async () => {
  const dir = join(temp.make('named'), 'EleutherAI', 'pythia-14m');
  runPython(`sys.path.insert(0, ${REF})\nimport make_hf_model as m\nm.save("gpt_neox", ${JSON.stringify(dir)}, "single", shape="pythia-14m")`);
  const result = await convertToLitgpt(dir);
  assert.is(result.configVia, 'named');
  assert.is(readFileSync(join(dir, 'model_config.yaml'), 'utf8'), configToYaml(configFromName('pythia-14m')));
  // --model_name of another shape is refused, naming what differs.
  await assertCode(() => convertToLitgpt(dir, { modelName: 'pythia-31m', force: true }), 'ERR_CONFIG', /n_embd 256 ≠ 128/);
});

test('convert_to_litgpt: a hub cache folder (models--ORG--NAME) converts its refs/main snapshot, files stay links to blobs', async () => {
  ensureModels();
  const cache = join(temp.make('hubcache'), 'models--acme--tiny-neox');
  const rev = '0123456789abcdef0123456789abcdef01234567';
  mkdirSync(join(cache, 'blobs'), { recursive: true });
  mkdirSync(join(cache, 'snapshots', rev), { recursive: true });
  mkdirSync(join(cache, 'refs'));
  writeFileSync(join(cache, 'refs', 'main'), rev);
  for (const f of ['config.json', 'model.safetensors']) {
    cpSync(join(root, 'neox', f), join(cache, 'blobs', `blob-${f}`));
    symlinkSync(join('..', '..', 'blobs', `blob-${f}`), join(cache, 'snapshots', rev, f));
  }
  const result = await convertToLitgpt(cache);
  assert.is(result.dir, join(cache, 'snapshots', rev));
  assert.ok(lstatSync(join(cache, 'snapshots', rev, 'model.safetensors')).isSymbolicLink());
  const reference = hfLogits([join(root, 'neox')]);
  assertRelClose(await litLogits(result.dir), reference.logits[0], 'hub cache snapshot');
});

test('chooseConfig: twins that differ only by name are settled by the folder\'s name, else --model_name is asked for', () => {
  const qwen = configFromName('Qwen2.5-0.5B');
  const hf = {
    architectures: ['Qwen2ForCausalLM'], hidden_size: 896, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2,
    intermediate_size: 4864, vocab_size: 151936, max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 1000000.0,
    tie_word_embeddings: true, hidden_act: 'silu',
  };
  const family = familyOfHfConfig(hf, 'config.json');
  const folder = (dir: string) => ({ dir, config: hf, configPath: join(dir, 'config.json'), files: [], tensors: new Map() });
  assert.is(chooseConfig(folder('/m/Qwen/Qwen2.5-0.5B-Instruct'), family, null).config.name, 'Qwen2.5-0.5B-Instruct');
  assert.is(chooseConfig(folder('/m/Qwen/Qwen2.5-0.5B'), family, null).config.name, qwen.name);
  assert.throws(() => chooseConfig(folder('/m/my-qwen'), family, null), (e: any) => e.code === 'ERR_CONFIG' &&
    /Qwen2\.5-0\.5B, Qwen2\.5-0\.5B-Instruct.*--model_name/.test(e.message));
  assert.is(chooseConfig(folder('/m/my-qwen'), family, 'Qwen2.5-0.5B-Instruct').via, 'model_name');
});

test('chooseConfig: Qwen3-0.6B\'s config.json is litgpt\'s Qwen3-0.6B (q/k norms, head_dim 128 ≠ 1024 / 16); written back the same', () => {
  // Qwen/Qwen3-0.6B's config.json (the fields litlora reads).
  const hf = {
    architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', hidden_size: 1024, num_hidden_layers: 28, num_attention_heads: 16,
    num_key_value_heads: 8, head_dim: 128, intermediate_size: 3072, vocab_size: 151936, max_position_embeddings: 40960,
    rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: true, hidden_act: 'silu', attention_bias: false,
    use_sliding_window: false,
  };
  const family = familyOfHfConfig(hf, 'config.json');
  assert.is(family.name, 'qwen3');
  const folder = { dir: '/m/Qwen/Qwen3-0.6B', config: hf, configPath: '/m/Qwen/Qwen3-0.6B/config.json', files: [], tensors: new Map() };
  const chosen = chooseConfig(folder, family, null).config;
  assert.is(chosen.name, 'Qwen3-0.6B');
  assert.equal([chosen.norm_qk, chosen.norm_qk_type, chosen.head_size, chosen.n_query_groups], [true, 'default', 128, 8]);
  const back = hfConfigFromConfig(chosen, familyOfConfig(chosen, 'Qwen3-0.6B'), { tied: true, dtype: 'bfloat16' });
  for (const [k, v] of Object.entries(hf)) assert.equal(back[k], v, k);
  // A Qwen3 with sliding windows is refused rather than run without them.
  assert.throws(() => chooseConfig({ ...folder, config: { ...hf, use_sliding_window: true } }, family, null),
    (e: any) => e.code === 'ERR_CONFIG' && /use_sliding_window.*Qwen3ForCausalLM/.test(e.message));
});

test('familyOfConfig: a window in every layer is Mistral (never Llama without it), Gemma 3 is Gemma3ForCausalLM, OLMo 2 Olmo2ForCausalLM; config.json reads back the same model', () => {
  const cases: [string, string][] = [['OLMo-2-1124-7B', 'olmo2'], ['OLMo-2-1124-13B-Instruct', 'olmo2'], ['Mistral-7B-v0.1', 'mistral'], ['Mathstral-7B-v0.1', 'mistral'],
    ['Phi-3-mini-4k-instruct', 'phi3'], ['phi-4', 'phi3'], ['Phi-4-mini-instruct', 'phi3'], ['Mistral-7B-v0.3', 'llama'],
    ['Gemma-3-1b-it', 'gemma3'], ['Gemma-3-4b-it', 'gemma3']];
  for (const [name, familyName] of cases) {
    const c = configFromName(name);
    const family = familyOfConfig(c, name);
    assert.is(family.name, familyName, name);
    const hf = hfConfigFromConfig(c, family, { tied: true, dtype: 'bfloat16' });
    assert.is(familyOfHfConfig(hf, name), family, name);
    const back = normalizeConfig({ ...configInputFromHf(hf, family, name), name: c.name }, name);
    assert.equal(architectureDifferences(back, c), [], name);
  }
  // Gemma-3-4b-it's global layers scale their rope linearly; the local ones do not.
  const gemma = hfConfigFromConfig(configFromName('Gemma-3-4b-it'), HF_FAMILIES.find((f) => f.name === 'gemma3')!, { tied: true, dtype: 'bfloat16' });
  assert.equal(gemma.rope_parameters, { full_attention: { rope_theta: 1000000, rope_type: 'linear', factor: 8 },
    sliding_attention: { rope_type: 'default', rope_theta: 10000 } });
  assert.equal((gemma.layer_types as string[]).slice(0, 7), ['sliding_attention', 'sliding_attention', 'sliding_attention', 'sliding_attention',
    'sliding_attention', 'full_attention', 'sliding_attention']);
  // A window in some layers only is no architecture litlora writes.
  const partial = normalizeConfig({ ...configFromName('Mistral-7B-v0.1'), sliding_window_indices: [0, ...new Array(31).fill(1)] });
  assert.throws(() => familyOfConfig(partial, 'partial'), (e: any) => e.code === 'ERR_CONFIG' && /no Hugging Face architecture/.test(e.message));
});

test('chooseConfig: Mixtral-8x7B\'s and Qwen3-30B-A3B\'s config.json are litgpt\'s LLaMAMoE entries; written back the same; unroutable variants refused', () => {
  // The hub's config.json of each (the fields litlora reads), and litgpt's entry of that name.
  const mixtral = {
    architectures: ['MixtralForCausalLM'], model_type: 'mixtral', hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32,
    num_key_value_heads: 8, intermediate_size: 14336, vocab_size: 32000, max_position_embeddings: 32768, rms_norm_eps: 1e-5,
    rope_theta: 1000000, tie_word_embeddings: false, hidden_act: 'silu', num_local_experts: 8, num_experts_per_tok: 2,
    sliding_window: null,
  };
  const qwen = {
    architectures: ['Qwen3MoeForCausalLM'], model_type: 'qwen3_moe', hidden_size: 2048, num_hidden_layers: 48, num_attention_heads: 32,
    num_key_value_heads: 4, head_dim: 128, intermediate_size: 6144, moe_intermediate_size: 768, vocab_size: 151936,
    max_position_embeddings: 40960, rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: false, hidden_act: 'silu',
    attention_bias: false, num_experts: 128, num_experts_per_tok: 8, norm_topk_prob: true, decoder_sparse_step: 1, mlp_only_layers: [],
    use_sliding_window: false, sliding_window: null,
  };
  const litgpt = (JSON.parse(readFileSync(join(packageRoot, 'test', 'fixtures', 'litgpt', 'config_names.json'), 'utf8')) as
    { configs: ConfigInput[] }).configs;
  for (const [name, hf] of [['Mixtral-8x7B-v0.1', mixtral], ['Qwen3-30B-A3B', qwen]] as const) {
    const family = familyOfHfConfig(hf, 'config.json');
    const folder = { dir: `/m/${name}`, config: hf, configPath: `/m/${name}/config.json`, files: [], tensors: new Map() };
    const chosen = chooseConfig(folder, family, null).config;
    assert.equal(architectureDifferences(chosen, normalizeConfig(litgpt.find((c) => c.name === name)!)), [], name);
    const back = hfConfigFromConfig(chosen, familyOfConfig(chosen, name), { tied: false, dtype: 'bfloat16' });
    for (const [k, v] of Object.entries(hf)) assert.equal(back[k], v, `${name}: ${k}`);
  }
  const refused: [Record<string, unknown>, RegExp][] = [
    [{ ...qwen, norm_topk_prob: false }, /norm_topk_prob is false; litgpt's LLaMAMoE always normalises/],
    [{ ...qwen, decoder_sparse_step: 2 }, /decoder_sparse_step \/ mlp_only_layers make some layers dense/],
    [{ ...qwen, mlp_only_layers: [0] }, /decoder_sparse_step \/ mlp_only_layers make some layers dense/],
    [{ ...mixtral, sliding_window: 4096 }, /sliding_window 4096; litgpt's MixtralForCausalLM configs attend without a window/],
  ];
  for (const [hf, message] of refused) {
    const folder = { dir: '/m/x', config: hf, configPath: '/m/x/config.json', files: [], tensors: new Map() };
    assert.throws(() => chooseConfig(folder, familyOfHfConfig(hf, 'config.json'), null),
      (e: any) => e.code === 'ERR_CONFIG' && message.test(e.message), String(message));
  }
});

test('convert_to_litgpt: bad input gets coded errors and leaves no file under a final name', async () => {
  ensureModels();
  const scratch = temp.make('bad');
  const copy = (name: string, from = join(root, 'qwen2')) => {
    const d = join(scratch, name);
    cpSync(from, d, { recursive: true });
    for (const f of ['lit_model.pth', 'model_config.yaml']) rmSync(join(d, f), { force: true });
    return d;
  };
  const noLit = (d: string) => assert.equal(readdirSync(d).filter((f) => f.includes('lit_model') || f.includes('model_config')), [], d);

  const noConfig = copy('no-config');
  rmSync(join(noConfig, 'config.json'));
  await assertCode(() => convertToLitgpt(noConfig), 'ERR_CHECKPOINT_MISSING', /has no config\.json/);

  const arch = copy('arch');
  const cfg = JSON.parse(readFileSync(join(arch, 'config.json'), 'utf8'));
  writeFileSync(join(arch, 'config.json'), JSON.stringify({ ...cfg, architectures: ['MambaForCausalLM'], model_type: 'mamba' }));
  await assertCode(() => convertToLitgpt(arch), 'ERR_CONFIG', /MambaForCausalLM is not one litlora runs\. Supported: GPTNeoXForCausalLM, LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma2ForCausalLM/);
  noLit(arch);

  const shard = copy('shard');
  const firstShard = readdirSync(shard).find((f) => f.startsWith('model-00002'))!;
  rmSync(join(shard, firstShard));
  await assertCode(() => convertToLitgpt(shard), 'ERR_CHECKPOINT_MISSING', new RegExp(`names the shard ${firstShard}, which is missing`));
  noLit(shard);

  const truncated = copy('truncated', join(root, 'neox'));
  truncateSync(join(truncated, 'model.safetensors'), statSync(join(truncated, 'model.safetensors')).size - 1000);
  await assertCode(() => convertToLitgpt(truncated), 'ERR_CHECKPOINT_FORMAT');
  noLit(truncated);

  const shape = copy('shape');
  writeFileSync(join(shape, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 128 }));
  await assertCode(() => convertToLitgpt(shape), 'ERR_SHAPE', /mlp\.gate_proj\.weight .*needs \[128,64\], the file gives \[96,64\]/);
  noLit(shape);

  // An existing lit_model.pth stays as it was without --force.
  const existing = join(root, 'neox', 'lit_model.pth');
  if (!existsSync(existing)) await convertToLitgpt(join(root, 'neox'));
  const before = readFileSync(existing);
  await assertCode(() => convertToLitgpt(join(root, 'neox')), 'ERR_EXISTS', /--force/);
  assert.ok(readFileSync(existing).equals(before));
});

test('CLI: convert_to_litgpt and convert_from_litgpt, with the same coded one-line errors', async () => {
  ensureModels();
  const dir = join(temp.make('cli'), 'neox');
  cpSync(join(root, 'neox'), dir, { recursive: true });
  for (const f of ['lit_model.pth', 'model_config.yaml']) rmSync(join(dir, f), { force: true });
  let out = '', err = '';
  const io = { out: (t: string) => { out += t; }, err: (t: string) => { err += t; }, cwd: dir };
  assert.is(await runCli(['convert_to_litgpt', dir], io), 0, err);
  assert.match(out, /Saved converted checkpoint to /);
  assert.match(err, /Config: neox \(config\.json's fields\)/);
  assert.is(await runCli(['convert_to_litgpt', dir], io), 1);
  assert.match(err, /litlora convert_to_litgpt: error \[ERR_EXISTS\]/);
  assert.is(await runCli(['convert_from_litgpt', dir, join(dir, '..', 'hf'), '--max_shard_size', '50KB'], io), 0, err);
  assert.ok(existsSync(join(dir, '..', 'hf', 'model.safetensors.index.json')));
  // As litgpt: a folder that is not there is looked for under checkpoints/ (where `litlora download` puts models).
  const cwd = temp.make('cli-cwd');
  cpSync(join(root, 'neox'), join(cwd, 'checkpoints', 'acme', 'tiny'), { recursive: true });
  for (const f of ['lit_model.pth', 'model_config.yaml']) rmSync(join(cwd, 'checkpoints', 'acme', 'tiny', f), { force: true });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) cpSync(join(BYTES_DIR, f), join(cwd, 'checkpoints', 'acme', 'tiny', f));
  const io2 = { ...io, cwd };
  assert.is(await runCli(['convert_to_litgpt', 'acme/tiny'], io2), 0, err);
  assert.is(await runCli(['generate', 'acme/tiny', '--prompt', 'hi', '--max_new_tokens', '2'], io2), 0, err);
  assert.is(parseShardSize('5GB'), 5e9);
  assert.is(parseShardSize('2GiB'), 2 ** 31);
});

test.run();
