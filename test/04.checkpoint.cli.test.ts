// The CLI: command table, litgpt-style flags, --config files, --help, and errors with exit code 2.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { convertValue } from '../ts/cli/args.js';
import { packageRoot } from '../ts/addon_loader.js';
import { ArgError, parseArgs, type CommandSpec } from '../ts/cli/args.js';
import { runCli } from '../ts/cli/main.js';
import { tempFolders } from './helpers/temp.js';

const folders = tempFolders();
test.after(() => folders.removeAll());

function capture(cwd = packageRoot) {
  const io = { out: '', err: '', cwd };
  return { io: { out: (t: string) => { io.out += t; }, err: (t: string) => { io.err += t; }, cwd }, text: io };
}

async function cli(argv: string[], cwd?: string) {
  const { io, text } = capture(cwd);
  const code = await runCli(argv, io);
  return { code, out: text.out, err: text.err };
}

test('unknown command, unknown / malformed / missing flags exit 2 and name the flag', async () => {
  let r = await cli(['bogus']);
  assert.is(r.code, 2);
  assert.match(r.err, /unknown command 'bogus'.*init, build, migrate/);
  r = await cli(['init', '--bogus', '1']);
  assert.is(r.code, 2);
  assert.match(r.err, /unknown flag --bogus for `litlora init`/);
  r = await cli(['init', '--sede', '1']);
  assert.match(r.err, /Did you mean --seed\?/);
  r = await cli(['init', '--seed', 'abc']);
  assert.is(r.code, 2);
  assert.match(r.err, /--seed expects an integer, got "abc"/);
  r = await cli(['init', '--seed']);
  assert.match(r.err, /flag --seed needs a value \(an integer\)/);
  r = await cli(['init', '--out_dir', '--seed', '3']);
  assert.match(r.err, /flag --out_dir needs a value/);
  r = await cli(['init', '-s', '3']);
  assert.match(r.err, /malformed flag -s/);
  r = await cli(['init', '--precision', '8-true']);
  assert.match(r.err, /--precision expects one of 32-true, bf16-true, 16-true/);
  r = await cli(['init', '--model.bogus_field', '3']);
  assert.match(r.err, /unknown flag --model\.bogus_field/);
  r = await cli(['init', '--model.n_layer', 'two']);
  assert.match(r.err, /--model\.n_layer expects an integer/);
  r = await cli(['init', 'extra']);
  assert.match(r.err, /unexpected argument "extra" for `litlora init` \(it takes only flags\)/);
  r = await cli(['migrate']);
  assert.is(r.code, 2);
  assert.match(r.err, /needs PATH \(or --path\)/);
  r = await cli(['migrate', 'a', 'b']);
  assert.match(r.err, /unexpected argument "b"/);
  r = await cli(['migrate', 'a', '--path', 'b']);
  assert.match(r.err, /given both as an argument and as --path/);
});

test('--help lists every flag with its default; `litlora --help` lists the commands', async () => {
  let r = await cli(['init', '--help']);
  assert.is(r.code, 0);
  for (const f of ['--model_name NAME', '--out_dir DIR', '--seed INT', '--precision 32-true|bf16-true|16-true', '--force BOOL', '--model.<key> VALUE', '--config FILE']) {
    assert.ok(r.out.includes(f), f);
  }
  assert.match(r.out, /\(default: pythia-14m\)/);
  assert.match(r.out, /\(default: 1337\)/);
  assert.match(r.out, /\(default: checkpoints\/<model_name>\)/);
  r = await cli(['migrate', '-h']);
  assert.match(r.out, /Usage: litlora migrate \[PATH\]/);
  assert.match(r.out, /--lora_r INT\s+The LoRA rank the old run used \(default: 8\)/);
  assert.match(r.out, /--lora_dropout FLOAT.*\(default: 0\.05\)/);
  r = await cli(['--help']);
  assert.is(r.code, 0);
  assert.match(r.out, /init\s+Make a base checkpoint/);
  assert.match(r.out, /migrate\s+Rewrite a pre-unification/);
});

const SPEC: CommandSpec = {
  name: 'demo_cmd', summary: 's', positionals: [{ flag: 'checkpoint_dir', metavar: 'DIR' }],
  flags: [
    { name: 'checkpoint_dir', type: 'path', required: true, help: 'base' },
    { name: 'lora_r', type: 'int', default: 8, help: 'r' },
    { name: 'lora_dropout', type: 'float', default: 0.05, help: 'p' },
    { name: 'lora_key', type: 'bool', default: false, help: 'k' },
    { name: 'precision', type: 'string', default: null, nullable: true, help: 'p' },
    { name: 'train.micro_batch_size', type: 'int', default: 1, help: 'mb' },
    { name: 'train.max_steps', type: 'int', default: null, nullable: true, help: 'ms' },
  ],
  async run() {},
};

test('litgpt flag grammar: --a.b value, --a=b, bare booleans, null, positionals, --config with CLI precedence', () => {
  const dir = folders.make('cli');
  let a = parseArgs(SPEC, ['ckpt', '--train.micro_batch_size', '4', '--lora_dropout=0.1', '--lora_key', '--precision', 'null']);
  assert.ok(a !== 'help');
  a = a as Exclude<typeof a, 'help'>;
  assert.equal(a.values, { checkpoint_dir: 'ckpt', 'train.micro_batch_size': 4, lora_dropout: 0.1, lora_key: true, precision: null, lora_r: 8, 'train.max_steps': null });
  assert.equal(a.nested().train, { micro_batch_size: 4, max_steps: null });
  assert.equal([...a.given].sort(), ['checkpoint_dir', 'lora_dropout', 'lora_key', 'precision', 'train.micro_batch_size']);
  const b = parseArgs(SPEC, ['--checkpoint_dir', 'c', '--lora_key', 'false', '--lora_r', '-3']) as any;
  assert.equal([b.values.lora_key, b.values.lora_r], [false, -3]);

  writeFileSync(join(dir, 'run.yaml'), 'checkpoint_dir: from-file\nlora_r: 16\ntrain:\n  micro_batch_size: 2\n  max_steps: 5\n');
  const c = parseArgs(SPEC, ['--config', 'run.yaml', '--lora_r', '32'], dir) as any;
  assert.equal(c.values, { checkpoint_dir: 'from-file', lora_r: 32, 'train.micro_batch_size': 2, 'train.max_steps': 5, lora_dropout: 0.05, lora_key: false, precision: null });
  writeFileSync(join(dir, 'bad.yaml'), 'checkpoint_dir: x\ntrain:\n  micro_batch: 2\n');
  assert.throws(() => parseArgs(SPEC, ['--config', 'bad.yaml'], dir), (e: Error) => e instanceof ArgError && /--config bad\.yaml: unknown flag --train\.micro_batch .*Did you mean --train\.micro_batch_size\?/.test(e.message));
  writeFileSync(join(dir, 'badtype.yaml'), 'checkpoint_dir: x\nlora_r: eight\n');
  assert.throws(() => parseArgs(SPEC, ['--config', 'badtype.yaml'], dir), /--config badtype\.yaml: --lora_r expects an integer, got "eight"/);
  assert.throws(() => parseArgs(SPEC, ['--config', 'absent.yaml'], dir), /cannot read it/);
  assert.throws(() => parseArgs(SPEC, ['--lora_r', '8']), /needs DIR \(or --checkpoint_dir\)/);
  assert.throws(() => parseArgs(SPEC, ['c', '--lora_r', 'null']), /--lora_r expects an integer; it cannot be null/);
  assert.is(parseArgs(SPEC, ['--help']), 'help');
});

test('the installed entry point exits 2 on a bad flag (real process)', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(packageRoot, 'ts', 'cli', 'main.ts'), 'init', '--bogus'], {
    cwd: packageRoot, encoding: 'utf8',
  });
  assert.is(r.status, 2);
  assert.match(r.stderr, /unknown flag --bogus/);
});

test('`litlora --version` and `-V` print package.json\'s version and exit 0 (in process and as a real process)', async () => {
  const version = (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  assert.match(version, /^\d+\.\d+\.\d+/);
  for (const flag of ['--version', '-V']) {
    const r = await cli([flag]);
    assert.equal([r.code, r.out, r.err], [0, `${version}\n`, ''], flag);
  }
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(packageRoot, 'ts', 'cli', 'main.ts'), '--version'], {
    cwd: packageRoot, encoding: 'utf8',
  });
  assert.equal([r.status, r.stdout], [0, `${version}\n`]);
});

test('a choice that spells null (--progress none) is taken as the choice', () => {
  const spec = { name: 'progress', type: 'string' as const, choices: ['auto', 'bar', 'plain', 'none'] };
  assert.is(convertValue(spec, 'none', 'command line'), 'none');
  assert.throws(() => convertValue({ name: 'x', type: 'string' as const, choices: ['a'] }, 'none', 'command line'), /cannot be null/);
});

test('a repeatable flag (--adapter NAME=DIR) collects every value given, or a --config list; the default when none', () => {
  const dir = folders.make('cli');
  const spec: CommandSpec = {
    name: 'rep', summary: '', run: async () => {},
    flags: [{ name: 'adapter', type: 'string', default: [], repeatable: true, help: '' }, { name: 'port', type: 'int', default: 1, help: '' }],
  };
  const a = parseArgs(spec, ['--adapter', 'a=x', '--port', '2', '--adapter=b=y']) as any;
  assert.equal(a.values, { adapter: ['a=x', 'b=y'], port: 2 });
  assert.equal((parseArgs(spec, []) as any).values.adapter, []);
  writeFileSync(join(dir, 'rep.yaml'), 'adapter:\n  - c=z\n  - d=w\n');
  assert.equal((parseArgs(spec, ['--config', 'rep.yaml'], dir) as any).values.adapter, ['c=z', 'd=w']);
  assert.equal((parseArgs(spec, ['--config', 'rep.yaml', '--adapter', 'e=v'], dir) as any).values.adapter, ['e=v']);
  // A flag that is not repeatable keeps the last value given, as before.
  assert.is((parseArgs(spec, ['--port', '3', '--port', '4']) as any).values.port, 4);
});

test.run();
