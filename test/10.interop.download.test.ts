// `download()` and `litlora download` against a local stand-in for the Hugging Face Hub (helpers/hub_server.ts):
// which files are taken (config/tokenizer, safetensors before .bin), exact bytes in checkpoints/ORG/NAME, resume
// of an interrupted file with a Range request, integrity checks, and the coded errors for refusals (401 gated,
// 404 missing) and an unreachable endpoint — from the API and from the CLI (one line, exit 1); and download +
// convert of a tiny transformers model end to end (Model.load gives transformers' logits).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { download, Model, type DownloadProgress } from '../ts/index.js';
import { assertClose, assertCode } from './helpers/assert.js';
import { cliProcessArgs } from './helpers/cli_process.js';
import { closedPort, HubServer } from './helpers/hub_server.js';
import { runPython } from './helpers/python.js';
import { tempFolders } from './helpers/temp.js';

const folders = tempFolders();
let hub: HubServer;

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
const SHARD1 = 'model-00001-of-00002.safetensors', SHARD2 = 'model-00002-of-00002.safetensors';
const TINY: Record<string, Uint8Array | string> = {
  'config.json': json({ architectures: ['GPTNeoXForCausalLM'], hidden_size: 32 }),
  'generation_config.json': json({ bos_token_id: 0, eos_token_id: 0 }),
  'tokenizer.json': json({ model: { type: 'BPE', vocab: { a: 0 } } }),
  'tokenizer_config.json': json({ bos_token: '<|endoftext|>' }),
  'README.md': '# tiny\n',
  '.gitattributes': '*.safetensors filter=lfs\n',
  [SHARD1]: randomBytes(3 << 20),
  [SHARD2]: randomBytes(1 << 20),
  'model.safetensors.index.json': json({ weight_map: { a: SHARD1, b: SHARD2 } }),
  'pytorch_model.bin': randomBytes(300_000),
  'consolidated.safetensors': randomBytes(200_000),
  'onnx/model.safetensors': randomBytes(100_000),
};
const TINY_TAKEN = ['config.json', 'generation_config.json', SHARD1, SHARD2, 'model.safetensors.index.json',
  'tokenizer.json', 'tokenizer_config.json'];
const BIN_ONLY: Record<string, Uint8Array | string> = {
  'config.json': json({ hidden_size: 16 }),
  'tokenizer.json': json({ model: { type: 'BPE', vocab: {} } }),
  'pytorch_model-00001-of-00002.bin': randomBytes(200_000),
  'pytorch_model-00002-of-00002.bin': randomBytes(100_000),
  'pytorch_model.bin.index.json': json({ weight_map: {} }),
  'training_args.bin': randomBytes(5000),
};
const TOKEN = 'hf_right_token';

// The suites share one process: a developer's HF_TOKEN / HF_ENDPOINT must not reach these tests, nor leak out.
const savedEnv = { HF_TOKEN: process.env.HF_TOKEN, HF_ENDPOINT: process.env.HF_ENDPOINT };

test.before(async () => {
  delete process.env.HF_TOKEN;
  delete process.env.HF_ENDPOINT;
  hub = await HubServer.start({
    'acme/tiny': { files: TINY, revisions: ['main', 'v1.0'] },
    'acme/bin-only': { files: BIN_ONLY },
    'acme/gated': { files: { 'config.json': '{}\n', 'model.safetensors': randomBytes(2000) }, token: TOKEN },
    'acme/corrupt': { files: { 'config.json': json({ n: 1 }), 'tokenizer.json': json({ t: 1 }), 'model.safetensors': randomBytes(500_000) } },
  });
});
test.after(async () => {
  for (const [name, value] of Object.entries(savedEnv)) if (value !== undefined) process.env[name] = value;
  await hub.close();
  folders.removeAll();
});

/** The names in a folder, hidden ones included, sorted ([] when there is no folder). */
const names = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : []);

function assertSameBytes(dir: string, repoId: string, files: string[]): void {
  for (const f of files) assert.ok(hub.bytes(repoId, f).equals(readFileSync(join(dir, f))), `${f}: the served bytes`);
}

test('a download takes config, tokenizer and safetensors weights into checkpoints/ORG/NAME, byte for byte', async () => {
  const cwd = folders.make('dl');
  const seen: DownloadProgress[] = [];
  const r = await download('acme/tiny', { cwd, endpoint: hub.url, convertCheckpoint: false, onProgress: (p) => seen.push(p) });
  const dir = join(cwd, 'checkpoints', 'acme', 'tiny');
  assert.is(r.folder, dir);
  assert.is(r.weightFormat, 'safetensors');
  assert.is(r.converted, null);
  assert.equal(names(dir), [...TINY_TAKEN].sort(), 'exactly the files taken, no partial files left');
  assert.equal([...r.files].sort(), [...TINY_TAKEN].sort());
  assert.equal([...r.fetched].sort(), [...TINY_TAKEN].sort());
  assertSameBytes(dir, 'acme/tiny', TINY_TAKEN);
  // .bin weights, the consolidated copy of the weights and files in subfolders are left on the hub.
  assert.equal(hub.fileRequests('pytorch_model.bin'), []);
  assert.equal(hub.fileRequests('consolidated.safetensors'), []);
  const total = TINY_TAKEN.reduce((n, f) => n + hub.bytes('acme/tiny', f).length, 0);
  const last = seen[seen.length - 1]!;
  assert.equal([last.event, last.bytes, last.totalBytes], ['done', total, total]);
  assert.equal(seen.filter((p) => p.event === 'done').map((p) => p.file).sort(), [...TINY_TAKEN].sort());
});

test('a rerun keeps the complete files (no file is fetched again); a file that differs from the hub\'s is replaced', async () => {
  const cwd = folders.make('dl-rerun');
  const dir = join(cwd, 'ckpt', 'acme', 'tiny');
  await download('acme/tiny', { cwd, checkpointDir: 'ckpt', endpoint: hub.url, convertCheckpoint: false });
  const before = hub.requests.length;
  let r = await download('acme/tiny', { cwd, checkpointDir: 'ckpt', endpoint: hub.url, convertCheckpoint: false });
  assert.equal(r.fetched, []);
  assert.equal(hub.requests.slice(before).map((q) => q.path), ['/api/models/acme/tiny/tree/main'], 'only the listing');
  writeFileSync(join(dir, 'tokenizer.json'), '{"edited": true}\n');
  const shard = readFileSync(join(dir, SHARD2));
  shard[10] ^= 1;
  writeFileSync(join(dir, SHARD2), shard);
  r = await download('acme/tiny', { cwd, checkpointDir: 'ckpt', endpoint: hub.url, convertCheckpoint: false });
  assert.equal([...r.fetched].sort(), [SHARD2, 'tokenizer.json']);
  assertSameBytes(dir, 'acme/tiny', TINY_TAKEN);
  assert.equal(names(dir), [...TINY_TAKEN].sort());
});

test('a repo with only .bin weights: the *model*.bin files and their index, not training_args.bin', async () => {
  const cwd = folders.make('dl-bin');
  const r = await download('acme/bin-only', { cwd, endpoint: hub.url, convertCheckpoint: false });
  assert.is(r.weightFormat, 'bin');
  const taken = ['config.json', 'pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin', 'pytorch_model.bin.index.json', 'tokenizer.json'];
  assert.equal(names(r.folder), taken);
  assertSameBytes(r.folder, 'acme/bin-only', taken);
});

test('tokenizerOnly fetches the config and tokenizer files and no weights; a revision is passed through', async () => {
  const cwd = folders.make('dl-tok');
  const before = hub.requests.length;
  const r = await download('acme/tiny', { cwd, endpoint: hub.url, tokenizerOnly: true, revision: 'v1.0' });
  assert.is(r.weightFormat, null);
  assert.is(r.converted, null, 'nothing to convert without weights');
  const taken = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'];
  assert.equal(names(r.folder), taken);
  assertSameBytes(r.folder, 'acme/tiny', taken);
  const paths = hub.requests.slice(before).map((q) => q.path);
  assert.ok(paths.every((p) => !p.includes('.safetensors') && !p.includes('.bin')), paths.join('\n'));
  assert.ok(paths.includes('/api/models/acme/tiny/tree/v1.0') && paths.includes('/acme/tiny/resolve/v1.0/config.json'), paths.join('\n'));
});

test('an interrupted download leaves only a hidden partial file; a rerun resumes it with a Range request', async () => {
  const cwd = folders.make('dl-resume');
  const dir = join(cwd, 'checkpoints', 'acme', 'tiny');
  hub.dropAfter.set(SHARD1, 1 << 20);
  await assertCode(() => download('acme/tiny', { cwd, endpoint: hub.url, convertCheckpoint: false }), 'ERR_NETWORK',
    new RegExp(`download of ${SHARD1} .*broke off at \\d+ of ${3 << 20} bytes.*kept in \\.${SHARD1}\\.incomplete: run the command again to resume`));
  const partial = `.${SHARD1}.incomplete`;
  assert.ok(names(dir).includes(partial), names(dir).join(' '));
  assert.not.ok(existsSync(join(dir, SHARD1)), 'nothing under the final name');
  assert.not.ok(existsSync(join(dir, SHARD2)), 'the files after it are not started');
  const have = statSync(join(dir, partial)).size;
  assert.ok(have > 0 && have <= 1 << 20, `partial size ${have}`);
  assert.ok(hub.bytes('acme/tiny', SHARD1).subarray(0, have).equals(readFileSync(join(dir, partial))), 'the partial holds the first bytes');

  const before = hub.requests.length;
  const r = await download('acme/tiny', { cwd, endpoint: hub.url, convertCheckpoint: false });
  const ranged = hub.requests.slice(before).filter((q) => q.path.startsWith(`/cdn/${SHARD1}/`));
  assert.equal(ranged.map((q) => q.range), [`bytes=${have}-`], 'one request, for the missing tail');
  assert.equal([...r.fetched].sort(), [SHARD1, SHARD2, 'model.safetensors.index.json'].sort(), 'the files before it were kept');
  assertSameBytes(dir, 'acme/tiny', TINY_TAKEN);
  assert.equal(names(dir), [...TINY_TAKEN].sort(), 'no partial file left');
});

test('resuming from a server that ignores Range starts the file over and still ends with the right bytes', async () => {
  const cwd = folders.make('dl-norange');
  const dir = join(cwd, 'checkpoints', 'acme', 'corrupt');
  hub.dropAfter.set('model.safetensors', 100_000);
  await assertCode(() => download('acme/corrupt', { cwd, endpoint: hub.url, convertCheckpoint: false }), 'ERR_NETWORK');
  assert.ok(existsSync(join(dir, '.model.safetensors.incomplete')));
  hub.ignoreRange = true;
  try {
    await download('acme/corrupt', { cwd, endpoint: hub.url, convertCheckpoint: false });
  } finally {
    hub.ignoreRange = false;
  }
  assertSameBytes(dir, 'acme/corrupt', ['config.json', 'model.safetensors', 'tokenizer.json']);
  assert.equal(names(dir), ['config.json', 'model.safetensors', 'tokenizer.json']);
});

test('a partial file longer than the listed file is discarded and the file fetched whole', async () => {
  const cwd = folders.make('dl-long');
  const dir = join(cwd, 'checkpoints', 'acme', 'corrupt');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, '.model.safetensors.incomplete'), randomBytes(600_000));
  const before = hub.requests.length;
  await download('acme/corrupt', { cwd, endpoint: hub.url, convertCheckpoint: false });
  assert.equal(hub.requests.slice(before).filter((q) => q.path.startsWith('/cdn/')).map((q) => q.range), [undefined]);
  assertSameBytes(dir, 'acme/corrupt', ['model.safetensors']);
});

test('bytes that do not match the listed sha256 (LFS) or git blob id: ERR_HUB_INTEGRITY, nothing under the final name', async () => {
  for (const file of ['model.safetensors', 'config.json']) {
    const cwd = folders.make('dl-corrupt');
    const dir = join(cwd, 'checkpoints', 'acme', 'corrupt');
    hub.corrupt.add(file);
    try {
      const kind = file === 'config.json' ? 'git blob id' : 'sha256';
      await assertCode(() => download('acme/corrupt', { cwd, endpoint: hub.url, convertCheckpoint: false }), 'ERR_HUB_INTEGRITY',
        new RegExp(`${file.replace('.', '\\.')} of acme/corrupt .*does not match the hub's listing: expected ${kind} [0-9a-f]+, got ${kind} [0-9a-f]+\\. ` +
          'The bytes received were removed .*run the command again'));
    } finally {
      hub.corrupt.delete(file);
    }
    assert.not.ok(existsSync(join(dir, file)), `no ${file}`);
    assert.not.ok(names(dir).some((n) => n.startsWith('.')), `no partial file: ${names(dir).join(' ')}`);
    // Fixed on the hub's side, a rerun completes.
    await download('acme/corrupt', { cwd, endpoint: hub.url, convertCheckpoint: false });
    assertSameBytes(dir, 'acme/corrupt', ['config.json', 'model.safetensors', 'tokenizer.json']);
  }
});

test('a gated repo: without a token or with the wrong one ERR_HUB_AUTH saying what to do; with the right one it downloads', async () => {
  const cwd = folders.make('dl-gated');
  await assertCode(() => download('acme/gated', { cwd, endpoint: hub.url, convertCheckpoint: false, accessToken: null }), 'ERR_HUB_AUTH',
    /refused access to config\.json of acme\/gated \(HTTP 401, GatedRepo\) with no access token\. .*accept the model's terms on http:\/\/127\.0\.0\.1:\d+\/acme\/gated .*--access_token hf_\.\.\. or set HF_TOKEN/);
  await assertCode(() => download('acme/gated', { cwd, endpoint: hub.url, convertCheckpoint: false, accessToken: 'hf_wrong' }), 'ERR_HUB_AUTH',
    /with the access token given/);
  await assertCode(() => download('acme/gated', { cwd, endpoint: hub.url, accessToken: 'not-a-token' }), 'ERR_HUB_AUTH',
    /start with "hf_"/);
  assert.equal(names(cwd), [], 'a run refused before its first byte leaves no folders');
  const before = hub.requests.length;
  const r = await download('acme/gated', { cwd, endpoint: hub.url, convertCheckpoint: false, accessToken: TOKEN });
  assertSameBytes(r.folder, 'acme/gated', ['config.json', 'model.safetensors']);
  const files = hub.requests.slice(before).filter((q) => q.path.startsWith('/acme/gated/resolve/'));
  assert.ok(files.length === 2 && files.every((q) => q.authorization === `Bearer ${TOKEN}`), 'the token goes with each file request');
});

test('a missing repo or revision is ERR_HUB_NOT_FOUND; a malformed repo id ERR_ARG; nothing is created', async () => {
  const cwd = folders.make('dl-404');
  await assertCode(() => download('acme/absent', { cwd, endpoint: hub.url }), 'ERR_HUB_NOT_FOUND',
    /there is no model repo acme\/absent on http:\/\/127\.0\.0\.1:\d+ \(HTTP 404, .*check the spelling/);
  await assertCode(() => download('acme/tiny', { cwd, endpoint: hub.url, revision: 'v9' }), 'ERR_HUB_NOT_FOUND',
    /acme\/tiny has no revision "v9" .*--revision/);
  for (const bad of ['tiny', 'acme/tiny/extra', '../acme', 'https://huggingface.co/acme/tiny', 'acme/..']) {
    await assertCode(() => download(bad, { cwd, endpoint: hub.url }), 'ERR_ARG', /is not of the form ORG\/NAME/);
  }
  assert.equal(names(cwd), []);
});

test('an endpoint that is not a hub (it answers HTML) is ERR_NETWORK asking whether it is one', async () => {
  const web = createServer((_req, res) => { res.writeHead(200, { 'Content-Type': 'text/html' }); res.end('<html>a web page</html>'); });
  await new Promise<void>((done) => web.listen(0, '127.0.0.1', done));
  try {
    await assertCode(() => download('acme/tiny', { cwd: folders.make('dl-web'), endpoint: `http://127.0.0.1:${(web.address() as AddressInfo).port}` }),
      'ERR_NETWORK', /answered .*\/api\/models\/acme\/tiny\/tree\/main with something other than the hub's JSON .*is the endpoint the address of a Hugging Face hub/);
  } finally {
    await new Promise((done) => web.close(done));
  }
});

test('an unreachable endpoint is ERR_NETWORK naming the address tried', async () => {
  const cwd = folders.make('dl-net');
  const port = await closedPort();
  await assertCode(() => download('acme/tiny', { cwd, endpoint: `http://127.0.0.1:${port}` }), 'ERR_NETWORK',
    new RegExp(`cannot reach the hub at http://127\\.0\\.0\\.1:${port} \\(http://127\\.0\\.0\\.1:${port}/api/models/acme/tiny/tree/main\\): connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\. Check the connection`));
  assert.equal(names(cwd), []);
});

/** `litlora <argv>` in a child process with `env` added (asynchronous: the hub answers from this process). */
function runLitlora(argv: string[], cwd: string, env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, cliProcessArgs(argv), { cwd, env: { ...process.env, HF_TOKEN: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('close', (code) => done({ code, out, err }));
  });
}

test('litlora download: HF_ENDPOINT and HF_TOKEN, litgpt\'s flags, a line per file; failures are one line and exit 1', async () => {
  const cwd = folders.make('dl-cli');
  const env = { HF_ENDPOINT: hub.url };
  let r = await runLitlora(['download', 'acme/gated', '--checkpoint_dir', 'ck', '--convert_checkpoint', 'false'], cwd, { ...env, HF_TOKEN: TOKEN });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, 'Downloaded 2 files of acme/gated into ck/acme/gated.\n');
  assert.match(r.err, /^Downloading config\.json \(3 B\)\nDownloading model\.safetensors \(2\.00 kB\)\n$/);
  assertSameBytes(join(cwd, 'ck', 'acme', 'gated'), 'acme/gated', ['config.json', 'model.safetensors']);
  r = await runLitlora(['download', 'acme/tiny', '--tokenizer_only', 'true'], cwd, env);
  assert.is(r.code, 0, r.err);
  assert.equal(names(join(cwd, 'checkpoints', 'acme', 'tiny')), ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']);

  const failures: [string[], Record<string, string>, string, RegExp][] = [
    [['download', 'acme/gated', '--convert_checkpoint', 'false'], env, 'ERR_HUB_AUTH', /--access_token hf_\.\.\. or set HF_TOKEN/],
    [['download', 'acme/absent'], env, 'ERR_HUB_NOT_FOUND', /there is no model repo acme\/absent/],
    [['download', 'acme/tiny', '--revision', 'nope'], env, 'ERR_HUB_NOT_FOUND', /has no revision "nope"/],
    [['download', 'acme/tiny'], { HF_ENDPOINT: `http://127.0.0.1:${await closedPort()}` }, 'ERR_NETWORK', /ECONNREFUSED 127\.0\.0\.1:\d+\. HF_ENDPOINT is http:\/\/127\.0\.0\.1:\d+: check that address/],
  ];
  for (const [argv, e, code, message] of failures) {
    r = await runLitlora(argv, cwd, e);
    assert.is(r.code, 1, `${argv.join(' ')}: ${r.err}`);
    // The error is the last line (after the lines of the files begun), and one line.
    const lines = r.err.trimEnd().split('\n');
    assert.equal(lines.slice(0, -1).filter((l) => !/^Downloading \S+ \(/.test(l)), [], r.err);
    assert.match(lines.at(-1)!, new RegExp(`^litlora download: error \\[${code}\\]: `));
    assert.match(lines.at(-1)!, message);
  }
  hub.corrupt.add('model.safetensors');
  try {
    r = await runLitlora(['download', 'acme/corrupt', '--convert_checkpoint', 'false'], cwd, env);
  } finally {
    hub.corrupt.delete('model.safetensors');
  }
  assert.is(r.code, 1);
  assert.match(r.err, /\nlitlora download: error \[ERR_HUB_INTEGRITY\]: model\.safetensors of acme\/corrupt [^\n]*\n$/);
  assert.not.ok(existsSync(join(cwd, 'checkpoints', 'acme', 'corrupt', 'model.safetensors')));
});

test('download + convert: a tiny transformers GPT-NeoX served by the hub becomes a folder Model.load runs, with transformers\' logits', async () => {
  const made = folders.make('dl-neox');
  const { outputs } = runPython(`
import torch, transformers
torch.manual_seed(0)
cfg = transformers.GPTNeoXConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=64, max_position_embeddings=64, rotary_pct=0.25, use_parallel_residual=True, tie_word_embeddings=False)
model = transformers.GPTNeoXForCausalLM(cfg).eval()
model.save_pretrained(${JSON.stringify(made)}, safe_serialization=True)
with torch.no_grad():
    out('logits', model(torch.tensor([[1, 5, 9, 33, 2]])).logits.float().numpy())
`);
  const files: Record<string, Uint8Array> = {};
  for (const name of readdirSync(made)) files[name] = readFileSync(join(made, name));
  assert.ok('model.safetensors' in files && 'config.json' in files, Object.keys(files).join(' '));
  const neox = await HubServer.start({ 'acme/tiny-neox': { files } });
  try {
    const cwd = folders.make('dl-neox-cwd');
    const seen: string[] = [];
    let r = await download('acme/tiny-neox', { cwd, endpoint: neox.url, onProgress: (p) => { if (p.event === 'convert') seen.push(p.file); },
      onConvertProgress: (p) => { if (p.phase === 'done') seen.push(`${p.tensors} tensors`); } });
    assert.is(r.converted, 'converted');
    assert.equal(seen, ['lit_model.pth', '28 tensors'], 'the conversion starts after the download, and reports its progress');
    assert.ok(existsSync(join(r.folder, 'lit_model.pth')) && existsSync(join(r.folder, 'model_config.yaml')));
    const transformersLogits = async (folder: string) => {
      const model = await Model.load(folder);
      try {
        const logits = await model.forward([1, 5, 9, 33, 2]);
        assertClose(await logits.data() as Float32Array, outputs.logits!.data as Float32Array, { rtol: 1e-4, atol: 1e-5, what: 'logits' });
        logits.dispose();
      } finally {
        model.dispose();
      }
    };
    await transformersLogits(r.folder);
    // A rerun fetches nothing and keeps the lit_model.pth made from the same files.
    const pth = readFileSync(join(r.folder, 'lit_model.pth'));
    r = await download('acme/tiny-neox', { cwd, endpoint: neox.url });
    assert.equal([r.fetched, r.converted], [[], 'kept']);
    assert.ok(pth.equals(readFileSync(join(r.folder, 'lit_model.pth'))));
    // Asked for another dtype, it is converted again.
    r = await download('acme/tiny-neox', { cwd, endpoint: neox.url, dtype: 'float64' });
    assert.equal([r.fetched, r.converted], [[], 'converted']);
    assert.match(readFileSync(join(r.folder, 'lit_model.pth')).toString('latin1'), /DoubleStorage/);
    // Weights replaced by a rerun (here: altered on disk) make the lit_model.pth converted from them stale: it is redone.
    const weights = readFileSync(join(r.folder, 'model.safetensors'));
    weights[weights.length - 1] ^= 0x55;
    writeFileSync(join(r.folder, 'model.safetensors'), weights);
    writeFileSync(join(r.folder, 'lit_model.pth'), 'stale');
    r = await download('acme/tiny-neox', { cwd, endpoint: neox.url });
    assert.equal([r.fetched, r.converted], [['model.safetensors'], 'converted']);
    await transformersLogits(r.folder); // converted anew, from the hub's weights
  } finally {
    await neox.close();
  }
});

test('conversion settings are checked before anything is fetched: an unknown dtype is ERR_ARG, an unknown model_name ERR_CONFIG', async () => {
  const cwd = folders.make('dl-early');
  const before = hub.requests.length;
  await assertCode(() => download('acme/tiny', { cwd, endpoint: hub.url, dtype: 'int8' as never }), 'ERR_ARG', /dtype must be one of float32, bfloat16/);
  await assertCode(() => download('acme/tiny', { cwd, endpoint: hub.url, modelName: 'no-such-model' }), 'ERR_CONFIG', /'no-such-model' is not a supported config name/);
  assert.is(hub.requests.length, before, 'no request');
  assert.equal(names(cwd), []);
});

test('litlora download list names the repos whose config litlora knows', async () => {
  const r = await runLitlora(['download', 'list'], folders.make('dl-list'), {});
  assert.is(r.code, 0, r.err);
  assert.ok(r.out.split('\n').includes('EleutherAI/pythia-14m'), r.out);
});

test.run();
