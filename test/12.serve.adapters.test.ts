// Many adapters on one base (model.adapters, ts/model/adapters.ts): LoRA folders loaded in runtime mode onto a
// loaded base, each request naming its adapter; a batch mixes rows of different adapters (per-row adapter index).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateTokens, type GenerationStats, type SamplingOptions } from '../ts/generate/generate.js';
import { initCheckpoint } from '../ts/model/init.js';
import { Model, OutDir, type Hyperparameters, type LoraOptions } from '../ts/index.js';
import { assertCode } from './helpers/assert.js';
import { moeTiny, randomizeAdapter } from './helpers/model.js';
import { tempFolders } from './helpers/temp.js';

const GREEDY: SamplingOptions = { temperature: 0, topK: null, stopTokens: [], vocabLimit: null };
const folders = tempFolders();
const root = folders.make('adapters');
const baseDir = join(root, 'checkpoints', 'tiny');
const otherBaseDir = join(root, 'checkpoints', 'wider');
const runDir = join(root, 'out');
const ONE: LoraOptions = { r: 4, alpha: 8, dropout: 0, query: true, key: false, value: true, projection: true, mlp: true, head: true };
const TWO: LoraOptions = { r: 2, alpha: 4, dropout: 0, query: true, key: true, value: false, projection: false, mlp: false, head: false };
const prompts = [[1, 40, 50, 60, 70], [7, 7, 2], [300, 200, 5]];

function hyperparameters(checkpointDir: string, lora: LoraOptions): Hyperparameters {
  return {
    checkpoint_dir: checkpointDir, out_dir: runDir, precision: null, lora_r: lora.r, lora_alpha: lora.alpha,
    lora_dropout: lora.dropout, lora_query: lora.query, lora_key: lora.key, lora_value: lora.value,
    lora_projection: lora.projection, lora_mlp: lora.mlp, lora_head: lora.head, seed: 1337,
  };
}

/** A LoRA folder as `finetune lora` writes it, with random (non-zero) adapter weights; `hp` overrides its settings. */
async function writeLoraFolder(dir: string, base: string, lora: LoraOptions, seed: number, hp?: LoraOptions): Promise<void> {
  const model = await Model.load(base, { lora });
  await randomizeAdapter(model, seed, 0.4);
  const tensors = await model.adapter!.tensors();
  await new OutDir(runDir).writeLoraCheckpoint(dir, {
    loraTensors: tensors, config: model.config as never, hyperparameters: hyperparameters(base, hp ?? lora),
    promptStyle: { class_path: 'litgpt.prompts.Alpaca' }, tokenizerFrom: base,
  });
  await model.dispose();
}

async function ids(it: AsyncGenerator<number, GenerationStats>): Promise<number[]> {
  const out: number[] = [];
  for await (const id of it) out.push(id);
  return out;
}

test.before(async () => {
  const overrides = { n_layer: 2, n_embd: 32, n_head: 4, block_size: 64 };
  await initCheckpoint({ outDir: baseDir, modelName: 'pythia-14m', overrides, seed: 5 });
  await initCheckpoint({ outDir: otherBaseDir, modelName: 'pythia-14m', overrides: { ...overrides, n_embd: 64 }, seed: 6 });
  await writeLoraFolder(join(runDir, 'one'), baseDir, ONE, 1);
  await writeLoraFolder(join(runDir, 'two'), baseDir, TWO, 2);
  await writeLoraFolder(join(runDir, 'wider'), otherBaseDir, ONE, 3);
  // Tensors of r 4 under a hyperparameters.yaml that says r 2: they do not fit what its settings place.
  await writeLoraFolder(join(runDir, 'bad-r'), baseDir, ONE, 4, { ...ONE, r: 2 });
});
test.after(() => folders.removeAll());

test('each adapter gives what a model loaded (merged) from its folder gives; the base alone what the base gives', async () => {
  const model = await Model.load(baseDir);
  assert.equal(model.adapters.names(), []);
  await model.adapters.add('one', join(runDir, 'one'));
  await model.adapters.add('two', join(runDir, 'two'));
  assert.equal(model.adapters.names(), ['one', 'two']);
  assert.ok(model.adapters.has('one') && !model.adapters.has('three'));
  for (const [name, dir] of [[null, baseDir], ['one', join(runDir, 'one')], ['two', join(runDir, 'two')]] as const) {
    const reference = await Model.load(dir);
    assert.is(reference.source!.mode, name ? 'merged' : 'weights');
    for (const prompt of prompts) {
      const expected = await ids(generateTokens(reference, prompt, { ...GREEDY, maxNewTokens: 16 }));
      const got = await ids(generateTokens(model, prompt, { ...GREEDY, maxNewTokens: 16, adapter: name }));
      assert.equal(got, expected, `${name ?? 'base'} on ${JSON.stringify(prompt)}`);
    }
    await reference.dispose();
  }
  // The adapters change the text (the check above is not the base three times).
  const base = await ids(generateTokens(model, prompts[0]!, { ...GREEDY, maxNewTokens: 16 }));
  assert.not.equal(await ids(generateTokens(model, prompts[0]!, { ...GREEDY, maxNewTokens: 16, adapter: 'one' })), base);
  assert.not.equal(await ids(generateTokens(model, prompts[0]!, { ...GREEDY, maxNewTokens: 16, adapter: 'two' })), base);
  await model.dispose();
});

test('a mixed batch (base, one, two, one) equals each request alone', async () => {
  const model = await Model.load(baseDir);
  await model.adapters.add('one', join(runDir, 'one'));
  await model.adapters.add('two', join(runDir, 'two'));
  const mix: { prompt: number[]; adapter: string | null; n: number }[] = [
    { prompt: prompts[0]!, adapter: null, n: 20 }, { prompt: prompts[1]!, adapter: 'one', n: 12 },
    { prompt: prompts[2]!, adapter: 'two', n: 18 }, { prompt: prompts[0]!, adapter: 'one', n: 15 },
    { prompt: prompts[1]!, adapter: 'two', n: 9 },
  ];
  const alone: number[][] = [];
  for (const r of mix) alone.push(await ids(generateTokens(model, r.prompt, { ...GREEDY, maxNewTokens: r.n, adapter: r.adapter })));
  const together = await Promise.all(mix.map((r) => ids(generateTokens(model, r.prompt, { ...GREEDY, maxNewTokens: r.n, adapter: r.adapter }))));
  for (const [i, r] of mix.entries()) assert.equal(together[i], alone[i], `request ${i} (${r.adapter ?? 'base'})`);
  await model.dispose();
});

test('a LLaMAMoE base: adapters on the router and every expert, per row (tokens routed apart), equal their merged folders', async () => {
  const moeBase = join(root, 'checkpoints', 'moe'), moeRun = join(root, 'moe-out');
  await initCheckpoint({ outDir: moeBase, config: { ...moeTiny, vocab_size: 400, padded_vocab_size: 400 }, seed: 8 });
  await writeLoraFolder(join(moeRun, 'one'), moeBase, ONE, 11);
  await writeLoraFolder(join(moeRun, 'two'), moeBase, { ...TWO, mlp: true }, 12);
  const model = await Model.load(moeBase);
  await model.adapters.add('one', join(moeRun, 'one'));
  await model.adapters.add('two', join(moeRun, 'two'));
  const mix: { prompt: number[]; adapter: string | null; n: number }[] = [
    { prompt: prompts[0]!, adapter: 'one', n: 14 }, { prompt: prompts[1]!, adapter: null, n: 10 },
    { prompt: prompts[2]!, adapter: 'two', n: 12 }, { prompt: prompts[1]!, adapter: 'one', n: 8 },
  ];
  const merged = new Map<string | null, Model>();
  for (const name of [null, 'one', 'two']) merged.set(name, await Model.load(name ? join(moeRun, name) : moeBase));
  const expected: number[][] = [];
  for (const r of mix) expected.push(await ids(generateTokens(merged.get(r.adapter)!, r.prompt, { ...GREEDY, maxNewTokens: r.n })));
  const together = await Promise.all(mix.map((r) => ids(generateTokens(model, r.prompt, { ...GREEDY, maxNewTokens: r.n, adapter: r.adapter }))));
  for (const [i, r] of mix.entries()) assert.equal(together[i], expected[i], `request ${i} (${r.adapter ?? 'base'}) vs its merged folder`);
  // The adapters change the text (the check above is not the base four times).
  const base = await ids(generateTokens(merged.get(null)!, prompts[0]!, { ...GREEDY, maxNewTokens: 14 }));
  assert.not.equal(expected[0], base);
  for (const m of merged.values()) await m.dispose();
  // An adapter trained with another top-k has the same shapes but routes otherwise: refused, naming the field.
  const topk = join(moeRun, 'top3');
  cpSync(join(moeRun, 'one'), topk, { recursive: true });
  const yaml = join(topk, 'model_config.yaml');
  writeFileSync(yaml, readFileSync(yaml, 'utf8').replace(/\nn_expert_per_token: 2\n/, '\nn_expert_per_token: 3\n'));
  await assertCode(() => model.adapters.add('top3', topk), 'ERR_ADAPTER_MISMATCH', /n_expert_per_token 3 \(this base: 2\)/);
  await model.dispose();
});

test('refused: an adapter of another base or whose tensors do not fit (ERR_ADAPTER_MISMATCH), a taken name (ERR_ARG), unknown names (ERR_ADAPTER_NOT_FOUND)', async () => {
  const model = await Model.load(baseDir);
  await assertCode(() => model.adapters.add('wider', join(runDir, 'wider')), 'ERR_ADAPTER_MISMATCH', /another base model: n_embd 64 \(this base: 32\)/);
  await assertCode(() => model.adapters.add('bad', join(runDir, 'bad-r')), 'ERR_ADAPTER_MISMATCH',
    /bad-r\/lit_model\.pth\.lora: adapters\.add: adapter 'bad' does not fit this base model: lm_head: lora_A \[4, 32\], lora_B \[384, 4\] where this base with r 2 needs \[2, 32\] and \[384, 2\];.*\(3 more\)/);
  assert.equal(model.adapters.names(), [], 'nothing was added by the refused ones');
  await model.adapters.add('one', join(runDir, 'one'));
  await assertCode(() => model.adapters.add('one', join(runDir, 'two')), 'ERR_ARG', /'one' is already loaded/);
  await assertCode(() => model.adapters.add('base', baseDir), 'ERR_CHECKPOINT_MISSING', /no lit_model\.pth\.lora/);
  await assertCode(() => ids(generateTokens(model, [1], { ...GREEDY, adapter: 'two' })), 'ERR_ADAPTER_NOT_FOUND', /no adapter named 'two'.*loaded: one/);
  await assertCode(() => model.adapters.remove('two'), 'ERR_ADAPTER_NOT_FOUND', /no adapter named 'two'/);
  // Removing one frees its name; the index is reused by the next.
  const withOne = await ids(generateTokens(model, prompts[0]!, { ...GREEDY, maxNewTokens: 8, adapter: 'one' }));
  await model.adapters.remove('one');
  assert.equal(model.adapters.names(), []);
  await assertCode(() => ids(generateTokens(model, [1], { ...GREEDY, adapter: 'one' })), 'ERR_ADAPTER_NOT_FOUND');
  await model.adapters.add('two', join(runDir, 'two'));
  await model.adapters.add('one', join(runDir, 'one'));
  assert.equal(await ids(generateTokens(model, prompts[0]!, { ...GREEDY, maxNewTokens: 8, adapter: 'one' })), withOne);
  await model.dispose();
});

test.run();
