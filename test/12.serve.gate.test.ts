// The ModelGate (the serve front's one seam to the model): concurrent calls share the model's batched decoding
// with the output each gives alone, its maxQueue is the model's, an unknown adapter is ERR_ADAPTER_NOT_FOUND,
// close() refuses new calls and waits for the running ones. The queue itself: test/12.serve.queue.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteLevelTokenizerFiles } from '../ts/data/bytetokenizer.js';
import { Tokenizer } from '../ts/data/tokenizer.js';
import { generateText, type GenerationStats } from '../ts/generate/generate.js';
import { Model } from '../ts/index.js';
import { ModelGate } from '../ts/serve/model_gate.js';
import { assertCode } from './helpers/assert.js';
import { pythiaTiny } from './helpers/model.js';

const files = byteLevelTokenizerFiles();
const tokenizer = new Tokenizer(files.tokenizer, { tokenizerConfig: files.tokenizerConfig, generationConfig: files.generationConfig });
const GREEDY = { temperature: 0, maxNewTokens: 12, stopTokens: [] };
let model: Model;
test.before(async () => {
  model = await Model.fromConfig({ ...pythiaTiny, vocab_size: 259, padding_multiple: 64, block_size: 512 }, { seed: 5 });
});

async function drain(it: AsyncGenerator<string, GenerationStats>, onFirst?: () => void): Promise<{ text: string; stats: GenerationStats }> {
  let text = '';
  let first = true;
  while (true) {
    const next = await it.next();
    if (first) { first = false; onFirst?.(); }
    if (next.done) return { text, stats: next.value };
    text += next.value;
  }
}

test('concurrent calls share the model (batched), each with the text it gives alone; maxQueue becomes the model\'s', async () => {
  const gate = new ModelGate(model, tokenizer, { maxQueue: 7 });
  assert.is(model.maxQueue, 7, 'the bound is the model\'s queue (ERR_QUEUE_FULL: test/12.serve.queue.test.ts)');
  const prompts = ['Reverse: abc', 'Uppercase: dog', 'Count: 3'];
  const alone = [];
  for (const p of prompts) alone.push((await generateText(model, tokenizer, p, GREEDY)).text);
  const its = prompts.map((p) => gate.generate(p, GREEDY));
  const results = Promise.all(its.map((it) => drain(it)));
  await new Promise((r) => setImmediate(r));
  assert.is(gate.pending, 3);
  assert.equal((await results).map((r) => r.text), alone);
  assert.is(gate.pending, 0);
  await gate.close();
  assert.is(model.disposed, false, 'the base stays the caller\'s');
  assert.throws(() => new ModelGate(model, tokenizer, { maxQueue: -1 }), /maxQueue: expected an integer ≥ 0, got -1/);
  model.maxQueue = Infinity;
});

test('an unknown adapter is ERR_ADAPTER_NOT_FOUND; close() waits for the running calls and refuses new ones', async () => {
  const gate = new ModelGate(model, tokenizer);
  await assertCode(() => drain(gate.generate('x', { ...GREEDY, adapter: 'sql' })), 'ERR_ADAPTER_NOT_FOUND', 'no adapter named "sql"; loaded: none');
  const running = gate.generate('Reverse: abc', { ...GREEDY, maxNewTokens: 40 });
  assert.is((await running.next()).done, false);
  let closedYet = false;
  const closed = gate.close().then(() => { closedYet = true; });
  await assertCode(() => drain(gate.generate('x', GREEDY)), 'ERR_DISPOSED', /shutting down/);
  await new Promise((r) => setImmediate(r));
  assert.is(closedYet, false, 'close() waits for the running call');
  const rest = await drain(running);
  assert.is(rest.stats.reason, 'max_new_tokens');
  await closed;
  assert.is(closedYet, true);
});

test.after(() => model.dispose());
test.run();
