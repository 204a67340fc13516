// serve() as a library: hosting a loaded Model in the caller's process (port 0), the renderChat hook that a
// chat_template renderer will use, --stream's default for requests that do not say, and close() leaving the
// caller's model usable.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import OpenAI from 'openai';
import { byteLevelTokenizerFiles } from '../ts/data/bytetokenizer.js';
import { Tokenizer } from '../ts/data/tokenizer.js';
import { generateText } from '../ts/generate/generate.js';
import { Model, serve, type ServeChatMessage } from '../ts/index.js';
import { pythiaTiny } from './helpers/model.js';

const files = byteLevelTokenizerFiles();
const tokenizer = new Tokenizer(files.tokenizer, { tokenizerConfig: files.tokenizerConfig, generationConfig: files.generationConfig });

test('serve(model, tokenizer, options): port 0, the renderChat hook, default streaming, close()', async () => {
  const model = await Model.fromConfig({ ...pythiaTiny, name: 'tiny', vocab_size: 259, padding_multiple: 64, block_size: 256 }, { seed: 9 });
  const rendered: ServeChatMessage[][] = [];
  const server = await serve(model, tokenizer, {
    port: 0, modelName: 'tiny-model', defaults: { temperature: 0, maxNewTokens: 6 },
    renderChat: (messages) => { rendered.push([...messages]); return messages.map((m) => `${m.role}: ${m.content}\n`).join('') + 'assistant: '; },
  });
  try {
    assert.match(server.address, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(server.port > 0);
    const client = new OpenAI({ baseURL: `${server.address}/v1`, apiKey: 'none', maxRetries: 0 });
    const messages: ServeChatMessage[] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }];
    const reply = await client.chat.completions.create({ model: 'tiny-model', messages });
    assert.equal(rendered, [messages]);
    const want = await generateText(model, tokenizer, 'system: Be brief.\nuser: Hi\nassistant: ', { temperature: 0, maxNewTokens: 6 });
    assert.is(reply.choices[0].message.content, want.text);
  } finally {
    await server.close();
  }
  assert.is(model.disposed, false, 'the model stays the caller\'s');
  await assertRefused(server.address);

  // defaults.stream: a request that does not say gets server-sent events.
  const streaming = await serve(model, tokenizer, { port: 0, defaults: { temperature: 0, maxNewTokens: 3, stream: true } });
  try {
    const res = await fetch(`${streaming.address}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny', prompt: 'a' }) });
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    const body = await res.text();
    assert.ok(body.endsWith('data: [DONE]\n\n'), body);
    const chunks = body.split('\n\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)));
    assert.ok(chunks.every((c) => c.object === 'text_completion' && c.model === 'tiny'));
    assert.is(chunks.map((c) => c.choices[0].text).join(''), (await generateText(model, tokenizer, 'a', { temperature: 0, maxNewTokens: 3 })).text);
    // close() with a stream in flight: no new connection is accepted, the stream runs to its end within the grace period.
    const res2 = await fetch(`${streaming.address}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny', prompt: 'a', max_tokens: 200 }) });
    const reader = res2.body!.getReader();
    const first = await reader.read();
    assert.match(new TextDecoder().decode(first.value), /^data: \{/);
    const closing = streaming.close({ graceMs: 60_000 });
    await assertRefused(streaming.address);
    let rest = new TextDecoder().decode(first.value);
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += new TextDecoder().decode(r.value);
    await closing;
    const whole = rest.split('\n\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)));
    assert.ok(rest.endsWith('data: [DONE]\n\n'), 'the stream in flight finished');
    assert.is(whole.map((c) => c.choices[0].text).join(''), (await generateText(model, tokenizer, 'a', { temperature: 0, maxNewTokens: 200 })).text);
  } finally {
    await streaming.close();
  }
  model.dispose();
});

async function assertRefused(address: string): Promise<void> {
  let failed = false;
  // A pooled keep-alive socket may answer with a socket error rather than ECONNREFUSED: either way, no response.
  try { await fetch(`${address}/v1/models`); } catch { failed = true; }
  assert.ok(failed, 'a closed server answers nothing');
}

test.run();
