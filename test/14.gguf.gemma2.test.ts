// convert_to_gguf of Gemma 2 (llama.cpp's gemma2): a tiny transformers Gemma2 with softcapping and a 4-token window
// on its even layers, the SentencePiece fixture without its dummy prefix (Gemma's tokenizers add none) → GGUF that
// llama.cpp greedy-decodes to litlora's tokens (norms written + 1, the head read from the embedding); what its gemma2
// graph cannot compute (another query scale, a dummy prefix) is refused with ERR_GGUF_UNSUPPORTED.
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packageRoot } from '../ts/addon_loader.js';
import { convertToGguf } from '../ts/gguf/convert.js';
import { convertToLitgpt } from '../ts/interop/convert_to_litgpt.js';
import { assertCode } from './helpers/assert.js';
import { litloraGreedy, llamaCppGreedy, TOKENIZERS } from './helpers/gguf.js';
import { runPython } from './helpers/python.js';
import { tempFolders } from './helpers/temp.js';

const temp = tempFolders();
test.after(() => temp.removeAll());

/** A protobuf varint. */
function varint(n: number): number[] {
  const out: number[] = [];
  do {
    out.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n = Math.floor(n / 128);
  } while (n > 0);
  return out;
}

/** The SentencePiece ModelProto `bytes` with normalizer_spec.add_dummy_prefix (field 3.3) set to false. */
function withoutDummyPrefix(bytes: Uint8Array): Uint8Array {
  const out: number[] = [];
  let pos = 0;
  const read = () => {
    let n = 0, shift = 1;
    for (;;) {
      const b = bytes[pos++];
      n += (b & 0x7f) * shift;
      shift *= 128;
      if (b < 0x80) return n;
    }
  };
  while (pos < bytes.length) {
    const start = pos;
    const key = read();
    const wire = key & 7;
    if (wire === 0) read();
    else if (wire === 5) pos += 4;
    else if (wire === 1) pos += 8;
    else {
      const len = read();
      if (key >>> 3 === 3) {
        // normalizer_spec: its fields without add_dummy_prefix, then add_dummy_prefix = 0.
        const inner = bytes.subarray(pos, pos + len);
        const kept: number[] = [];
        let p = 0;
        while (p < inner.length) {
          const s = p;
          let k = 0, sh = 1;
          for (;;) { const b = inner[p++]; k += (b & 0x7f) * sh; sh *= 128; if (b < 0x80) break; }
          const w = k & 7;
          if (w === 0) { while (inner[p++] >= 0x80); } else if (w === 5) p += 4; else if (w === 1) p += 8;
          else { let l = 0, s2 = 1; for (;;) { const b = inner[p++]; l += (b & 0x7f) * s2; s2 *= 128; if (b < 0x80) break; } p += l; }
          if (k >>> 3 !== 3) kept.push(...inner.subarray(s, p));
        }
        kept.push(0x18, 0x00);
        out.push(...varint(key), ...varint(kept.length), ...kept);
        pos += len;
        continue;
      }
      pos += len;
    }
    out.push(...bytes.subarray(start, pos));
  }
  return new Uint8Array(out);
}

let dir = '';

test.before(async () => {
  dir = join(temp.make('gguf-gemma2'), 'gemma2');
  const ref = JSON.stringify(join(packageRoot, 'test', 'reference'));
  runPython(`sys.path.insert(0, ${ref})\nimport make_hf_model as m\nm.save("gemma2", ${JSON.stringify(dir)}, seed=9, vocab_size=800)`);
  // llama.cpp scales Gemma 2's queries by 1/sqrt(head_dim) (its 2B and 9B); the weights do not depend on it.
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, query_pre_attn_scalar: config.head_dim }, null, 2));
  const spm = join(TOKENIZERS, 'spm');
  writeFileSync(join(dir, 'tokenizer.model'), withoutDummyPrefix(readFileSync(join(spm, 'tokenizer.model'))));
  copyFileSync(join(spm, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  await convertToLitgpt(dir);
});

test('gemma2: the f32 GGUF greedy-decodes in llama.cpp as litlora (softcaps, even-layer window, norms + 1)', async () => {
  const out = join(dir, 'model-f32.gguf');
  const r = await convertToGguf(dir, out, { outtype: 'f32' });
  assert.is(r.architecture, 'gemma2');
  const py = runPython(`
import json
from gguf import GGUFReader
r = GGUFReader(${JSON.stringify(out)})
v = lambda k: r.fields[k].parts[-1].tolist()[0]
names = [t.name for t in r.tensors]
norm = next(t for t in r.tensors if t.name == 'blk.0.post_ffw_norm.weight')
print(json.dumps({"cap": [round(v('gemma2.attn_logit_softcapping'), 4), round(v('gemma2.final_logit_softcapping'), 4)],
  "window": v('gemma2.attention.sliding_window'), "space": bool(v('tokenizer.ggml.add_space_prefix')),
  "output": 'output.weight' in names, "post": [n for n in names if n.startswith('blk.0.') and 'norm' in n],
  "norm_mean": float(np.array(norm.data).mean())}))`);
  const md = JSON.parse(py.stdout.trim().split('\n').pop()!);
  assert.equal([md.cap, md.window, md.space, md.output], [[2, 3], 4, false, false]);
  assert.equal(md.post.sort(), ['blk.0.attn_norm.weight', 'blk.0.ffn_norm.weight', 'blk.0.post_attention_norm.weight', 'blk.0.post_ffw_norm.weight']);
  assert.ok(md.norm_mean > 1.5, `norms are written + 1 (HF's are about 1): mean ${md.norm_mean}`);
  const prompts = [[1, 716, 780, 362, 387, 309, 274, 726], [1, 260, 558, 416, 295, 337], [1], [1, 300, 301, 302, 303, 304, 305, 306, 307]];
  const want = await litloraGreedy(dir, prompts, 12);
  assert.equal(await llamaCppGreedy(out, prompts, 12), want);
});

test('gemma2: another query scale or a tokenizer with a dummy prefix is ERR_GGUF_UNSUPPORTED and writes nothing', async () => {
  const scaled = join(temp.make('gguf-gemma2-bad'), 'scaled');
  runPython(`import shutil; shutil.copytree(${JSON.stringify(dir)}, ${JSON.stringify(scaled)}, ignore=shutil.ignore_patterns('*.gguf'))`);
  const yaml = readFileSync(join(scaled, 'model_config.yaml'), 'utf8');
  writeFileSync(join(scaled, 'model_config.yaml'), yaml.replace(/^attention_scores_scalar: .*$/m, 'attention_scores_scalar: 24'));
  await assertCode(() => convertToGguf(scaled, join(scaled, 'out.gguf')), 'ERR_GGUF_UNSUPPORTED', /queries scaled by 1\/sqrt\(24\) instead of 1\/sqrt\(head_size 32\)/);
  assert.not.ok(existsSync(join(scaled, 'out.gguf')));
  writeFileSync(join(scaled, 'model_config.yaml'), yaml);
  copyFileSync(join(TOKENIZERS, 'spm', 'tokenizer.model'), join(scaled, 'tokenizer.model'));
  await assertCode(() => convertToGguf(scaled, join(scaled, 'out.gguf')), 'ERR_GGUF_UNSUPPORTED', /adds a dummy prefix/);
  assert.not.ok(existsSync(join(scaled, 'out.gguf')));
});

test.run();
