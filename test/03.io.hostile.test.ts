// Hostile and broken tensor files: refused with ERR_CHECKPOINT_FORMAT and a useful message, nothing executed,
// never a crash. Ends with an in-suite run of the fuzz script.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { TensorFile } from '../ts/index.js';
import { fuzzTensorFiles } from '../scripts/fuzz-tensorfiles.js';
import { assertCode } from './helpers/assert.js';
import { py, scratch } from './helpers/tensorfiles.js';

const tmp = scratch('hostile');
const D = JSON.stringify(tmp.dir);
const MARKER = tmp.path('PWNED');

test.before(() => {
  py(`
import os, struct
D = ${D}
marker = ${JSON.stringify(MARKER)}
class SystemPayload:
    def __reduce__(self):
        return (os.system, ('touch ' + marker,))
class EvalPayload:
    def __reduce__(self):
        return (eval, ("open(%r, 'w').write('x')" % marker,))
torch.save({'w': torch.ones(2), 'x': SystemPayload()}, D + '/evil-system.pth')
torch.save({'w': torch.ones(2), 'x': EvalPayload()}, D + '/evil-eval.pth')
torch.save({'w': torch.ones(2), 'x': SystemPayload()}, D + '/evil-proto4.pth', pickle_protocol=4)

def rewrite(src, dst, edit, method=zipfile.ZIP_STORED):
    zi = zipfile.ZipFile(src)
    with zipfile.ZipFile(dst, 'w', method) as zo:
        for n in zi.namelist():
            d = edit(n, zi.read(n))
            if d is not None:
                zo.writestr(n, d)
good = D + '/good.pth'
torch.save({'w': torch.arange(8.), 'v': torch.arange(4)}, good)
rewrite(good, D + '/short-record.pth', lambda n, d: d[:10] if n.endswith('data/0') else d)
rewrite(good, D + '/missing-record.pth', lambda n, d: None if n.endswith('data/1') else d)
rewrite(good, D + '/wrong-storage.pth', lambda n, d: d.replace(b'ctorch\\nFloatStorage\\n', b'ctorch\\nSize\\n') if n.endswith('data.pkl') else d)
rewrite(good, D + '/compressed.pth', lambda n, d: d, zipfile.ZIP_DEFLATED)
raw = open(good, 'rb').read()
open(D + '/truncated-half.pth', 'wb').write(raw[:len(raw) // 2])
open(D + '/truncated-end.pth', 'wb').write(raw[:-1])
cd = raw.find(b'PK\\x01\\x02')
bad = bytearray(raw); bad[cd:cd + 4] = b'XXXX'
open(D + '/corrupt-cd.pth', 'wb').write(bad)
bad = bytearray(raw); bad[cd + 42:cd + 46] = (0x7fffff00).to_bytes(4, 'little')
open(D + '/corrupt-offset.pth', 'wb').write(bad)
z64 = raw.rfind(b'PK\\x06\\x06')
bad = bytearray(raw); bad[z64 + 48:z64 + 56] = (2**62).to_bytes(8, 'little')
open(D + '/corrupt-zip64.pth', 'wb').write(bad)
import tarfile, io
with tarfile.open(D + '/legacy-tar.pth', 'w', format=tarfile.PAX_FORMAT) as tar:  # the tar layout of PyTorch's earliest torch.save
    for member in ['sys_info', 'pickle', 'storages', 'tensors']:
        info = tarfile.TarInfo(member); info.size = 1
        tar.addfile(info, io.BytesIO(b'x'))
torch.save({'s': torch.eye(3).to_sparse()}, D + '/sparse.pth')
torch.save(torch.ones(2), D + '/bare.pth')
torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), D + '/script.pt')
open(D + '/text.pth', 'w').write('hello, not a checkpoint')
open(D + '/empty.pth', 'wb').close()

def st(name, header, data=b''):
    h = header.encode()
    open(D + '/' + name, 'wb').write(struct.pack('<Q', len(h)) + h + data)
open(D + '/st-huge-header.safetensors', 'wb').write(struct.pack('<Q', 2**40) + b'{}')
st('st-bad-json.safetensors', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]', b'\\0' * 8)
st('st-offsets.safetensors', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', b'\\0' * 4)
st('st-dtype.safetensors', '{"a":{"dtype":"X9","shape":[2],"data_offsets":[0,8]}}', b'\\0' * 8)
st('st-dup.safetensors', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', b'\\0' * 8)
st('st-shape.safetensors', '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', b'\\0' * 8)
st('st-neg.safetensors', '{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', b'\\0' * 8)
print(1)`);
});

test('a pickle calling os.system / eval is refused naming the global, and nothing runs', async () => {
  await assertCode(() => TensorFile.open(tmp.path('evil-system.pth')), 'ERR_CHECKPOINT_FORMAT', /refused the global 'posix\.system'.*Nothing was executed/);
  await assertCode(() => TensorFile.open(tmp.path('evil-eval.pth')), 'ERR_CHECKPOINT_FORMAT', /refused the global 'builtins\.eval'/);
  await assertCode(() => TensorFile.open(tmp.path('evil-proto4.pth')), 'ERR_CHECKPOINT_FORMAT', /refused the global 'posix\.system'/);
  assert.not.ok(existsSync(MARKER), 'the payload must not have run');
});

test('truncated archives, corrupt central directories and zip64 records', async () => {
  for (const [file, message] of [
    ['truncated-half.pth', /truncated|end-of-central-directory/],
    ['truncated-end.pth', /truncated|end-of-central-directory|corrupt/],
    ['corrupt-cd.pth', /central directory entry 0 is corrupt/],
    ['corrupt-offset.pth', /local header .* is missing or corrupt/],
    ['corrupt-zip64.pth', /central directory .* lies outside the file/],
  ] as const) {
    await assertCode(() => TensorFile.open(tmp.path(file)), 'ERR_CHECKPOINT_FORMAT', message);
  }
});

test('a data record shorter than its tensor, a missing record, a wrong storage type, compressed records', async () => {
  await assertCode(() => TensorFile.open(tmp.path('short-record.pth')), 'ERR_CHECKPOINT_FORMAT',
    /data entry 'good\/data\/0' has 10 bytes, shorter than the storage of 'w' \(8 × 4 = 32 bytes\)/);
  await assertCode(() => TensorFile.open(tmp.path('missing-record.pth')), 'ERR_CHECKPOINT_FORMAT', /'good\/data\/1' of 'v' is missing/);
  await assertCode(() => TensorFile.open(tmp.path('wrong-storage.pth')), 'ERR_CHECKPOINT_FORMAT', /wrong storage type torch\.Size/);
  await assertCode(() => TensorFile.open(tmp.path('compressed.pth')), 'ERR_CHECKPOINT_FORMAT', /compressed .*Re-save/);
});

test('not a checkpoint: the oldest (tar) format, TorchScript, sparse, a bare tensor, text, empty, a folder', async () => {
  await assertCode(() => TensorFile.open(tmp.path('legacy-tar.pth')), 'ERR_CHECKPOINT_FORMAT', /oldest \(tar\) serialization.*weights-only loader refuses it too/);
  await assertCode(() => TensorFile.open(tmp.path('script.pt')), 'ERR_CHECKPOINT_FORMAT', /TorchScript/);
  await assertCode(() => TensorFile.open(tmp.path('sparse.pth')), 'ERR_CHECKPOINT_FORMAT', /_rebuild_sparse_tensor, which litlora does not support/);
  await assertCode(() => TensorFile.open(tmp.path('bare.pth')), 'ERR_CHECKPOINT_FORMAT', /a single tensor, not a dict/);
  await assertCode(() => TensorFile.open(tmp.path('text.pth')), 'ERR_CHECKPOINT_FORMAT', /neither a PyTorch \.pth \(zip\) nor a \.safetensors file \(it starts with 68 65 6c/);
  await assertCode(() => TensorFile.open(tmp.path('empty.pth')), 'ERR_CHECKPOINT_FORMAT', /is empty/);
  await assertCode(() => TensorFile.open(tmp.dir), 'ERR_CHECKPOINT_FORMAT', /not a regular file/);
});

test('broken safetensors headers', async () => {
  for (const [file, message] of [
    ['st-huge-header.safetensors', /header claims 1099511627776 bytes/],
    ['st-bad-json.safetensors', /malformed safetensors header/],
    ['st-offsets.safetensors', /data_offsets \[0, 8\] that do not fit the 4 data bytes/],
    ['st-dtype.safetensors', /unknown dtype 'X9'/],
    ['st-dup.safetensors', /'a' appears twice/],
    ['st-shape.safetensors', /12 bytes\) has data_offsets \[0, 8\]/],
    ['st-neg.safetensors', /expected a non-negative integer/],
  ] as const) {
    await assertCode(() => TensorFile.open(tmp.path(file)), 'ERR_CHECKPOINT_FORMAT', message);
  }
});

test('fuzz: 600 mutations of real files and crafted views, every truncation of two small files, read in-process: no crash, every error coded', async () => {
  const report = await fuzzTensorFiles({ iterations: 600, seed: 20240229, truncate: ['tiny.safetensors', 'tiny-legacy.pth'] });
  assert.equal(report.unexpected, []);
  assert.is(report.iterations, 600);
  assert.ok(report.crafted > 120, `crafted files: ${report.crafted}`);
  assert.ok(report.truncations > 1400, `truncations: ${report.truncations}`);
  assert.ok(report.opened > 60 && report.errors.ERR_CHECKPOINT_FORMAT > 300, JSON.stringify(report));
});

test.after(() => tmp.remove());
test.run();
