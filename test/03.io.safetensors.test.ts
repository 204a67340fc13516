// .safetensors interop with the `safetensors` Python package both ways, byte for byte.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { TensorFile, saveTensors } from '../ts/index.js';
import { tensorChecksum } from '../ts/internals.js';
import { assertClose } from './helpers/assert.js';
import { py, scratch, values } from './helpers/tensorfiles.js';

const tmp = scratch('st');
const D = JSON.stringify(tmp.dir);

test('package → TensorFile → saveTensors: same values and metadata; byte-identical files (0 or 1 metadata keys)', async () => {
  const expected = py(`
from safetensors.torch import save_file
torch.manual_seed(0)
d = {}
for dt in [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.int16, torch.int32,
           torch.int64, torch.uint8]:
    d['t.' + str(dt)[6:]] = (torch.randn(3, 5) * 100).to(dt)
d['t.bool'] = torch.randn(7) > 0
d['scalar'] = torch.tensor(2.5)
d['empty'] = torch.zeros(0, 4, dtype=torch.bfloat16)
d['we"ird\\tname ü'] = torch.ones(2, dtype=torch.int16)
save_file(d, ${D} + '/meta.safetensors', metadata={'format': 'pt', 'zeta': '1', 'alpha': 'x"y\\n'})
save_file(d, ${D} + '/plain.safetensors')
save_file(d, ${D} + '/pt.safetensors', metadata={'format': 'pt'})
save_file({}, ${D} + '/nothing.safetensors')
print(json.dumps({k: {'shape': list(v.shape), 'sum': checksum(v)} for k, v in d.items()}))`);
  for (const name of ['meta', 'pt', 'plain', 'nothing']) {
    const f = await TensorFile.open(tmp.path(`${name}.safetensors`));
    assert.is(f.format, 'safetensors');
    const meta = { meta: { format: 'pt', zeta: '1', alpha: 'x"y\n' }, pt: { format: 'pt' } }[name] ?? {};
    assert.equal(f.metadata, meta);
    if (name !== 'nothing') {
      assert.equal([...f.names].sort(), Object.keys(expected).sort());
      for (const [k, t] of await f.getAll()) {
        assert.equal(t.shape, expected[k].shape, k);
        assertClose([await tensorChecksum(t)], [expected[k].sum], { rtol: 1e-12, atol: 1e-9, what: k });
      }
      assert.equal(f.info('t.bfloat16'), { shape: [3, 5], dtype: 'bfloat16', bytes: 30 });
      assert.equal(f.info('t.bool'), { shape: [7], dtype: 'bool', bytes: 7 });
    } else {
      assert.equal(f.names, []);
    }
    await saveTensors(tmp.path(`ours-${name}.safetensors`), await f.getAll(),
      { format: 'safetensors', metadata: name in { meta: 1, pt: 1 } ? f.metadata : undefined });
    await f.close();
    // The package writes __metadata__ in Rust HashMap order (varies run to run); we sort the keys. So files
    // with one metadata key or none are byte-identical, and with several the content is.
    if (name === 'meta') continue;
    const theirs = readFileSync(tmp.path(`${name}.safetensors`));
    const ours = readFileSync(tmp.path(`ours-${name}.safetensors`));
    assert.ok(theirs.equals(ours), `${name}: our file differs from the package's (${theirs.length} vs ${ours.length} bytes)`);
  }
  const r = py(`
from safetensors.torch import load_file
from safetensors import safe_open
a, b = load_file(${D} + '/meta.safetensors'), load_file(${D} + '/ours-meta.safetensors')
with safe_open(${D} + '/ours-meta.safetensors', 'pt') as f:
    meta = f.metadata()
print(json.dumps({'same': list(a) == list(b) and all(same(a[k], b[k]) for k in a), 'meta': meta}))`);
  assert.ok(r.same);
  assert.equal(r.meta, { format: 'pt', zeta: '1', alpha: 'x"y\n' });
});

test('get() with and without a dtype conversion on a package-written file', async () => {
  // A header length that is a multiple of 8 plus the package's dtype order keeps each tensor aligned.
  py(`
from safetensors.torch import save_file
save_file({'a': torch.arange(5, dtype=torch.float64), 'b': torch.arange(3, dtype=torch.int8)}, ${D} + '/al.safetensors')
print(1)`);
  const f = await TensorFile.open(tmp.path('al.safetensors'));
  assert.equal(await values(await f.get('b')), [0, 1, 2]);
  assert.equal(await values(await f.get('a', { dtype: 'float32' })), [0, 1, 2, 3, 4]);
  await f.close();
});

test.after(() => tmp.remove());
test.run();
