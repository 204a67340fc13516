// State dicts with litgpt's names, merged vs runtime modes, litgpt ≤ 0.5.4 (`attn.attn`, interleaved) files,
// and strict loading errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model, Tensor, TensorFile, relayoutQkvFile, saveTensors, type LoraOptions, type ModelConfig } from '../ts/index.js';
import { normalizeConfig } from '../ts/model/config.js';
import { baseParameters } from '../ts/model/init.js';
import { assertClose, assertCode } from './helpers/assert.js';
import { llamaTiny, moeTiny, pythiaTiny, randomTokens, randomizeAdapter, referenceConfig, referenceImport, toNpy } from './helpers/model.js';
import type { NpyArray } from './helpers/npy.js';
import { runPython } from './helpers/python.js';

const ALL: LoraOptions = { r: 4, alpha: 8, dropout: 0, query: true, key: true, value: true, projection: true, mlp: true, head: true };

async function logitsOf(model: Model, tokens: Int32Array, shape = [1, tokens.length]): Promise<Float32Array> {
  return (await (await model.forward(tokens, { shape })).data()) as Float32Array;
}

test('a LoRA model keeps litgpt names: base keys as a plain GPT, lora_* keys per target', async () => {
  const model = await Model.fromConfig({ ...pythiaTiny, n_layer: 1 }, { lora: ALL });
  const base = [...(await model.stateDict()).keys()];
  assert.equal(base, [
    'lm_head.weight', 'transformer.wte.weight',
    'transformer.h.0.norm_1.weight', 'transformer.h.0.norm_1.bias',
    'transformer.h.0.attn.qkv.weight', 'transformer.h.0.attn.qkv.bias',
    'transformer.h.0.attn.proj.weight', 'transformer.h.0.attn.proj.bias',
    'transformer.h.0.norm_2.weight', 'transformer.h.0.norm_2.bias',
    'transformer.h.0.mlp.fc.weight', 'transformer.h.0.mlp.fc.bias',
    'transformer.h.0.mlp.proj.weight', 'transformer.h.0.mlp.proj.bias',
    'transformer.ln_f.weight', 'transformer.ln_f.bias',
  ]);
  const lora = new Map([...(await model.adapter!.tensors())].map(([n, t]) => [n, t.shape]));
  assert.equal(Object.fromEntries(lora), {
    'lm_head.lora_A': [4, 32], 'lm_head.lora_B': [128, 4],
    'transformer.h.0.attn.qkv.lora_A': [12, 32], 'transformer.h.0.attn.qkv.lora_B': [96, 4],
    'transformer.h.0.attn.proj.lora_A': [4, 32], 'transformer.h.0.attn.proj.lora_B': [32, 4],
    'transformer.h.0.mlp.fc.lora_A': [4, 32], 'transformer.h.0.mlp.fc.lora_B': [64, 4],
    'transformer.h.0.mlp.proj.lora_A': [4, 64], 'transformer.h.0.mlp.proj.lora_B': [32, 4],
  });
  const llama = await Model.fromConfig({ ...llamaTiny, n_layer: 1 }, { lora: { r: 8, query: true, value: true } });
  const qkv = new Map([...(await llama.adapter!.tensors())].map(([n, t]) => [n, t.shape]));
  // GQA q+v: A (2r, C), B (n_head·hs + n_qg·hs, r)
  assert.equal(Object.fromEntries(qkv), { 'transformer.h.0.attn.qkv.lora_A': [16, 32], 'transformer.h.0.attn.qkv.lora_B': [48, 8] });
  assert.equal(llama.adapter!.targets, ['query', 'value']);
  assert.is(llama.adapter!.parameterCount, 16 * 32 + 48 * 8);
  assert.is(llama.adapter!.scaling, 2);
  model.dispose();
  llama.dispose();
});

test('a LLaMAMoE keeps litgpt names: mlp.gate and mlp.experts.E.fc_1/fc_2/proj, LoRA on each with lora_mlp; init lists the same', async () => {
  const config: ModelConfig = { ...moeTiny, n_layer: 1, n_expert: 2, moe_intermediate_size: 24 };
  const model = await Model.fromConfig(config, { lora: { r: 2, query: false, value: false, mlp: true } });
  const base = [...(await model.stateDict())].map(([n, t]) => `${n}:${t.shape.join('x')}`);
  assert.equal(base, [
    'lm_head.weight:96x32', 'transformer.wte.weight:96x32', 'transformer.h.0.norm_1.weight:32',
    'transformer.h.0.attn.qkv.weight:64x32', 'transformer.h.0.attn.proj.weight:32x32', 'transformer.h.0.norm_2.weight:32',
    'transformer.h.0.mlp.gate.weight:2x32',
    'transformer.h.0.mlp.experts.0.fc_1.weight:24x32', 'transformer.h.0.mlp.experts.0.fc_2.weight:24x32',
    'transformer.h.0.mlp.experts.0.proj.weight:32x24',
    'transformer.h.0.mlp.experts.1.fc_1.weight:24x32', 'transformer.h.0.mlp.experts.1.fc_2.weight:24x32',
    'transformer.h.0.mlp.experts.1.proj.weight:32x24',
    'transformer.ln_f.weight:32',
  ]);
  assert.equal(baseParameters(normalizeConfig(config)).map(([n, s]) => `${n}:${s.join('x')}`), base);
  const lora = [...(await model.adapter!.tensors())].map(([n, t]) => `${n}:${t.shape.join('x')}`);
  assert.equal(lora, [
    'transformer.h.0.mlp.gate.lora_A:2x32', 'transformer.h.0.mlp.gate.lora_B:2x2',
    'transformer.h.0.mlp.experts.0.fc_1.lora_A:2x32', 'transformer.h.0.mlp.experts.0.fc_1.lora_B:24x2',
    'transformer.h.0.mlp.experts.0.fc_2.lora_A:2x32', 'transformer.h.0.mlp.experts.0.fc_2.lora_B:24x2',
    'transformer.h.0.mlp.experts.0.proj.lora_A:2x24', 'transformer.h.0.mlp.experts.0.proj.lora_B:32x2',
    'transformer.h.0.mlp.experts.1.fc_1.lora_A:2x32', 'transformer.h.0.mlp.experts.1.fc_1.lora_B:24x2',
    'transformer.h.0.mlp.experts.1.fc_2.lora_A:2x32', 'transformer.h.0.mlp.experts.1.fc_2.lora_B:24x2',
    'transformer.h.0.mlp.experts.1.proj.lora_A:2x24', 'transformer.h.0.mlp.experts.1.proj.lora_B:32x2',
  ]);
  model.dispose();
});

test('mergedStateDict = a plain GPT state dict (keys, shapes, dtypes) holding W + alpha/r·B·A as litgpt merges', async () => {
  for (const [config, lora] of [[pythiaTiny, ALL], [llamaTiny, { ...ALL, key: false, head: false }]] as [ModelConfig, LoraOptions][]) {
    const model = await Model.fromConfig(config, { lora, seed: 3 });
    await randomizeAdapter(model, 5);
    const plain = await Model.fromConfig(config, { seed: 3 });
    const merged = await model.mergedStateDict();
    const expected = await plain.stateDict();
    assert.equal([...merged.keys()], [...expected.keys()]);
    for (const [name, t] of expected) {
      assert.equal(merged.get(name)!.shape, t.shape, name);
      assert.is(merged.get(name)!.dtype, t.dtype, name);
    }
    // Values against the reference's merge (litgpt's LoRALinear.merge / zero_pad).
    const inputs: Record<string, NpyArray> = {};
    for (const [n, t] of await model.stateDict()) inputs[`w.${n}`] = await toNpy(t);
    for (const [n, t] of await model.adapter!.tensors()) inputs[`w.${n}`] = await toNpy(t);
    const { outputs } = runPython(`${referenceImport}
model = ref.make_model(json.loads(${JSON.stringify(JSON.stringify(referenceConfig(model)))}), {k[2:]: v for k, v in inp.items()})
model.merge()
for k, v in model.state_dict().items():
    if "lora_" not in k:
        out(k.replace("linear.", ""), v.numpy())
`, inputs);
    assert.equal(Object.keys(outputs).sort(), [...merged.keys()].sort());
    for (const [name, t] of merged) {
      assertClose((await t.data()) as Float32Array, outputs[name].data as Float32Array, { rtol: 1e-5, atol: 1e-7, what: name });
    }
    model.dispose();
    plain.dispose();
  }
});

test('merge() and unmerge(): merged logits equal runtime logits; a plain GPT loaded with mergedStateDict agrees', async () => {
  for (const config of [llamaTiny, moeTiny]) await checkMerge(config);
});

// One model's merge round trip; the LLaMAMoE's router LoRA can change which experts a token picks, so merged and
// runtime agree only if the router's merged weights do.
async function checkMerge(config: ModelConfig): Promise<void> {
  const model = await Model.fromConfig(config, { lora: { ...ALL, key: false }, seed: 4 });
  await randomizeAdapter(model, 9);
  const { tokens } = randomTokens(1, 10, 96, 2);
  const runtime = await logitsOf(model, tokens);
  const adapter = model.adapter!;
  assert.is(adapter.merged, false);
  const before = (await (await model.stateDict()).get('transformer.h.1.attn.qkv.weight')!.data()) as Float32Array;
  await adapter.merge();
  assert.is(adapter.merged, true);
  await adapter.merge(); // idempotent
  assertClose(await logitsOf(model, tokens), runtime, { rtol: 1e-5, atol: 1e-5, what: 'merged logits' });
  const plain = await Model.fromStateDict(config, await model.mergedStateDict());
  assertClose(await logitsOf(plain, tokens), runtime, { rtol: 1e-5, atol: 1e-5, what: 'plain GPT with merged weights' });
  await assertCode(() => model.loss(tokens, tokens, { backward: true }), 'ERR_ARG', /unmerge/);
  await adapter.unmerge();
  assert.is(adapter.merged, false);
  const after = (await (await model.stateDict()).get('transformer.h.1.attn.qkv.weight')!.data()) as Float32Array;
  assertClose(after, before, { rtol: 1e-6, atol: 1e-6, what: 'unmerged weight' });
  assertClose(await logitsOf(model, tokens), runtime, { rtol: 1e-5, atol: 1e-5, what: 'unmerged logits' });
  model.dispose();
  plain.dispose();
}

// litgpt ≤ 0.5.4 files: `attn.attn` keys with per-group interleaved [q…q k v] rows (written here by Python).
const LEGACY_PY = `
def interleave(w, nh, nqg, hs):
    q_per_kv = nh // nqg
    q, k, v = np.split(w, [nh * hs, (nh + nqg) * hs])
    rest = w.shape[1:]
    q = q.reshape(nqg, q_per_kv * hs, *rest); k = k.reshape(nqg, hs, *rest); v = v.reshape(nqg, hs, *rest)
    return np.concatenate([q, k, v], axis=1).reshape(w.shape)
`;

test('an old-layout (attn.attn, interleaved) checkpoint and its migrated copy give the same logits, base and LoRA', async () => {
  for (const config of [pythiaTiny, llamaTiny, { ...llamaTiny, n_query_groups: 1 }] as ModelConfig[]) {
    const lora: LoraOptions = { r: 2, alpha: 4, dropout: 0, query: true, value: true, mlp: true };
    const model = await Model.fromConfig(config, { lora, seed: 6 });
    await randomizeAdapter(model, 11);
    const { tokens } = randomTokens(2, 9, 90, 4);
    const expected = await logitsOf(model, tokens, [2, 9]);
    const inputs: Record<string, NpyArray> = {};
    for (const [n, t] of await model.stateDict()) inputs[`w.${n}`] = await toNpy(t);
    const hs = Number(config.n_embd) / Number(config.n_head);
    const { outputs } = runPython(`${LEGACY_PY}
for k, v in inp.items():
    name = k[2:]
    if ".attn.qkv." in name:
        out(name.replace(".attn.qkv.", ".attn.attn."), interleave(v, ${config.n_head}, ${config.n_query_groups ?? config.n_head}, ${hs}))
    else:
        out(name, v)
`, inputs);
    const legacyBase: [string, Tensor][] = Object.entries(outputs).map(([n, a]) => [n, Tensor.from(a.data as Float32Array, a.shape)]);
    assert.ok(legacyBase.some(([n]) => n === 'transformer.h.0.attn.attn.weight'));
    const legacyLora: [string, Tensor][] = [...(await model.adapter!.tensors())].map(([n, t]) => [n.replace('.attn.qkv.', '.attn.attn.'), t]);
    const old = await Model.fromStateDict(config, [...legacyBase, ...legacyLora], { lora });
    assertClose(await logitsOf(old, tokens, [2, 9]), expected, { rtol: 1e-5, atol: 1e-5, what: `${config.name}: legacy file` });
    // The migrated copy: today's names and rows, and the same .lora tensors (q/v subsets need no re-layout).
    const migratedLora = await old.adapter!.tensors();
    assert.ok([...migratedLora.keys()].every((n) => !n.includes('attn.attn')));
    const migrated = await Model.fromStateDict(config, [...(await old.stateDict()), ...migratedLora], { lora });
    assertClose(await logitsOf(migrated, tokens, [2, 9]), expected, { rtol: 1e-5, atol: 1e-5, what: `${config.name}: migrated` });
    // relayoutQkvFile (migrate's hook) rewrites such a file in place: a full finetune file {"model": …}.
    const dir = mkdtempSync(join(tmpdir(), 'litlora-relayout-'));
    const file = join(dir, 'lit_model.pth');
    await saveTensors(file, new Map([...legacyBase, ...legacyLora]), { wrap: 'model' });
    assert.is(await relayoutQkvFile(file, config, 'full'), 'rewritten');
    assert.is(await relayoutQkvFile(file, config, 'full'), 'unchanged');
    const f = await TensorFile.open(file);
    assert.is(f.wrapped, 'model');
    assert.ok(f.names.every((n) => !n.includes('attn.attn')));
    const rewritten = await Model.fromStateDict(config, await f.getAll(), { lora });
    await f.close();
    assertClose(await logitsOf(rewritten, tokens, [2, 9]), expected, { rtol: 1e-5, atol: 1e-5, what: `${config.name}: relayoutQkvFile` });
    rmSync(dir, { recursive: true, force: true });
    for (const m of [model, old, migrated, rewritten]) m.dispose();
  }
});

test('old-layout adapter with q, k and v all on keeps litgpt 0.5.4 meaning (rows added in interleaved storage order)', async () => {
  const config = llamaTiny; // GQA: the interleaved and [Q|K|V] orders differ
  const lora: LoraOptions = { r: 2, alpha: 4, dropout: 0, query: true, key: true, value: true };
  const seedModel = await Model.fromConfig(config, { lora, seed: 8 });
  await randomizeAdapter(seedModel, 21);
  const inputs: Record<string, NpyArray> = {};
  for (const [n, t] of await seedModel.stateDict()) inputs[`w.${n}`] = await toNpy(t);
  for (const [n, t] of await seedModel.adapter!.tensors()) inputs[`l.${n}`] = await toNpy(t);
  const hs = 8;
  // What litgpt 0.5.4 computes: W_interleaved + s·[B_q A_q; B_k A_k; B_v A_v] with no scatter.
  const { outputs } = runPython(`${LEGACY_PY}
nh, nqg, hs, r, s = 4, 2, ${hs}, 2, 2.0
for k, v in inp.items():
    if not k.startswith("w."): continue
    name = k[2:]
    if ".attn.qkv." in name:
        w = interleave(v, nh, nqg, hs)
        legacy = name.replace(".attn.qkv.", ".attn.attn.")
        out("base." + legacy, w)
        if name.endswith(".weight"):
            prefix = name[: -len(".weight")]
            A, B = inp["l." + prefix + ".lora_A"], inp["l." + prefix + ".lora_B"]
            sizes = [nh * hs, nqg * hs, nqg * hs]
            Bs = np.split(B, np.cumsum(sizes)[:-1]); As = np.split(A, 3)
            out("merged." + legacy, (w + s * np.concatenate([b @ a for a, b in zip(As, Bs)], axis=0)).astype(np.float32))
        else:
            out("merged." + legacy, w)
    else:
        out("base." + name, v); out("merged." + name, v)
`, inputs);
  const pick = (prefix: string): [string, Tensor][] => Object.entries(outputs).filter(([n]) => n.startsWith(prefix))
    .map(([n, a]) => [n.slice(prefix.length), Tensor.from(a.data as Float32Array, a.shape)]);
  const legacyLora: [string, Tensor][] = [...(await seedModel.adapter!.tensors())].map(([n, t]) => [n.replace('.attn.qkv.', '.attn.attn.'), t]);
  const runtime = await Model.fromStateDict(config, [...pick('base.'), ...legacyLora], { lora });
  const truth = await Model.fromStateDict(config, pick('merged.'));
  const { tokens } = randomTokens(1, 12, 96, 5);
  const expected = await logitsOf(truth, tokens);
  assertClose(await logitsOf(runtime, tokens), expected, { rtol: 1e-5, atol: 1e-5, what: 'runtime, legacy all-enabled adapter' });
  // Saved again under the old names, so the file keeps its meaning; merging gives the true weights.
  assert.ok([...(await runtime.adapter!.tensors()).keys()].every((n) => !n.includes('qkv') || n.includes('attn.attn')));
  assert.ok([...(await runtime.adapter!.tensors()).keys()].some((n) => n.includes('attn.attn.lora_A')));
  const merged = await Model.fromStateDict(config, await runtime.mergedStateDict());
  assertClose(await logitsOf(merged, tokens), expected, { rtol: 1e-5, atol: 1e-5, what: 'merged legacy adapter' });
  // relayoutQkvFile leaves such a file alone: today's names cannot carry its meaning.
  const dir = mkdtempSync(join(tmpdir(), 'litlora-relayout-'));
  await saveTensors(join(dir, 'a.lora'), new Map(legacyLora), { wrap: 'model' });
  assert.is(await relayoutQkvFile(join(dir, 'a.lora'), config, 'lora'), 'unchanged');
  rmSync(dir, { recursive: true, force: true });
  // Reloading a current-era adapter resets the layout.
  await runtime.adapter!.loadTensors(await seedModel.adapter!.tensors());
  assertClose(await logitsOf(runtime, tokens), await logitsOf(seedModel, tokens), { rtol: 1e-5, atol: 1e-5, what: 'back to current layout' });
  for (const m of [seedModel, runtime, truth, merged]) m.dispose();
});

test('strict loading names missing keys, unexpected keys and shape mismatches', async () => {
  const model = await Model.fromConfig(pythiaTiny, { seed: 1 });
  const entries = [...(await model.stateDict())];
  const withoutOne = entries.filter(([n]) => n !== 'transformer.h.1.mlp.fc.bias');
  await assertCode(() => Model.fromStateDict(pythiaTiny, withoutOne), 'ERR_CHECKPOINT_FORMAT', /missing keys \(1\): transformer\.h\.1\.mlp\.fc\.bias/);
  const extra: [string, Tensor][] = [...entries, ['transformer.h.9.attn.qkv.weight', Tensor.from(new Float32Array(4), [2, 2])]];
  await assertCode(() => Model.fromStateDict(pythiaTiny, extra), 'ERR_CHECKPOINT_FORMAT', /unexpected keys \(1\): transformer\.h\.9\.attn\.qkv\.weight/);
  const wrong = entries.map(([n, t]): [string, Tensor] => n === 'transformer.ln_f.weight' ? [n, Tensor.from(new Float32Array(31), [31])] : [n, t]);
  await assertCode(() => Model.fromStateDict(pythiaTiny, wrong), 'ERR_SHAPE', /transformer\.ln_f\.weight \(expected \[32\], got \[31\]\)/);
  // LoRA-model base names (`….linear.weight`) load as well.
  const loraNames = entries.map(([n, t]): [string, Tensor] => [n.replace(/(qkv|proj|fc|lm_head)\.(weight|bias)$/, '$1.linear.$2'), t]);
  assert.ok(loraNames.some(([n]) => n === 'lm_head.linear.weight'));
  const again = await Model.fromStateDict(pythiaTiny, loraNames);
  const { tokens } = randomTokens(1, 6, 100, 1);
  assert.equal(Array.from(await logitsOf(again, tokens)), Array.from(await logitsOf(model, tokens)), 'linear.* names');
  model.dispose();
  again.dispose();
});

test('an adapter from another model (other r, targets or config) is refused with every mismatch named', async () => {
  const model = await Model.fromConfig(pythiaTiny, { lora: { r: 4, query: true, value: true } });
  const otherR = await Model.fromConfig(pythiaTiny, { lora: { r: 8, query: true, value: true } });
  await assertCode(async () => model.adapter!.loadTensors(await otherR.adapter!.tensors()), 'ERR_SHAPE',
    /transformer\.h\.0\.attn\.qkv\.lora_A \(expected \[8, 32\], got \[16, 32\]\)/);
  const otherTargets = await Model.fromConfig(pythiaTiny, { lora: { r: 4, query: true, value: true, mlp: true } });
  await assertCode(async () => model.adapter!.loadTensors(await otherTargets.adapter!.tensors()), 'ERR_CHECKPOINT_FORMAT',
    /unexpected keys \(8\): transformer\.h\.0\.mlp\.fc\.lora_A/);
  const otherModel = await Model.fromConfig(llamaTiny, { lora: { r: 4, query: true, value: true } });
  await assertCode(async () => model.adapter!.loadTensors(await otherModel.adapter!.tensors()), 'ERR_SHAPE', /qkv\.lora_B \(expected \[64, 4\], got \[48, 4\]\)/);
  const fewer = [...(await otherR.adapter!.tensors())].filter(([n]) => !n.includes('h.1'));
  await assertCode(() => model.adapter!.loadTensors(fewer), 'ERR_CHECKPOINT_FORMAT', /missing keys \(2\)/);
  for (const m of [model, otherR, otherTargets, otherModel]) m.dispose();
});

test.run();
