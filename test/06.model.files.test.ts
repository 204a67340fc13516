// Model.load on a base checkpoint folder, and the adapter's lit_model.pth.lora (save, load, PyTorch reads it).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Model, Tensor, saveTensors, writeConfig } from '../ts/index.js';
import { assertCode } from './helpers/assert.js';
import { llamaTiny, pythiaTiny, randomTokens, randomizeAdapter } from './helpers/model.js';
import { runPython } from './helpers/python.js';

const dir = mkdtempSync(join(tmpdir(), 'litlora-model-'));

async function logits(model: Model, tokens: Int32Array): Promise<number[]> {
  return Array.from((await (await model.forward(tokens)).data()) as Float32Array);
}

test('Model.load reads a base folder (lit_model.pth + model_config.yaml) with the same logits', async () => {
  const source = await Model.fromConfig(llamaTiny, { seed: 12 });
  const folder = join(dir, 'base');
  mkdirSync(folder);
  await saveTensors(join(folder, 'lit_model.pth'), await source.stateDict());
  await writeConfig(join(folder, 'model_config.yaml'), source.config);
  const loaded = await Model.load(folder, { lora: { r: 4, query: true, value: true } });
  assert.is(loaded.config.n_query_groups, 2);
  assert.is(loaded.config.rope_n_elem, 8);
  assert.equal(loaded.adapter!.targets, ['query', 'value']);
  const { tokens } = randomTokens(1, 9, 96, 3);
  assert.equal(await logits(loaded, tokens), await logits(source, tokens)); // B = 0: LoRA changes nothing yet
  await assertCode(() => Model.load(join(dir, 'nowhere')), 'ERR_CHECKPOINT_MISSING', /lit_model\.pth/);
  source.dispose();
  loaded.dispose();
});

test("adapter.save writes litgpt's lit_model.pth.lora ({'model': lora_*}), which PyTorch loads with weights_only", async () => {
  const model = await Model.fromConfig(pythiaTiny, { seed: 2, lora: { r: 4, alpha: 8, query: true, value: true, mlp: true } });
  await randomizeAdapter(model, 4);
  const path = join(dir, 'lit_model.pth.lora');
  await model.adapter!.save(path);
  const { stdout } = runPython(`import torch, json
sd = torch.load(${JSON.stringify(path)}, weights_only=True)
print(json.dumps({"top": list(sd.keys()), "model": {k: list(v.shape) for k, v in sd["model"].items()}, "dtype": str(next(iter(sd["model"].values())).dtype)}))`);
  const got = JSON.parse(stdout);
  assert.equal(got.top, ['model']);
  const expected = Object.fromEntries([...(await model.adapter!.tensors())].map(([n, t]) => [n, t.shape]));
  assert.equal(got.model, expected);
  assert.is(got.dtype, 'torch.float32');
  // …and it loads back into a fresh model with the same LoRA settings.
  const fresh = await Model.fromStateDict(pythiaTiny, await model.stateDict(), { lora: model.lora! });
  const { tokens } = randomTokens(1, 7, 100, 5);
  assert.not.equal(await logits(fresh, tokens), await logits(model, tokens));
  await fresh.adapter!.load(path);
  assert.equal(await logits(fresh, tokens), await logits(model, tokens));
  model.dispose();
  fresh.dispose();
});

test('adapter.load refuses files of other targets, another r or another model, naming the file and the mismatch', async () => {
  const model = await Model.fromConfig(pythiaTiny, { lora: { r: 4, query: true, value: true } });
  const withMlp = await Model.fromConfig(pythiaTiny, { lora: { r: 4, query: true, value: true, mlp: true } });
  const otherR = await Model.fromConfig(pythiaTiny, { lora: { r: 2, query: true, value: true } });
  const otherModel = await Model.fromConfig(llamaTiny, { lora: { r: 4, query: true, value: true } });
  for (const [name, m] of [['mlp', withMlp], ['r2', otherR], ['llama', otherModel]] as [string, Model][]) {
    await m.adapter!.save(join(dir, `${name}.lora`));
  }
  await assertCode(() => model.adapter!.load(join(dir, 'mlp.lora')), 'ERR_CHECKPOINT_FORMAT',
    /mlp\.lora adapts query\/key\/value, mlp, but this model's LoRA layers are on query\/key\/value \(targets query, value\)/);
  await assertCode(() => model.adapter!.load(join(dir, 'r2.lora')), 'ERR_SHAPE',
    /r2\.lora: .*transformer\.h\.0\.attn\.qkv\.lora_A \(expected \[8, 32\], got \[4, 32\]\)/);
  await assertCode(() => model.adapter!.load(join(dir, 'llama.lora')), 'ERR_SHAPE', /llama\.lora: .*lora_B \(expected \[64, 4\], got \[48, 4\]\)/);
  await saveTensors(join(dir, 'notlora.pth'), await model.stateDict());
  await assertCode(() => model.adapter!.load(join(dir, 'notlora.pth')), 'ERR_CHECKPOINT_FORMAT', /not a LoRA file/);
  for (const m of [model, withMlp, otherR, otherModel]) m.dispose();
});

test('adapter.load takes a litgpt ≤ 0.5.4 file (attn.attn.lora_*, q+v)', async () => {
  const model = await Model.fromConfig(llamaTiny, { seed: 3, lora: { r: 2, query: true, value: true, dropout: 0 } });
  await randomizeAdapter(model, 8);
  const legacy = new Map([...(await model.adapter!.tensors())].map(([n, t]): [string, Tensor] => [n.replace('.attn.qkv.', '.attn.attn.'), t]));
  const path = join(dir, 'legacy.lora');
  await saveTensors(path, legacy, { wrap: 'model' });
  const fresh = await Model.fromStateDict(llamaTiny, await model.stateDict(), { lora: model.lora! });
  await fresh.adapter!.load(path);
  const { tokens } = randomTokens(1, 6, 96, 9);
  assert.equal(await logits(fresh, tokens), await logits(model, tokens));
  model.dispose();
  fresh.dispose();
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
