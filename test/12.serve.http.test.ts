// `litlora serve` against the official openai client, as a child process on 127.0.0.1: completions and chat
// completions (whole and streamed), a base with two adapters giving `litlora generate`'s greedy text for each
// folder, 50 concurrent requests, OpenAI-style errors (400, 401, 404, 413, 429), a client disconnect freeing
// the model, and SIGTERM with a request in flight exiting 0.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import OpenAI from 'openai';
import { runCli } from '../ts/cli/main.js';
import { loadPromptStyle, PromptStyle } from '../ts/data/prompts.js';
import { Tokenizer } from '../ts/data/tokenizer.js';
import { generateText } from '../ts/generate/generate.js';
import { initCheckpoint, Model, OutDir, type LoraOptions } from '../ts/index.js';
import { randomizeAdapter } from './helpers/model.js';
import { startServe, type ServeProcess } from './helpers/serve_process.js';
import { tempFolders } from './helpers/temp.js';

const temp = tempFolders();
const root = temp.make('serve');
const base = join(root, 'base');
const slow = join(root, 'slow');
const adapterDirs = { sql: join(root, 'out', 'sql'), poem: join(root, 'out', 'poem') };
const LORA: LoraOptions = { r: 4, alpha: 8, dropout: 0, query: true, key: false, value: true, projection: true, mlp: true, head: true };
const KEY = 'test-key-123';
let server: ServeProcess;
let client: OpenAI;

/** A LoRA folder as `finetune lora` writes it on `base`, with random (non-zero) adapter weights. */
async function writeLoraFolder(dir: string, seed: number): Promise<void> {
  const model = await Model.load(base, { lora: LORA });
  await randomizeAdapter(model, seed, 0.5);
  await new OutDir(join(root, 'out')).writeLoraCheckpoint(dir, {
    loraTensors: await model.adapter!.tensors(), config: model.config as never,
    hyperparameters: {
      checkpoint_dir: base, out_dir: join(root, 'out'), precision: null, lora_r: LORA.r, lora_alpha: LORA.alpha,
      lora_dropout: LORA.dropout, lora_query: LORA.query, lora_key: LORA.key, lora_value: LORA.value,
      lora_projection: LORA.projection, lora_mlp: LORA.mlp, lora_head: LORA.head, seed: 1337,
    },
    promptStyle: { class_path: 'litgpt.prompts.Alpaca' }, tokenizerFrom: base,
  });
  model.dispose();
}

/** What `litlora generate DIR --prompt P --temperature 0 --max_new_tokens N` prints on stdout, without its newline. */
async function cliGenerate(dir: string, prompt: string, n: number): Promise<string> {
  const out: string[] = [], err: string[] = [];
  const code = await runCli(['generate', dir, '--prompt', prompt, '--temperature', '0', '--max_new_tokens', String(n)],
    { out: (t) => out.push(t), err: (t) => err.push(t), cwd: root });
  assert.is(code, 0, err.join(''));
  const text = out.join('');
  assert.ok(text.endsWith('\n'));
  return text.slice(0, -1);
}

async function rawPost(path: string, body: unknown, headers: Record<string, string> = { authorization: `Bearer ${KEY}` }) {
  const res = await fetch(`${server.url}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, type: res.headers.get('content-type'), body: await res.json() as any };
}

test.before(async () => {
  await initCheckpoint({
    outDir: base, modelName: 'pythia-14m', seed: 1,
    overrides: { n_layer: 1, n_embd: 32, n_head: 2, intermediate_size: 64, block_size: 256 },
  });
  // Big enough that 1500 tokens take seconds: the disconnect and shutdown tests need a request still running.
  await initCheckpoint({
    outDir: slow, modelName: 'pythia-14m', seed: 2,
    overrides: { n_layer: 4, n_embd: 256, n_head: 4, intermediate_size: 1024, block_size: 2048 },
  });
  await writeLoraFolder(adapterDirs.sql, 11);
  await writeLoraFolder(adapterDirs.poem, 23);
  server = await startServe([base, '--port', '0', '--temperature', '0', '--max_new_tokens', '8', '--api_key', KEY,
    '--adapter', `sql=${adapterDirs.sql}`, '--adapter', `poem=${adapterDirs.poem}`, '--body_limit', '4096'], root);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
});

test.after(async () => {
  if (server && server.child.exitCode === null) {
    server.child.kill('SIGTERM');
    await server.exited;
  }
  temp.removeAll();
});

test('GET /v1/models lists the base and each adapter', async () => {
  const models = await client.models.list();
  assert.equal(models.data.map((m) => [m.id, m.object, m.owned_by]), [
    ['pythia-14m', 'model', 'litlora'], ['sql', 'model', 'litlora'], ['poem', 'model', 'litlora'],
  ]);
});

test('completions: the raw prompt\'s greedy text, whole and streamed, with usage and finish_reason', async () => {
  const model = await Model.load(base);
  const tokenizer = Tokenizer.fromDir(base);
  const want = await generateText(model, tokenizer, 'Reverse: abc', { temperature: 0, maxNewTokens: 8 });
  model.dispose();
  const whole = await client.completions.create({ model: 'pythia-14m', prompt: 'Reverse: abc' });
  assert.is(whole.object, 'text_completion');
  assert.is(whole.choices.length, 1);
  assert.is(whole.choices[0].text, want.text);
  assert.is(whole.choices[0].finish_reason, want.stats.reason === 'stop' ? 'stop' : 'length');
  assert.equal(whole.usage, { prompt_tokens: want.stats.promptTokens, completion_tokens: want.stats.generatedTokens, total_tokens: want.stats.promptTokens + want.stats.generatedTokens });
  const stream = await client.completions.create({ model: 'pythia-14m', prompt: 'Reverse: abc', stream: true, stream_options: { include_usage: true } });
  let text = '';
  const finishes: (string | null)[] = [];
  let usage: unknown = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) { text += c.text; finishes.push(c.finish_reason); }
  }
  assert.is(text, want.text);
  assert.is(finishes[finishes.length - 1], whole.choices[0].finish_reason);
  assert.ok(finishes.slice(0, -1).every((f) => f === null));
  assert.equal(usage, whole.usage);
  // Stop strings: the text ends before the first one, whole and streamed, finish_reason 'stop'.
  const chars = Array.from(want.text);
  assert.ok(chars.length >= 5, JSON.stringify(want.text));
  const stop = chars.slice(3, 5).join('');
  const cut = want.text.slice(0, want.text.indexOf(stop));
  const stopped = await client.completions.create({ model: 'pythia-14m', prompt: 'Reverse: abc', stop: [stop, 'never appears'] });
  assert.equal([stopped.choices[0].text, stopped.choices[0].finish_reason], [cut, 'stop']);
  let streamed = '';
  let lastFinish: string | null = null;
  for await (const chunk of await client.completions.create({ model: 'pythia-14m', prompt: 'Reverse: abc', stop, stream: true })) {
    for (const c of chunk.choices) { streamed += c.text; lastFinish = c.finish_reason; }
  }
  assert.equal([streamed, lastFinish], [cut, 'stop']);
  // max_tokens caps the generation: finish_reason 'length'.
  const short = await client.completions.create({ model: 'pythia-14m', prompt: 'Reverse: abc', max_tokens: 2 });
  assert.is(short.usage!.completion_tokens, 2);
  assert.is(short.choices[0].finish_reason, 'length');
});

test('chat: the base and two adapters give `litlora generate`\'s greedy text for each folder, whole and streamed', async () => {
  const prompt = 'Reverse: abc';
  const texts: string[] = [];
  for (const [name, dir] of [['pythia-14m', base], ['sql', adapterDirs.sql], ['poem', adapterDirs.poem]] as const) {
    const want = await cliGenerate(dir, prompt, 8);
    const whole = await client.chat.completions.create({ model: name, messages: [{ role: 'user', content: prompt }] });
    assert.is(whole.object, 'chat.completion');
    assert.is(whole.model, name);
    assert.is(whole.choices[0].message.role, 'assistant');
    assert.is(whole.choices[0].message.content, want, name);
    const stream = await client.chat.completions.create({ model: name, messages: [{ role: 'user', content: prompt }], stream: true });
    let text = '', role: string | undefined, last: string | null = null, chunks = 0;
    for await (const chunk of stream) {
      assert.is(chunk.object, 'chat.completion.chunk');
      role ??= chunk.choices[0].delta.role;
      text += chunk.choices[0].delta.content ?? '';
      last = chunk.choices[0].finish_reason;
      chunks++;
    }
    assert.is(role, 'assistant');
    assert.is(text, want, `${name} streamed`);
    assert.is(last, whole.choices[0].finish_reason);
    assert.ok(chunks >= 2);
    texts.push(want);
  }
  assert.is(new Set(texts).size, 3, `the three models answer differently: ${JSON.stringify(texts)}`);
});

test('50 concurrent requests over the base and both adapters all complete with their own greedy text', async () => {
  const names = ['pythia-14m', 'sql', 'poem'];
  const dirs = [base, adapterDirs.sql, adapterDirs.poem];
  const models = await Promise.all(dirs.map((d) => Model.load(d)));
  const styles = dirs.map((d, i) => (i === 0 ? PromptStyle.fromConfig({ name: 'pythia-14m' }) : loadPromptStyle(d)));
  const tokenizer = Tokenizer.fromDir(base);
  const jobs = Array.from({ length: 50 }, (_, i) => ({ m: i % 3, prompt: `Uppercase: w${i}` }));
  const want: string[] = [];
  for (const j of jobs) want.push((await generateText(models[j.m], tokenizer, j.prompt, { temperature: 0, maxNewTokens: 8, promptStyle: styles[j.m] })).text);
  for (const m of models) m.dispose();
  const got = await Promise.all(jobs.map(async (j) =>
    (await client.chat.completions.create({ model: names[j.m], messages: [{ role: 'user', content: j.prompt }] })).choices[0].message.content));
  assert.equal(got, want);
});

test('errors: 400 for invalid requests, 401 without the key, 404 for an unknown model or route, 413 over the body limit', async () => {
  const bad = await rawPost('/v1/chat/completions', { model: 'pythia-14m', messages: [] });
  assert.is(bad.status, 400);
  assert.match(bad.type!, /application\/json/);
  assert.equal(bad.body, { error: { message: 'messages: expected a non-empty array of {role, content}.', type: 'invalid_request_error', param: 'messages', code: 'invalid_value' } });
  const temp = await rawPost('/v1/completions', { model: 'pythia-14m', prompt: 'x', temperature: -1 });
  assert.is(temp.status, 400);
  assert.is(temp.body.error.param, 'temperature');
  const stop = await rawPost('/v1/completions', { model: 'pythia-14m', prompt: 'x', stop: 5 });
  assert.equal([stop.status, stop.body.error.param, stop.body.error.message], [400, 'stop', 'stop: expected a non-empty string or up to 4 of them, got 5.']);
  const n = await rawPost('/v1/completions', { model: 'pythia-14m', prompt: 'x', n: 2 });
  assert.equal([n.status, n.body.error.param, n.body.error.code], [400, 'n', 'unsupported_parameter']);
  const json = await rawPost('/v1/completions', '{"model": ');
  assert.is(json.status, 400);
  assert.is(json.body.error.type, 'invalid_request_error');
  try {
    await client.chat.completions.create({ model: 'pythia-14m', messages: [{ role: 'assistant', content: 'hi' }] });
    assert.unreachable('the last message must be the user\'s');
  } catch (e) {
    assert.instance(e, OpenAI.BadRequestError);
    assert.is((e as InstanceType<typeof OpenAI.BadRequestError>).param, 'messages[0].role');
  }

  const noKey = await rawPost('/v1/completions', { model: 'pythia-14m', prompt: 'x' }, {});
  assert.is(noKey.status, 401);
  assert.equal(noKey.body.error.code, 'invalid_api_key');
  const wrongKey = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'nope', maxRetries: 0 });
  try {
    await wrongKey.models.list();
    assert.unreachable('a wrong key is refused');
  } catch (e) {
    assert.instance(e, OpenAI.AuthenticationError);
  }

  const unknown = await rawPost('/v1/completions', { model: 'gpt-4', prompt: 'x' });
  assert.equal([unknown.status, unknown.body.error.code, unknown.body.error.param], [404, 'model_not_found', 'model']);
  assert.match(unknown.body.error.message, /pythia-14m, sql, poem/);
  const route = await rawPost('/v1/embeddings', { model: 'pythia-14m', input: 'x' });
  assert.equal([route.status, route.body.error.code], [404, 'unknown_url']);
  const big = await rawPost('/v1/completions', { model: 'pythia-14m', prompt: 'x'.repeat(5000) });
  assert.is(big.status, 413);
  assert.is(big.body.error.type, 'invalid_request_error');
  // The server still answers after all that.
  assert.is((await client.completions.create({ model: 'sql', prompt: 'ok', max_tokens: 1 })).choices.length, 1);
});

test('a full queue is 429; a client that disconnects frees the model; SIGTERM with a request in flight exits 0', async () => {
  const s = await startServe([slow, '--port', '0', '--temperature', '0', '--max_queue', '0', '--max_batch', '1', '--grace_period', '0.2'], root);
  try {
    const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const longRequest = async (controller?: AbortController) => {
      const stream = await c.completions.create({ model: 'pythia-14m', prompt: 'Once', max_tokens: 1500, stream: true }, { signal: controller?.signal });
      const it = stream[Symbol.asyncIterator]();
      assert.is((await it.next()).done, false, 'the first chunk came: the request is running');
      return it;
    };
    // One decoding (--max_batch 1), none may wait (--max_queue 0): the next request is refused with 429.
    const controller = new AbortController();
    await longRequest(controller);
    try {
      await c.completions.create({ model: 'pythia-14m', prompt: 'x', max_tokens: 1 });
      assert.unreachable('the queue is full');
    } catch (e) {
      assert.instance(e, OpenAI.RateLimitError);
      assert.is((e as InstanceType<typeof OpenAI.RateLimitError>).code, 'queue_full');
    }
    // The client goes away: its generation stops long before max_tokens and the model takes the next request.
    controller.abort();
    const line = await s.waitForErr(/finish=cancelled/);
    const generated = Number(/completion_tokens=(\d+)/.exec(line)![1]);
    assert.ok(generated < 1500, line);
    const after = await c.completions.create({ model: 'pythia-14m', prompt: 'x', max_tokens: 2 });
    assert.is(after.usage!.completion_tokens, 2);

    // SIGTERM while a long request runs: it is aborted after the grace period, its client is told, the process exits 0.
    const it = await longRequest();
    s.child.kill('SIGTERM');
    let error: unknown = null;
    try {
      while (!(await it.next()).done) { /* drain */ }
    } catch (e) {
      error = e;
    }
    assert.ok(error, 'the stream ended with an error event');
    assert.match(String((error as Error).message), /shut down/);
    assert.equal(await s.exited, { code: 0, signal: null });
    assert.match(s.stderr(), /status=503 .*finish=cancelled/);
    assert.match(s.stderr(), /Stopped\./);
  } finally {
    if (s.child.exitCode === null) s.child.kill('SIGKILL');
  }
});

test('SIGTERM with nothing in flight exits 0 at once; bad --devices and --adapter values are refused with coded errors', async () => {
  server.child.kill('SIGTERM');
  assert.equal(await server.exited, { code: 0, signal: null });
  for (const [argv, what] of [[['--devices', '2'], /--devices 2: litlora serve runs on one device/], [['--adapter', 'nodir'], /--adapter "nodir": expected NAME=DIR/]] as const) {
    const out: string[] = [], err: string[] = [];
    const code = await runCli(['serve', base, ...argv], { out: (t) => out.push(t), err: (t) => err.push(t), cwd: root });
    assert.is(code, 1);
    assert.match(err.join(''), /^litlora serve: error \[ERR_ARG\]: /);
    assert.match(err.join(''), what);
  }
  // An adapter that cannot be loaded, or that takes the base's name: a coded error before listening, exit 1.
  for (const [argv, what] of [
    [['--adapter', `x=${join(root, 'absent')}`], /error \[ERR_CHECKPOINT_MISSING\]: .*absent/],
    [['--adapter', `sql=${adapterDirs.sql}`, '--adapter', `pythia-14m=${adapterDirs.poem}`], /error \[ERR_ARG\]: adapter name "pythia-14m" is the base model's id/],
  ] as const) {
    const out: string[] = [], err: string[] = [];
    const code = await runCli(['serve', base, '--port', '0', ...argv], { out: (t) => out.push(t), err: (t) => err.push(t), cwd: root });
    assert.is(code, 1, err.join(''));
    assert.match(err.join(''), what);
    assert.not.match(out.join(''), /listening/);
  }
});

test.run();
