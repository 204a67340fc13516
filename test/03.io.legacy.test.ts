// PyTorch's legacy (pre-1.6, non-zip) torch.save format and numpy scalars: read through the same allowlist
// unpickler as zip files, equal to what torch.load(weights_only=True) gives; hostile legacy files are coded
// errors, never a crash (checked in a child process).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TensorFile } from '../ts/index.js';
import { packageRoot } from '../ts/addon_loader.js';
import { assertCode } from './helpers/assert.js';
import { py, richStateDict, scratch } from './helpers/tensorfiles.js';

const tmp = scratch('legacy');
const P = (name: string) => JSON.stringify(tmp.path(name));

// torch.load(weights_only=True) reads numpy scalars only once these are allowlisted; litlora allows the same.
const NUMPY_SAFE = `
import numpy as np
NUMPY_SAFE = [np._core.multiarray.scalar, (np._core.multiarray.scalar, 'numpy.core.multiarray.scalar'), np.dtype] + \\
    [type(np.dtype(c)) for c in ['f8', 'f4', 'f2', 'i8', 'i4', 'i2', 'i1', 'u8', 'u4', 'u2', 'u1', 'b1']]
def reference(path):
    with torch.serialization.safe_globals(NUMPY_SAFE):
        return torch.load(path, weights_only=True)
def describe(obj, prefix=''):
    # Flattened as litlora names things: {name: tensor bytes/shape/dtype/strides} and {name: plain value}.
    tensors, plain = {}, {}
    def walk(o, name):
        if isinstance(o, torch.Tensor):
            t = o.detach()
            tensors[name] = {'shape': list(t.shape), 'stride': list(t.stride()), 'dtype': str(t.dtype)[6:],
                             'hex': t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes().hex()}
        elif isinstance(o, dict):
            for k, v in o.items(): walk(v, f'{name}.{k}' if name else str(k))
        elif isinstance(o, (list, tuple)):
            for i, v in enumerate(o): walk(v, f'{name}.{i}' if name else str(i))
        elif isinstance(o, np.generic):
            plain[name] = o.item()
        else:
            plain[name] = o
    walk(obj, prefix)
    return {'tensors': tensors, 'values': plain}
`;

const DTYPES: Record<string, string> = {
  float: 'float32', double: 'float64', half: 'float16', long: 'int64', int: 'int32', short: 'int16',
};

/** What litlora reads, in the form `describe` prints. */
async function read(path: string): Promise<{ tensors: Record<string, any>; values: Record<string, unknown> }> {
  const f = await TensorFile.open(path);
  const tensors: Record<string, any> = {};
  try {
    for (const [name, t] of await f.getAll()) {
      const raw = await t.data({ raw: true });
      tensors[name] = { shape: t.shape, dtype: t.dtype, hex: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('hex') };
      t.dispose();
    }
  } finally {
    await f.close();
  }
  return { tensors, values: { ...f.values } };
}

function expectSame(ours: Awaited<ReturnType<typeof read>>, theirs: { tensors: Record<string, any>; values: Record<string, unknown> }): void {
  assert.equal(Object.keys(ours.tensors), Object.keys(theirs.tensors), 'tensor names, in file order');
  for (const [name, e] of Object.entries(theirs.tensors)) {
    assert.equal(ours.tensors[name].shape, e.shape, name);
    assert.is(ours.tensors[name].dtype, DTYPES[e.dtype] ?? e.dtype, name);
    assert.is(ours.tensors[name].hex, e.hex, `${name}: bytes`);
  }
  // JSON carries int64 values beyond 2^53 as rounded numbers; litlora gives them as bigint.
  const rounded = Object.fromEntries(Object.entries(ours.values).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v]));
  assert.equal(rounded, theirs.values);
}

test('legacy torch.save → TensorFile: every dtype, views of one storage, Parameters, nested containers, bit-exact vs torch.load', async () => {
  const expected = py(`${NUMPY_SAFE}
${richStateDict('collections.OrderedDict()')}
d['param'] = torch.nn.Parameter(torch.randn(2, 2))
d['nested'] = {'list': [torch.ones(2), torch.zeros(1, dtype=torch.int64)], 'n': 3, 'name': 'x', 'none': None}
for proto in [2, 4]:
    torch.save(d, ${P('rich')} + f'-{proto}.pth', _use_new_zipfile_serialization=False, pickle_protocol=proto)
print(json.dumps(describe(reference(${P('rich')} + '-2.pth'))))`);
  for (const proto of [2, 4]) {
    const path = tmp.path(`rich-${proto}.pth`);
    assert.is(readFileSync(path)[0], 0x80, 'a legacy file starts with a pickle, not a zip header');
    const f = await TensorFile.open(path);
    assert.is(f.format, 'pth');
    assert.equal(f.info('view.t'), { shape: [4, 6], dtype: 'float32', bytes: 96 });
    await f.close();
    expectSame(await read(path), expected);
  }
});

test('a litgpt-style {"model": ...} legacy file with numpy loss and step; a flat dict reports the numpy scalars as values', async () => {
  const expected = py(`${NUMPY_SAFE}
torch.manual_seed(1)
lora = {'transformer.h.0.attn.attn.lora_A': torch.randn(4, 8), 'transformer.h.0.attn.attn.lora_B': torch.zeros(24, 4)}
torch.save({'model': lora, 'loss': np.float64(1.25), 'iter_num': np.int64(300)}, ${P('wrapped.pth')}, _use_new_zipfile_serialization=False)
flat = dict(lora, loss=np.float64(1.25), step=np.int64(300), lr=np.float32(3e-4), half=np.float16(0.5), tiny=np.int8(-3),
            big=np.uint32(4000000000), u64=np.uint64(2**63 - 1), flag=np.bool_(True), i16=np.int16(-300), u8=np.uint8(255))
torch.save(flat, ${P('flat-legacy.pth')}, _use_new_zipfile_serialization=False)
torch.save(flat, ${P('flat-zip.pth')})
print(json.dumps({'wrapped': describe(reference(${P('wrapped.pth')})['model']), 'flat': describe(reference(${P('flat-legacy.pth')}))}))`);
  const wrapped = await TensorFile.open(tmp.path('wrapped.pth'));
  assert.is(wrapped.wrapped, 'model');
  await wrapped.close();
  expectSame(await read(tmp.path('wrapped.pth')), expected.wrapped);
  for (const file of ['flat-legacy.pth', 'flat-zip.pth']) {
    const ours = await read(tmp.path(file));
    expectSame(ours, expected.flat);
    assert.equal(ours.values, { loss: 1.25, step: 300, lr: Math.fround(3e-4), half: 0.5, tiny: -3, big: 4000000000,
      u64: 2n ** 63n - 1n, flag: true, i16: -300, u8: 255 }, file);
  }
});

test('numpy scalars: numpy 1.x names, big-endian dtypes; numpy arrays, other dtypes and other numpy globals are still refused', async () => {
  py(`${NUMPY_SAFE}
import struct
class BigEndian:
    def __reduce__(self):
        return (np._core.multiarray.scalar, (np.dtype('>f8'), struct.pack('>d', 2.5)))
torch.save({'w': torch.ones(1), 'be': BigEndian()}, ${P('big-endian.pth')}, _use_new_zipfile_serialization=False)
assert float(reference(${P('big-endian.pth')})['be']) == 2.5
raw = open(${P('flat-legacy.pth')}, 'rb').read()
assert b'cnumpy._core.multiarray\\nscalar\\n' in raw
open(${P('numpy1.pth')}, 'wb').write(raw.replace(b'cnumpy._core.multiarray\\nscalar\\n', b'cnumpy.core.multiarray\\nscalar\\n'))
torch.save({'c': np.complex128(1 + 2j)}, ${P('complex.pth')}, _use_new_zipfile_serialization=False)
torch.save({'a': np.arange(3)}, ${P('array.pth')}, _use_new_zipfile_serialization=False)
torch.save({'a': np.arange(3)}, ${P('array-zip.pth')})
torch.save({'s': np.str_('x')}, ${P('numpy-str.pth')}, _use_new_zipfile_serialization=False)
class Random:
    def __reduce__(self):
        return (np.random.default_rng, (1,))
torch.save({'r': Random()}, ${P('numpy-call.pth')}, _use_new_zipfile_serialization=False)
print(1)`);
  assert.equal((await read(tmp.path('big-endian.pth'))).values, { be: 2.5 });
  assert.equal((await read(tmp.path('numpy1.pth'))).values, (await read(tmp.path('flat-legacy.pth'))).values);
  await assertCode(() => TensorFile.open(tmp.path('complex.pth')), 'ERR_CHECKPOINT_FORMAT', /numpy scalar of dtype 'c16'; litlora reads numpy bool, int and float scalars only/);
  await assertCode(() => TensorFile.open(tmp.path('numpy-str.pth')), 'ERR_CHECKPOINT_FORMAT', /numpy scalar of dtype 'U1'/);
  for (const file of ['array.pth', 'array-zip.pth']) {
    await assertCode(() => TensorFile.open(tmp.path(file)), 'ERR_CHECKPOINT_FORMAT', /refused the global 'numpy\._core\.multiarray\._reconstruct'.*Nothing was executed/);
  }
  await assertCode(() => TensorFile.open(tmp.path('numpy-call.pth')), 'ERR_CHECKPOINT_FORMAT', /refused the global 'numpy\.random/);
});

// A legacy file written field by field as torch's _legacy_save does, with every field under the test's control.
const WRITER = `
import pickle, struct
from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION
class S:
    def __init__(self, key, numel, cls=torch.FloatStorage, view=None):
        self.key, self.numel, self.cls, self.view = key, numel, cls, view
class T:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())
    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)
class T1(T):  # torch < 0.4: _rebuild_tensor(storage, offset, size, stride)
    def __reduce__(self):
        return (torch._utils._rebuild_tensor, self.args[:4])
def legacy(path, obj, keys, data, version=PROTOCOL_VERSION, little=True):
    with open(path, 'wb') as f:
        pickle.dump(MAGIC_NUMBER, f, protocol=2)
        pickle.dump(version, f, protocol=2)
        pickle.dump({'protocol_version': version, 'little_endian': little, 'type_sizes': {'short': 2, 'int': 4, 'long': 4}}, f, protocol=2)
        class P(pickle.Pickler):
            def persistent_id(self, o):
                return ('storage', o.cls, o.key, 'cpu', o.numel, o.view) if isinstance(o, S) else None
        P(f, protocol=2).dump(obj)
        pickle.dump(keys, f, protocol=2)
        for count, raw in data:
            f.write(struct.pack('<q', count))
            f.write(raw)
floats = lambda *v: struct.pack(f'<{len(v)}f', *v)
`;

test('hostile legacy files: every truncation, bad magic, huge sizes, views out of range → ERR_CHECKPOINT_FORMAT in a child, never a crash', async () => {
  const messages = py(`${WRITER}
D = ${JSON.stringify(tmp.dir)}
s = S('7', 4)
legacy(D + '/handmade.pth', {'w': T(s, 0, (2, 2), (2, 1)), 'v': T(S('9', 2, view=None), 0, (2,), (1,))}, ['7', '9'],
       [(4, floats(1, 2, 3, 4)), (2, floats(5, 6))])
assert torch.equal(torch.load(D + '/handmade.pth', weights_only=True)['w'], torch.tensor([[1., 2], [3, 4]]))
legacy(D + '/view.pth', {'w': T(S('7', 4, view=('8', 1, 2)), 1, (1,), (1,))}, ['7'], [(4, floats(1, 2, 3, 4))])
assert torch.load(D + '/view.pth', weights_only=True)['w'].tolist() == [3.0]
legacy(D + '/v1.pth', {'w': T1(S('7', 4), 1, (3,), (1,))}, ['7'], [(4, floats(1, 2, 3, 4))])
assert torch.load(D + '/v1.pth', weights_only=True)['w'].tolist() == [2.0, 3.0, 4.0]
cases = {
    'huge-numel': ({'w': T(S('7', 2**61), 0, (2,), (1,))}, ['7'], [(2**61, floats(1, 2))]),
    'count-mismatch': ({'w': T(S('7', 4), 0, (4,), (1,))}, ['7'], [(5, floats(1, 2, 3, 4, 5))]),
    'negative-count': ({'w': T(S('7', 4), 0, (4,), (1,))}, ['7'], [(-1, floats(1, 2, 3, 4))]),
    'huge-shape': ({'w': T(S('7', 4), 0, (2**40, 2**40), (1, 1))}, ['7'], [(4, floats(1, 2, 3, 4))]),
    'past-storage': ({'w': T(S('7', 4), 3, (2,), (1,))}, ['7'], [(4, floats(1, 2, 3, 4))]),
    'view-outside': ({'w': T(S('7', 4, view=('8', 3, 2)), 0, (1,), (1,))}, ['7'], [(4, floats(1, 2, 3, 4))]),
    'past-view': ({'w': T(S('7', 4, view=('8', 1, 2)), 1, (2,), (1,))}, ['7'], [(4, floats(1, 2, 3, 4))]),
    'no-data': ({'w': T(S('7', 4), 0, (4,), (1,))}, [], []),
    'unused-key': ({'w': T(S('7', 1), 0, (1,), (1,))}, ['7', '8'], [(1, floats(1)), (1, floats(2))]),
    'twice': ({'w': T(S('7', 1), 0, (1,), (1,))}, ['7', '7'], [(1, floats(1)), (1, floats(1))]),
    'bad-key-list': ({'w': T(S('7', 1), 0, (1,), (1,))}, {'7': 1}, [(1, floats(1))]),
}
for name, (obj, keys, data) in cases.items():
    legacy(D + f'/{name}.pth', obj, keys, data)
legacy(D + '/version.pth', {'w': T(S('7', 1), 0, (1,), (1,))}, ['7'], [(1, floats(1))], version=1000)
legacy(D + '/big-endian-machine.pth', {'w': T(S('7', 1), 0, (1,), (1,))}, ['7'], [(1, floats(1))], little=False)
open(D + '/plain-pickle.pth', 'wb').write(pickle.dumps({'w': 1}, protocol=2))
raw = open(D + '/handmade.pth', 'rb').read()
open(D + '/bad-magic.pth', 'wb').write(raw[:5] + bytes([raw[5] ^ 1]) + raw[6:])
sizes = {}
for name in ['handmade', 'flat-legacy']:
    raw = open(D + f'/{name}.pth', 'rb').read()
    sizes[name] = len(raw)
    for n in range(len(raw)):
        open(D + f'/cut-{name}-{n}.pth', 'wb').write(raw[:n])
print(json.dumps({'cases': list(cases) + ['version', 'big-endian-machine', 'plain-pickle', 'bad-magic'], 'sizes': sizes}))`);
  const files: string[] = [tmp.path('handmade.pth'), tmp.path('view.pth'), tmp.path('v1.pth'), ...messages.cases.map((c: string) => tmp.path(`${c}.pth`))];
  for (const [name, size] of Object.entries<number>(messages.sizes)) {
    for (let n = 0; n < size; n++) files.push(tmp.path(`cut-${name}-${n}.pth`));
  }
  const child = spawnSync(process.execPath, ['--import', 'tsx', join(packageRoot, 'test', 'helpers', 'open-child.ts'), ...files],
    { cwd: packageRoot, encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.is(child.signal, null, `the child crashed: ${child.stderr}`);
  assert.is(child.status, 0, child.stderr);
  const results: Record<string, string> = JSON.parse(child.stdout.trim().split('\n').pop()!);
  assert.is(results[tmp.path('handmade.pth')], 'ok');
  assert.is(results[tmp.path('view.pth')], 'ok');
  assert.is(results[tmp.path('v1.pth')], 'ok');
  const wrong = files.slice(3).filter((f) => results[f] !== 'ERR_CHECKPOINT_FORMAT').map((f) => `${f}: ${results[f]}`);
  assert.equal(wrong, [], 'every hostile or truncated file is ERR_CHECKPOINT_FORMAT');
  assert.ok(files.length > 300, `${files.length} files tried`);

  // The messages say what is wrong, in-process.
  const view = await read(tmp.path('view.pth'));
  assert.equal(view.tensors.w.hex, Buffer.from(new Float32Array([3]).buffer).toString('hex'));
  assert.equal((await read(tmp.path('v1.pth'))).tensors.w.hex, Buffer.from(new Float32Array([2, 3, 4]).buffer).toString('hex'));
  for (const [file, message] of [
    ['huge-numel.pth', /storage '7' needs 2305843009213693952 × 4 bytes at byte \d+, but the file ends at byte \d+; the file is truncated/],
    ['count-mismatch.pth', /storage '7' holds 5 elements, but the object says 4/],
    ['negative-count.pth', /storage '7' holds -1 elements/],
    ['huge-shape.pth', /reaches past its storage of 16 bytes/],
    ['past-storage.pth', /'w' \(shape \[2\], stride \[1\], offset 3\) reaches past its storage of 16 bytes/],
    ['view-outside.pth', /a storage view \[3, \+2\) outside its storage of 4 elements/],
    ['past-view.pth', /reaches past its storage view of 8 bytes/],
    ['no-data.pth', /storage '7' of 'w' has no data in the file/],
    ['unused-key.pth', /lists data for storage '8', which the object never uses/],
    ['twice.pth', /lists storage '7' twice/],
    ['bad-key-list.pth', /no list of storage keys/],
    ['version.pth', /protocol version other than 1001/],
    ['big-endian-machine.pth', /saved on a big-endian machine/],
    ['plain-pickle.pth', /is a pickle, but not a file torch\.save wrote/],
    ['bad-magic.pth', /not start with PyTorch's magic number/],
    ['cut-handmade-100.pth', /\(the (system info|object) pickle byte \d+\)/],
  ] as const) {
    await assertCode(() => read(tmp.path(file)), 'ERR_CHECKPOINT_FORMAT', message);
  }
});

test.after(() => tmp.remove());
test.run();
