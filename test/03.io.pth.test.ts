// .pth interop with PyTorch both ways: what torch.save (and litgpt's incremental saver) writes, we read;
// what we write, torch.load reads bit-exactly, weights_only=True and mmap=True included.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TensorFile, saveTensors, Tensor, buildInfo } from '../ts/index.js';
import { tensorChecksum } from '../ts/internals.js';
import { assertClose, assertCode } from './helpers/assert.js';
import { py, richStateDict, scratch, values } from './helpers/tensorfiles.js';

const tmp = scratch('pth');
const P = (name: string) => JSON.stringify(tmp.path(name));

// One dict with every case of issue item 1: each dtype, views sharing one storage (transpose, slice with
// offset, step), an expanded (stride 0) view, empty and 0-d tensors.
const RICH = richStateDict('{}');

async function checksums(f: TensorFile): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, t] of await f.getAll()) out[name] = await tensorChecksum(t);
  return out;
}

test('torch.save → TensorFile: every dtype, views, shared storage, empty and 0-d; names, shapes, values', async () => {
  const expected = py(`${RICH}
torch.save(d, ${P('rich.pth')})
print(json.dumps({k: {'shape': list(v.shape), 'dtype': str(v.dtype)[6:], 'sum': checksum(v)} for k, v in d.items()}))`);
  const f = await TensorFile.open(tmp.path('rich.pth'));
  assert.is(f.format, 'pth');
  assert.is(f.wrapped, undefined);
  assert.equal(f.names, Object.keys(expected));
  const sums = await checksums(f);
  for (const [name, e] of Object.entries<any>(expected)) {
    const dtype = e.dtype === 'float' ? 'float32' : e.dtype === 'double' ? 'float64' : e.dtype === 'half' ? 'float16'
      : e.dtype === 'long' ? 'int64' : e.dtype === 'int' ? 'int32' : e.dtype === 'short' ? 'int16' : e.dtype;
    assert.equal(f.info(name).shape, e.shape, name);
    assert.is(f.info(name).dtype, dtype, name);
    assertClose([sums[name]], [e.sum], { rtol: 1e-12, atol: 1e-9, what: name });
  }
  assert.equal(f.info('view.t'), { shape: [4, 6], dtype: 'float32', bytes: 96 });
  assert.equal((await values(await f.get('view.slice'))).length, 12);
  assert.equal(await values(await f.get('expanded')), [0, 1, 2, 0, 1, 2]);
  assert.equal((await values(await f.get('dtype.bool'))).length, 8);
  await f.close();
});

test('TensorFile → saveTensors → torch.load: bit-exact, strides and storage sharing kept, weights_only and mmap', async () => {
  py(`${RICH}\ntorch.save(d, ${P('src.pth')})\nprint(1)`);
  const f = await TensorFile.open(tmp.path('src.pth'));
  await saveTensors(tmp.path('ours.pth'), await f.getAll(), { format: 'pth' });
  await f.close();
  const r = py(`
src = torch.load(${P('src.pth')})
out = {}
for kw in [dict(), dict(weights_only=True), dict(mmap=True), dict(weights_only=False)]:
    ours = torch.load(${P('ours.pth')}, **kw)
    assert list(ours) == list(src), (list(ours), list(src))
    for k in src:
        a, b = src[k], ours[k]
        assert same(a, b), k
        assert a.stride() == b.stride() and a.storage_offset() == b.storage_offset(), k
    ptr = lambda k: ours[k].untyped_storage().data_ptr()
    assert ptr('view.base') == ptr('view.t') == ptr('view.slice') == ptr('view.step')
z = zipfile.ZipFile(${P('ours.pth')})
assert z.testzip() is None
names = z.namelist()
offsets = [i.header_offset + 30 + len(i.filename.encode()) + len(i.extra) for i in z.infolist()]
with open(${P('ours.pth')}, 'rb') as fh:
    raw = fh.read()
aligned = all(raw[o - 0] is not None for o in offsets)
data_offsets = []
for i in z.infolist():
    n, e = int.from_bytes(raw[i.header_offset+26:i.header_offset+28], 'little'), int.from_bytes(raw[i.header_offset+28:i.header_offset+30], 'little')
    data_offsets.append(i.header_offset + 30 + n + e)
print(json.dumps({'names': names, 'aligned': all(o % 64 == 0 for o in data_offsets),
                  'records': len([n for n in names if '/data/' in n])}))`);
  assert.ok(r.aligned, 'every record 64-byte aligned');
  assert.ok(r.names.includes('ours/data.pkl') && r.names.includes('ours/version') && r.names.includes('ours/byteorder'));
  assert.is(r.records, 14, 'one record per storage (views share theirs)');
});

test('our data.pkl is byte-identical to torch.save for flat and wrapped dicts (1, 2, 1000, 1001 entries)', async () => {
  const cases = [1, 2, 1000, 1001].flatMap((n) => [[n, false], [n, true]] as [number, boolean][]);
  py(`
for n, wrap in ${JSON.stringify(cases).replace(/true/g, 'True').replace(/false/g, 'False')}:
    d = {f'layer.{i}.weight': torch.full((i % 3 + 1, 2), float(i)) for i in range(n)}
    d['layer.0.weight'] = torch.tensor(7, dtype=torch.int64)
    torch.save({'model': d} if wrap else d, ${JSON.stringify(tmp.dir)} + f'/s{n}{"w" if wrap else ""}.pth')
print(1)`);
  for (const [n, wrap] of cases) {
    const f = await TensorFile.open(tmp.path(`s${n}${wrap ? 'w' : ''}.pth`));
    assert.is(f.wrapped, wrap ? 'model' : undefined);
    await saveTensors(tmp.path(`o${n}${wrap ? 'w' : ''}.pth`), await f.getAll(), { format: 'pth', wrap: wrap ? 'model' : undefined });
    await f.close();
  }
  const r = py(`
pkl = lambda p: [zipfile.ZipFile(p).read(n) for n in zipfile.ZipFile(p).namelist() if n.endswith('/data.pkl')][0]
out = {}
for n, wrap in ${JSON.stringify(cases).replace(/true/g, 'True').replace(/false/g, 'False')}:
    tag = f'{n}{"w" if wrap else ""}'
    a, b = pkl(${JSON.stringify(tmp.dir)} + f'/s{tag}.pth'), pkl(${JSON.stringify(tmp.dir)} + f'/o{tag}.pth')
    out[tag] = a == b
print(json.dumps(out))`);
  for (const [tag, same] of Object.entries(r)) assert.ok(same, `data.pkl differs for ${tag}`);
  assert.is(Object.keys(r).length, 8);
});

test('state_dict OrderedDict (with _metadata), nested containers and plain values, pickle protocols 2-5', async () => {
  const expected = py(`
torch.manual_seed(1)
m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
sd = m.state_dict()
assert type(sd) is collections.OrderedDict and hasattr(sd, '_metadata')
for protocol in (2, 4, 5):
    torch.save(sd, ${JSON.stringify(tmp.dir)} + f'/sd{protocol}.pth', pickle_protocol=protocol)
    torch.save({'opt': {'step': 7, 'lr': 2.5e-4, 'name': 'adamw', 'flag': True, 'none': None, 'big': 2**40},
                'layers': [torch.ones(2), (torch.zeros(1), {'k': torch.eye(2)})], 'p': torch.nn.Parameter(torch.ones(3))},
               ${JSON.stringify(tmp.dir)} + f'/nested{protocol}.pth', pickle_protocol=protocol)
print(json.dumps({k: checksum(v) for k, v in sd.items()}))`);
  for (const protocol of [2, 4, 5]) {
    const f = await TensorFile.open(tmp.path(`sd${protocol}.pth`));
    assert.equal(f.names, ['0.weight', '0.bias', '1.weight', '1.bias']);
    const sums = await checksums(f);
    for (const k of f.names) assertClose([sums[k]], [expected[k]], { rtol: 1e-12, what: k });
    await f.close();
    const n = await TensorFile.open(tmp.path(`nested${protocol}.pth`));
    assert.equal(n.names, ['layers.0', 'layers.1.0', 'layers.1.1.k', 'p']);
    assert.equal(n.values, { 'opt.step': 7, 'opt.lr': 2.5e-4, 'opt.name': 'adamw', 'opt.flag': true, 'opt.none': null, 'opt.big': 2 ** 40 });
    assert.equal(await values(await n.get('layers.1.1.k')), [1, 0, 0, 1]);
    await n.close();
  }
});

test('any archive folder name, unaligned archives written by Python zipfile, and legacy-free 1.x layout', async () => {
  const r = py(`
import os
t = {'w': torch.arange(6, dtype=torch.float64).reshape(2, 3), 'h': torch.tensor([1.5, -2.0], dtype=torch.float16)}
torch.save(t, ${P('weird name.v2.pth')})
# Rewrite the archive with Python's zipfile: another folder name, an odd-length first entry so data lands
# unaligned, no .format_version/.storage_alignment/serialization_id records (as torch 1.x wrote).
src = zipfile.ZipFile(${P('weird name.v2.pth')})
prefix = src.namelist()[0].split('/')[0]
with zipfile.ZipFile(${P('unaligned.pth')}, 'w', zipfile.ZIP_STORED) as dst:
    dst.writestr('archive/x', b'abc')
    for n in src.namelist():
        rest = n.split('/', 1)[1]
        if rest in ('.format_version', '.storage_alignment', '.data/serialization_id'):
            continue
        dst.writestr('archive/' + rest, src.read(n))
z = zipfile.ZipFile(${P('unaligned.pth')})
with open(${P('unaligned.pth')}, 'rb') as fh:
    raw = fh.read()
offs = {}
for i in z.infolist():
    n, e = int.from_bytes(raw[i.header_offset+26:i.header_offset+28], 'little'), int.from_bytes(raw[i.header_offset+28:i.header_offset+30], 'little')
    offs[i.filename] = i.header_offset + 30 + n + e
assert torch.load(${P('unaligned.pth')})['w'].sum() == 15
print(json.dumps({'prefix': prefix, 'odd': [k for k, v in offs.items() if '/data/' in k and v % 8 != 0]}))`);
  assert.is(r.prefix, 'weird name.v2');
  assert.ok(r.odd.length > 0, 'the rewritten archive has unaligned tensor data');
  for (const file of ['weird name.v2.pth', 'unaligned.pth']) {
    const f = await TensorFile.open(tmp.path(file));
    assert.equal(f.names, ['w', 'h']);
    assert.equal(await values(await f.get('w')), [0, 1, 2, 3, 4, 5]);
    assert.equal(await values(await f.get('h')), [1.5, -2]);
    await f.close();
  }
});

test("litgpt's incremental saver (records first, data.pkl last, protocol 5, int storage keys)", async () => {
  // The same on-disk shape as litgpt.utils.incremental_save, written here from its description.
  const expected = py(`
import io, pickle
torch.manual_seed(2)
sd = {'transformer.wte.weight': torch.randn(8, 4).bfloat16(), 'lm_head.weight': torch.randn(8, 4).bfloat16()}
w = torch._C.PyTorchFileWriter(${P('lit_model.pth')})
keys = {}
class P(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, torch.storage.TypedStorage):
            s = obj._untyped_storage
            if s._cdata not in keys:
                keys[s._cdata] = len(keys)
                w.write_record(f'data/{keys[s._cdata]}', s.data_ptr(), s.nbytes())
            return ('storage', getattr(torch, obj._pickle_storage_type()), keys[s._cdata], 'cpu', obj._size())
        return None
buf = io.BytesIO()
P(buf, protocol=5).dump(sd)
w.write_record('data.pkl', buf.getvalue(), len(buf.getvalue()))
w.write_end_of_file()
loaded = torch.load(${P('lit_model.pth')}, weights_only=False)
assert all(same(loaded[k], sd[k]) for k in sd)
print(json.dumps({k: checksum(v) for k, v in sd.items()}))`);
  const f = await TensorFile.open(tmp.path('lit_model.pth'));
  assert.equal(f.names, Object.keys(expected));
  const sums = await checksums(f);
  for (const k of f.names) assertClose([sums[k]], [expected[k]], { rtol: 1e-12, what: k });
  assert.is(f.info('lm_head.weight').dtype, 'bfloat16');
  await f.close();
});

test('get() converts on request; mapped tensors stay valid after close and in-place changes stay private', async () => {
  py(`torch.save({'a': torch.arange(4.)}, ${P('conv.pth')})\nprint(1)`);
  const f = await TensorFile.open(tmp.path('conv.pth'));
  const a = await f.get('a');
  const a64 = await f.get('a', { dtype: 'float64' });
  assert.is(a64.dtype, 'float64');
  assert.equal(await values(a64), [0, 1, 2, 3]);
  await f.close();
  await f.close();  // idempotent
  assert.equal(await values(a), [0, 1, 2, 3], 'a tensor handed out outlives close()');
  await assertCode(() => f.get('a'), 'ERR_DISPOSED');
  const g = await TensorFile.open(tmp.path('conv.pth'));
  await assertCode(() => g.get('nope'), 'ERR_CHECKPOINT_MISSING', /no tensor named 'nope'/);
  assert.throws(() => g.info('nope'), /no tensor named/);
  await g.close();
});

test('wrap, metadata and format options are validated', async () => {
  const t = Tensor.from(new Float32Array([1, 2]), [2]);
  await assertCode(() => saveTensors(tmp.path('x.pth'), { a: t }, { format: 'npz' as any }), 'ERR_ARG');
  await assertCode(() => saveTensors(tmp.path('x.pth'), { a: t }, { format: 'pth', metadata: { a: 'b' } }), 'ERR_ARG');
  await assertCode(() => saveTensors(tmp.path('x.safetensors'), { a: t }, { format: 'safetensors', wrap: 'model' }), 'ERR_ARG');
  await assertCode(() => saveTensors(tmp.path('x.pth'), { a: 5 as any }), 'ERR_TYPE');
  await assertCode(() => saveTensors(tmp.path('no/such/dir/x.pth'), { a: t }), 'ERR_CHECKPOINT_MISSING', /does not exist/);
  const d = Tensor.from(new Float32Array([1]), [1]);
  d.dispose();
  await assertCode(() => saveTensors(tmp.path('x.pth'), { a: d }), 'ERR_DISPOSED');
  await assertCode(() => TensorFile.open(tmp.path('missing.pth')), 'ERR_CHECKPOINT_MISSING');
});

test('CUDA (runs where a GPU is visible): get() to the device, save from the device, same values', async () => {
  if (buildInfo().cudaDeviceCount === 0) return;
  const host = Tensor.from(new Float32Array([1.5, -2, 3, 4.25]), [2, 2]);
  const onGpu = await host.to({ device: 'cuda' });
  await saveTensors(tmp.path('cuda.pth'), { g: onGpu, t: await onGpu.to({ dtype: 'bfloat16' }) });
  const f = await TensorFile.open(tmp.path('cuda.pth'));
  const g = await f.get('g', { device: 'cuda' });
  assert.is(g.device, 'cuda:0');
  assert.equal(await values(g), [1.5, -2, 3, 4.25]);
  assert.equal(await values(await f.get('t', { device: 'cuda', dtype: 'float32' })), [1.5, -2, 3, 4.25]);
  await f.close();
});

test.after(() => tmp.remove());
test.run();
