// Files that once killed Node: a crafted stride-0 view whose logical size is 2^60 bytes (V8 aborted in
// napi_adjust_external_memory), and a mapped tensor whose file is truncated in place (SIGBUS). Each runs in a
// child process; the parent asserts a clean exit and the coded errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../ts/addon_loader.js';
import { py, scratch } from './helpers/tensorfiles.js';

const tmp = scratch('crash');

function child(scenario: string, ...args: string[]): any {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(packageRoot, 'test', 'helpers', 'crash-child.ts'), scenario, ...args],
    { cwd: packageRoot, encoding: 'utf8', timeout: 120_000 });
  assert.is(r.signal, null, `the child was killed by ${r.signal}: ${r.stderr}`);
  assert.is(r.status, 0, `the child exited with ${r.status}: ${r.stderr.slice(-2000)}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

test.before(() => {
  py(`
D = ${JSON.stringify(tmp.dir)}
import os, yaml
def unaligned_copy(src, dst):
    # Python's zipfile pads nothing, as most non-PyTorch zip writers: records land at any offset, so litlora
    # copies these storages instead of mapping them. A padding record first makes the data records unaligned.
    zi = zipfile.ZipFile(src)
    for pad in range(1, 8):
        with zipfile.ZipFile(dst, 'w', zipfile.ZIP_STORED) as zo:
            zo.writestr('pad' * pad, b'x')
            for n in zi.namelist():
                zo.writestr(n, zi.read(n))
        zo = zipfile.ZipFile(dst)
        offsets = [i.header_offset + 30 + len(i.filename) + len(i.extra) for i in zo.infolist() if '/data/' in i.filename]
        if all(o % 4 for o in offsets):
            return
    raise SystemExit('could not unalign')
huge = torch.ones(1).expand(2**29, 2**29)
torch.save({'w': huge, 'small': torch.arange(3.)}, D + '/aligned.pth')
unaligned_copy(D + '/aligned.pth', D + '/huge-view.pth')
os.makedirs(D + '/model', exist_ok=True)
torch.save({'transformer.wte.weight': torch.ones(1).expand(2**29, 2**29)}, D + '/model/tmp.pth')
unaligned_copy(D + '/model/tmp.pth', D + '/model/lit_model.pth')
os.remove(D + '/model/tmp.pth')
yaml.safe_dump({'name': 'pythia-tiny', 'block_size': 64, 'vocab_size': 100, 'padding_multiple': 64, 'n_layer': 1,
    'n_head': 4, 'n_embd': 32, 'rotary_percentage': 0.25, 'parallel_residual': True, 'bias': True,
    'norm_class_name': 'LayerNorm', 'mlp_class_name': 'GptNeoxMLP', 'intermediate_size': 64}, open(D + '/model/model_config.yaml', 'w'))
torch.save({'w': torch.arange(1 << 20, dtype=torch.float32)}, D + '/mapped.pth')
print(1)`);
});

test('a 2^60-byte stride-0 view over a 4-byte storage: coded errors, no V8 abort', () => {
  const r = child('hugeView', tmp.path('huge-view.pth'), tmp.path('model'));
  assert.is(r.bytes, 2 ** 60);
  assert.is(r.get.code, 'ERR_CHECKPOINT_FORMAT');
  assert.match(r.get.message, /'w' claims the shape \[536870912, 536870912\] \(1152921504606846976 bytes\) as an overlapping view of a storage of 4 bytes/);
  assert.is(r.getAll.code, 'ERR_CHECKPOINT_FORMAT');
  assert.is(r.small, 'ok', 'the file\'s other tensors still read');
  assert.is(r.load.code, 'ERR_CHECKPOINT_FORMAT');
  assert.match(r.load.message, /transformer\.wte\.weight' claims the shape/);
});

test('a mapped tensor whose file is truncated underneath: ERR_IO, then ERR_IO on every later use, no SIGBUS', () => {
  const r = child('truncateMapped', tmp.path('mapped.pth'));
  assert.is(r.firstValue, 1);
  assert.is(r.read.code, 'ERR_IO');
  assert.match(r.read.message, /truncated or overwritten in place/);
  assert.is(r.again.code, 'ERR_IO');
  assert.match(r.again.message, /this tensor maps .*mapped\.pth, which was truncated/);
  assert.is(r.reopen.code, 'ERR_CHECKPOINT_FORMAT', 'the now empty file is refused as such');
});

test.after(() => tmp.remove());
test.run();
