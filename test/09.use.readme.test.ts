// The README cannot drift: every ```ts block of README.md compiles (tsc with the project's strict settings) and
// runs (tsx, in a child process) as a user's script would, with `from 'litlora'` pointing at this checkout's
// ts/index.ts. Each block runs in a fresh folder holding what the README's paths name: a base checkpoint at
// checkpoints/EleutherAI/pythia-14m (`litlora init`: pythia-14m's shapes, random weights, nothing downloaded)
// and data.json (instructions in litgpt's JSON format).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packageRoot } from '../ts/addon_loader.js';
import { initCheckpoint, synthetic } from '../ts/index.js';
import { tempFolders } from './helpers/temp.js';

const folders = tempFolders();
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const TSC = join(packageRoot, 'node_modules', '.bin', 'tsc');
const INDEX = join(packageRoot, 'ts', 'index.js');

/** The ```ts blocks of a Markdown text, with the line each starts on. */
function tsBlocks(markdown: string): { line: number; code: string }[] {
  const out: { line: number; code: string }[] = [];
  for (const m of markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)) {
    out.push({ line: markdown.slice(0, m.index).split('\n').length, code: m[1]! });
  }
  return out;
}

const blocks = tsBlocks(readFileSync(join(packageRoot, 'README.md'), 'utf8'));
let fixture = '';
const ranIn = new Map<number, string>();

test.before(async () => {
  fixture = folders.make('readme-fixture');
  await initCheckpoint({ outDir: join(fixture, 'checkpoints', 'EleutherAI', 'pythia-14m'), modelName: 'pythia-14m', seed: 1 });
  const { train } = synthetic.syntheticInstructionTask({ trainSize: 48, testSize: 2 });
  synthetic.writeInstructionJson(join(fixture, 'data.json'), train);
});
test.after(() => folders.removeAll());

test('README.md has ts blocks, each importing from \'litlora\'', () => {
  assert.ok(blocks.length >= 2, `found ${blocks.length}`);
  for (const b of blocks) assert.match(b.code, /from 'litlora';/, `the block at line ${b.line}`);
});

blocks.forEach((block, i) => {
  test(`README.md's ts block at line ${block.line} compiles and runs`, () => {
    const cwd = folders.make('readme');
    cpSync(fixture, cwd, { recursive: true });
    // .mts: an ES module for tsc and tsx alike (top-level await), wherever the folder is.
    writeFileSync(join(cwd, 'snippet.mts'), block.code.replaceAll("from 'litlora'", `from ${JSON.stringify(INDEX)}`));
    writeFileSync(join(cwd, 'tsconfig.json'), JSON.stringify({
      extends: join(packageRoot, 'tsconfig.json'),
      compilerOptions: { typeRoots: [join(packageRoot, 'node_modules', '@types')] },
      include: ['snippet.mts'],
    }));
    const tsc = spawnSync(TSC, ['-p', join(cwd, 'tsconfig.json')], { cwd, encoding: 'utf8' });
    assert.is(tsc.status, 0, `tsc:\n${tsc.stdout}${tsc.stderr}`);
    const run = spawnSync(process.execPath, ['--import', TSX, 'snippet.mts'], { cwd, encoding: 'utf8', timeout: 300_000 });
    assert.is(run.status, 0, `the block failed:\n${run.stderr}`);
    ranIn.set(i, cwd);
  });
});

test('the API block trained, loaded, generated and merged: the folders it names are there', () => {
  const i = blocks.findIndex((b) => b.code.includes('trainer.fit()'));
  assert.ok(i >= 0 && ranIn.has(i), 'the block with the Trainer ran');
  const out = join(ranIn.get(i)!, 'out', 'finetune', 'lora');
  for (const f of ['final/lit_model.pth.lora', 'final/hyperparameters.yaml', 'final/prompt_style.yaml', 'final_merged/lit_model.pth']) {
    assert.ok(existsSync(join(out, f)), f);
  }
  assert.not.ok(existsSync(join(out, 'final', 'lit_model.pth')), 'merge: false leaves final/ LoRA-only');
});

test.run();
