// The ModelGate (the serve front's one seam to the model): concurrent calls run one after another in FIFO order
// with the output each gives alone, a bounded queue refuses with ERR_QUEUE_FULL, an abort takes a waiting call
// out of the queue, an unknown adapter is ERR_ADAPTER_NOT_FOUND, close() ends waiting calls with ERR_DISPOSED.
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

test('concurrent calls run one at a time in arrival order, each with the text it gives alone', async () => {
  const gate = new ModelGate(model, tokenizer);
  const prompts = ['Reverse: abc', 'Uppercase: dog', 'Count: 3'];
  const alone = [];
  for (const p of prompts) alone.push((await generateText(model, tokenizer, p, GREEDY)).text);
  const events: string[] = [];
  const results = await Promise.all(prompts.map((p, i) =>
    drain(gate.generate(p, GREEDY), () => events.push(`start ${i}`)).then((r) => { events.push(`end ${i}`); return r; })));
  assert.equal(results.map((r) => r.text), alone);
  assert.equal(events, ['start 0', 'end 0', 'start 1', 'end 1', 'start 2', 'end 2']);
  assert.is(gate.pending, 0);
  await gate.close();
  assert.is(model.disposed, false, 'the base stays the caller\'s');
});

test('maxQueue bounds the waiting calls (ERR_QUEUE_FULL); an abort takes a waiting call out of the queue', async () => {
  const gate = new ModelGate(model, tokenizer, { maxQueue: 1 });
  const running = gate.generate('Reverse: abc', { ...GREEDY, maxNewTokens: 200 });
  assert.is((await running.next()).done, false, 'the first call runs');
  const controller = new AbortController();
  const waiting = gate.generate('Reverse: abc', { ...GREEDY, signal: controller.signal });
  const waited = drain(waiting);
  await new Promise((r) => setImmediate(r));
  assert.is(gate.pending, 2);
  await assertCode(() => drain(gate.generate('full', GREEDY)), 'ERR_QUEUE_FULL', /1 request\(s\) already wait \(the queue holds 1\)/);
  controller.abort();
  const cancelled = await waited;
  assert.equal([cancelled.text, cancelled.stats.reason, cancelled.stats.generatedTokens], ['', 'cancelled', 0]);
  assert.is(gate.pending, 1, 'the aborted call left the queue');
  const next = drain(gate.generate('Uppercase: dog', GREEDY)); // its place is free again
  await running.return(undefined as never);
  assert.is((await next).stats.reason, 'max_new_tokens');
  await gate.close();
});

test('an unknown adapter is ERR_ADAPTER_NOT_FOUND; close() ends waiting calls with ERR_DISPOSED and refuses new ones', async () => {
  const gate = new ModelGate(model, tokenizer);
  await assertCode(() => drain(gate.generate('x', { ...GREEDY, adapter: 'sql' })), 'ERR_ADAPTER_NOT_FOUND', 'no adapter named "sql"; loaded: none');
  const running = gate.generate('Reverse: abc', { ...GREEDY, maxNewTokens: 40 });
  assert.is((await running.next()).done, false);
  const waiting = drain(gate.generate('Reverse: abc', GREEDY));
  await new Promise((r) => setImmediate(r));
  const closed = gate.close();
  await assertCode(() => waiting, 'ERR_DISPOSED', /shut down before this request's turn came/);
  const rest = await drain(running); // the running call finishes; close() waits for it
  assert.is(rest.stats.reason, 'max_new_tokens');
  await closed;
  await assertCode(() => drain(gate.generate('x', GREEDY)), 'ERR_DISPOSED', /shutting down/);
  assert.throws(() => new ModelGate(model, tokenizer, { maxQueue: -1 }), /maxQueue: expected an integer ≥ 0, got -1/);
});

test.after(() => model.dispose());
test.run();
