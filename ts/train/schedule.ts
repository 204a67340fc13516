// litgpt's learning-rate schedule for `finetune lora` (litgpt/finetune/lora.py get_lr_scheduler):
//
//   SequentialLR([LambdaLR(lambda step: step / warmup_steps), CosineAnnealingLR(T_max = max_steps − warmup_steps)],
//                milestones=[warmup_steps])
//
// stepped once per optimizer step, so the k-th optimizer step (k = 0, 1, …) runs with
//
//   lr(k) = base · k / warmup                                   for k < warmup
//   lr(k) = base · (1 + cos(π · (k − warmup) / T_max)) / 2      for k ≥ warmup
//
// Note the first step's learning rate is 0 when there is a warmup — litgpt's behaviour, kept. Where litgpt
// divides by zero (warmup 0 → LambdaLR; max_steps ≤ warmup → T_max ≤ 0), this schedule starts the cosine
// at once (warmup 0) or holds the base rate after the warmup (T_max ≤ 0).
// test/08.train.schedule.test.ts checks it against torch's schedulers.

export interface ScheduleOptions {
  /** The optimizer's learning rate (optimizer.lr). */
  baseLr: number;
  /** train.lr_warmup_steps. */
  warmupSteps: number;
  /** The number of optimizer steps of the run: min(epochs · steps per epoch, train.max_steps). */
  maxSteps: number;
  /** CosineAnnealingLR's eta_min (litgpt: 0). */
  minLr?: number;
}

/** The learning rate for optimizer step `step` (0-based: the number of optimizer steps already taken). */
export function learningRate(step: number, options: ScheduleOptions): number {
  const { baseLr, warmupSteps, maxSteps, minLr = 0 } = options;
  if (warmupSteps > 0 && step < warmupSteps) return (baseLr * step) / warmupSteps;
  const tMax = maxSteps - warmupSteps;
  if (tMax <= 0) return baseLr;
  return minLr + ((baseLr - minLr) * (1 + Math.cos((Math.PI * (step - warmupSteps)) / tMax))) / 2;
}
