// convert_to_gguf of a Llama-family folder whose tokenizer is a SentencePiece tokenizer.model (no tokenizer.json):
// the vocabulary as _set_vocab_sentencepiece writes it (tokenizer.ggml.model "llama", scores, token types), checked
// by llama.cpp itself: its tokenization equals the SentencePiece library's ids (test/fixtures/tokenizers/spm,
// test/reference/make_sentencepiece_fixture.py) and its greedy tokens equal litlora's.
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packageRoot } from '../ts/addon_loader.js';
import { convertToGguf } from '../ts/gguf/convert.js';
import { convertToLitgpt } from '../ts/interop/convert_to_litgpt.js';
import { litloraGreedy, llamaCppGreedy, llamaCppTokenize, TOKENIZERS } from './helpers/gguf.js';
import { runPython } from './helpers/python.js';
import { tempFolders } from './helpers/temp.js';

const temp = tempFolders();
test.after(() => temp.removeAll());

const SPM = join(TOKENIZERS, 'spm');
const expected = JSON.parse(readFileSync(join(SPM, 'expected.json'), 'utf8')) as { vocab_size: number; cases: { text: string; ids: number[] }[] };
let dir = '';

test.before(async () => {
  dir = join(temp.make('gguf-spm'), 'llama-spm');
  const ref = JSON.stringify(join(packageRoot, 'test', 'reference'));
  runPython(`sys.path.insert(0, ${ref})\nimport make_hf_model as m\nm.save("llama", ${JSON.stringify(dir)}, seed=7, vocab_size=${expected.vocab_size})`);
  for (const f of ['tokenizer.model', 'tokenizer_config.json']) copyFileSync(join(SPM, f), join(dir, f));
  await convertToLitgpt(dir);
});

test('a SentencePiece tokenizer.model becomes llama.cpp\'s "llama" vocabulary: its tokens are SentencePiece\'s, its greedy decoding litlora\'s', async () => {
  const out = join(dir, 'model-f32.gguf');
  await convertToGguf(dir, out, { outtype: 'f32' });
  const py = runPython(`
import json
from gguf import GGUFReader
r = GGUFReader(${JSON.stringify(out)})
f = lambda k: r.fields[k]
s = lambda k: bytes(f(k).parts[-1]).decode()
arr = lambda k: [f(k).parts[i].tolist()[0] for i in f(k).data]
toks = [bytes(f('tokenizer.ggml.tokens').parts[i]).decode() for i in f('tokenizer.ggml.tokens').data]
print(json.dumps({"model": s('tokenizer.ggml.model'), "pre": s('tokenizer.ggml.pre'), "n": len(toks), "first": toks[:5],
  "types": arr('tokenizer.ggml.token_type')[:5], "scores": len(arr('tokenizer.ggml.scores')),
  "bos": int(f('tokenizer.ggml.bos_token_id').parts[-1][0]), "eos": int(f('tokenizer.ggml.eos_token_id').parts[-1][0]),
  "add_bos": bool(f('tokenizer.ggml.add_bos_token').parts[-1][0])}))`);
  const md = JSON.parse(py.stdout.trim().split('\n').pop()!);
  assert.equal(md, {
    model: 'llama', pre: 'default', n: expected.vocab_size, first: ['<unk>', '<s>', '</s>', '<|tool|>', '<0x00>'], types: [2, 3, 3, 1, 6],
    scores: expected.vocab_size, bos: 1, eos: 2, add_bos: true,
  });
  // llama.cpp's SentencePiece tokenizer on the file's scores and types gives the SentencePiece library's ids. The
  // user-defined symbol is written NORMAL (as convert_hf_to_gguf.py does), which llama.cpp does not match whole.
  const cases = expected.cases.filter((c) => !c.text.includes('<|tool|>'));
  assert.equal(await llamaCppTokenize(out, cases.map((c) => c.text)), cases.map((c) => c.ids));
  const prompts = [[1, 716, 780, 362], [1, 260, 558, 416, 295, 337], [1], [1, 300, 301, 302, 303, 304, 305]];
  const want = await litloraGreedy(dir, prompts, 12);
  assert.equal(await llamaCppGreedy(out, prompts, 12), want);
});

test.run();
