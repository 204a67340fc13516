// Atomic file and folder writes. A reader (or a crash) sees either the previous complete file or the new
// complete file, never a partial one: data goes to a temporary name in the same folder, is fsynced, and is
// renamed over the target; the folder is fsynced so the rename itself survives a power cut.
//
// Temporary names carry the writer's pid: `.<name>.tmp-<pid>-<random>` (the native writer, native/core/zip.cc,
// uses the same form), and a folder being replaced waits under `.<name>.old-<pid>-<random>`. A writer killed
// mid-write leaves its partial behind; removeStalePartials clears those of dead writers on the next run.
import { randomBytes } from 'node:crypto';
import { closeSync, constants, existsSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { copyFile, cp, link, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

function sibling(path: string, kind: 'tmp' | 'old'): string {
  return join(dirname(path), `.${basename(path)}.${kind}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** A temporary sibling name for `path`, hidden (dot-prefixed) so folder listings skip it. */
export function tempSibling(path: string): string {
  return sibling(path, 'tmp');
}

export async function fsyncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, constants.O_RDONLY);
    await handle.sync();
  } catch {
    // Some filesystems do not allow fsync on a directory; the rename is still atomic there.
  } finally {
    await handle?.close();
  }
}

/** Writes `data` to `path` atomically (temp file, fsync, rename, fsync of the folder). */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempSibling(path);
  const handle = await open(tmp, 'w', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (e) {
    await handle.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(dirname(path));
}

/** The synchronous twin of writeFileAtomic, for small files written where no await is possible. */
export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  const tmp = tempSibling(path);
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  try {
    const dfd = openSync(dirname(path), 'r');
    try { fsyncSync(dfd); } finally { closeSync(dfd); }
  } catch { /* some filesystems do not allow fsync on a directory; the rename is still atomic there */ }
}

/** Copies `from` to `to` atomically. */
export async function copyFileAtomic(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  const tmp = tempSibling(to);
  try {
    await copyFile(from, tmp);
    const handle = await open(tmp, 'r+');
    try { await handle.sync(); } finally { await handle.close(); }
    await rename(tmp, to);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(dirname(to));
}

/** Renames a finished temporary folder into place and makes the rename durable. */
export async function publishFolder(tmpDir: string, target: string): Promise<void> {
  await rename(tmpDir, target);
  await fsyncDir(dirname(target));
}

/**
 * Puts a finished temporary folder in the place of an existing one: the old folder is renamed aside under a
 * hidden name, the new one renamed in, then the old one removed. Until the first rename the old folder is
 * untouched; a crash between the two renames leaves both folders complete under hidden names beside `target`,
 * and removeStalePartials then puts the old one back.
 */
export async function replaceFolder(tmpDir: string, target: string): Promise<void> {
  const old = sibling(target, 'old');
  await rename(target, old);
  try {
    await rename(tmpDir, target);
  } catch (e) {
    await rename(old, target);
    throw e;
  }
  await fsyncDir(dirname(target));
  await rm(old, { recursive: true, force: true });
}

/**
 * Brings every entry of folder `from` except `skip` into the (new) folder `to`: files as hard links, else copies.
 * The new folder's entries are made durable, since the old folder may be removed once `to` replaces it.
 */
export async function carryOver(from: string, to: string, skip: ReadonlySet<string>): Promise<void> {
  for (const entry of await readdir(from, { withFileTypes: true })) {
    if (skip.has(entry.name)) continue;
    const [src, dst] = [join(from, entry.name), join(to, entry.name)];
    if (entry.isDirectory()) {
      await cp(src, dst, { recursive: true, preserveTimestamps: true });
      continue;
    }
    await linkOrCopy(src, dst);
  }
  await fsyncDir(to);
}

async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch {
    await copyFile(from, to);
    const handle = await open(to, 'r+');
    try { await handle.sync(); } finally { await handle.close(); }
  }
}

/**
 * Gives the file `from` a second, durable name `to` (a hard link; a copy where the filesystem has none), so
 * that a new folder can hold a user's file while the original name stays untouched until the folder is in place.
 */
export async function linkFileDurable(from: string, to: string): Promise<void> {
  await linkOrCopy(from, to);
  await fsyncDir(dirname(to));
}

/** True while process `pid` exists (a process of another user counts: signalling it is merely not permitted). */
function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Clears what killed writers left next to `dir/name`: partial files or folders `.<name>.tmp-<pid>-<random>` whose
 * writer process is gone are removed; a folder set aside by replaceFolder (`.<name>.old-<pid>-<random>`) is put
 * back when `name` itself is missing (the writer died between its two renames), and removed otherwise. Entries
 * of live writers and any other names are left alone. Returns the entries it removed or restored.
 */
export async function removeStalePartials(dir: string, name: string): Promise<string[]> {
  let entries: string[];
  try { entries = await readdir(dir); } catch { return []; }
  const prefix = `.${name}.`;
  const done: string[] = [];
  for (const entry of entries) {
    if (!entry.startsWith(prefix)) continue;
    const m = /^(tmp|old)-(\d+)-[0-9a-z]+$/.exec(entry.slice(prefix.length));
    if (!m || processAlive(Number(m[2]))) continue;
    const path = join(dir, entry);
    if (m[1] === 'old' && !existsSync(join(dir, name))) {
      await rename(path, join(dir, name));
    } else {
      await rm(path, { recursive: true, force: true });
    }
    done.push(entry);
  }
  if (done.length) await fsyncDir(dir);
  return done;
}
