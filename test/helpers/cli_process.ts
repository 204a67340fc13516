// `litlora <argv>` as a real process: the CLI's entry point through tsx's loader, from any working folder.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { initCheckpoint, synthetic } from '../../ts/index.js';

const MAIN = join(import.meta.dirname, '..', '..', 'ts', 'cli', 'main.ts');
// tsx's loader by its URL: --import resolves a bare name from the cwd, a test's scratch folder.
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** The arguments of process.execPath that run `litlora <argv>`. */
export function cliProcessArgs(argv: readonly string[]): string[] {
  return ['--import', TSX, MAIN, ...argv];
}

/** What a short `litlora finetune lora` needs in `dir`: a one-layer pythia-14m base at base/ and data.json. */
export async function cliRunFolder(dir: string): Promise<void> {
  await initCheckpoint({
    outDir: join(dir, 'base'), modelName: 'pythia-14m', seed: 1,
    overrides: { n_layer: 1, n_embd: 32, n_head: 2, intermediate_size: 64, block_size: 256 },
  });
  const { train } = synthetic.syntheticInstructionTask({ trainSize: 24, testSize: 2 });
  synthetic.writeInstructionJson(join(dir, 'data.json'), train);
}
