// File-system failures as ERR_IO. Node's own errors (ENOENT, ENOTDIR, EACCES, ENOSPC, ...) name a syscall and
// a path but reach a user as a stack trace; ioError says what litlora was doing, with which path, what went
// wrong in words, and what to do about it. makeFolder creates a folder litlora writes into and names the
// file standing in its way, the commonest mistake (a file given where a folder belongs).
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { LitloraError } from '../errors.js';

/** What to do, by errno code. */
const ADVICE: Record<string, string> = {
  ENOENT: 'It does not exist: check the path (a parent folder may be missing or misspelled).',
  ENOTDIR: 'A part of the path is a file, not a folder: choose a path whose parents are all folders.',
  EISDIR: 'It is a folder where a file was expected: give the path of a file.',
  EEXIST: 'Something is already there: choose another path, or move it away first.',
  ENOTEMPTY: 'The folder is not empty: choose another path, or move its contents away first.',
  EACCES: 'Permission denied: choose a location you can write to, or change its permissions.',
  EPERM: 'The operation is not permitted there: choose another location, or change its permissions.',
  EROFS: 'The file system is read-only: choose a location on a writable disk.',
  ENOSPC: 'The disk is full: free some space (or choose another disk) and run again; files written before are untouched.',
  EDQUOT: 'The disk quota is used up: free some space (or choose another disk) and run again; files written before are untouched.',
  EMFILE: 'Too many open files: raise the limit (ulimit -n) and run again.',
  ENFILE: 'The system has too many open files: close some programs and run again.',
  ENAMETOOLONG: 'The path is too long: choose a shorter one.',
  ELOOP: 'The path has a loop of symbolic links: fix the links or choose another path.',
  EBUSY: 'It is busy (in use, or a mount point): choose another path or stop what uses it.',
  EXDEV: 'It would move a file across disks: keep the paths on one disk.',
  EIO: 'The disk reported an I/O error: check the disk, then run again.',
};

/** A Node file-system error (it has an errno code such as 'ENOENT' and the syscall that failed). */
export function isFsError(e: unknown): e is NodeJS.ErrnoException {
  const x = e as NodeJS.ErrnoException | null;
  return x instanceof Error && typeof x.code === 'string' && /^E[A-Z0-9]+$/.test(x.code) && typeof x.syscall === 'string';
}

/**
 * ERR_IO for a file-system error: `doing` says what litlora was doing in words ('create out_dir /x/y'); the
 * failing syscall and its path(s) follow, then the system's reason and advice.
 */
export function ioError(e: NodeJS.ErrnoException, doing?: string): LitloraError {
  // Node's message is 'ENOTDIR: not a directory, mkdir '/x/y''; the reason is the part before the comma.
  const reason = /^E[A-Z0-9]+: ([^,]+)/.exec(e.message)?.[1] ?? e.code;
  const dest = (e as { dest?: string }).dest;
  const op = `${e.syscall}${e.path ? ` ${e.path}` : ''}${dest ? ` → ${dest}` : ''}`;
  const what = doing ? `cannot ${doing} (${op})` : `${op} failed`;
  const advice = ADVICE[e.code!] ?? 'Check the path and the disk, then run again.';
  const error = new LitloraError('ERR_IO', `${what}: ${reason} (${e.code}). ${advice}`);
  error.cause = e;
  return error;
}

/**
 * Creates folder `path` and its parents (mkdir -p); returns the topmost folder it created (undefined when
 * `path` existed). A file in the way is ERR_IO naming it; `role` and `target` say what the folder is for
 * ('out_dir', or 'the checkpoint folder' with the folder whose parent `path` is). Other failures: ioError.
 */
export async function makeFolder(path: string, role: string, target = path): Promise<string | undefined> {
  // One level at a time from the deepest existing folder: Node's mkdir({ recursive }) loops forever where
  // a parent exists but refuses new entries with ENOENT (/proc), and does not say which part is a file.
  const missing: string[] = [];
  for (let p = path; p !== dirname(p); p = dirname(p)) {
    const info = await stat(p).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return null; // absent, or under a file (found further up)
      throw ioError(e, `create ${role} ${target}`);
    });
    if (info === null) {
      missing.push(p);
      continue;
    }
    if (!info.isDirectory()) {
      throw new LitloraError('ERR_IO', `cannot create ${role} ${target}: ${p} is a file, not a folder. ` +
        'Choose a path whose folders are all folders (missing ones are created), or move the file away.');
    }
    break;
  }
  for (const p of missing.reverse()) {
    try {
      await mkdir(p);
    } catch (e) {
      if (!isFsError(e)) throw e;
      if (e.code === 'EEXIST') continue; // made meanwhile by another run
      if (e.code === 'ENOENT') {
        // The parent was removed meanwhile (a run ending tidies its empty out_dir away): start again. Or it
        // is there and refuses new entries.
        if (!(await stat(dirname(p)).catch(() => null))) return makeFolder(path, role, target);
        throw new LitloraError('ERR_IO', `cannot create ${role} ${target}: ${dirname(p)} does not accept new folders ` +
          `(mkdir ${p}: ENOENT; a virtual file system such as /proc?). Choose a location on a writable disk.`);
      }
      throw ioError(e, `create ${role} ${target}`);
    }
  }
  return missing[0];
}
