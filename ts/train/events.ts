// What Trainer.fit() yields (and passes to the `on` callbacks): an event per optimizer step, per validation,
// per folder written, and one at the end. A library caller learns everything about a run from these; the
// console lines of ./log.ts say the same in litgpt's words.

export interface StepEvent {
  type: 'step';
  /** Optimizer steps taken (litgpt step_count). */
  step: number;
  /** Micro-batches processed (litgpt iter_num). */
  iter: number;
  /** 0-based epoch of the last micro-batch. */
  epoch: number;
  /** Mean loss of the accumulation window (litgpt's running mean). */
  loss: number;
  /** Loss of each micro-batch of this window. */
  microLosses: number[];
  /** Learning rate this step used. */
  lr: number;
  gradNorm: number;
  /** Non-padding tokens trained on so far. */
  totalTokens: number;
  tokensPerSecond: number;
  stepTimeMs: number;
  maxSteps: number;
}

export interface EvalEvent {
  type: 'eval';
  step: number;
  iter: number;
  valLoss: number;
  valPpl: number;
  /** The generated continuation of the first validation instruction (null when disabled). */
  sample: string | null;
  timeMs: number;
  final: boolean;
}

export interface SaveEvent {
  type: 'save';
  step: number;
  /** 'step': a step-%06d/ folder; 'final': final/ LoRA files; 'merged': final/lit_model.pth. */
  kind: 'step' | 'final' | 'merged';
  path: string;
}

export interface DoneEvent {
  type: 'done';
  steps: number;
  iters: number;
  epochs: number;
  totalTokens: number;
  timeS: number;
  /** Why training stopped. */
  reason: 'max_steps' | 'epochs' | 'max_tokens' | 'max_time';
  finalValLoss: number | null;
  /** Folder the run resumed from, if any. */
  resumedFrom: string | null;
}

export type TrainerEvent = StepEvent | EvalEvent | SaveEvent | DoneEvent;
