// A synthetic instruction task and plain-text corpus for tests and `litlora demo`: deterministic in a seed,
// answers of 1–4 characters that a tiny model can learn in minutes on a CPU, held-out prompts never seen in
// training, and an exact-match accuracy checker.
//
// Tasks (instruction → output):
//   reverse    "Reverse: abc"          → "cba"
//   uppercase  "Uppercase: dog"        → "DOG"
//   next       "Next letter after c"   → "d"        (a..y)
//   first      "First letter of cat"   → "c"
//   double     "Double: ab"            → "abab"
// Words are random lowercase strings of 2–3 letters (1 letter for `next`, 2 for `double`).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { writeFileAtomicSync } from '../io/atomic.js';
import { TorchGenerator } from './random.js';
import type { InstructionSample } from './sft.js';

export type SyntheticTaskKind = 'reverse' | 'uppercase' | 'next' | 'first' | 'double';
export const SYNTHETIC_TASKS: readonly SyntheticTaskKind[] = ['reverse', 'uppercase', 'next', 'first', 'double'];

export interface SyntheticSample extends InstructionSample {
  instruction: string;
  output: string;
  task: SyntheticTaskKind;
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

/** Uniform integer in [0, n) from the torch-compatible generator (bias < 2^-20 for n < 4096). */
function randint(g: TorchGenerator, n: number): number {
  return g.random() % n;
}

function word(g: TorchGenerator, length: number): string {
  let w = '';
  for (let i = 0; i < length; i++) w += LETTERS[randint(g, 26)];
  return w;
}

/** The instruction sample of a task applied to a word. */
export function makeSyntheticSample(task: SyntheticTaskKind, w: string): SyntheticSample {
  switch (task) {
    case 'reverse': return { task, instruction: `Reverse: ${w}`, output: [...w].reverse().join('') };
    case 'uppercase': return { task, instruction: `Uppercase: ${w}`, output: w.toUpperCase() };
    case 'next': return { task, instruction: `Next letter after ${w}`, output: String.fromCharCode(w.charCodeAt(0) + 1) };
    case 'first': return { task, instruction: `First letter of ${w}`, output: w[0]! };
    case 'double': return { task, instruction: `Double: ${w}`, output: w + w };
  }
}

function randomSample(g: TorchGenerator, tasks: readonly SyntheticTaskKind[]): SyntheticSample {
  const task = tasks[randint(g, tasks.length)]!;
  if (task === 'next') return makeSyntheticSample(task, LETTERS[randint(g, 25)]!); // a..y
  if (task === 'double') return makeSyntheticSample(task, word(g, 2)); // answers stay ≤ 4 characters
  return makeSyntheticSample(task, word(g, 2 + randint(g, 2)));
}

export interface SyntheticTaskOptions {
  seed?: number;
  trainSize?: number;
  testSize?: number;
  tasks?: readonly SyntheticTaskKind[];
}

/**
 * A train set and a held-out test set; no test instruction occurs in the train set. `next` has only 25 distinct
 * prompts, so its held-out prompts are few: it teaches a fixed mapping, the other tasks generalise over words.
 */
export function syntheticInstructionTask(options: SyntheticTaskOptions = {}): { train: SyntheticSample[]; test: SyntheticSample[] } {
  const { seed = 1234, trainSize = 2000, testSize = 200, tasks = SYNTHETIC_TASKS } = options;
  if (tasks.length === 0 || tasks.some((t) => !SYNTHETIC_TASKS.includes(t))) {
    fail('ERR_CONFIG', `synthetic tasks must be some of ${SYNTHETIC_TASKS.join(', ')}, got ${tasks.join(', ')}`);
  }
  const g = new TorchGenerator(seed);
  // Held-out first: choose test prompts, then draw training prompts that avoid them.
  const test: SyntheticSample[] = [];
  const testInstructions = new Set<string>();
  let guard = 0;
  while (test.length < testSize && guard++ < testSize * 50) {
    const s = randomSample(g, tasks.filter((t) => t !== 'next'));
    if (testInstructions.has(s.instruction)) continue;
    testInstructions.add(s.instruction);
    test.push(s);
  }
  const train: SyntheticSample[] = [];
  guard = 0;
  while (train.length < trainSize && guard++ < trainSize * 50) {
    const s = randomSample(g, tasks);
    if (!testInstructions.has(s.instruction)) train.push(s);
  }
  if (test.length < testSize || train.length < trainSize) {
    fail('ERR_CONFIG', `cannot draw ${trainSize} train and ${testSize} distinct held-out synthetic samples from tasks ${tasks.join(', ')}`);
  }
  return { train, test };
}

/** Writes samples as a litgpt JSON data file (a list of {instruction, input, output}), atomically. */
export function writeInstructionJson(path: string, samples: readonly InstructionSample[]): void {
  const rows = samples.map((s) => ({ instruction: s.instruction, input: s.input ?? '', output: s.output }));
  writeFileAtomicSync(path, JSON.stringify(rows, null, 1) + '\n');
}

/**
 * What the model generated, reduced to its answer: the text up to the first newline (or the end), trimmed. A
 * generation that stops at EOS leaves just the answer; one that rambles on is cut at the line break.
 */
export function extractAnswer(generated: string): string {
  const cut = generated.search(/[\r\n]/);
  return (cut >= 0 ? generated.slice(0, cut) : generated).trim();
}

/** Exact-match accuracy of generations against the samples' outputs. */
export function answerAccuracy(samples: readonly { output: string }[], generations: readonly string[]):
  { correct: number; total: number; accuracy: number; wrong: { index: number; expected: string; got: string }[] } {
  if (samples.length !== generations.length) {
    fail('ERR_ARG', `answerAccuracy: ${samples.length} samples but ${generations.length} generations`);
  }
  let correct = 0;
  const wrong: { index: number; expected: string; got: string }[] = [];
  samples.forEach((s, index) => {
    const got = extractAnswer(generations[index]!);
    if (got === s.output) correct++;
    else wrong.push({ index, expected: s.output, got });
  });
  return { correct, total: samples.length, accuracy: samples.length ? correct / samples.length : 0, wrong };
}

/**
 * A synthetic plain-text corpus that teaches the letters, words and the task vocabulary, for the demo's
 * pretraining step: `documents` documents of about `sentencesPerDocument` sentences each.
 */
export function syntheticCorpus(options: { seed?: number; documents?: number; sentencesPerDocument?: number } = {}): string[] {
  const { seed = 4321, documents = 8, sentencesPerDocument = 200 } = options;
  const g = new TorchGenerator(seed);
  const docs: string[] = [];
  for (let d = 0; d < documents; d++) {
    const lines: string[] = [];
    for (let i = 0; i < sentencesPerDocument; i++) {
      const w = word(g, 2 + randint(g, 2));
      const c = randint(g, 25);
      switch (randint(g, 6)) {
        case 0: lines.push(`The word ${w} reversed is ${[...w].reverse().join('')}.`); break;
        case 1: lines.push(`In capitals ${w} is ${w.toUpperCase()}.`); break;
        case 2: lines.push(`After ${LETTERS[c]} comes ${LETTERS[c + 1]}.`); break;
        case 3: lines.push(`The first letter of ${w} is ${w[0]}.`); break;
        case 4: lines.push(`Twice ${w} is ${w}${w}.`); break;
        default: lines.push(`${LETTERS.slice(c, Math.min(26, c + 4 + randint(g, 6)))}`); break;
      }
    }
    docs.push(lines.join('\n') + '\n');
  }
  return docs;
}

/** Writes the corpus as `dir/part-000.txt`, … for `--data TextFiles --data.train_data_path dir`. */
export function writeSyntheticCorpus(dir: string, documents: readonly string[]): string[] {
  mkdirSync(dir, { recursive: true });
  return documents.map((text, i) => {
    const path = join(dir, `part-${String(i).padStart(3, '0')}.txt`);
    writeFileAtomicSync(path, text);
    return path;
  });
}
