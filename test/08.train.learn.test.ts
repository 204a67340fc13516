// The model learns: LoRA finetuning on a synthetic instruction task lowers the validation loss, and greedy
// answers to held-out prompts (instructions never seen in training) go from wrong to mostly right.
//
// The task ("Shout the last letter: qzb" → "B") is chosen so that LoRA on a *random* tiny base can learn it in
// seconds: the answer depends on the last prompt token only. Tasks that need a copy circuit across several
// positions (synthetic.ts's first/reverse/...) need a pretrained base (the demo pretrains one first).
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createDataModule, synthetic, type Model } from '../ts/index.js';
import { PromptStyle } from '../ts/data/prompts.js';
import { Trainer, type EvalEvent, type StepEvent } from '../ts/train/trainer.js';
import { sampleIds } from '../ts/train/sample.js';
import { bytesTokenizer, tempDir, tinyModel } from './helpers/tiny_train.js';

function shoutTask(n: number, seed: number) {
  let x = seed;
  const rnd = (k: number) => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return (x >>> 8) % k; };
  const word = () => Array.from({ length: 2 + rnd(3) }, () => 'abcdefghijklmnopqrstuvwxyz'[rnd(26)]).join('');
  return Array.from({ length: n }, () => {
    const w = word();
    return { instruction: `Shout the last letter: ${w}`, input: '', output: w.at(-1)!.toUpperCase() };
  });
}

async function accuracy(model: Model, samples: { instruction: string; output: string }[]): Promise<number> {
  const tok = bytesTokenizer();
  const style = PromptStyle.fromName('default');
  const source = { forward: (ids: Int32Array, shape: number[], o: { lastOnly: boolean }) => model.handle.forward(ids, shape, o) };
  let right = 0;
  for (const s of samples) {
    const ids = await sampleIds(source, tok, tok.encode(style.apply(s.instruction)), { maxNewTokens: 4, temperature: 0, seed: 0, blockSize: 128 });
    if (synthetic.extractAnswer(tok.decode(ids)) === s.output) right++;
  }
  return right / samples.length;
}

test('loss falls and greedy answers on held-out prompts become right', async () => {
  const dir = tempDir();
  try {
    const all = shoutTask(700, 99);
    const heldOut = all.slice(0, 40);
    const seen = new Set(heldOut.map((s) => s.instruction));
    const train = all.slice(40).filter((s) => !seen.has(s.instruction));
    const path = join(dir, 'train.json');
    synthetic.writeInstructionJson(path, train);

    const model = await tinyModel({ r: 32, alpha: 64, query: true, value: true, mlp: true, head: true }, { seed: 3 });
    const before = await accuracy(model, heldOut);
    const trainer = new Trainer({
      model, data: createDataModule('JSON', { json_path: path, prompt_style: 'default', mask_prompt: true, val_split_fraction: 0.05 }),
      tokenizer: bytesTokenizer(), progress: 'none', seed: 5,
      train: { globalBatchSize: 8, microBatchSize: 8, lrWarmupSteps: 5, maxSteps: 120, epochs: 5 },
      eval: { interval: 1000, maxIters: 10, maxNewTokens: 2, initialValidation: true },
      optimizer: { lr: 1e-2, weightDecay: 0 },
    });
    const steps: StepEvent[] = [], evals: EvalEvent[] = [];
    for await (const e of trainer.fit()) {
      if (e.type === 'step') steps.push(e);
      if (e.type === 'eval') evals.push(e);
    }
    const after = await accuracy(model, heldOut);
    model.dispose();
    assert.is(steps.length, 120);
    assert.is(evals.length, 2);
    const [initial, final] = evals;
    assert.ok(final!.valLoss < initial!.valLoss * 0.3, `val loss ${initial!.valLoss} → ${final!.valLoss}`);
    assert.ok(steps.at(-1)!.loss < steps[0]!.loss * 0.3, `train loss ${steps[0]!.loss} → ${steps.at(-1)!.loss}`);
    assert.ok(before <= 0.1, `accuracy before ${before}`);
    assert.ok(after >= 0.6, `accuracy after ${after}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
