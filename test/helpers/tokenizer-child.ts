// Child process for the hostile-tokenizer test: loads each folder named on the command line and encodes a
// string on which a catastrophic regex backtracks; prints one JSON line per folder, {ids} or {code, message}.
// A tokenizer that hangs hangs only this process, which the parent kills.
import { Tokenizer } from '../../ts/index.js';

for (const dir of process.argv.slice(2)) {
  let line: object;
  try {
    line = { ids: Tokenizer.fromDir(dir).encode(`${'a'.repeat(40)}!`).length };
  } catch (e) {
    line = { code: (e as { code?: string }).code ?? null, message: (e as Error).message };
  }
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
