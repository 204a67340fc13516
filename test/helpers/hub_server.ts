// A small stand-in for the Hugging Face Hub on 127.0.0.1, serving what litlora's download asks of it:
//   GET /api/models/ORG/NAME/tree/REV?recursive=true&expand=true   the listing (size, git oid, lfs.oid = sha256)
//   GET /ORG/NAME/resolve/REV/PATH    the bytes (LFS files through a redirect to /cdn/SHA256, as the hub does),
//                                     with Range: bytes=N- support (206 + Content-Range)
// and the hub's refusals, with its X-Error-Code header: 404 RepoNotFound / RevisionNotFound / EntryNotFound, and
// 401 GatedRepo for a file of a repo with a token when the request lacks `Authorization: Bearer <token>`.
// Faults for the tests: drop the connection after N bytes of a file (once), serve a file's bytes altered, or
// ignore Range. Every request is recorded (method, path, Range and Authorization headers).
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HubRepo {
  files: Record<string, Uint8Array | string>;
  /** Requests need `Authorization: Bearer <token>` (a gated repo). */
  token?: string;
  /** The revisions that exist (default ['main']); each serves the same files. */
  revisions?: string[];
}

export interface SeenRequest {
  method: string;
  path: string;
  range?: string;
  authorization?: string;
}

/** Files over this size are listed and served as LFS files (sha256 in the listing, bytes through a redirect). */
const LFS_FROM = 1024;

const gitOid = (bytes: Uint8Array) => createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

export class HubServer {
  readonly requests: SeenRequest[] = [];
  /** path → byte count: the next response for that file ends the connection after that many body bytes. */
  readonly dropAfter = new Map<string, number>();
  /** Paths whose served bytes differ from the listed ones (the first byte flipped). */
  readonly corrupt = new Set<string>();
  /** Answer Range requests with the whole file (200), as a server without range support does. */
  ignoreRange = false;
  private readonly cdn = new Map<string, Uint8Array>();

  private constructor(private readonly server: Server, readonly url: string, private readonly repos: Map<string, HubRepo>) {}

  static async start(repos: Record<string, HubRepo>): Promise<HubServer> {
    const server = createServer();
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const { port } = server.address() as AddressInfo;
    const hub = new HubServer(server, `http://127.0.0.1:${port}`, new Map(Object.entries(repos)));
    server.on('request', (req, res) => hub.handle(req, res));
    return hub;
  }

  /** The bytes of a repo's file, as listed. */
  bytes(repoId: string, path: string): Buffer {
    const data = this.repos.get(repoId)!.files[path]!;
    return Buffer.from(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  }

  /** The requests for a file's bytes (through /resolve/ or the /cdn/ redirect). */
  fileRequests(path: string): SeenRequest[] {
    return this.requests.filter((r) => r.path.includes('/resolve/') ? r.path.endsWith(`/${path}`) : r.path.startsWith(`/cdn/${path}/`));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((done) => this.server.close(() => done()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url!, this.url);
    const path = decodeURIComponent(url.pathname);
    this.requests.push({
      method: req.method!, path,
      ...(req.headers.range ? { range: req.headers.range } : {}),
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    });
    const refuse = (status: number, code: string, message: string) => {
      res.writeHead(status, { 'Content-Type': 'application/json', 'X-Error-Code': code });
      res.end(JSON.stringify({ error: message }));
    };
    let m = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/?]+)$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const cdn = /^\/cdn\/(.+)\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn) return this.send(req, res, decodeURIComponent(cdn[1]!), this.cdn.get(cdn[2]!)!);
    if (!m && !resolve) return refuse(404, 'NotFound', `no route ${path}`);
    m = m ?? resolve;
    const repoId = m![1]!, revision = decodeURIComponent(m![2]!);
    const repo = this.repos.get(repoId);
    if (!repo) return refuse(404, 'RepoNotFound', `Repository not found: ${repoId}`);
    // As on the hub, a gated repo's listing is public; its files need the token.
    if (repo.token && resolve && req.headers.authorization !== `Bearer ${repo.token}`) {
      return refuse(401, 'GatedRepo', `Access to model ${repoId} is restricted. You must have access to it and be authenticated to access it.`);
    }
    if (!(repo.revisions ?? ['main']).includes(revision)) return refuse(404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
    if (!resolve) {
      const listing = Object.keys(repo.files).sort().map((p) => {
        const bytes = this.bytes(repoId, p);
        const entry: Record<string, unknown> = { type: 'file', path: p, size: bytes.length, oid: gitOid(bytes) };
        if (bytes.length > LFS_FROM) entry.lfs = { oid: sha256(bytes), size: bytes.length, pointerSize: 134 };
        return entry;
      });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(listing));
      return;
    }
    const file = decodeURIComponent(resolve[3]!);
    if (!(file in repo.files)) return refuse(404, 'EntryNotFound', `${file} does not exist on "${revision}"`);
    let bytes = this.bytes(repoId, file);
    if (this.corrupt.has(file)) {
      bytes = Buffer.from(bytes);
      bytes[0] ^= 0xff;
    }
    if (bytes.length > LFS_FROM) {
      // The hub sends LFS (and Xet) files from its storage: a redirect to an address of the content.
      const key = sha256(bytes);
      this.cdn.set(key, bytes);
      res.writeHead(302, { Location: `/cdn/${encodeURIComponent(file)}/${key}` });
      res.end();
      return;
    }
    this.send(req, res, file, bytes);
  }

  private send(req: IncomingMessage, res: ServerResponse, file: string, bytes: Uint8Array): void {
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && !this.ignoreRange) {
      start = Number(range[1]);
      if (start >= bytes.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${bytes.length}` });
        res.end();
        return;
      }
      res.writeHead(206, { 'Content-Length': bytes.length - start, 'Content-Range': `bytes ${start}-${bytes.length - 1}/${bytes.length}`, ETag: `"${sha256(bytes)}"` });
    } else {
      res.writeHead(200, { 'Content-Length': bytes.length, 'Accept-Ranges': 'bytes', ETag: `"${sha256(bytes)}"` });
    }
    const body = Buffer.from(bytes.subarray(start));
    const drop = this.dropAfter.get(file);
    if (drop === undefined) {
      res.end(body);
      return;
    }
    this.dropAfter.delete(file);
    // Part of the body, then the connection ends under the response (a network failure mid-file).
    res.write(body.subarray(0, drop), () => { res.socket?.destroy(); });
  }
}

/** A port on 127.0.0.1 with nothing listening (bound, then closed). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}
