// Child process for the hostile-file tests: opens each file named on the command line with TensorFile, reads
// every tensor, and prints one JSON line {file: 'ok' | error code}. A crash (segfault, abort) shows up in the
// parent as this process's exit status instead of taking the test runner down.
import { TensorFile } from '../../ts/index.js';

async function main(): Promise<void> {
  const results: Record<string, string> = {};
  for (const path of process.argv.slice(2)) {
    try {
      const f = await TensorFile.open(path);
      try {
        for (const t of (await f.getAll()).values()) { await t.data(); t.dispose(); }
      } finally {
        await f.close();
      }
      results[path] = 'ok';
    } catch (e: any) {
      results[path] = e?.code ?? `NO_CODE: ${e?.message}`;
    }
  }
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

void main();
