// Scratch folders under the OS temp folder for a suite's tests, removed together when the suite ends.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function tempFolders(): { make: (tag: string) => string; removeAll: () => void } {
  const made: string[] = [];
  return {
    make: (tag) => {
      const dir = mkdtempSync(join(tmpdir(), `litlora-${tag}-`));
      made.push(dir);
      return dir;
    },
    removeAll: () => {
      for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
    },
  };
}
