// One hub file onto disk, resumably, never half under its final name. Bytes go to a hidden partial file next
// to the final name (`.NAME.incomplete`); after an interruption the next run asks only for the missing tail
// (HTTP Range: bytes=N-) and appends to it. The partial file becomes NAME only once its size and hash equal the
// hub's listing (sha256 for LFS/Xet files, the git blob id for the others), fsynced, by a rename whose folder
// is fsynced too. Bytes that do not match are removed, so a rerun starts that file anew.
//
// The request is Node's fetch, not @huggingface/hub's downloadFile: that returns a Blob whose stream cannot start
// at an offset we choose while keeping the bytes we hash, and for Xet files it reassembles chunks in memory
// through its own protocol; /resolve/ serves every file (Xet ones through a redirect) with plain Range support.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { LitloraError } from '../errors.js';
import { fsyncDir } from '../io/atomic.js';
import { ioError, isFsError } from '../io/fs_errors.js';
import { authHeaders, hubError, networkReason, resolveUrl, responseError, type HubTarget, type RepoFile } from './client.js';

/** The hidden name a file is written under until it is complete and verified. */
export function partialPath(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}.incomplete`);
}

/** A hasher for the digest the hub lists for `file` (null: the listing gives none, size alone is checked). */
function newHasher(file: RepoFile): { hash: Hash; expected: string; kind: string } | null {
  if (file.sha256) return { hash: createHash('sha256'), expected: file.sha256.toLowerCase(), kind: 'sha256' };
  if (file.gitOid) {
    // A git blob id is the sha1 of 'blob <size>\0' followed by the content.
    const hash = createHash('sha1').update(`blob ${file.size}\0`);
    return { hash, expected: file.gitOid.toLowerCase(), kind: 'git blob id' };
  }
  return null;
}

async function hashFile(path: string, hash: Hash, limit?: number): Promise<void> {
  if (limit === 0) return;
  for await (const chunk of createReadStream(path, limit === undefined ? {} : { end: limit - 1 })) hash.update(chunk as Buffer);
}

/** True when `path` holds exactly the bytes of `file` (size, then hash where the hub lists one). */
export async function alreadyComplete(path: string, file: RepoFile): Promise<boolean> {
  const info = await stat(path).catch(() => null);
  if (!info?.isFile() || info.size !== file.size) return false;
  const hasher = newHasher(file);
  if (!hasher) return true;
  await hashFile(path, hasher.hash);
  return hasher.hash.digest('hex') === hasher.expected;
}

function fsFailure(e: unknown, doing: string): unknown {
  return isFsError(e) ? ioError(e, doing) : e;
}

/**
 * Fetches `file` of the repo into `dest`, resuming from `.NAME.incomplete` when one is there. `onBytes` is called
 * with the bytes of this file on disk so far (the resumed part included). Throws ERR_NETWORK (kept partial:
 * rerun to resume), ERR_HUB_INTEGRITY (bytes removed: rerun to fetch anew), ERR_HUB_* for refusals, ERR_IO.
 */
export async function fetchToFile(target: HubTarget, file: RepoFile, dest: string, onBytes: (done: number) => void = () => {}): Promise<void> {
  const partial = partialPath(dest);
  const url = resolveUrl(target, file.path);
  let have = (await stat(partial).catch(() => null))?.size ?? 0;
  if (have > file.size) {
    // Longer than the file now listed: the repo changed since (or the bytes are not this file's).
    await rm(partial, { force: true });
    have = 0;
  }
  let hasher = newHasher(file);
  if (hasher && have > 0) await hashFile(partial, hasher.hash, have).catch((e) => { throw fsFailure(e, `read ${partial}`); });
  onBytes(have);

  if (have < file.size || file.size === 0) {
    let response: Response;
    const request = async (from: number) => {
      try {
        return await fetch(url, { headers: { ...authHeaders(target), ...(from > 0 ? { Range: `bytes=${from}-` } : {}) } });
      } catch (e) {
        throw hubError(e, target, { url, file: file.path });
      }
    };
    response = await request(have);
    const restart = have > 0 && (response.status === 200 || response.status === 416 ||
      (response.status === 206 && rangeStart(response) !== have));
    if (restart) {
      // The server cannot continue from `have` (no Range support, or it holds other bytes now): start over.
      if (response.status !== 200) {
        await response.body?.cancel();
        response = await request(0);
      }
      have = 0;
      hasher = newHasher(file);
      onBytes(0);
    }
    if (!response.ok) throw await responseError(response, target, file.path);
    await receive(response, partial, have, file, hasher, target, onBytes);
  }
  have = (await stat(partial).catch(() => null))?.size ?? 0;

  const digest = hasher?.hash.digest('hex');
  if (have !== file.size || (hasher && digest !== hasher.expected)) {
    await rm(partial, { force: true });
    const got = have !== file.size ? `${have} bytes` : `${hasher!.kind} ${digest}`;
    const want = have !== file.size ? `${file.size} bytes` : `${hasher!.kind} ${hasher!.expected}`;
    throw new LitloraError('ERR_HUB_INTEGRITY', `${file.path} of ${target.repoId} (from ${url}) does not match the hub's listing: ` +
      `expected ${want}, got ${got}. The bytes received were removed and ${basename(dest)} left as it was; run the command ` +
      'again to download it anew. If it happens again, a proxy or the mirror in HF_ENDPOINT is altering the file.');
  }
  try {
    await rename(partial, dest);
    await fsyncDir(dirname(dest));
  } catch (e) {
    throw fsFailure(e, `put ${file.path} in place at ${dest}`);
  }
}

/** The first byte of a 206 response's Content-Range ('bytes 100-199/200' → 100); NaN when absent. */
function rangeStart(response: Response): number {
  const m = /^bytes (\d+)-/.exec(response.headers.get('content-range') ?? '');
  return m ? Number(m[1]) : NaN;
}

/** Appends the response body to `partial` (from offset `have`), hashing it; fsyncs before returning. */
async function receive(response: Response, partial: string, have: number, file: RepoFile,
  hasher: ReturnType<typeof newHasher>, target: HubTarget, onBytes: (done: number) => void): Promise<void> {
  const handle = await open(partial, have > 0 ? 'a' : 'w', 0o644).catch((e) => { throw fsFailure(e, `write ${partial}`); });
  let done = have;
  try {
    try {
      for await (const chunk of response.body ?? []) {
        const bytes = chunk as Uint8Array;
        await handle.write(bytes).catch((e) => { throw fsFailure(e, `write ${partial}`); });
        hasher?.hash.update(bytes);
        done += bytes.length;
        onBytes(done);
        if (done > file.size) break; // more than the listed size: found bad below, no use receiving the rest
      }
    } catch (e) {
      if (e instanceof LitloraError) throw e;
      const error = new LitloraError('ERR_NETWORK', `the download of ${file.path} from ${target.endpoint} broke off at ` +
        `${done} of ${file.size} bytes (${networkReason(e)}). The bytes received are kept in ${basename(partial)}: ` +
        'run the command again to resume from there.');
      error.cause = e;
      throw error;
    }
    if (done < file.size) {
      throw new LitloraError('ERR_NETWORK', `the download of ${file.path} from ${target.endpoint} ended at ${done} of ` +
        `${file.size} bytes (the connection closed early). The bytes received are kept in ${basename(partial)}: run the ` +
        'command again to resume from there.');
    }
    await handle.sync().catch((e) => { throw fsFailure(e, `write ${partial}`); });
  } finally {
    await handle.close();
  }
}
