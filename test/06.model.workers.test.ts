// worker_threads: the addon in several JavaScript environments at once. Class constructors once lived in
// process-wide statics, so two workers that each loaded a model aborted ("Entering the V8 API without proper
// locking"), and a main-thread Model.load after a worker had used the addon and exited segfaulted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../ts/addon_loader.js';
import { saveTensors, writeConfig } from '../ts/index.js';
import { syntheticJson, tempDir, tinyModel } from './helpers/tiny_train.js';

const dir = tempDir('litlora-workers-');

test('workers load, train a step and generate at once; one is terminated mid-work; the main thread goes on', async () => {
  const folder = join(dir, 'base');
  mkdirSync(folder);
  const base = await tinyModel();
  await saveTensors(join(folder, 'lit_model.pth'), Object.fromEntries(await base.stateDict()));
  await writeConfig(join(folder, 'model_config.yaml'), base.config);
  base.dispose();
  const { path: json } = syntheticJson(dir, { trainSize: 20, testSize: 4, seed: 5 });

  const r = spawnSync(process.execPath, ['--import', 'tsx', join(packageRoot, 'test', 'helpers', 'worker-child.ts'), folder, json],
    { cwd: packageRoot, encoding: 'utf8', timeout: 300_000 });
  assert.is(r.signal, null, `the child was killed by ${r.signal}: ${r.stderr.slice(-2000)}`);
  assert.is(r.status, 0, `the child exited with ${r.status}: ${r.stderr.slice(-2000)}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.is(out.uncaught, undefined, out.message);
  assert.ok(Number.isFinite(out.first.loss) && out.first.tokens.length === 6, JSON.stringify(out.first));
  // Every environment did the same seeded work: the same loss and the same greedy tokens.
  for (const result of [...out.parallel, out.finished, out.after]) {
    assert.is(result.error, undefined, result.message);
    assert.is(result.loss, out.first.loss);
    assert.equal(result.tokens, out.first.tokens);
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
