// `litlora chat` as a terminal program, driven through a pseudo-terminal (test/helpers/pty_session.py): the up
// arrow recalls the last prompt (readline in terminal mode, no ^[[A), Ctrl-C during a reply stops only that
// reply and the next one is whole, Ctrl-C at the prompt exits 0. And --multiline as litgpt's, from a stream.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runCli } from '../ts/cli/main.js';
import { PromptStyle } from '../ts/data/prompts.js';
import { Tokenizer } from '../ts/data/tokenizer.js';
import { generateText } from '../ts/generate/generate.js';
import { initCheckpoint, Model } from '../ts/index.js';
import { cliProcessArgs } from './helpers/cli_process.js';
import { referencePython } from './helpers/python.js';
import { tempFolders } from './helpers/temp.js';

const temp = tempFolders();
const root = temp.make('chat');
const dir = join(root, 'base');
// A Ctrl-C lands a few tokens into a reply (about 8 on an idle machine, as many on a loaded one, where every
// token is slower too): N leaves a wide margin while keeping the whole replies short on a busy machine.
const N = 300;

test.before(async () => {
  // Replies of N tokens (no EOS among them for this seed and prompt) take long enough for a Ctrl-C to land in the middle of one.
  await initCheckpoint({
    outDir: dir, modelName: 'pythia-14m', seed: 3,
    overrides: { n_layer: 2, n_embd: 64, n_head: 2, intermediate_size: 128, block_size: 2048 },
  });
});
test.after(() => temp.removeAll());

interface Session { transcript: string; stderr: string; exit_code: number | null; failed: string | null }

function ptySession(argv: string[], steps: ({ expect: string } | { send: string })[]): Session {
  const spec = { argv: [process.execPath, ...cliProcessArgs(argv)], cwd: root, steps, timeout: 600 };
  const r = spawnSync(referencePython(), [join(import.meta.dirname, 'helpers', 'pty_session.py'), JSON.stringify(spec)], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Session;
}

test('on a terminal: up arrow recalls the last prompt; Ctrl-C stops only the reply; Ctrl-C at the prompt exits 0', () => {
  const s = ptySession(['chat', dir, '--temperature', '0', '--max_new_tokens', String(N)], [
    { expect: '>> Prompt: ' },
    { send: 'Reverse: abc\r' },
    { expect: '>> Reply: [\\s\\S]*?>> Prompt: ' },
    { send: '\x1b[A' }, // up arrow: the last prompt comes back for editing
    { expect: 'Reverse: abc' },
    { send: '\r' },
    { expect: '>> Reply: .' }, // the reply is streaming: interrupt it
    { send: '\x03' },
    { expect: '>> Prompt: ' },
    { send: 'Reverse: abc\r' },
    { expect: '>> Reply: [\\s\\S]*?>> Prompt: ' },
    { send: '\x03' }, // at the prompt: end the session
  ]);
  assert.is(s.failed, null, `${s.failed}\n--- terminal:\n${s.transcript}\n--- stderr:\n${s.stderr}`);
  assert.is(s.exit_code, 0, s.stderr);
  assert.not.match(s.transcript, /\^\[\[A/, 'arrow keys are line editing, not printed');
  const replies = s.transcript.split('>> Reply: ').slice(1).map((r) => r.slice(0, r.indexOf('>> Prompt: ')).replace(/\s+$/, ''));
  assert.is(replies.length, 3, s.transcript);
  const times = [...s.stderr.matchAll(/Time for inference: .*, (\d+) tokens( \(stopped by Ctrl-C\))?/g)];
  assert.equal(times.map((m) => [m[1] === String(N), m[2] !== undefined]), [[true, false], [false, true], [true, false]], s.stderr);
  assert.ok(Number(times[1][1]) < N);
  // The reply after a Ctrl-C is whole again (a fresh AbortController per reply).
  assert.ok(replies[0].length > 0);
  assert.is(replies[2], replies[0]);
});

test('--multiline: a prompt spans lines up to !submit (litgpt\'s), then !quit ends the session', async () => {
  const out: string[] = [], err: string[] = [];
  const input = new PassThrough();
  input.end('Reverse: abc\nand this\n!submit\n!quit\n');
  const code = await runCli(['chat', dir, '--multiline', '--temperature', '0', '--max_new_tokens', '6'],
    { out: (t: string) => out.push(t), err: (t: string) => err.push(t), cwd: root, input } as never);
  assert.is(code, 0, err.join(''));
  const model = await Model.load(dir);
  const want = await generateText(model, Tokenizer.fromDir(dir), 'Reverse: abc\nand this', { temperature: 0, maxNewTokens: 6, promptStyle: PromptStyle.fromConfig({ name: 'pythia-14m' }) });
  model.dispose();
  assert.is(out.join(''), ">> Prompt: (Type '!submit' on a new line to end input).\nReverse: abc\nand this\n!submit\n" +
    `>> Reply: ${want.text}\n\n>> Prompt: (Type '!submit' on a new line to end input).\n!quit\n`);
  assert.match(err.join(''), /To exit, enter '!quit' or '!exit' on an empty prompt/);
});

test.run();
