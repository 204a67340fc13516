// File-system failures reach a CLI user as coded errors — ERR_IO with the path, what litlora was doing, the
// reason and what to do — on one line with exit 1 and no stack trace, for every command, and leave the
// user's files as they were. (Tests run as root, where permissions stop nothing: a path under a regular file
// (ENOTDIR), /proc (takes no new entries) and /dev/full (ENOSPC) make the failures.)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { COMMANDS, runCli } from '../ts/cli/main.js';
import { ioError, isFsError } from '../ts/io/fs_errors.js';
import { cliProcessArgs, cliRunFolder } from './helpers/cli_process.js';
import { tempFolders } from './helpers/temp.js';

const temp = tempFolders();
let dir = '', file = '';
const SHORT = ['--data', 'JSON', '--data.json_path', 'data.json', '--train.global_batch_size', '4', '--train.micro_batch_size', '4',
  '--train.max_steps', '1', '--eval.max_new_tokens', '0', '--eval.final_validation', 'false', '--progress', 'none'];

test.before(async () => {
  dir = temp.make('fserrors');
  await cliRunFolder(dir);
  file = join(dir, 'notes.txt');
  writeFileSync(file, 'the user\'s file\n');
});
test.after(() => temp.removeAll());

async function cli(argv: string[], input?: string): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const io = { out: (t: string) => { out += t; }, err: (t: string) => { err += t; }, cwd: dir, input: input === undefined ? undefined : Readable.from([input]) };
  const code = await runCli(argv, io);
  return { code, out, err };
}

/** Exit 1 and exactly one line on stderr: `litlora <name>: error [<code>]: <message>`. */
function assertCodedLine(r: { code: number; err: string }, name: string, code: string, message: string | RegExp): void {
  assert.is(r.code, 1, r.err);
  assert.ok(r.err.endsWith('\n') && !r.err.slice(0, -1).includes('\n'), `one line on stderr, got: ${r.err}`);
  assert.ok(r.err.startsWith(`litlora ${name}: error [${code}]: `), r.err);
  assert.match(r.err, message);
}

test('ioError: what litlora was doing, the syscall and path, the reason and advice; a full disk (/dev/full) too', () => {
  let caught: unknown;
  try { mkdirSync(join(file, 'sub')); } catch (e) { caught = e; }
  assert.ok(isFsError(caught));
  assert.is(ioError(caught as NodeJS.ErrnoException, 'create out_dir x').message,
    `cannot create out_dir x (mkdir ${join(file, 'sub')}): not a directory (ENOTDIR). A part of the path is a file, not a folder: ` +
    'choose a path whose parents are all folders.');
  assert.is(ioError(caught as NodeJS.ErrnoException).code, 'ERR_IO');
  assert.not.ok(isFsError(new Error('not from the file system')));
  if (existsSync('/dev/full')) {
    try { writeFileSync('/dev/full', 'x'); caught = null; } catch (e) { caught = e; }
    assert.is(ioError(caught as NodeJS.ErrnoException, 'write the metrics file m.csv').message,
      'cannot write the metrics file m.csv (write): no space left on device (ENOSPC). The disk is full: free some space ' +
      '(or choose another disk) and run again; files written before are untouched.');
  }
});

test('a file where a folder belongs: init, finetune and merge_lora fail with ERR_IO naming it and leave it alone', async () => {
  const run = await cli(['finetune', 'lora', 'base', ...SHORT, '--out_dir', 'run']);
  assert.is(run.code, 0, run.err);
  const isFile = (what: string, path: string) => `error [ERR_IO]: cannot ${what}: ${path} is a file, not a folder.`;
  const cases: [string[], string, string][] = [
    [['init', '--out_dir', file], 'init', `error [ERR_IO]: cannot write the checkpoint folder ${file}: it is a file, not a folder. Choose another path, or move the file away.`],
    [['init', '--out_dir', join(file, 'base')], 'init', isFile(`create the checkpoint folder ${join(file, 'base')}`, file)],
    [['finetune', 'lora', 'base', ...SHORT, '--out_dir', file], 'finetune lora', isFile(`create out_dir ${file}`, file)],
    [['finetune', 'lora', 'base', ...SHORT, '--out_dir', join(file, 'a', 'b')], 'finetune lora', isFile(`create out_dir ${join(file, 'a', 'b')}`, file)],
    [['merge_lora', 'run/final', '--out_dir', file], 'merge_lora', `error [ERR_IO]: cannot write the checkpoint folder ${file}: it is a file, not a folder.`],
    [['merge_lora', 'run/final', '--out_dir', join(file, 'merged')], 'merge_lora', isFile(`create the checkpoint folder ${join(file, 'merged')}`, file)],
  ];
  for (const [argv, name, message] of cases) {
    const r = await cli(argv);
    assertCodedLine(r, name, 'ERR_IO', message);
    assert.is(readFileSync(file, 'utf8'), 'the user\'s file\n', argv.join(' '));
  }
});

test('a missing or wrong folder given to generate, chat, migrate and finetune is a coded error, not a stack trace', async () => {
  const missing = join(dir, 'nowhere');
  assertCodedLine(await cli(['generate', 'nowhere']), 'generate', 'ERR_CHECKPOINT_MISSING', `${missing} has no lit_model.pth or lit_model.pth.lora (the folder does not exist).`);
  assertCodedLine(await cli(['chat', file], ''), 'chat', 'ERR_CHECKPOINT_MISSING', `${file} has no lit_model.pth or lit_model.pth.lora.`);
  assertCodedLine(await cli(['migrate', join(file, 'old')]), 'migrate', 'ERR_CHECKPOINT_MISSING', `${join(file, 'old')} does not exist.`);
  assertCodedLine(await cli(['finetune', 'lora', 'nowhere', ...SHORT, '--out_dir', 'x']), 'finetune lora', 'ERR_CHECKPOINT_MISSING', `no tokenizer.json in '${missing}'`);
  assert.not.ok(existsSync(join(dir, 'x')), 'the failed run left no out_dir behind');
});

test('a file-system error no layer put in words still reaches the user as ERR_IO (the CLI\'s last resort)', async () => {
  const path = join(dir, 'nothing', 'here');
  COMMANDS.fs_probe = ['reads a missing file', async () => ({
    command: { name: 'fs probe', summary: '', flags: [], run: async () => { await readFile(path); } },
  })];
  try {
    assertCodedLine(await cli(['fs_probe']), 'fs probe', 'ERR_IO',
      `error [ERR_IO]: open ${path} failed: no such file or directory (ENOENT). It does not exist: check the path (a parent folder may be missing or misspelled).\n`);
  } finally {
    delete COMMANDS.fs_probe;
  }
});

test('a real process: out_dir in a folder that takes no new entries (/proc) is ERR_IO at once, one line, exit 1', () => {
  if (!existsSync('/proc/self')) return; // Linux only
  // The timeout only turns a hang into a failure (Node's recursive mkdir loops forever here).
  const r = spawnSync(process.execPath, cliProcessArgs(['finetune', 'lora', 'base', ...SHORT, '--out_dir', '/proc/litlora-test/run']),
    { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  assert.is(r.status, 1, `${r.signal ?? ''} ${r.stderr}`);
  assert.is(r.stderr, 'litlora finetune lora: error [ERR_IO]: cannot create out_dir /proc/litlora-test/run: /proc does not accept new folders ' +
    '(mkdir /proc/litlora-test: ENOENT; a virtual file system such as /proc?). Choose a location on a writable disk.\n');
  const init = spawnSync(process.execPath, cliProcessArgs(['init', '--out_dir', '/proc/litlora-test']), { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  assert.is(init.status, 1, init.stderr);
  assert.match(init.stderr, /^litlora init: error \[ERR_IO\]: cannot write the checkpoint folder \/proc\/litlora-test \(mkdir \/proc\/\.litlora-test\.tmp-[^)]+\): no such file or directory \(ENOENT\)\. [^\n]*\n$/);
});

test('a disk too small for a GGUF export: ERR_IO before any tensor is written; the user\'s file there is untouched', () => {
  // A 16 KB tmpfs (the export is ~0.1 MB) in a mount namespace of the CLI's own (root can make one; elsewhere the test says why it skips).
  if (spawnSync('unshare', ['-m', 'true']).status !== 0) {
    console.log('  skipped: unshare -m (a private mount namespace) is not allowed here');
    return;
  }
  const mnt = temp.make('smallfs');
  const q = (a: string) => `'${a.replaceAll("'", "'\\''")}'`;
  const litlora = [process.execPath, ...cliProcessArgs(['convert_to_gguf', 'base', join(mnt, 'm.gguf'), '--outtype', 'f32', '--force'])].map(q).join(' ');
  const script = `mount -t tmpfs -o size=16k none ${q(mnt)} && printf 'the user\\047s file\\n' > ${q(join(mnt, 'm.gguf'))} && ` +
    `${litlora}; echo "exit=$?"; cat ${q(join(mnt, 'm.gguf'))}; ls -A ${q(mnt)}`;
  const r = spawnSync('unshare', ['-m', 'sh', '-c', script], { cwd: dir, encoding: 'utf8' });
  assert.match(r.stderr, /^litlora convert_to_gguf: error \[ERR_IO\]: writing \S+m\.gguf needs \d+ bytes, more than the disk has free: free some space \(or choose another disk\) and run again; the previous file, if any, is unchanged\n$/);
  assert.is(r.stdout, 'exit=1\nthe user\'s file\nm.gguf\n', 'the user\'s file as it was, no partial left beside it');
});

test.run();
