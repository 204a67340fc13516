// An HTTP server on 127.0.0.1 that serves files the way PyTorch's download site does (Content-Length, HTTP Range
// → 206), records every request, and can misbehave on purpose: cut a response off after some bytes (an
// interrupted download), or ignore Range (a server that always sends the whole file).
import { createReadStream, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Served { request: string; range: string | null; status: number; bytes: number }

export interface ArchiveServer {
  /** http://127.0.0.1:PORT */
  base: string;
  /** Every request answered, in order. */
  log: Served[];
  /** Serve `body` (bytes, or a file's path) at `path`. */
  put(path: string, body: Buffer | { file: string }): void;
  /** The next response for `path` stops after `bytes` bytes (the connection is destroyed). */
  cutNext(path: string, bytes: number): void;
  /** Whether Range requests are honoured (default true). */
  ranges: boolean;
  close(): Promise<void>;
}

export async function archiveServer(): Promise<ArchiveServer> {
  const bodies = new Map<string, Buffer | { file: string }>();
  const cuts = new Map<string, number>();
  const log: Served[] = [];
  const self = { ranges: true } as ArchiveServer;
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const body = bodies.get(path);
    const range = typeof req.headers.range === 'string' ? req.headers.range : null;
    const entry: Served = { request: path, range, status: 404, bytes: 0 };
    log.push(entry);
    if (!body) {
      res.writeHead(404).end('not found');
      return;
    }
    const size = Buffer.isBuffer(body) ? body.length : statSync(body.file).size;
    let start = 0;
    const m = range && self.ranges ? /^bytes=(\d+)-$/.exec(range) : null;
    if (m) {
      start = Number(m[1]);
      if (start >= size) {
        entry.status = 416;
        res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
        return;
      }
      entry.status = 206;
      res.writeHead(206, { 'Content-Length': size - start, 'Content-Range': `bytes ${start}-${size - 1}/${size}`, 'Accept-Ranges': 'bytes' });
    } else {
      entry.status = 200;
      res.writeHead(200, { 'Content-Length': size, ...(self.ranges ? { 'Accept-Ranges': 'bytes' } : {}) });
    }
    const cut = cuts.get(path);
    cuts.delete(path);
    const end = cut === undefined ? size : Math.min(size, start + cut);
    const stream = Buffer.isBuffer(body) ? null : createReadStream(body.file, { start, end: end - 1 });
    const send = (chunk: Buffer) => { entry.bytes += chunk.length; };
    if (stream) {
      stream.on('data', (c) => send(c as Buffer));
      stream.pipe(res, { end: cut === undefined });
      stream.on('end', () => { if (cut !== undefined) res.destroy(); });
    } else {
      const part = (body as Buffer).subarray(start, end);
      send(part);
      if (cut === undefined) res.end(part);
      else res.write(part, () => res.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(self, {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    put: (path: string, body: Buffer | { file: string }) => { bodies.set(path, body); },
    cutNext: (path: string, bytes: number) => { cuts.set(path, bytes); },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  });
}

/** A PEP 503 simple-index page listing `files` (name → sha256 or null), as download.pytorch.org/whl/<variant>/torch/ does. */
export function simpleIndex(files: Record<string, string | null>, prefix = ''): Buffer {
  const links = Object.entries(files).map(([name, sha]) =>
    `<a href="${prefix}${encodeURIComponent(name)}${sha ? `#sha256=${sha}` : ''}">${name}</a><br/>`);
  return Buffer.from(`<!DOCTYPE html>\n<html><body><h1>Links for torch</h1>\n${links.join('\n')}\n</body></html>\n`);
}
