// The trainer's files: litgpt's checkpoint folders (through OutDir), the resume state, the merged model.
//
// Resume state: every step-%06d/ folder also holds `training_state.pth`, a flat torch.save-compatible dict
// of tensors (loads with torch.load(weights_only=True); litgpt ignores the extra file):
//   optimizer.step                         0-dim float32: AdamW steps taken
//   optimizer.<lora param>.exp_avg(_sq)    AdamW moments, shaped like the parameter
//   rng.cpu / rng.cuda                     uint8: the default generators' states (dropout)
//   trainer.iter_num, trainer.step_count, trainer.epoch, trainer.epoch_batches, trainer.total_tokens
//                                          0-dim int64 counters (epoch_batches: batches of `epoch` consumed)
//   trainer.running_losses                 float64 (k): the last micro-batch losses of the loss window
//   trainer.world_size                     0-dim int64: ranks of the run that wrote it (absent: 1); iter_num and
//                                          epoch_batches count one rank's micro-batches
// It is written after the folder's lit_model.pth.lora, so a folder is resumable iff both files exist; the
// newest such folder is where `resume` continues.

import { existsSync } from 'node:fs';
import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { LORA_FILE } from '../io/checkpoint.js';
import { LitloraError } from '../errors.js';
import { Tensor } from '../tensor.js';
import { saveTensors, TensorFile } from '../io/tensorfile.js';

export const TRAINING_STATE_FILE = 'training_state.pth';

export interface CounterState {
  iterNum: number;
  stepCount: number;
  epoch: number;
  epochBatches: number;
  totalTokens: number;
  runningLosses: number[];
  /** Ranks of the data-parallel run these counters are of (1: one process). */
  worldSize?: number;
}

const COUNTERS: [keyof Omit<CounterState, 'runningLosses' | 'worldSize'>, string][] = [
  ['iterNum', 'trainer.iter_num'], ['stepCount', 'trainer.step_count'], ['epoch', 'trainer.epoch'],
  ['epochBatches', 'trainer.epoch_batches'], ['totalTokens', 'trainer.total_tokens'],
];

/** Writes training_state.pth (atomically: temp name, then rename). */
export async function saveTrainingState(dir: string, nativeState: Map<string, Tensor>, counters: CounterState): Promise<string> {
  const all = new Map(nativeState);
  for (const [key, name] of COUNTERS) all.set(name, Tensor.from(BigInt64Array.of(BigInt(counters[key])), []));
  all.set('trainer.world_size', Tensor.from(BigInt64Array.of(BigInt(counters.worldSize ?? 1)), []));
  all.set('trainer.running_losses', Tensor.from(Float64Array.from(counters.runningLosses), [counters.runningLosses.length]));
  const path = join(dir, TRAINING_STATE_FILE);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await saveTensors(tmp, all, { format: 'pth' });
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  return path;
}

/** Reads training_state.pth: the native part (optimizer, rng) and the counters. */
export async function loadTrainingState(dir: string): Promise<{ native: [string, Tensor][]; counters: CounterState }> {
  const file = await TensorFile.open(join(dir, TRAINING_STATE_FILE));
  try {
    const native: [string, Tensor][] = [];
    const counters: Partial<CounterState> = {};
    for (const [name, t] of await file.getAll()) {
      const counter = COUNTERS.find(([, n]) => n === name);
      if (counter) counters[counter[0]] = Number((await t.data())[0]);
      else if (name === 'trainer.world_size') counters.worldSize = Number((await t.data())[0]);
      else if (name === 'trainer.running_losses') counters.runningLosses = Array.from(await t.data() as Float64Array);
      else native.push([name, t]);
    }
    for (const [key, name] of COUNTERS) {
      if (counters[key] === undefined) {
        throw new LitloraError('ERR_CHECKPOINT_FORMAT', `${join(dir, TRAINING_STATE_FILE)} has no '${name}'; it was not written by this trainer`);
      }
    }
    counters.runningLosses ??= [];
    counters.worldSize ??= 1;
    return { native, counters: counters as CounterState };
  } finally {
    await file.close();
  }
}

/** The newest step-XXXXXX folder of outDir that has both lit_model.pth.lora and training_state.pth. */
export async function latestResumableStep(outDir: string): Promise<{ step: number; dir: string } | null> {
  let names: string[];
  try { names = await readdir(outDir); } catch { return null; }
  const steps = names.map((n) => /^step-(\d{6,})$/.exec(n)).filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), dir: join(outDir, m[0]) }))
    .filter((s) => existsSync(join(s.dir, LORA_FILE)) && existsSync(join(s.dir, TRAINING_STATE_FILE)))
    .sort((a, b) => b.step - a.step);
  return steps[0] ?? null;
}
