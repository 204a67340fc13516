// The validation split and the per-epoch order reproduce litgpt's torch calls exactly (checked against the
// project's PyTorch), and are deterministic in the seed.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createDataModule, Tokenizer } from '../ts/index.js';
import { distributedOrder, EpochShuffler, randomSplit, splitLengths } from '../ts/data/random.js';
import { runPython } from './helpers/python.js';

const CASES: [n: number, fraction: number, seed: number][] = [
  [1, 0.5, 42], [7, 0.3, 0], [20, 0.05, 42], [100, 0.05, 42], [1000, 0.03865, 42], [2001, 0.1, 1337], [5000, 0.05, 7],
];

test('random_split sizes and indices, and DataLoader(shuffle=True) epoch orders, equal PyTorch', () => {
  const code = `
import json, torch
from torch.utils.data import random_split, DataLoader
cases = ${JSON.stringify(CASES)}
res = []
for n, f, seed in cases:
    tr, va = random_split(list(range(n)), [1 - f, f], generator=torch.Generator().manual_seed(seed))
    dl = DataLoader(list(range(n)), batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(seed))
    epochs = [[int(i) for b in dl for i in b] for _ in range(3)]
    res.append({"train": list(tr.indices), "val": list(va.indices), "epochs": epochs})
print(json.dumps(res))`;
  const torch = JSON.parse(runPython(code).stdout);
  CASES.forEach(([n, f, seed], i) => {
    const ours = randomSplit(n, f, seed);
    assert.equal(ours.train, torch[i].train, `train split n=${n} f=${f} seed=${seed}`);
    assert.equal(ours.val, torch[i].val, `val split n=${n} f=${f} seed=${seed}`);
    assert.equal(splitLengths(n, f), [torch[i].train.length, torch[i].val.length]);
    const shuffler = new EpochShuffler(n, seed);
    for (let e = 0; e < 3; e++) assert.equal(shuffler.order(e), torch[i].epochs[e], `epoch ${e} n=${n} seed=${seed}`);
  });
  // Asking for an earlier epoch again gives the same order (cached, not re-drawn).
  const s = new EpochShuffler(50, 1);
  const e2 = s.order(2).slice();
  assert.equal(s.order(0), new EpochShuffler(50, 1).order(0));
  assert.equal(s.order(2), e2);
});

test('a data-parallel rank\'s order equals PyTorch\'s DistributedSampler, past 120k samples too (padding without spreading the permutation)', () => {
  const CASES: [n: number, world: number, epoch: number, shuffle: boolean][] = [[10, 3, 0, true], [10, 4, 2, false], [200_001, 4, 1, true], [150_001, 2, 0, false]];
  const torch = JSON.parse(runPython(`
import json
from torch.utils.data import DistributedSampler
res = []
for n, world, epoch, shuffle in json.loads(${JSON.stringify(JSON.stringify(CASES))}):
    ranks = []
    for rank in range(world):
        s = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=shuffle, seed=42)
        s.set_epoch(epoch)
        ranks.append(list(s))
    res.append(ranks)
print(json.dumps(res))`).stdout);
  CASES.forEach(([n, world, epoch, shuffle], i) => {
    for (let rank = 0; rank < world; rank++) {
      assert.equal(distributedOrder(n, epoch, { rank, worldSize: world, seed: 42 }, shuffle), torch[i][rank], `n=${n} world=${world} rank=${rank}`);
    }
  });
});

test('a JSON module: the same seed gives the same split and batches; another seed another split', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'litlora-split-'));
  try {
    const file = join(dir, 'data.json');
    const rows = Array.from({ length: 40 }, (_, i) => ({ instruction: `q${i}`, input: '', output: `a${i}` }));
    writeFileSync(file, JSON.stringify(rows));
    const tok = Tokenizer.fromDir(join(import.meta.dirname, 'fixtures', 'tokenizers', 'bytes'));
    const make = async (seed: number) => {
      const m = createDataModule('JSON', { json_path: file, val_split_fraction: 0.25, seed });
      await m.setup(tok, { maxSeqLength: 200 });
      return m;
    };
    const a = await make(42), b = await make(42), c = await make(43);
    const dump = (m: any, e: number) => [...m.trainBatches(e, 4)].map((x: any) => [x.sampleIndices, [...x.inputIds]]);
    assert.equal(dump(a, 0), dump(b, 0));
    assert.equal(dump(a, 1), dump(b, 1));
    assert.not.equal(dump(a, 0), dump(a, 1));
    assert.equal((a as any).valSamples.map((s: any) => s.instruction), (b as any).valSamples.map((s: any) => s.instruction));
    assert.not.equal((a as any).valSamples.map((s: any) => s.instruction), (c as any).valSamples.map((s: any) => s.instruction));
    // The validation rows are exactly those torch's random_split picks for seed 42.
    const { val } = randomSplit(40, 0.25, 42);
    assert.equal((a as any).valSamples.map((s: any) => s.instruction), val.map((i) => `q${i}`));
    assert.equal([a.trainSize, a.valSize], [30, 10]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
