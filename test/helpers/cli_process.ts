// `litlora <argv>` as a real process: the CLI's entry point through tsx's loader, from any working folder.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const MAIN = join(import.meta.dirname, '..', '..', 'ts', 'cli', 'main.ts');
// tsx's loader by its URL: --import resolves a bare name from the cwd, a test's scratch folder.
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** The arguments of process.execPath that run `litlora <argv>`. */
export function cliProcessArgs(argv: readonly string[]): string[] {
  return ['--import', TSX, MAIN, ...argv];
}
