// `litlora demo --quick` runs the whole workflow (init → pretrain + merge → finetune lora → auto-merged load →
// merge_lora) and the finetune must show a clear accuracy gain on held-out words.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastLetterTask, runDemo } from '../ts/cli/demo_workflow.js';
import { runCli } from '../ts/cli/main.js';

test('the task: held-out words never occur in training; answers are capital letters', () => {
  const { train, test: heldOut } = lastLetterTask({ trainSize: 500, testSize: 50, seed: 1 });
  const word = (s: { instruction: string }) => s.instruction.split(' ').pop()!;
  const trainWords = new Set(train.map(word));
  assert.ok(heldOut.every((s) => !trainWords.has(word(s))));
  assert.ok([...train, ...heldOut].every((s) => /^[A-Z]$/.test(s.output)));
  const s = heldOut.find((x) => x.task === 'after')!;
  assert.is(s.output, String.fromCharCode(word(s).at(-1)!.charCodeAt(0) + 1).toUpperCase());
});

test('demo --quick: before ≈ 0, after far higher, LoRA-only final/ merged on load, merge_lora output, < 3 minutes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'litlora-demo-'));
  try {
    let text = '';
    const result = await runDemo({ runCli, outDir: join(dir, 'demo'), quick: true, progress: 'quiet', log: (t) => { text += t; } });
    assert.ok(result.before.accuracy <= 0.1, `accuracy before ${result.before.accuracy}`);
    assert.ok(result.after.accuracy >= 0.35, `accuracy after ${result.after.accuracy}`);
    assert.ok(result.after.accuracy - result.before.accuracy >= 0.3, 'a clear gain');
    for (const step of ['[1/6]', '[2/6]', '[3/6]', '[4/6]', '[5/6]', '[6/6]', '$ litlora finetune lora', '$ litlora merge_lora', 'Try next']) {
      assert.ok(text.includes(step), `the narration shows ${step}`);
    }
    assert.match(text, /found through hyperparameters\.yaml's checkpoint_dir/);
    const out = join(dir, 'demo', 'out', 'finetune');
    assert.ok(existsSync(join(out, 'final', 'lit_model.pth.lora')));
    assert.not.ok(existsSync(join(out, 'final', 'lit_model.pth')), 'final/ stays LoRA-only: it was merged in memory');
    assert.ok(existsSync(join(out, 'final_merged', 'lit_model.pth')));
    assert.ok(existsSync(join(out, 'step-000200', 'lit_model.pth.lora')));
    assert.ok(existsSync(join(out, 'logs', 'csv', 'version_0', 'metrics.csv')));
    assert.ok(result.adapterBytes < result.fullModelBytes);
    assert.ok(result.seconds.total < 180, `took ${result.seconds.total} s`);
    // Running it again replaces its own folder; a folder it did not make is refused.
    let refused: any = null;
    try { await runDemo({ runCli, outDir: dir, quick: true, log: () => {} }); } catch (e) { refused = e; }
    assert.is(refused?.code, 'ERR_ARG');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
