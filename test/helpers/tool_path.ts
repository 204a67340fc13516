// A PATH that holds only the named tools (links to the ones on this PATH), and optionally stand-ins written as
// shell scripts: for running setup, doctor or a build as on a machine that lacks python3, cmake or a compiler.
import { chmodSync, existsSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The full path of `name` on this process's PATH, or null. */
export function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

/**
 * Makes `dir` (a new folder) hold links to `tools` (those this PATH has; the others are left out) and the
 * `fakes` (name → the script's body after `#!/bin/sh`). Returns `dir`, for use as PATH.
 */
export function toolPath(dir: string, tools: readonly string[], fakes: Record<string, string> = {}): string {
  mkdirSync(dir, { recursive: true });
  for (const tool of tools) {
    const found = onPath(tool);
    // The real file, not the link: g++ finds its own helpers (cc1plus, collect2) from its real name's folder.
    if (found) symlinkSync(realpathSync(found), join(dir, tool));
  }
  for (const [name, body] of Object.entries(fakes)) {
    writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(dir, name), 0o755);
  }
  return dir;
}
