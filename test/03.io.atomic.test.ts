// Atomic writes: a writer killed with SIGKILL mid-write leaves the previous complete file intact and loadable.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TensorFile, saveTensors, Tensor } from '../ts/index.js';
import { packageRoot } from '../ts/binding.js';
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

test.after(() => tmp.remove());
test.run();
