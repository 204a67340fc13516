// GGUF metadata fidelity, LoRA adapters and bad input: every key and value convert_to_gguf writes equals what
// llama.cpp's convert_hf_to_gguf.py writes for the Hugging Face folder of the same model (test/reference/
// gguf_expected.py: the script's logic with transformers' AutoTokenizer and gguf-py's SpecialVocab), read back
// by gguf-py's GGUFReader; the adapter GGUF over the base GGUF decodes in llama.cpp as litlora's runtime LoRA;
// unsupported models and tokenizers are refused with ERR_GGUF_UNSUPPORTED before any file is written; a killed
// export leaves nothing under the final name.
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packageRoot } from '../ts/addon_loader.js';
import { convertToGguf } from '../ts/gguf/convert.js';
import { convertLoraToGguf } from '../ts/gguf/lora.js';
import { addVocab, ggufVocab } from '../ts/gguf/vocab.js';
import { GGML_TYPE, GgufMetadata, writeGguf } from '../ts/gguf/writer.js';
import { convertFromLitgpt } from '../ts/interop/convert_from_litgpt.js';
import { Model, OutDir, normalizeLora, readConfig } from '../ts/index.js';
import { runCli } from '../ts/cli/main.js';
import { assertCode } from './helpers/assert.js';
import { litloraGreedy, llamaCppGreedy, makeGgufModels, QWEN2_CHAT_TEMPLATE, TOKENIZERS, type GgufTestFamily } from './helpers/gguf.js';
import { randomizeAdapter } from './helpers/model.js';
import { runPython } from './helpers/python.js';
import { tempFolders } from './helpers/temp.js';

const temp = tempFolders();
test.after(() => temp.removeAll());

const FAMILIES: GgufTestFamily[] = ['llama', 'qwen2', 'gpt_neox'];
const ARCH: Record<GgufTestFamily, string> = { llama: 'llama', qwen2: 'qwen2', qwen3: 'qwen3', gpt_neox: 'gptneox' };
const PRE: Record<GgufTestFamily, string> = { llama: 'llama-bpe', qwen2: 'qwen2', qwen3: 'qwen2', gpt_neox: 'gpt-2' };
let root = '';
let dirs: Record<string, string> = {};

test.before(async () => {
  root = temp.make('gguf-md');
  dirs = await makeGgufModels(root, FAMILIES);
});

const REF = JSON.stringify(join(packageRoot, 'test', 'reference'));

test('metadata: every key and value as convert_hf_to_gguf.py writes them for the same model (f32 and q8_0)', async () => {
  for (const family of FAMILIES) {
    const hf = join(root, `${family}-hf`);
    await convertFromLitgpt(dirs[family], hf);
    for (const [outtype, fileType] of [['f32', 0], ['q8_0', 7]] as const) {
      const out = join(root, `${family}-${outtype}.gguf`);
      await convertToGguf(dirs[family], out, { outtype });
      const r = runPython(`
import json, sys
sys.path.insert(0, ${REF})
import gguf_expected as g
exp = g.expected(${JSON.stringify(hf)}, ${JSON.stringify(family)}, ${fileType})
got, tensors = g.read(${JSON.stringify(out)})
bad = []
for k in sorted(set(exp) | set(got)):
    if k in ("general.name", "tokenizer.ggml.pre"):
        continue
    a, b = exp.get(k, "<missing>"), got.get(k, "<missing>")
    if isinstance(a, float) and isinstance(b, float):
        ok = abs(a - b) <= 1e-6 * abs(a)
    else:
        ok = a == b
    if not ok:
        bad.append(f"{k}: expected {str(a)[:80]}, got {str(b)[:80]}")
print(json.dumps({"bad": bad, "pre": got.get("tokenizer.ggml.pre"), "name": got.get("general.name"),
                  "template": got.get("tokenizer.chat_template"), "tensors": tensors, "keys": len(got)}))`);
      const res = JSON.parse(r.stdout.trim().split('\n').pop()!);
      assert.equal(res.bad, [], `${family} ${outtype}`);
      assert.is(res.pre, PRE[family]);
      assert.ok(res.keys >= 15, `${family}: ${res.keys} keys`);
      const names = (res.tensors as [string, number[], string][]).map(([n]) => n);
      assert.ok(names.includes('token_embd.weight') && names.includes('blk.1.ffn_down.weight'), names.join(','));
      if (family === 'qwen2') assert.is(res.template, QWEN2_CHAT_TEMPLATE);
      if (family === 'llama') assert.ok(names.includes('rope_freqs.weight') && names.includes('blk.0.attn_q.weight') && !names.includes('output.weight'));
      if (family === 'gpt_neox') assert.ok(names.includes('blk.0.attn_qkv.bias') && names.includes('output.weight'));
    }
  }
});

/** A LoRA folder on the base `dir` with random (nonzero) A and B. */
async function loraFolder(family: GgufTestFamily, lora: Record<string, unknown>): Promise<string> {
  const out = join(root, `${family}-lora-${Object.keys(lora).join('-')}`);
  const model = await Model.load(dirs[family], { lora });
  try {
    await randomizeAdapter(model, 11, 0.5);
    const s = normalizeLora(lora);
    await new OutDir(join(root, 'lit')).writeLoraCheckpoint(out, {
      loraTensors: await model.adapter!.tensors(), config: await readConfig(join(dirs[family], 'model_config.yaml')),
      hyperparameters: {
        checkpoint_dir: dirs[family], lora_r: s.r, lora_alpha: s.alpha, lora_dropout: 0, lora_query: s.query, lora_key: s.key,
        lora_value: s.value, lora_projection: s.projection, lora_mlp: s.mlp, lora_head: s.head,
      },
      tokenizerFrom: dirs[family],
    });
  } finally {
    model.dispose();
  }
  return out;
}

const PROMPTS = [[5, 9, 33, 100], [1000, 7, 1999, 12, 13, 14], [42]];

for (const family of FAMILIES) {
  test(`${family}: the LoRA adapter GGUF over the base GGUF decodes in llama.cpp as litlora's runtime LoRA`, async () => {
    const lora = await loraFolder(family, { r: 4, alpha: 8, query: true, key: true, value: true, projection: true, mlp: true, head: false });
    const base = join(root, `${family}-base.gguf`), adapter = join(root, `${family}-adapter.gguf`);
    await convertToGguf(dirs[family], base, { outtype: 'f32' });
    const r = await convertLoraToGguf(lora, adapter, { outtype: 'f32' });
    assert.is(r.architecture, ARCH[family]);
    const py = runPython(`
import json, sys
sys.path.insert(0, ${REF})
import gguf_expected as g
got, tensors = g.read(${JSON.stringify(adapter)})
print(json.dumps({"type": got["general.type"], "adapter": got["adapter.type"], "alpha": got["adapter.lora.alpha"],
                  "arch": got["general.architecture"], "tensors": tensors}))`);
    const md = JSON.parse(py.stdout.trim().split('\n').pop()!);
    assert.equal([md.type, md.adapter, md.alpha, md.arch], ['adapter', 'lora', 8, ARCH[family]]);
    const names = (md.tensors as [string, number[], string][]).map(([n]) => n);
    if (family === 'gpt_neox') assert.ok(names.includes('blk.0.attn_qkv.weight.lora_a'), names.join(','));
    else assert.ok(names.includes('blk.0.attn_q.weight.lora_b') && names.includes('blk.1.attn_v.weight.lora_a'), names.join(','));
    const want = await litloraGreedy(lora, PROMPTS, 12, { mode: 'runtime' });
    const plain = await llamaCppGreedy(base, PROMPTS, 12);
    assert.not.equal(plain, want, 'the adapter changes the greedy tokens');
    assert.equal(await llamaCppGreedy(base, PROMPTS, 12, [adapter]), want);
    // A LoRA-only folder exported whole (merged on the fly) decodes the same.
    const merged = join(root, `${family}-merged.gguf`);
    const m = await convertToGguf(lora, merged, { outtype: 'f32' });
    assert.ok(m.merged);
    assert.equal(await llamaCppGreedy(merged, PROMPTS, 12), want);
  });
}

test('an adapter for another base: --base (a GGUF or a litgpt folder) of another architecture or shape is ERR_ADAPTER_MISMATCH and writes nothing', async () => {
  const lora = await loraFolder('llama', { r: 2, alpha: 4, query: true, value: true });
  const llamaBase = join(root, 'match-llama.gguf'), qwenBase = join(root, 'match-qwen2.gguf');
  await convertToGguf(dirs.llama, llamaBase, { outtype: 'f16' });
  await convertToGguf(dirs.qwen2, qwenBase, { outtype: 'f16' });
  const shallow = join(root, 'match-shallow');
  cpSync(dirs.llama, shallow, { recursive: true });
  const yaml = readFileSync(join(shallow, 'model_config.yaml'), 'utf8');
  const layers = Number(/^n_layer: (\d+)$/m.exec(yaml)![1]);
  writeFileSync(join(shallow, 'model_config.yaml'), yaml.replace(/^n_layer: \d+$/m, `n_layer: ${layers + 1}`));
  const out = join(root, 'match-adapter.gguf');
  const cases: [string, RegExp][] = [
    [qwenBase, new RegExp(`general\\.architecture = llama\\), but the base ${qwenBase} has general\\.architecture = qwen2`)],
    [shallow, new RegExp(`llama\\.block_count = ${layers}\\), but the base ${shallow} has llama\\.block_count = ${layers + 1}`)],
  ];
  for (const [base, message] of cases) {
    await assertCode(() => convertLoraToGguf(lora, out, { base }), 'ERR_ADAPTER_MISMATCH', message);
    assert.not.ok(existsSync(out), base);
  }
  let err = '';
  const io = { out: () => {}, err: (t: string) => { err += t; }, cwd: root };
  assert.is(await runCli(['convert_lora_to_gguf', lora, out, '--base', qwenBase], io), 1);
  assert.match(err, /error \[ERR_ADAPTER_MISMATCH\]/);
  assert.not.ok(existsSync(out));
  // Its own base, as a GGUF or as the folder, passes.
  await convertLoraToGguf(lora, out, { base: llamaBase });
  assert.ok(existsSync(out));
  await convertLoraToGguf(lora, out, { base: dirs.llama, force: true });
  assert.equal(readdirSync(root).filter((f) => f.startsWith('.match-')), []);
});

test('CLI: convert_to_gguf writes the same file as the API; an existing file needs --force (ERR_EXISTS)', async () => {
  const out = join(root, 'cli.gguf');
  let text = '', err = '';
  const io = { out: (t: string) => { text += t; }, err: (t: string) => { err += t; }, cwd: root };
  assert.is(await runCli(['convert_to_gguf', dirs.llama, out, '--outtype', 'q8_0'], io), 0, err);
  assert.ok(text.includes(`Saved the GGUF model to ${out}`), text);
  const api = join(root, 'api.gguf');
  await convertToGguf(dirs.llama, api, { outtype: 'q8_0' });
  assert.ok(readFileSync(out).equals(readFileSync(api)));
  assert.is(await runCli(['convert_to_gguf', dirs.llama, out], io), 1);
  assert.match(err, /litlora convert_to_gguf: error \[ERR_EXISTS\]/);
});

test('bad input: an unsupported tokenizer or model is refused with ERR_GGUF_UNSUPPORTED and writes nothing', async () => {
  const cases: [string, (dir: string) => void, RegExp][] = [
    ['spm', (d) => { for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(TOKENIZERS, 'llama2', f), join(d, f)); }, /byte-fallback, SentencePiece-style/],
    ['regex', (d) => {
      const t = JSON.parse(readFileSync(join(d, 'tokenizer.json'), 'utf8'));
      t.pre_tokenizer.pretokenizers[0].pattern.Regex = '\\p{L}+|\\s+';
      writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(t));
    }, /split regex .* is not one llama\.cpp implements/],
    ['notok', (d) => { writeFileSync(join(d, 'tokenizer.json'), JSON.stringify({ model: { type: 'Unigram', vocab: [] } })); }, /a Unigram tokenizer/],
    ['vocab', (d) => {
      const t = JSON.parse(readFileSync(join(d, 'tokenizer.json'), 'utf8'));
      t.added_tokens.push({ id: 9000, content: '<|extra|>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false });
      writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(t));
    }, /token id 9000, but the model's embedding has 2505 rows/],
    ['moe', (d) => {  // a Mixtral (LLaMAMoE): llama.cpp's expert tensors (ffn_*_exps) are not written yet
      const yaml = readFileSync(join(d, 'model_config.yaml'), 'utf8').replace(/mlp_class_name: \w+/, 'mlp_class_name: LLaMAMoE')
        .replace(/\nn_expert: 0\n/, '\nn_expert: 4\n').replace(/\nn_expert_per_token: 0\n/, '\nn_expert_per_token: 2\n');
      writeFileSync(join(d, 'model_config.yaml'), yaml);
    }, /litlora does not write MixtralForCausalLM models to GGUF yet/],
    ['arch', (d) => {
      const yaml = readFileSync(join(d, 'model_config.yaml'), 'utf8').replace(/mlp_class_name: \w+/, 'mlp_class_name: GemmaMLP');
      writeFileSync(join(d, 'model_config.yaml'), yaml);
    }, /./],
  ];
  for (const [name, damage, message] of cases) {
    const d = join(root, `bad-${name}`);
    cpSync(dirs.llama, d, { recursive: true });
    damage(d);
    const out = join(root, `bad-${name}.gguf`);
    await assertCode(() => convertToGguf(d, out, { outtype: 'f32' }), name === 'arch' ? 'ERR_CONFIG' : 'ERR_GGUF_UNSUPPORTED', message);
    assert.not.ok(existsSync(out), name);
  }
  assert.equal(readdirSync(root).filter((f) => f.startsWith('.bad-')), []);
});

test('an export killed mid-write leaves no file under the final name; the next export replaces its partial', async () => {
  const out = join(root, 'killed.gguf');
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', `
import('${join(packageRoot, 'ts', 'gguf', 'writer.ts')}').then(async (w) => {
  const md = new w.GgufMetadata().string('general.architecture', 'llama');
  const tensors = Array.from({ length: 64 }, (_, i) => ({ name: 't' + i, shape: [256, 256], type: w.GGML_TYPE.F32,
    data: async () => { if (i === 3) { process.stdout.write('mid\\n'); await new Promise((r) => setTimeout(r, 60000)); } return new Uint8Array(256 * 256 * 4); } }));
  await w.writeGguf(${JSON.stringify(out)}, md, tensors);
});`], { cwd: packageRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout!.on('data', (d) => { if (String(d).includes('mid')) resolve(); }));
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  assert.not.ok(existsSync(out));
  const partials = readdirSync(root).filter((f) => f.startsWith('.killed.gguf.tmp-'));
  assert.is(partials.length, 1, 'the killed writer left its partial under a hidden temporary name');
  await convertToGguf(dirs.llama, out, { outtype: 'f32' });
  assert.ok(existsSync(out));
  assert.equal(readdirSync(root).filter((f) => f.startsWith('.killed.gguf.tmp-')), [], 'the next export removed the dead writer\'s partial');
});

test('header strings: UTF-8 of 1 to 4 bytes, a lone surrogate and a long string read back by gguf-py as written', async () => {
  const strings = ['', 'plain', 'Ġhello Ċ', 'ü ß', '€ 中文', '😀 emoji 𝄞', 'lone \ud800 surrogate', 'tail \udc00', 'é'.repeat(400_000)];
  const md = new GgufMetadata().string('general.architecture', 'llama');
  strings.forEach((s, i) => md.string(`test.s${i}`, s));
  md.set('test.list', { type: 'string[]', value: strings });
  md.set('test.big', { type: 'u64', value: 2 ** 40 + 7 });
  const out = join(root, 'strings.gguf');
  await writeGguf(out, md, [{ name: 't', shape: [2, 32], type: GGML_TYPE.F32, data: async () => new Uint8Array(256) }]);
  const r = runPython(`
import json, sys
sys.path.insert(0, ${REF})
import gguf_expected as g
got, tensors = g.read(${JSON.stringify(out)})
print(json.dumps({"fields": {k: v for k, v in got.items() if k.startswith("test.")}, "tensors": tensors}))`);
  const got = JSON.parse(r.stdout.trim().split('\n').pop()!);
  // What UTF-8 holds of each string: a lone surrogate becomes U+FFFD, as Buffer.from and TextEncoder write it.
  const expected = strings.map((s) => Buffer.from(s, 'utf8').toString('utf8'));
  strings.forEach((_, i) => assert.is(got.fields[`test.s${i}`], expected[i], `test.s${i}`));
  assert.equal(got.fields['test.list'], expected);
  assert.is(got.fields['test.big'], 2 ** 40 + 7);
  assert.equal(got.tensors, [['t', [32, 2], 'F32']]);
});

test('a vocabulary of Qwen2\'s size (151,936 rows: ~151.6k tokens and ~149k merges) is written as convert_hf_to_gguf.py writes it', async () => {
  // The llama3 fixture grown to Qwen2's size: each new token an earlier one and one byte-level character, with
  // its merge; the special tokens moved past them (ids 151643…, as Qwen2's).
  const dir = temp.make('gguf-bigvocab');
  copyFileSync(join(TOKENIZERS, 'llama3', 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  runPython(`
import json
t = json.load(open(${JSON.stringify(join(TOKENIZERS, 'llama3', 'tokenizer.json'))}))
vocab, merges = t["model"]["vocab"], t["model"]["merges"]
target = 151643
singles = [k for k in sorted(vocab, key=vocab.get) if len(k) == 1]
for tok in sorted(vocab, key=vocab.get):
    for c in singles:
        if len(vocab) == target:
            break
        if tok + c not in vocab:
            vocab[tok + c] = len(vocab)
            merges.append([tok, c])
moved = {}
for i, a in enumerate(t["added_tokens"]):
    moved[a["id"]] = target + i
    a["id"] = target + i
def remap(node):
    if isinstance(node, dict):
        if isinstance(node.get("ids"), list):
            node["ids"] = [moved.get(i, i) for i in node["ids"]]
        for v in node.values():
            remap(v)
    elif isinstance(node, list):
        for v in node:
            remap(v)
remap(t["post_processor"])
json.dump(t, open(${JSON.stringify(join(dir, 'tokenizer.json'))}, "w"), ensure_ascii=False)`);
  const vocab = ggufVocab(dir, 151936, {});
  assert.is(vocab.tokens.length, 151936);
  const md = new GgufMetadata().string('general.architecture', 'qwen2');
  addVocab(md, vocab);
  const out = join(dir, 'vocab.gguf');
  await writeGguf(out, md, [{ name: 't', shape: [1, 32], type: GGML_TYPE.F32, data: async () => new Uint8Array(128) }]);
  const r = runPython(`
import json, sys
sys.path.insert(0, ${REF})
import gguf, gguf_expected as g
got, _ = g.read(${JSON.stringify(out)})
tokens, types = g.vocab_base(${JSON.stringify(dir)}, 151936)
special = gguf.SpecialVocab(${JSON.stringify(dir)}, load_merges=True)
assert len(special.merges) > 148000, len(special.merges)
assert got["tokenizer.ggml.tokens"] == tokens, "tokens"
assert got["tokenizer.ggml.token_type"] == types, "token types"
assert got["tokenizer.ggml.merges"] == list(special.merges), "merges"
assert got["tokenizer.ggml.bos_token_id"] == special.special_token_ids["bos"] == 151643, "bos"
print(len(tokens), len(special.merges))`);
  assert.match(r.stdout, /^151936 1\d{5}\n$/);
});

test.run();
