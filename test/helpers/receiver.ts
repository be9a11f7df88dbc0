import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the receiver got it. */
export interface Received {
  method: string;
  /** Path and query, e.g. "/hook". */
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** When the request (head and body) had arrived, ms since the epoch. */
  at: number;
  /** Bytes of the reply written so far (streamed replies). */
  bytesSent: number;
  /** The connection closed before the reply was complete: the client went away (or we reset it). */
  closedEarly: boolean;
}

/** How to answer one request. */
export type Reply =
  /** A plain answer, optionally after a delay. */
  | { status: number; headers?: Record<string, string>; body?: string; delayMs?: number }
  /** Never answer; the request stays open until the client gives up or the receiver closes. */
  | { hang: true }
  /** Drop the connection without an answer. */
  | { reset: true }
  /** Stream `bytes` bytes of body in chunks, honouring back-pressure; stops when the client goes away. */
  | { status: number; headers?: Record<string, string>; streamBytes: number; chunkBytes?: number };

export interface Receiver {
  /** `${origin}/hook` */
  url: string;
  /** http://127.0.0.1:port */
  origin: string;
  received: Received[];
  /** Requests currently open (reply not finished, connection not closed). */
  readonly open: number;
  close(): Promise<void>;
}

const defaultAnswer = (): Reply => ({ status: 200, body: '{"ok":true}' });

/** A real HTTP receiver on 127.0.0.1 answering each request as `answer` says. */
export async function startReceiver(answer: (req: Received) => Reply | Promise<Reply> = defaultAnswer): Promise<Receiver> {
  const received: Received[] = [];
  let open = 0;
  const timers = new Set<NodeJS.Timeout>();

  const server = http.createServer((req, res) => {
    open++;
    let counted = true;
    const done = () => {
      if (counted) open--;
      counted = false;
    };
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
        bytesSent: 0,
        closedEarly: false,
      };
      received.push(r);
      res.on('close', () => {
        if (!res.writableFinished) r.closedEarly = true;
        done();
      });
      void Promise.resolve(answer(r)).then((reply) => respond(r, req, res, reply));
    });
    req.on('error', () => {});
    res.on('error', () => {});
  });

  function respond(r: Received, req: http.IncomingMessage, res: http.ServerResponse, reply: Reply) {
    if ('hang' in reply) return;
    if ('reset' in reply) {
      req.socket.destroy();
      return;
    }
    if ('streamBytes' in reply) {
      const total = reply.streamBytes;
      const chunk = Buffer.alloc(reply.chunkBytes ?? 64 * 1024, 'x');
      res.writeHead(reply.status, { 'content-type': 'text/plain', 'content-length': String(total), ...reply.headers });
      const pump = () => {
        while (r.bytesSent < total) {
          if (res.destroyed || r.closedEarly) return; // the client went away: stop writing
          const piece = total - r.bytesSent >= chunk.length ? chunk : chunk.subarray(0, total - r.bytesSent);
          r.bytesSent += piece.length;
          if (!res.write(piece)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    const send = () => {
      if (res.destroyed) return;
      const body = reply.body ?? '';
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers }).end(body);
      r.bytesSent = Buffer.byteLength(body);
    };
    if (reply.delayMs) {
      const t = setTimeout(() => {
        timers.delete(t);
        send();
      }, reply.delayMs);
      timers.add(t);
    } else send();
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    url: `${origin}/hook`,
    origin,
    received,
    get open() {
      return open;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        server.close(() => resolve());
        // Hanging requests and idle keep-alive sockets would hold close() open forever.
        server.closeAllConnections();
      }),
  };
}
