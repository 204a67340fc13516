// Using a finetune: auto-merge on load (final/ and step folders, merged and runtime modes, where the base
// is found, a moved base), merge_lora (bit-exact vs model.mergedStateDict(), litgpt-loadable with strict=True,
// skip/force/out_dir/precision, atomic), and the generate / chat commands on base, LoRA-only and merged folders.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { PassThrough } from 'node:stream';
import { packageRoot } from '../ts/addon_loader.js';
import { runCli } from '../ts/cli/main.js';
import { initCheckpoint } from '../ts/model/init.js';
import { writeHyperparameters } from '../ts/io/hyperparameters.js';
import { Tokenizer } from '../ts/data/tokenizer.js';
import { loadPromptStyle, PromptStyle } from '../ts/data/prompts.js';
import { generateText } from '../ts/generate/generate.js';
import { mergeLora } from '../ts/model/merge.js';
import { Model, OutDir, Tensor, saveTensors, type Hyperparameters, type LoraOptions } from '../ts/index.js';
import { TensorFile } from '../ts/io/tensorfile.js';
import { assertClose, assertCode } from './helpers/assert.js';
import { randomizeAdapter, toNpy } from './helpers/model.js';
import type { NpyArray } from './helpers/npy.js';
import { runPython } from './helpers/python.js';

const root = mkdtempSync(join(tmpdir(), 'litlora-use-'));
const baseDir = join(root, 'checkpoints', 'tiny');
const runDir = join(root, 'out');
const ALL: LoraOptions = { r: 4, alpha: 8, dropout: 0.05, query: true, key: false, value: true, projection: true, mlp: true, head: true };
const tokens = [1, 40, 50, 60, 70, 80, 90, 100, 110, 7];

function hyperparameters(checkpointDir: string, lora: LoraOptions): Hyperparameters {
  return {
    checkpoint_dir: checkpointDir, out_dir: runDir, precision: null, lora_r: lora.r, lora_alpha: lora.alpha,
    lora_dropout: lora.dropout, lora_query: lora.query, lora_key: lora.key, lora_value: lora.value,
    lora_projection: lora.projection, lora_mlp: lora.mlp, lora_head: lora.head, seed: 1337,
  };
}

/** A LoRA folder as `finetune lora` writes it, with random (non-zero) adapter weights. */
async function writeLoraFolder(dir: string, checkpointDir: string, lora: LoraOptions, seed: number): Promise<Map<string, Tensor>> {
  const model = await Model.load(baseDir, { lora });
  await randomizeAdapter(model, seed, 0.3);
  const tensors = await model.adapter!.tensors();
  await new OutDir(runDir).writeLoraCheckpoint(dir, {
    loraTensors: tensors, config: model.config as never, hyperparameters: hyperparameters(checkpointDir, lora),
    promptStyle: { class_path: 'litgpt.prompts.Alpaca' }, tokenizerFrom: baseDir,
  });
  return tensors;
}

async function logits(model: Model): Promise<Float32Array> {
  return (await (await model.forward(tokens)).data()) as Float32Array;
}

async function readFile(path: string): Promise<Map<string, { shape: number[]; dtype: string; raw: Uint8Array }>> {
  const f = await TensorFile.open(path);
  const out = new Map<string, { shape: number[]; dtype: string; raw: Uint8Array }>();
  try {
    for (const name of f.names) {
      const t = await f.get(name);
      const data = await t.data({ raw: true });
      out.set(name, { shape: t.shape, dtype: t.dtype, raw: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice() });
      t.dispose();
    }
  } finally {
    await f.close();
  }
  return out;
}

function capture(input?: string) {
  const out: string[] = [], err: string[] = [];
  const io: any = { out: (t: string) => out.push(t), err: (t: string) => err.push(t), cwd: root };
  if (input !== undefined) {
    const stream = new PassThrough();
    stream.end(input);
    io.input = stream;
  }
  return { io, out: () => out.join(''), err: () => err.join('') };
}

test.before(async () => {
  await initCheckpoint({ outDir: baseDir, modelName: 'pythia-14m', overrides: { n_layer: 2, n_embd: 32, n_head: 4, block_size: 256 }, seed: 5 });
  await writeLoraFolder(join(runDir, 'final'), baseDir, ALL, 1);
  // A step folder that names its base relative to the working directory, as `litgpt finetune lora
  // --checkpoint_dir checkpoints/tiny` records it.
  await writeLoraFolder(join(runDir, 'step-000002'), 'checkpoints/tiny', { ...ALL, r: 2, alpha: 4, projection: false, mlp: false, head: false }, 2);
});

test.after(() => rmSync(root, { recursive: true, force: true }));

test('auto-merge: a LoRA-only final/ loads merged, runtime mode agrees, and merge_lora\'s file loads back identically', async () => {
  const merged = await Model.load(join(runDir, 'final'));
  assert.equal(merged.source, {
    dir: join(runDir, 'final'), kind: 'lora', mode: 'merged', weights: join(baseDir, 'lit_model.pth'), base: baseDir,
    baseVia: 'absolute', adapter: join(runDir, 'final', 'lit_model.pth.lora'),
  });
  assert.is(merged.adapter!.merged, true);
  const runtime = await Model.load(join(runDir, 'final'), { mode: 'runtime' });
  assert.is(runtime.adapter!.merged, false);
  assert.is(runtime.source!.mode, 'runtime');
  const base = await Model.load(baseDir);
  assert.is(base.source!.kind, 'base');
  const [lm, lr, lb] = [await logits(merged), await logits(runtime), await logits(base)];
  assertClose(lm, lr, { rtol: 1e-5, atol: 1e-5, what: 'merged vs runtime logits' });
  assert.ok(lb.some((v, i) => Math.abs(v - lm[i]) > 1e-3), 'the adapter changes the logits');

  const result = await mergeLora(join(runDir, 'final'));
  assert.is(result.skipped, false);
  assert.is(result.method, 'stream');
  assert.is(result.mergedLayers, 1 + 2 * 4); // lm_head + per layer: qkv, proj, fc, proj
  assert.is(result.message, `Saved merged weights to '${join(runDir, 'final', 'lit_model.pth')}'`);
  const reloaded = await Model.load(join(runDir, 'final'));
  assert.is(reloaded.source!.kind, 'merged');
  assert.is(reloaded.source!.mode, 'weights');
  const lf = await logits(reloaded);
  assert.equal(Array.from(lf), Array.from(lm), 'merge_lora\'s file gives exactly the auto-merged logits');

  // Bit for bit: the file is model.mergedStateDict() (runtime model), in the base file's order, names and dtypes.
  const file = await readFile(join(runDir, 'final', 'lit_model.pth'));
  const baseFile = await readFile(join(baseDir, 'lit_model.pth'));
  assert.equal([...file.keys()], [...baseFile.keys()], 'names and order of the base');
  const expected = await runtime.mergedStateDict();
  for (const [name, t] of expected) {
    const got = file.get(name)!;
    assert.equal(got.shape, baseFile.get(name)!.shape, `${name}: shape`);
    assert.is(got.dtype, baseFile.get(name)!.dtype, `${name}: dtype`);
    const want = await t.data({ raw: true });
    assert.equal(Buffer.from(got.raw), Buffer.from(want.buffer, want.byteOffset, want.byteLength), `${name}: bytes`);
  }
  // Streamed in row blocks of 5 rows + 7 elements (blocks straddle the q / k / v parts of the fused QKV rows and
  // split lm_head unevenly), the merge writes the same bytes.
  const blocked = join(root, 'merged-in-small-blocks');
  process.env.LITLORA_MERGE_BLOCK = String(5 * 32 + 7);
  try {
    const again = await mergeLora(join(runDir, 'final'), { outDir: blocked });
    assert.is(again.skipped, false);
    assert.is(again.method, 'stream');
  } finally {
    delete process.env.LITLORA_MERGE_BLOCK;
  }
  const blockedFile = await readFile(join(blocked, 'lit_model.pth'));
  assert.equal([...blockedFile.keys()], [...file.keys()]);
  for (const [name, t] of file) assert.equal(Buffer.from(blockedFile.get(name)!.raw), Buffer.from(t.raw), `${name}: bytes in small blocks`);
  // Running merge_lora again is litgpt's no-op.
  const again = await mergeLora(join(runDir, 'final'));
  assert.is(again.skipped, true);
  assert.is(again.message, 'LoRA weights have already been merged in this checkpoint.');
  // In runtime mode a merged folder loads base + adapter again.
  const rt2 = await Model.load(join(runDir, 'final'), { mode: 'runtime' });
  assert.is(rt2.source!.adapter, join(runDir, 'final', 'lit_model.pth.lora'));
  assert.equal(Array.from(await logits(rt2)), Array.from(lr), 'runtime from a merged folder = runtime from the LoRA folder');
  for (const m of [merged, runtime, base, reloaded, rt2]) m.dispose();
});

test('merge_lora\'s file loads into a plain PyTorch GPT with strict=True and gives the same logits', async () => {
  const model = await Model.load(join(runDir, 'final'));
  const ours = await logits(model);
  const { outputs } = runPython(`import sys, torch, json, yaml
sys.path.insert(0, ${JSON.stringify(join(packageRoot, 'test', 'reference'))})
import gpt_reference as ref
sd = torch.load(${JSON.stringify(join(runDir, 'final', 'lit_model.pth'))}, weights_only=True)
cfg = yaml.safe_load(open(${JSON.stringify(join(runDir, 'final', 'model_config.yaml'))}))
model = ref.GPT(ref.Config(**cfg))            # no lora_* fields: a plain GPT
ref.load_plain(model, sd)                     # strict=True
with torch.no_grad():
    out("logits", model(torch.tensor([${tokens.join(', ')}]).view(1, -1)).numpy())
`);
  assertClose(ours, outputs.logits.data as Float32Array, { rtol: 1e-4, atol: 1e-5, what: 'PyTorch logits of the merged file' });
  model.dispose();
});

test('a step folder loads by auto-merge; its relative checkpoint_dir resolves against cwd and then the folder', async () => {
  const step = join(runDir, 'step-000002');
  const m = await Model.load(step, { cwd: root });
  assert.is(m.source!.base, baseDir);
  assert.is(m.source!.baseVia, 'cwd');
  assert.equal(m.adapter!.targets, ['query', 'value']);
  assert.is(m.adapter!.r, 2);
  const ref = await Model.load(step, { base: baseDir, mode: 'runtime' });
  assert.is(ref.source!.baseVia, 'option');
  assertClose(await logits(m), await logits(ref), { rtol: 1e-5, atol: 1e-5, what: 'step folder merged vs runtime' });
  // From another working directory the path is not found there, nor under checkpoints/, nor next to the folder.
  await assertCode(() => Model.load(step, { cwd: tmpdir() }), 'ERR_CHECKPOINT_MISSING',
    new RegExp(`${join(step, 'hyperparameters.yaml').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[\\s\\S]*Tried:[\\s\\S]*${join(tmpdir(), 'checkpoints/tiny')}`));
  m.dispose();
  ref.dispose();
});

test('a folder whose base moved: a clear error naming hyperparameters.yaml and every path tried; { base } fixes it', async () => {
  const moved = join(root, 'checkpoints', 'tiny-moved');
  renameSync(baseDir, moved);
  try {
    let error: any;
    try { await Model.load(join(runDir, 'final'), { mode: 'runtime', cwd: root }); } catch (e) { error = e; }
    assert.ok(error, 'loading must fail');
    assert.is(error.code, 'ERR_CHECKPOINT_MISSING');
    assert.match(error.message, join(runDir, 'final', 'hyperparameters.yaml'));
    assert.match(error.message, `checkpoint_dir: ${baseDir}`);
    assert.match(error.message, `Tried:\n  ${baseDir}`);
    assert.match(error.message, /pass the base explicitly/);
    const fixed = await Model.load(join(runDir, 'final'), { base: moved, mode: 'runtime' });
    assert.is(fixed.source!.base, moved);
    fixed.dispose();
    const cli = capture();
    assert.is(await runCli(['merge_lora', join(runDir, 'final'), '--force'], cli.io), 1);
    assert.match(cli.err(), /ERR_CHECKPOINT_MISSING[\s\S]*hyperparameters\.yaml/);
  } finally {
    renameSync(moved, baseDir);
  }
});

test('a merge_lora that fails half-way (a base weight of the wrong shape) leaves the earlier output intact and no temp file', async () => {
  const badBase = join(root, 'checkpoints', 'tiny-bad');
  cpSync(baseDir, badBase, { recursive: true });
  const f = await TensorFile.open(join(baseDir, 'lit_model.pth'));
  const tensors = new Map<string, Tensor>();
  for (const name of f.names) tensors.set(name, await f.get(name));
  await f.close();
  // A LoRA target late in the file, one row short: the streamed merge meets it after writing most of the file.
  const late = 'transformer.h.1.mlp.proj.weight';
  assert.equal(tensors.get(late)!.shape, [32, 128]);
  tensors.set(late, Tensor.from(new Float32Array(31 * 128), [31, 128]));
  await saveTensors(join(badBase, 'lit_model.pth'), tensors);
  const out = join(root, 'merged-then-failed');
  await mergeLora(join(runDir, 'final'), { outDir: out });
  const before = readFileSync(join(out, 'lit_model.pth'));
  await assertCode(() => mergeLora(join(runDir, 'final'), { outDir: out, force: true, pretrainedCheckpointDir: badBase }), 'ERR_SHAPE',
    /transformer\.h\.1\.mlp\.proj\.weight has shape \[31, 128\]/);
  assert.ok(readFileSync(join(out, 'lit_model.pth')).equals(before), 'the earlier merged file is unchanged');
  assert.equal(readdirSync(out).filter((name) => name.startsWith('.')), [], 'no temp file left');
});

test('merge_lora CLI: --out_dir makes a loadable full folder; skip unless --force; --precision rounds once; mismatches fail cleanly', async () => {
  const outDir = join(runDir, 'final_merged');
  const cli = capture();
  assert.is(await runCli(['merge_lora', relative(root, join(runDir, 'step-000002')), '--out_dir', relative(root, outDir)], cli.io), 0, cli.err());
  assert.match(cli.out(), `Saved merged weights to '${join(outDir, 'lit_model.pth')}'`);
  assert.equal(readdirSync(outDir).sort(), ['generation_config.json', 'lit_model.pth', 'model_config.yaml', 'prompt_style.yaml',
    'tokenizer.json', 'tokenizer_config.json']);
  const full = await Model.load(outDir);
  assert.is(full.source!.kind, 'base');
  const auto = await Model.load(join(runDir, 'step-000002'), { cwd: root });
  assert.equal(Array.from(await logits(full)), Array.from(await logits(auto)));
  full.dispose();
  auto.dispose();
  const skip = capture();
  assert.is(await runCli(['merge_lora', join(runDir, 'step-000002'), '--out_dir', outDir], skip.io), 0);
  assert.match(skip.out(), /already been merged/);
  // --precision bf16-true: every tensor bfloat16, the LoRA weights rounded once from the float32 merge.
  const bf = capture();
  assert.is(await runCli(['merge_lora', join(runDir, 'step-000002'), '--out_dir', outDir, '--force', '--precision', 'bf16-true'], bf.io), 0, bf.err());
  const file = await readFile(join(outDir, 'lit_model.pth'));
  assert.ok([...file.values()].every((t) => t.dtype === 'bfloat16'));
  const wte = file.get('transformer.wte.weight')!;
  const tf = await TensorFile.open(join(baseDir, 'lit_model.pth'));
  const rounded = await (await tf.get('transformer.wte.weight')).to({ dtype: 'bfloat16' });
  const want = await rounded.data({ raw: true });
  await tf.close();
  assert.equal(Buffer.from(wte.raw), Buffer.from(want.buffer, want.byteOffset, want.byteLength));
  // An adapter that does not fit its hyperparameters.yaml: an error naming the tensors, no output left behind.
  const bad = join(runDir, 'step-000004');
  await writeLoraFolder(bad, baseDir, { ...ALL, r: 2, projection: false, mlp: false, head: false }, 3);
  await writeHyperparameters(join(bad, 'hyperparameters.yaml'), hyperparameters(baseDir, { ...ALL, r: 2, mlp: false, head: false, projection: true }));
  await assertCode(() => mergeLora(bad), 'ERR_CHECKPOINT_FORMAT', /missing transformer\.h\.0\.attn\.proj\.lora_A/);
  assert.equal(readdirSync(bad).filter((f) => f.startsWith('.') || f === 'lit_model.pth'), [], 'no output or temp file left');
  await assertCode(() => Model.load(bad), 'ERR_CHECKPOINT_FORMAT', /lit_model\.pth\.lora does not fit/);
  await assertCode(() => mergeLora(baseDir), 'ERR_CHECKPOINT_MISSING', /lit_model\.pth\.lora/);
  const badFlag = capture();
  assert.is(await runCli(['merge_lora', bad, '--precision', 'fp8'], badFlag.io), 2);
});

test('generate and chat work on base, LoRA-only and merged folders, streaming text and naming the base', async () => {
  const step = join(runDir, 'step-000002');
  for (const dir of [baseDir, step, join(runDir, 'final')]) {
    const cli = capture();
    const code = await runCli(['generate', dir, '--prompt', 'Reverse: abc', '--temperature', '0', '--max_new_tokens', '8'], cli.io);
    assert.is(code, 0, cli.err());
    assert.match(cli.err(), /Time for inference 1: .* tokens\/sec/);
    if (dir === step) assert.match(cli.err(), /Merged the LoRA weights into the base model .* in memory/);
    // Greedy text = the library's greedy text for the same folder.
    const model = await Model.load(dir, { cwd: root });
    const style = existsSync(join(dir, 'prompt_style.yaml')) ? loadPromptStyle(dir) : PromptStyle.fromConfig({ name: 'pythia-14m' });
    const expected = await generateText(model, Tokenizer.fromDir(dir), 'Reverse: abc', { temperature: 0, maxNewTokens: 8, promptStyle: style });
    assert.is(cli.out(), `${expected.text}\n`);
    model.dispose();
  }
  const chat = capture('Reverse: abc\nUppercase: dog\n\n');
  assert.is(await runCli(['chat', step, '--temperature', '0', '--max_new_tokens', '6'], chat.io), 0, chat.err());
  const replies = chat.out().split('>> Reply: ');
  assert.is(replies.length, 3, chat.out());
  assert.match(chat.out(), /^>> Prompt: Reverse: abc\n>> Reply: /);
});

test.run();
