// The Hugging Face Hub as litlora talks to it: where it is (HF_ENDPOINT), who asks (HF_TOKEN), what a model
// repo holds at a revision (the tree listing of @huggingface/hub, with each file's size and hash), the address
// of a file's bytes, and the hub's failures as coded errors that say what to do: ERR_HUB_AUTH (a gated or
// private repo, a bad token), ERR_HUB_NOT_FOUND (no such repo, revision or file), ERR_NETWORK (the endpoint
// cannot be reached, or answered with a server error).
import { HubApiError, listFiles } from '@huggingface/hub';
import { LitloraError, fail } from '../errors.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** Where and as whom to reach the hub, for one repo at one revision. */
export interface HubTarget {
  /** The hub's address without a trailing slash (HF_ENDPOINT, or https://huggingface.co). */
  endpoint: string;
  /** Whether `endpoint` came from the HF_ENDPOINT variable (error messages name it then). */
  endpointFromEnv: boolean;
  /** 'ORG/NAME'. */
  repoId: string;
  revision: string;
  accessToken?: string;
}

/** A file of the repo as the tree listing gives it. */
export interface RepoFile {
  path: string;
  size: number;
  /** The sha256 of the content, for files stored with LFS (or Xet): the hub's `lfs.oid`. */
  sha256?: string;
  /** The git blob id (sha1 of 'blob <size>\0' + content), for files stored in git itself. */
  gitOid?: string;
}

// A repo id is 'ORG/NAME' in the hub's characters; anything else (a URL, '../x', three parts) would also become a
// folder path under checkpoint_dir, so it is refused before any request.
const REPO_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function checkRepoId(repoId: string): void {
  if (typeof repoId !== 'string' || !REPO_ID.test(repoId) || repoId.includes('..')) {
    fail('ERR_ARG', `repo id ${JSON.stringify(repoId)} is not of the form ORG/NAME (as on the model's hub page, ` +
      'e.g. EleutherAI/pythia-160m): give the organization (or user) and the model name, separated by one slash.');
  }
}

/** The hub address: `endpoint` if given, else env HF_ENDPOINT, else https://huggingface.co. */
export function hubEndpoint(endpoint?: string): { endpoint: string; fromEnv: boolean } {
  const fromEnv = !endpoint && !!process.env.HF_ENDPOINT;
  const raw = endpoint || process.env.HF_ENDPOINT || DEFAULT_ENDPOINT;
  let url: URL | null = null;
  try { url = new URL(raw); } catch { /* reported below */ }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    fail('ERR_ARG', `${fromEnv ? 'HF_ENDPOINT' : 'the hub endpoint'} is ${JSON.stringify(raw)}, not an http(s) address: ` +
      `set it to the hub's address (e.g. ${DEFAULT_ENDPOINT}) or unset it.`);
  }
  return { endpoint: raw.replace(/\/+$/, ''), fromEnv };
}

/** The access token: `token` if given, else env HF_TOKEN; none when both are empty. */
export function hubToken(token?: string | null): string | undefined {
  const value = token || process.env.HF_TOKEN || undefined;
  // @huggingface/hub takes only user access tokens (they start with hf_) and throws a bare TypeError otherwise.
  if (value !== undefined && !value.startsWith('hf_')) {
    fail('ERR_HUB_AUTH', `the access token ${token ? '(--access_token)' : '(HF_TOKEN)'} starts with ` +
      `${JSON.stringify(value.slice(0, 3))}, but Hugging Face access tokens start with "hf_": copy a token from ` +
      'https://huggingface.co/settings/tokens.');
  }
  return value;
}

/** The address of a file's bytes: /ORG/NAME/resolve/REVISION/PATH (the hub redirects it to its storage). */
export function resolveUrl(target: HubTarget, path: string): string {
  return `${target.endpoint}/${target.repoId}/resolve/${encodeURIComponent(target.revision)}/` +
    path.split('/').map(encodeURIComponent).join('/');
}

/** The request headers that carry the token. */
export function authHeaders(target: HubTarget): Record<string, string> {
  return target.accessToken ? { Authorization: `Bearer ${target.accessToken}` } : {};
}

/** Every file of the repo at the revision (recursively), with sizes and hashes. */
export async function listRepoFiles(target: HubTarget): Promise<RepoFile[]> {
  // The hub's X-Error-Code header (RepoNotFound, RevisionNotFound, GatedRepo) tells its 401/403/404 apart;
  // HubApiError keeps only status and body, so a fetch wrapper notes the header of each failed response.
  let errorCode: string | null = null;
  const noting: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    if (!response.ok) errorCode = response.headers.get('x-error-code');
    return response;
  };
  const url = `${target.endpoint}/api/models/${target.repoId}/tree/${encodeURIComponent(target.revision)}`;
  const files: RepoFile[] = [];
  try {
    for await (const entry of listFiles({
      // Sizes and LFS sha256s come without `expand`, which only adds each file's last commit (slow on big repos).
      repo: { type: 'model', name: target.repoId }, recursive: true, expand: false,
      // listFiles puts the revision into the path as given; encoded, 'refs/pr/1' stays one path segment.
      revision: encodeURIComponent(target.revision), hubUrl: target.endpoint, accessToken: target.accessToken, fetch: noting,
    })) {
      if (entry.type !== 'file') continue;
      files.push({
        path: entry.path,
        size: entry.lfs?.size ?? entry.size,
        ...(entry.lfs?.oid ? { sha256: entry.lfs.oid } : entry.oid ? { gitOid: entry.oid } : {}),
      });
    }
  } catch (e) {
    throw hubError(e, target, { url, errorCode });
  }
  return files;
}

/** The error of a failed HTTP response from the hub (a file download). */
export async function responseError(response: Response, target: HubTarget, file: string): Promise<LitloraError> {
  const errorCode = response.headers.get('x-error-code');
  let detail = '';
  try {
    detail = await response.text();
    const parsed = JSON.parse(detail) as { error?: unknown };
    if (typeof parsed?.error === 'string') detail = parsed.error; // the hub's JSON errors: { "error": "..." }
  } catch { /* the body is optional, and may be text */ }
  detail = detail.slice(0, 300);
  return statusError(response.status, detail, target, { url: response.url || resolveUrl(target, file), errorCode, file });
}

interface Where {
  /** The address that was requested. */
  url: string;
  /** The hub's X-Error-Code header, where it sent one. */
  errorCode?: string | null;
  /** The file being fetched, when the failure is about one file. */
  file?: string;
}

/** A coded error for anything a hub request threw: an HTTP status, or a network failure. */
export function hubError(e: unknown, target: HubTarget, where: Where): LitloraError {
  if (e instanceof LitloraError) return e;
  if (e instanceof HubApiError) {
    return statusError(e.statusCode, e.message.replace(/\. URL: .*$/, ''), target, where);
  }
  const error = e instanceof SyntaxError
    // A 200 answer that is not JSON: the address serves something, but not the hub's API.
    ? new LitloraError('ERR_NETWORK', `${target.endpoint} answered ${where.url} with something other than the hub's JSON ` +
      `(${e.message}): is ${target.endpointFromEnv ? 'HF_ENDPOINT' : 'the endpoint'} the address of a Hugging Face hub or mirror?`)
    : networkError(e, target, where.url);
  error.cause = e;
  return error;
}

function statusError(status: number, detail: string, target: HubTarget, where: Where): LitloraError {
  const { repoId, revision, endpoint } = target;
  const page = `${endpoint}/${repoId}`;
  const token = target.accessToken ? 'the access token given (--access_token or HF_TOKEN)' : 'no access token';
  const said = detail ? ` The hub said: ${detail.trim()}` : '';
  const code = where.errorCode ?? '';
  const what = where.file ? `${where.file} of ${repoId}` : repoId;
  if (code === 'GatedRepo' || ((status === 401 || status === 403) && code !== 'RepoNotFound')) {
    return new LitloraError('ERR_HUB_AUTH', `${page} refused access to ${what} (HTTP ${status}${code ? `, ${code}` : ''}) with ${token}. ` +
      `It is gated or private: accept the model's terms on ${page} while logged in, then pass a token that has access ` +
      '(--access_token hf_... or set HF_TOKEN; tokens are made at https://huggingface.co/settings/tokens).' + said);
  }
  if (code === 'RevisionNotFound') {
    return new LitloraError('ERR_HUB_NOT_FOUND', `${repoId} has no revision ${JSON.stringify(revision)} on ${endpoint} ` +
      `(HTTP ${status}): give a branch, tag or commit that exists (--revision; the default is main).` + said);
  }
  if (code === 'EntryNotFound' || (status === 404 && where.file)) {
    return new LitloraError('ERR_HUB_NOT_FOUND', `${what} is not at revision ${JSON.stringify(revision)} on ${endpoint} ` +
      `(HTTP ${status}), although the repo's listing names it: the repo changed meanwhile? Run the command again.` + said);
  }
  if (code === 'RepoNotFound' || status === 404) {
    return new LitloraError('ERR_HUB_NOT_FOUND', `there is no model repo ${repoId}${revision !== 'main' ? ` with revision ${JSON.stringify(revision)}` : ''} ` +
      `on ${endpoint} (HTTP ${status}, ${where.url}): check the spelling (ORG/NAME as on the model's page)` +
      `${target.accessToken ? '' : ', and if it is private, pass a token that can read it (--access_token or HF_TOKEN)'}.` + said);
  }
  return new LitloraError('ERR_NETWORK', `${endpoint} answered HTTP ${status} for ${where.url}${status === 429 ? ' (too many requests)' : ''}: ` +
    'the hub (or a proxy) is failing or limiting requests; wait a little and run the command again (a download resumes where it stopped).' + said);
}

/**
 * Why a fetch failed, from the system error under Node's 'fetch failed' / 'terminated' TypeError:
 * 'ECONNREFUSED', 'ENOTFOUND', 'UND_ERR_SOCKET (other side closed)', ...
 */
export function networkReason(e: unknown): string {
  let innermost = '';
  for (let x: any = e, depth = 0; x && depth < 5; x = x.cause, depth++) {
    const inner = Array.isArray(x.errors) && x.errors.length ? x.errors[0] : x; // a name with several addresses
    const code = inner?.code;
    if (typeof code === 'string' && (/^E[A-Z]/.test(code) || code.startsWith('UND_'))) {
      const message = String(inner.message ?? '');
      return message && !message.includes(code) ? `${code}: ${message}` : message || code;
    }
    if (typeof x.message === 'string' && x.message) innermost = x.message;
  }
  return innermost || String(e);
}

function networkError(e: unknown, target: HubTarget, url: string): LitloraError {
  const advice = target.endpointFromEnv
    ? `HF_ENDPOINT is ${target.endpoint}: check that address, or unset HF_ENDPOINT to use ${DEFAULT_ENDPOINT}`
    : 'Check the connection (and any proxy), or set HF_ENDPOINT to a mirror of the hub';
  return new LitloraError('ERR_NETWORK', `cannot reach the hub at ${target.endpoint} (${url}): ${networkReason(e)}. ${advice}, ` +
    'then run the command again.');
}
