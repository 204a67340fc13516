// OutDirLock: one finetune run at a time per out_dir. Two runs writing step folders and final/ into one folder
// would mix their checkpoints (or trip over each other's folder swaps); the second run is refused instead.
//
// The lock is the file out_dir/.litlora.lock holding its owner as JSON: pid, host, start time and a random
// token. It appears complete and atomically: the JSON is written under a temporary name and hard-linked to
// the lock's name, which fails with EEXIST when a lock is there (the guarantee of open(O_CREAT|O_EXCL), used
// directly where hard links are not supported). A lock whose owner is gone (same host, and the pid is not
// running, or is a process started after the lock was taken) is stale and taken over with a message; a lock
// from another host cannot be checked from here and is refused with the way to remove it.
//
// Released on every exit path: by release() (the Trainer's finally), and for locks still held when the
// process ends, by an 'exit' handler (process.exit, uncaught errors) and by SIGINT/SIGTERM/SIGHUP handlers
// that release and then die of the same signal — these only act when nothing else in the process listens
// for that signal, since a program with its own handler decides itself how it stops.
import { randomBytes } from 'node:crypto';
import { readFileSync, rmdirSync, unlinkSync } from 'node:fs';
import { link, open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { tempSibling } from './atomic.js';
import { fail } from '../errors.js';
import { ioError, isFsError, makeFolder } from './fs_errors.js';

export const LOCK_FILE = '.litlora.lock';

/** What the lock file records. */
export interface LockOwner {
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  since: string;
  /** Tells this lock from a later one of the same pid. */
  token: string;
}

export interface AcquireOptions {
  /** Where the message about taking over a stale lock goes (default: stderr). */
  log?: (line: string) => void;
}

// Locks held by this process, shared through globalThis so that two copies of this module (tsx and other
// loaders can load one twice) still see each other's locks.
interface Registry { held: Set<OutDirLock>; onExit: () => void; onSignal: (signal: NodeJS.Signals) => void }
const REGISTRY_KEY = Symbol.for('litlora.outDirLocks');
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function registry(): Registry {
  const g = globalThis as { [REGISTRY_KEY]?: Registry };
  if (!g[REGISTRY_KEY]) {
    const reg: Registry = {
      held: new Set(),
      onExit: () => { for (const lock of [...reg.held]) lock.release(); },
      onSignal: (signal) => {
        // Another listener means the program handles this signal itself (and releases through finally).
        if (process.listenerCount(signal) > 1) return;
        for (const lock of [...reg.held]) lock.release();
        process.kill(process.pid, signal); // release() removed this handler: the default action now ends us
      },
    };
    g[REGISTRY_KEY] = reg;
  }
  return g[REGISTRY_KEY]!;
}

function track(lock: OutDirLock, on: boolean): void {
  const reg = registry();
  const before = reg.held.size;
  if (on) reg.held.add(lock); else reg.held.delete(lock);
  if (before === 0 && reg.held.size === 1) {
    process.on('exit', reg.onExit);
    for (const s of SIGNALS) process.on(s, reg.onSignal);
  } else if (before > 0 && reg.held.size === 0) {
    process.off('exit', reg.onExit);
    for (const s of SIGNALS) process.off(s, reg.onSignal);
  }
}

function describe(owner: LockOwner): string {
  return `pid ${owner.pid} on host ${owner.host} since ${owner.since}`;
}

function parseOwner(text: string): LockOwner | null {
  try {
    const o = JSON.parse(text) as LockOwner;
    if (Number.isInteger(o.pid) && o.pid > 0 && typeof o.host === 'string' && typeof o.since === 'string' && typeof o.token === 'string') return o;
  } catch { /* not JSON: below */ }
  return null;
}

/** Linux: when process `pid` started (ms since the epoch), from /proc; null where that cannot be read. */
function processStart(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd on; comm may hold spaces
    const ticks = Number(fields[19]); // field 22: starttime, clock ticks after boot
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    if (!Number.isFinite(ticks) || !Number.isFinite(btime)) return null;
    return btime * 1000 + ticks * 10; // USER_HZ is 100 on every Linux ABI
  } catch {
    return null;
  }
}

/** Why `owner` (on this host) no longer holds its lock, or null when it is alive. */
function staleReason(owner: LockOwner): string | null {
  if (owner.pid === process.pid) {
    return [...registry().held].some((l) => l.owner.token === owner.token) ? null : 'it was left by an earlier process with this pid';
  }
  try {
    process.kill(owner.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return `process ${owner.pid} is not running`;
  }
  // The pid runs, but a process started well after the lock was taken is another one (pids are reused,
  // e.g. after a reboot or in a restarted container). /proc's boot time is whole seconds: a margin.
  const started = processStart(owner.pid);
  const since = Date.parse(owner.since);
  if (started !== null && Number.isFinite(since) && started > since + 5000) {
    return `pid ${owner.pid} is now a process started after the lock was taken`;
  }
  return null;
}

export class OutDirLock {
  /** Absolute path of out_dir. */
  readonly root: string;
  /** Path of the lock file. */
  readonly path: string;
  readonly owner: LockOwner;
  /** The topmost folder acquire() created for out_dir (removed again on release if still empty). */
  readonly #created: string | undefined;
  #held = true;

  private constructor(root: string, owner: LockOwner, created: string | undefined) {
    this.root = root;
    this.path = join(root, LOCK_FILE);
    this.owner = owner;
    this.#created = created;
    track(this, true);
  }

  /** True until release(). */
  get held(): boolean {
    return this.#held;
  }

  /**
   * Takes the lock of out_dir `dir` (creating the folder if needed). ERR_BUSY when a live run holds it, or
   * a run on another host; ERR_IO when out_dir cannot be a folder (a file, a path under a file, no rights).
   */
  static async acquire(dir: string, options: AcquireOptions = {}): Promise<OutDirLock> {
    const root = resolve(dir);
    const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    const path = join(root, LOCK_FILE);
    let created: string | undefined;
    for (let attempt = 0; attempt < 10; attempt++) {
      created = (await makeFolder(root, 'out_dir')) ?? created;
      const owner: LockOwner = { pid: process.pid, host: hostname(), since: new Date().toISOString(), token: randomBytes(8).toString('hex') };
      try {
        await createExclusive(path, `${JSON.stringify(owner)}\n`);
        return new OutDirLock(root, owner, created);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue; // out_dir was removed meanwhile (an ending run tidying up): again
        if (code !== 'EEXIST') throw isFsError(e) ? ioError(e, `take the lock of out_dir: create ${path}`) : e;
      }
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile: try again
        throw isFsError(e) ? ioError(e, `read the lock of out_dir ${path}`) : e;
      }
      const holder = parseOwner(text);
      if (!holder) {
        fail('ERR_BUSY', `out_dir ${root} is locked, but its lock file ${path} does not say by whom (${JSON.stringify(text.slice(0, 80))}). ` +
          `If no litlora run is using ${root}, delete ${path} and start again.`);
      }
      if (holder.host !== hostname()) {
        fail('ERR_BUSY', `out_dir ${root} is in use by a finetune run on another host (${describe(holder)}); whether it still runs cannot be ` +
          `checked from ${hostname()}. Wait for it, choose another out_dir (--out_dir), or, if that run has ended, delete ${path} and start again.`);
      }
      const why = staleReason(holder);
      if (why === null) {
        fail('ERR_BUSY', `out_dir ${root} is in use by another finetune run (${describe(holder)}${holder.pid === process.pid ? ', in this process' : ''}). ` +
          `Wait for it to finish or stop it, or choose another out_dir (--out_dir). Two runs in one out_dir would mix their checkpoints.`);
      }
      if (await removeIfStill(path, holder)) log(`Took over the stale lock of ${root} (${describe(holder)}: ${why}).`);
    }
    fail('ERR_BUSY', `out_dir ${root}: its lock ${path} kept changing while litlora tried to take it (other runs starting?). ` +
      'Start one run at a time per out_dir.');
  }

  /** Removes the lock file (if it is still this lock's), and out_dir if acquire() created it and it is empty. */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    track(this, false);
    try {
      if (parseOwner(readFileSync(this.path, 'utf8'))?.token === this.owner.token) unlinkSync(this.path);
    } catch { /* already gone */ }
    if (this.#created === undefined) return;
    // A run that failed before writing anything leaves no empty folders behind; stop at the first with content.
    for (let d = this.root; ; d = dirname(d)) {
      try { rmdirSync(d); } catch { return; }
      if (d === this.#created) return;
    }
  }
}

/** Creates `path` with `text` unless it exists (EEXIST), so that it never exists half-written. */
async function createExclusive(path: string, text: string): Promise<void> {
  const tmp = tempSibling(path);
  await writeFile(tmp, text, { flag: 'wx' });
  try {
    await link(tmp, path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw e;
    const handle = await open(path, 'wx'); // O_CREAT | O_EXCL
    try { await handle.writeFile(text); } finally { await handle.close(); }
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/**
 * Removes the lock file if it is still the stale one read before. It is first renamed aside (one rename
 * wins when two runs take over together) and checked: a lock that another run took meanwhile is put back.
 */
async function removeIfStill(path: string, stale: LockOwner): Promise<boolean> {
  const aside = tempSibling(path);
  try {
    await rename(path, aside);
  } catch {
    return false; // gone already (another run took it over): look again
  }
  const moved = parseOwner(await readFile(aside, 'utf8').catch(() => ''));
  if (moved?.token !== stale.token) {
    await link(aside, path).catch(() => {});
    await unlink(aside).catch(() => {});
    return false;
  }
  await unlink(aside).catch(() => {});
  return true;
}
