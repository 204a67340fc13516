// Atomic file and folder writes. A reader (or a crash) sees either the previous complete file or the new
// complete file, never a partial one: data goes to a temporary name in the same folder, is fsynced, and is
// renamed over the target; the folder is fsynced so the rename itself survives a power cut.
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { copyFile, cp, link, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A temporary sibling name for `path`, hidden (dot-prefixed) so folder listings skip it. */
export function tempSibling(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

async function fsyncDir(dir: string): Promise<void> {
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
 * untouched; a crash between the two renames leaves both folders complete under hidden names beside `target`.
 */
export async function replaceFolder(tmpDir: string, target: string): Promise<void> {
  const old = tempSibling(target);
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

/** Brings every entry of folder `from` except `skip` into the (new) folder `to`: files as hard links, else copies. */
export async function carryOver(from: string, to: string, skip: ReadonlySet<string>): Promise<void> {
  for (const entry of await readdir(from, { withFileTypes: true })) {
    if (skip.has(entry.name)) continue;
    const [src, dst] = [join(from, entry.name), join(to, entry.name)];
    if (entry.isDirectory()) {
      await cp(src, dst, { recursive: true, preserveTimestamps: true });
      continue;
    }
    try {
      await link(src, dst);
    } catch {
      await copyFile(src, dst);
    }
  }
}
