// Atomic writes: a writer killed with SIGKILL mid-write leaves the previous complete file intact and loadable.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TensorFile, saveTensors, Tensor } from '../ts/index.js';
import { packageRoot } from '../ts/addon_loader.js';
import { removeStalePartials } from '../ts/io/atomic.js';
import { py, scratch, values } from './helpers/tensorfiles.js';

const tmp = scratch('atomic');

async function killMidWrite(target: string, format: 'pth' | 'safetensors'): Promise<{ tempSize: number; signal: string | null }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(packageRoot, 'test', 'helpers', 'save-child.ts'), target, format, '3'],
    { cwd: packageRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<string | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  const base = target.split('/').pop()!;
  let tempSize = 0;
  const deadline = Date.now() + 120_000;
  // Wait until the temp file next to the target holds some, but not all, of the data; then kill.
  while (Date.now() < deadline) {
    const temp = readdirSync(tmp.dir).find((f) => f.startsWith(`.${base}.tmp-${child.pid}-`));
    if (temp) {
      tempSize = statSync(join(tmp.dir, temp)).size;
      if (tempSize > (16 << 20)) break;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  child.kill('SIGKILL');
  return { tempSize, signal: await exited };
}

for (const format of ['pth', 'safetensors'] as const) {
  test(`${format}: SIGKILL in the middle of a save leaves the previous file intact and loadable`, async () => {
    const target = tmp.path(`model.${format}`);
    await saveTensors(target, { w: Tensor.from(new Float32Array([1, 2, 3]), [3]) }, { format });
    const before = statSync(target).size;
    const { tempSize, signal } = await killMidWrite(target, format);
    assert.is(signal, 'SIGKILL');
    assert.ok(tempSize > (16 << 20) && tempSize < 3 * (256 << 20), `killed mid-write (temp file at ${tempSize} bytes)`);
    assert.is(statSync(target).size, before);
    const f = await TensorFile.open(target);
    assert.equal(f.names, ['w']);
    assert.equal(await values(await f.get('w')), [1, 2, 3]);
    await f.close();
  });
}

test('the target is PyTorch-loadable after the kill, and a later save replaces it completely', async () => {
  const r = py(`
from safetensors.torch import load_file
print(json.dumps([torch.load(${JSON.stringify(tmp.path('model.pth'))})['w'].tolist(),
                  load_file(${JSON.stringify(tmp.path('model.safetensors'))})['w'].tolist()]))`);
  assert.equal(r, [[1, 2, 3], [1, 2, 3]]);
  await saveTensors(tmp.path('model.pth'), { v: Tensor.from(new Int32Array([7]), [1]) });
  const f = await TensorFile.open(tmp.path('model.pth'));
  assert.equal(f.names, ['v']);
  await f.close();
});

test('removeStalePartials: partials of dead writers go, a folder set aside mid-replace comes back, nothing else is touched', async () => {
  const dir = tmp.path('stale');
  mkdirSync(join(dir, 'final'), { recursive: true });
  // A pid that surely belongs to no process any more: a child that has exited.
  const dead = spawnSync(process.execPath, ['-e', '']).pid;
  const make = (name: string, folder = false) => {
    if (folder) { mkdirSync(join(dir, name)); writeFileSync(join(dir, name, 'x'), name); } else writeFileSync(join(dir, name), name);
  };
  make(`.lit_model.pth.tmp-${dead}-123456`);          // the native writer's partial
  make(`.lit_model.pth.tmp-${dead}-0a1b2c3d`);        // tempSibling's
  make(`.lit_model.pth.tmp-${process.pid}-42`);       // a live writer's
  make(`.lit_model.pth.lora.tmp-${dead}-1`);          // another file's partial
  make('.lit_model.pth.notes');                        // the user's own
  make(`.final.tmp-${dead}-ab12`, true);                 // a partial folder
  make(`.final.old-${dead}-cd34`, true);                 // set aside, but final/ exists: superseded
  make(`.step.old-${dead}-ef56`, true);                  // set aside and step/ missing: to be put back
  assert.equal((await removeStalePartials(dir, 'lit_model.pth')).sort(), [`.lit_model.pth.tmp-${dead}-0a1b2c3d`, `.lit_model.pth.tmp-${dead}-123456`]);
  assert.equal((await removeStalePartials(dir, 'final')).sort(), [`.final.old-${dead}-cd34`, `.final.tmp-${dead}-ab12`]);
  assert.equal(await removeStalePartials(dir, 'step'), [`.step.old-${dead}-ef56`]);
  assert.equal(readdirSync(dir).sort(), [`.lit_model.pth.lora.tmp-${dead}-1`, '.lit_model.pth.notes', `.lit_model.pth.tmp-${process.pid}-42`,
    'final', 'step'].sort());
  assert.is(readFileSync(join(dir, 'step', 'x'), 'utf8'), `.step.old-${dead}-ef56`, 'the set-aside folder is back under its name');
  assert.equal(await removeStalePartials(join(dir, 'missing'), 'x'), []);
});

test.after(() => tmp.remove());
test.run();
