// convert_to_gguf against llama.cpp itself (node-llama-cpp's prebuilt binary): tiny Llama-, Qwen2-, Qwen3- and
// GPT-NeoX-family models made by transformers with real tokenizers → litgpt folders → GGUF files that llama.cpp
// loads and greedy-decodes to the same tokens as litlora; Q8_0 blocks byte-identical to gguf-py's quantizer.
import { cpSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { binding, type NativeTensorPlanOutput } from '../ts/binding.js';
import { convertToGguf } from '../ts/gguf/convert.js';
import { GGML_TYPE, GgufMetadata, ggufHeader, type GgmlType, type GgufTensorInfo } from '../ts/gguf/writer.js';
import { agreement, litloraGreedy, llamaCppGreedy, makeGgufModels, type GgufTestFamily } from './helpers/gguf.js';
import { runPython } from './helpers/python.js';
import { tempFolders } from './helpers/temp.js';

const temp = tempFolders();
test.after(() => temp.removeAll());

const FAMILIES: GgufTestFamily[] = ['llama', 'qwen2', 'qwen3', 'gpt_neox'];
const PROMPTS = [[5, 9, 33, 100], [1000, 7, 1999, 12, 13, 14], [42], [300, 301, 302, 303, 304, 305, 306, 307]];
const N = 16;
let dirs: Record<string, string> = {};
const greedy: Record<string, number[][]> = {};

test.before(async () => {
  dirs = await makeGgufModels(temp.make('gguf'), FAMILIES);
  for (const f of FAMILIES) {
    greedy[f] = await litloraGreedy(dirs[f], PROMPTS, N);
  }
});

for (const family of FAMILIES) {
  test(`${family}: the f32 GGUF greedy-decodes in llama.cpp to litlora's tokens`, async () => {
    const out = join(dirs[family], 'model-f32.gguf');
    const r = await convertToGguf(dirs[family], out, { outtype: 'f32' });
    assert.is(r.architecture, { llama: 'llama', qwen2: 'qwen2', qwen3: 'qwen3', gpt_neox: 'gptneox' }[family]);
    assert.ok(existsSync(out));
    assert.equal(await llamaCppGreedy(out, PROMPTS, N), greedy[family]);
  });
}

test('f16 agrees with litlora on ≥ 95% of greedy tokens in llama.cpp; f16 and bf16 hold the f32 export\'s values rounded to float16 / bfloat16', async () => {
  const f16 = join(dirs.llama, 'model-f16.gguf'), bf16 = join(dirs.llama, 'model-bf16.gguf');
  await convertToGguf(dirs.llama, f16, { outtype: 'f16' });
  const share = agreement(await llamaCppGreedy(f16, PROMPTS, N, [], greedy.llama), greedy.llama);
  assert.ok(share >= 0.95, `f16: ${share} of litlora's greedy tokens`);
  // llama.cpp's CPU bf16 kernels are too slow here for a decode; the file is checked by gguf-py instead.
  await convertToGguf(dirs.llama, bf16, { outtype: 'bf16' });
  const f32 = join(dirs.llama, 'model-f32.gguf');
  if (!existsSync(f32)) await convertToGguf(dirs.llama, f32, { outtype: 'f32' });
  const r = runPython(`
import torch
from gguf import GGUFReader
from gguf.constants import GGMLQuantizationType as Q
a, b, h = GGUFReader(${JSON.stringify(f32)}), GGUFReader(${JSON.stringify(bf16)}), GGUFReader(${JSON.stringify(f16)})
tb, th = {t.name: t for t in b.tensors}, {t.name: t for t in h.tensors}
n = 0
for t in a.tensors:
    u, v = tb[t.name], th[t.name]
    want = Q.F32 if len(t.shape) == 1 else Q.BF16
    assert u.tensor_type == want, (t.name, u.tensor_type)
    if want == Q.BF16:
        x = torch.from_numpy(np.array(t.data, dtype=np.float32)).to(torch.bfloat16).view(torch.int16).numpy()
        assert (np.array(u.data).view(np.int16).reshape(x.shape) == x).all(), t.name
        assert v.tensor_type == Q.F16, (t.name, v.tensor_type)
        y = np.array(t.data, dtype=np.float32).astype(np.float16).view(np.int16)
        assert (np.array(v.data).view(np.int16).reshape(y.shape) == y).all(), t.name
        n += 1
print(n)`);
  assert.ok(Number(r.stdout.trim()) >= 7, r.stdout);
});

test('q8_0: every Q8_0 tensor is byte-identical to gguf-py\'s quantization of the f32 export; llama.cpp agrees with litlora on ≥ 95% of greedy tokens', async () => {
  for (const family of FAMILIES) {
    const f32 = join(dirs[family], 'model-f32.gguf'), q8 = join(dirs[family], 'model-q8_0.gguf');
    if (!existsSync(f32)) await convertToGguf(dirs[family], f32, { outtype: 'f32' });
    await convertToGguf(dirs[family], q8, { outtype: 'q8_0' });
    const r = runPython(`
from gguf import GGUFReader
from gguf.quants import quantize
from gguf.constants import GGMLQuantizationType as Q
a, b = GGUFReader(${JSON.stringify(f32)}), GGUFReader(${JSON.stringify(q8)})
tb = {t.name: t for t in b.tensors}
n = 0
for t in a.tensors:
    u = tb[t.name]
    if len(t.shape) == 1 or t.name == 'rope_freqs.weight':
        assert u.tensor_type == Q.F32, (t.name, u.tensor_type)
        continue
    assert u.tensor_type == Q.Q8_0, (t.name, u.tensor_type)
    data = np.array(t.data, dtype=np.float32).reshape([int(x) for x in reversed(t.shape)])
    q = quantize(data, Q.Q8_0)
    assert (np.array(u.data).reshape(q.shape) == q).all(), t.name
    n += 1
print(n)`);
    assert.ok(Number(r.stdout.trim()) >= 7, `${family}: ${r.stdout}`);
    // Teacher-forced: each of litlora's greedy tokens against llama.cpp's argmax after the same prefix.
    const share = agreement(await llamaCppGreedy(q8, PROMPTS, N, [], greedy[family]), greedy[family]);
    assert.ok(share >= 0.95, `${family} q8_0: ${share} of litlora's greedy tokens`);
  }
});

for (const dtype of ['float32', 'bfloat16']) test(`q8_0 and f16 of ${dtype} weights: rounding ties and values just below a half are quantized as gguf-py does (half away from zero, no float32 addition); halves round as numpy`, async () => {
  const dir = temp.make('gguf-q8-edges');
  cpSync(dirs.llama, dir, { recursive: true });
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.gguf'))) rmSync(join(dir, f));
  // Blocks whose scale is exactly 1 (max 127) hold ties k + 0.5 and the float32 just below 0.5; others scale them.
  runPython(`
import torch
p = ${JSON.stringify(join(dir, 'lit_model.pth'))}
sd = torch.load(p, weights_only=True)
name = next(k for k, v in sd.items() if v.dim() == 2 and 'mlp' in k and v.shape[1] % 32 == 0)
w = sd[name]
below = float(torch.tensor(0.5, dtype=torch.float32).nextafter(torch.tensor(0.0)))
edge = [127.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 126.5, -126.5, below, -below, 1 + below, 3 * below, 0.0] + [i + 0.5 for i in range(18)]
rows = torch.tensor(edge, dtype=torch.float32).repeat(w.shape[1] // 32)
for i, scale in enumerate([1.0, 1 / 127, 3.0, 1e-3, 2 ** -20]):
    w[i] = rows * scale
torch.save({k: v.to(torch.${dtype}) for k, v in sd.items()}, p)
print(name)`);
  const f32 = join(dir, 'edges-f32.gguf'), q8 = join(dir, 'edges-q8_0.gguf'), f16 = join(dir, 'edges-f16.gguf');
  await convertToGguf(dir, f32, { outtype: 'f32' });
  await convertToGguf(dir, q8, { outtype: 'q8_0' });
  await convertToGguf(dir, f16, { outtype: 'f16' });
  const r = runPython(`
from gguf import GGUFReader
from gguf.quants import quantize
from gguf.constants import GGMLQuantizationType as Q
a, b, h = GGUFReader(${JSON.stringify(f32)}), GGUFReader(${JSON.stringify(q8)}), GGUFReader(${JSON.stringify(f16)})
tb, th = {t.name: t for t in b.tensors}, {t.name: t for t in h.tensors}
n = 0
for t in a.tensors:
    u, v = tb[t.name], th[t.name]
    if u.tensor_type != Q.Q8_0:
        continue
    y = np.array(t.data, dtype=np.float32).astype(np.float16).view(np.int16)
    assert v.tensor_type == Q.F16 and (np.array(v.data).view(np.int16).reshape(y.shape) == y).all(), ('f16', t.name)
    data = np.array(t.data, dtype=np.float32).reshape([int(x) for x in reversed(t.shape)])
    q = quantize(data, Q.Q8_0)
    assert (np.array(u.data).reshape(q.shape) == q).all(), t.name
    n += 1
print(n)`);
  assert.ok(Number(r.stdout.trim()) >= 7, r.stdout);
});

test('the tensor plan: q8_0, f16, bf16 and f32 of float32, bfloat16 and float16 tensors (whole, several chunks, odd block counts, row pieces) equal gguf-py\'s and numpy\'s', async () => {
  const dir = temp.make('gguf-plan');
  const src = join(dir, 'w.safetensors'), out = join(dir, 'plan.gguf');
  // 1, 9, 15 and 8643 blocks of 32: the quantizer's groups of 8 blocks and their remainders, and 67 × 4128 values
  // more than one 256 KB read of each dtype.
  const SHAPES: [number, number][] = [[1, 32], [3, 96], [5, 96], [67, 4128]];
  const DTYPES = ['float32', 'bfloat16', 'float16'];
  runPython(`
import torch
from safetensors.torch import save_file
g = torch.Generator().manual_seed(3)
t = {}
for dt in ${JSON.stringify(DTYPES)}:
    for rows, cols in ${JSON.stringify(SHAPES)}:
        t[f"{dt}.{rows}x{cols}"] = (torch.randn(rows, cols, generator=g) * 0.05).to(getattr(torch, dt))
save_file(t, ${JSON.stringify(src)})`);
  const infos: GgufTensorInfo[] = [], outputs: NativeTensorPlanOutput[] = [];
  const TYPES = { q8_0: GGML_TYPE.Q8_0, f16: GGML_TYPE.F16, bf16: GGML_TYPE.BF16, f32: GGML_TYPE.F32 } as const;
  for (const dt of DTYPES) {
    for (const [ggml, type] of Object.entries(TYPES) as [keyof typeof TYPES, GgmlType][]) {
      for (const [rows, cols] of SHAPES) {
        infos.push({ name: `${dt}.${rows}x${cols}.${ggml}`, shape: [rows, cols], type });
        outputs.push({ name: `${dt}.${rows}x${cols}.${ggml}`, ggml, pieces: [{ source: 0, name: `${dt}.${rows}x${cols}` }] });
      }
      // Rows 1-2 of the 3 × 96 tensor, then the 5 × 96 one.
      infos.push({ name: `${dt}.pieces.${ggml}`, shape: [7, 96], type });
      outputs.push({ name: `${dt}.pieces.${ggml}`, ggml, pieces: [{ source: 0, name: `${dt}.3x96`, rowStart: 1, rows: 2 }, { source: 0, name: `${dt}.5x96` }] });
    }
  }
  const { header } = ggufHeader(new GgufMetadata().string('general.architecture', 'llama'), infos);
  await binding().writeTensorPlan({ sources: [src], outputs, outPath: out, format: 'gguf', header });
  const r = runPython(`
import torch
from safetensors.torch import load_file
from gguf import GGUFReader
from gguf.quants import quantize
from gguf.constants import GGMLQuantizationType as Q
src = load_file(${JSON.stringify(src)})
n = 0
for t in GGUFReader(${JSON.stringify(out)}).tensors:
    dt, what, ggml = t.name.split(".")
    x = torch.cat([src[f"{dt}.3x96"][1:3], src[f"{dt}.5x96"]]) if what == "pieces" else src[f"{dt}.{what}"]
    x32 = x.float().numpy()  # every value of the three dtypes exactly
    got = np.array(t.data)
    if ggml == "q8_0":
        want = quantize(x32, Q.Q8_0)
    elif ggml == "f16":
        want = x32.astype(np.float16)
    elif ggml == "bf16":
        want = torch.from_numpy(x32).to(torch.bfloat16).view(torch.int16).numpy()
        got = got.view(np.int16)
    else:
        want = x32
    assert got.tobytes() == want.tobytes(), t.name
    n += 1
print(n)`);
  assert.is(Number(r.stdout.trim()), DTYPES.length * 4 * (SHAPES.length + 1));
});

test.run();
