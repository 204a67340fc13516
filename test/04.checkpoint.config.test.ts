// Config: litgpt's derived values for every named config, validation errors, and model_config.yaml as PyYAML
// writes it.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { configToYaml, normalizeConfig, readConfig, writeConfig } from '../ts/model/config.js';
import { configFromName, configNames, namedConfigInput } from '../ts/model/configs.js';
import { packageRoot } from '../ts/addon_loader.js';
import { command as initCommand } from '../ts/cli/init.js';
import { assertCode } from './helpers/assert.js';
import { runPython } from './helpers/python.js';
import { tempFolders } from './helpers/temp.js';

const folders = tempFolders();
test.after(() => folders.removeAll());

// Expected values worked out by hand from litgpt/config.py's entries (Lightning-AI/litgpt, commit 0006c973)
// and Config.__post_init__: head_size = n_embd / n_head, padded_vocab_size = vocab rounded up to
// padding_multiple (unless given), n_query_groups = n_head unless given, intermediate_size = 4·n_embd for
// GptNeoxMLP, rope_n_elem = int(rotary_percentage · head_size).
const DERIVED: Record<string, { n_layer: number; n_embd: number; head_size: number; vocab_size: number; padded_vocab_size: number;
  n_query_groups: number; intermediate_size: number; rope_n_elem: number; block_size: number }> = {
  'pythia-14m': { n_layer: 6, n_embd: 128, head_size: 32, vocab_size: 50254, padded_vocab_size: 50304, n_query_groups: 4, intermediate_size: 512, rope_n_elem: 8, block_size: 512 },
  'pythia-31m': { n_layer: 6, n_embd: 256, head_size: 32, vocab_size: 50254, padded_vocab_size: 50304, n_query_groups: 8, intermediate_size: 1024, rope_n_elem: 8, block_size: 1024 },
  'pythia-70m': { n_layer: 6, n_embd: 512, head_size: 64, vocab_size: 50254, padded_vocab_size: 50304, n_query_groups: 8, intermediate_size: 2048, rope_n_elem: 16, block_size: 2048 },
  'pythia-160m': { n_layer: 12, n_embd: 768, head_size: 64, vocab_size: 50254, padded_vocab_size: 50304, n_query_groups: 12, intermediate_size: 3072, rope_n_elem: 16, block_size: 2048 },
  'pythia-410m': { n_layer: 24, n_embd: 1024, head_size: 64, vocab_size: 50254, padded_vocab_size: 50304, n_query_groups: 16, intermediate_size: 4096, rope_n_elem: 16, block_size: 2048 },
  'pythia-1b': { n_layer: 16, n_embd: 2048, head_size: 256, vocab_size: 50254, padded_vocab_size: 50304, n_query_groups: 8, intermediate_size: 8192, rope_n_elem: 64, block_size: 2048 },
  'tiny-llama-1.1b': { n_layer: 22, n_embd: 2048, head_size: 64, vocab_size: 32000, padded_vocab_size: 32000, n_query_groups: 4, intermediate_size: 5632, rope_n_elem: 64, block_size: 2048 },
  'Llama-3.2-1B': { n_layer: 16, n_embd: 2048, head_size: 64, vocab_size: 128000, padded_vocab_size: 128256, n_query_groups: 8, intermediate_size: 8192, rope_n_elem: 64, block_size: 131072 },
  'Llama-3.2-3B': { n_layer: 28, n_embd: 3072, head_size: 128, vocab_size: 128000, padded_vocab_size: 128256, n_query_groups: 8, intermediate_size: 8192, rope_n_elem: 128, block_size: 131072 },
  'SmolLM2-135M': { n_layer: 30, n_embd: 576, head_size: 64, vocab_size: 49152, padded_vocab_size: 49152, n_query_groups: 3, intermediate_size: 1536, rope_n_elem: 64, block_size: 8192 },
  'Qwen2.5-0.5B': { n_layer: 24, n_embd: 896, head_size: 64, vocab_size: 151643, padded_vocab_size: 151936, n_query_groups: 2, intermediate_size: 4864, rope_n_elem: 64, block_size: 32768 },
};

test('derived values of every named config', () => {
  for (const [name, want] of Object.entries(DERIVED)) {
    const c = configFromName(name) as any;
    for (const [k, v] of Object.entries(want)) assert.is(c[k], v, `${name}.${k}`);
  }
  const llama = configFromName('Llama-3.2-1B');
  assert.equal(llama.rope_adjustments, { factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_seq_len: 8192 });
  assert.is(llama.rope_base, 500000);
  const qwen = configFromName('Qwen2.5-0.5B');
  assert.is(qwen.attn_bias, true);
  assert.is(qwen.bias, false);
  assert.is(qwen.norm_eps, 1e-6);
  // Instruct / chat variants and lookups by HF name, as Config.from_name does.
  assert.is(configFromName('meta-llama/Llama-3.2-1B-Instruct').name, 'Llama-3.2-1B-Instruct');
  assert.is(configFromName('TinyLlama-1.1B-Chat-v1.0').name, 'tiny-llama-1.1b-chat');
  assert.is(configFromName('pythia-14m', { n_layer: 2 }).n_layer, 2);
  assert.ok(configNames().length >= 16);
});

// litgpt's name_to_config entries as litgpt lists them, written by test/reference/litgpt_config_names.py from
// litgpt/config.py (the commit is in the file's "source").
const LITGPT_CONFIGS = (JSON.parse(readFileSync(join(packageRoot, 'test', 'fixtures', 'litgpt', 'config_names.json'), 'utf8')) as
  { configs: Record<string, unknown>[] }).configs;

test('every named config is litgpt\'s entry of that name, field for field; every dense Qwen3 and Gemma 2 of litgpt is there', () => {
  const litgpt = new Map(LITGPT_CONFIGS.map((c) => [c.name as string, c]));
  for (const name of configNames()) {
    assert.ok(litgpt.has(name), `${name} is not a litgpt config name`);
    assert.equal(namedConfigInput(name), litgpt.get(name), name);
  }
  const qwen3Dense = LITGPT_CONFIGS.filter((c) => String(c.name).startsWith('Qwen3-') && c.mlp_class_name !== 'LLaMAMoE').map((c) => c.name);
  assert.is(qwen3Dense.length, 13);
  const gemma2 = LITGPT_CONFIGS.filter((c) => String(c.name).startsWith('Gemma-2-')).map((c) => c.name);
  assert.is(gemma2.length, 6);
  for (const name of [...qwen3Dense, ...gemma2]) assert.ok(configNames().includes(name as string), `${name} is missing`);
  // README.md publishes the list.
  const readme = readFileSync(join(packageRoot, 'README.md'), 'utf8').replace(/\s+/g, ' ');
  const listed = /Named configs [^:]*: ([^.]+(?:\.\d[^.]*)*)\./.exec(readme)?.[1] ?? '';
  assert.equal(listed.split(', '), configNames());
});

test('configNames is litgpt\'s whole name_to_config, every entry runnable (MoE included)', async () => {
  const runnable = LITGPT_CONFIGS.map((c) => c.name as string);
  assert.equal(configNames(), runnable);
  assert.is(runnable.length, 210);
  // litlora init --help lists every runnable name.
  const help = initCommand.flags.find((f) => f.name === 'model_name')!.help;
  for (const name of runnable) assert.ok(help.includes(` ${name},`) || help.endsWith(` ${name}`), `${name} in init --help`);
});

test('every named config: our YAML is a fixed point of PyYAML safe_load + dump', () => {
  const texts = Object.fromEntries(configNames().map((n) => [n, configToYaml(configFromName(n))]));
  // Through a file: every config's text is more than one command-line argument may hold.
  const file = join(folders.make('yaml-fixed-point'), 'texts.json');
  writeFileSync(file, JSON.stringify(texts));
  const { stdout } = runPython(`
import json, sys, yaml
texts = json.load(open(${JSON.stringify(file)}))
print(json.dumps({n: yaml.dump(yaml.safe_load(t)) for n, t in texts.items()}))
`);
  const redumped = JSON.parse(stdout);
  for (const n of configNames()) assert.fixture(texts[n], redumped[n], n);
  // rope_n_elem is derived, not a field: litgpt's asdict never writes it.
  assert.not.match(texts['pythia-14m'], /rope_n_elem/);
});

test('normalizeConfig follows __post_init__ and validates with messages naming the field', async () => {
  const c = normalizeConfig({ n_embd: 8, n_head: 4, n_layer: 2, vocab_size: 100, padding_multiple: 64, block_size: 16 });
  assert.is(c.head_size, 2);
  assert.is(c.padded_vocab_size, 128);
  assert.is(c.n_query_groups, 4);
  assert.is(c.intermediate_size, 32);
  assert.is(c.rope_n_elem, 0); // int(0.25 * 2)
  // padded_vocab_size given: vocab_size is clamped to it.
  assert.is(normalizeConfig({ vocab_size: 300, padded_vocab_size: 256 }).vocab_size, 256);
  // name from hf_config
  assert.is(normalizeConfig({ hf_config: { org: 'o', name: 'n' } }).name, 'n');
  // idempotent
  assert.equal(normalizeConfig(c), c);
  await assertCode(() => normalizeConfig({ foo: 1 }), 'ERR_CONFIG', /unknown field 'foo'.*TypeError/);
  await assertCode(() => normalizeConfig({ _mlp_class: 'LLaMAMLP' }), 'ERR_CONFIG', /litlora migrate/);
  await assertCode(() => normalizeConfig({ lora_r: 8 }), 'ERR_CONFIG', /hyperparameters\.yaml/);
  await assertCode(() => normalizeConfig({ mlp_class_name: 'LLaMAMLP' }), 'ERR_CONFIG', /intermediate_size/);
  await assertCode(() => normalizeConfig({ n_embd: 48, n_head: 6, n_query_groups: 4 }), 'ERR_CONFIG', /n_query_groups/);
  await assertCode(() => normalizeConfig({ n_embd: 10, n_head: 4 }), 'ERR_CONFIG', /n_embd \(10\).*n_head \(4\)/);
  await assertCode(() => normalizeConfig({ n_layer: 2.5 }), 'ERR_CONFIG', /n_layer must be an integer, got the float 2.5/);
  await assertCode(() => normalizeConfig({ bias: 'yes' } as any), 'ERR_CONFIG', /bias must be true or false/);
  await assertCode(() => normalizeConfig({ norm_class_name: 'BatchNorm' } as any), 'ERR_CONFIG', /norm_class_name must be one of LayerNorm, RMSNorm/);
  await assertCode(() => normalizeConfig({ n_embd: null } as any), 'ERR_CONFIG', /n_embd must not be null/);
  await assertCode(() => configFromName('gpt-5'), 'ERR_CONFIG', /not a supported config name.*pythia-14m/);
  // Features the model may not implement are still valid configs here.
  assert.is(normalizeConfig({ norm_qk: true, sliding_window_size: 4, n_layer: 3 }).sliding_window_indices!.length, 3);
});

test('readConfig / writeConfig: empty and malformed files, atomic write, exact round trip', async () => {
  const dir = folders.make('config');
  writeFileSync(join(dir, 'empty.yaml'), '');
  await assertCode(() => readConfig(join(dir, 'empty.yaml')), 'ERR_CONFIG', /empty/);
  writeFileSync(join(dir, 'bad.yaml'), 'n_layer: [1,\n');
  await assertCode(() => readConfig(join(dir, 'bad.yaml')), 'ERR_CONFIG', /not valid YAML/);
  await assertCode(() => readConfig(join(dir, 'absent.yaml')), 'ERR_CHECKPOINT_MISSING', /absent\.yaml/);
  // A hand-written config with an int where litgpt has floats keeps its int; derived fields are filled in.
  writeFileSync(join(dir, 'hand.yaml'), 'n_embd: 64\nn_head: 4\nrotary_percentage: 1\nrope_local_base_freq: 10000\n');
  const c = await readConfig(join(dir, 'hand.yaml'), { n_layer: 3 });
  assert.is(c.n_layer, 3);
  await writeConfig(join(dir, 'out.yaml'), c);
  const text = (await import('node:fs')).readFileSync(join(dir, 'out.yaml'), 'utf8');
  assert.match(text, /\nrotary_percentage: 1\n/);
  assert.match(text, /\nrope_local_base_freq: 10000\n/);
  assert.match(text, /\nnorm_eps: 1\.0e-05\n/);
  assert.match(text, /\nhead_size: 16\n/);
  assert.equal((await import('node:fs')).readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no temp files left');
});

test.run();
