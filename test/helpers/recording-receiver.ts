import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A webhook receiver on 127.0.0.1 that counts requests by webhook-id as their headers arrive
 * (so a request the sender dies in the middle of still counts as seen), for at-least-once and
 * exactly-once checks.
 */
export interface RecordingReceiver {
  url: string;
  /** The webhook-id of every request, in the order their headers arrived (duplicates included). */
  readonly ids: string[];
  /** How many requests each webhook-id arrived in. */
  readonly counts: Map<string, number>;
  /** Requests whose headers have arrived and whose answer has not finished (nor socket closed). */
  readonly inFlight: number;
  /** The most requests in flight at once so far. */
  readonly peakInFlight: number;
  /** Destroys every connection (held requests included) and stops listening. */
  close(): Promise<void>;
}

export interface RecordingReceiverOptions {
  /** Each answer (200) comes after a random delay from 0 to this many ms; default 20. */
  maxDelayMs?: number;
  /**
   * Called synchronously as each request's headers arrive, after it is recorded, with the number
   * of requests so far; return true to hold the request (never answered; closed by `close`).
   */
  hold?: (webhookId: string, received: number) => boolean;
}

export async function startRecordingReceiver(opts: RecordingReceiverOptions = {}): Promise<RecordingReceiver> {
  const maxDelayMs = opts.maxDelayMs ?? 20;
  const ids: string[] = [];
  const counts = new Map<string, number>();
  let inFlight = 0;
  let peakInFlight = 0;
  const server = http.createServer((req, res) => {
    const id = String(req.headers['webhook-id'] ?? '');
    ids.push(id);
    counts.set(id, (counts.get(id) ?? 0) + 1);
    inFlight++;
    peakInFlight = Math.max(peakInFlight, inFlight);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      inFlight--;
    };
    res.once('finish', finish);
    res.once('close', finish);
    if (opts.hold?.(id, ids.length)) return;
    req.resume();
    req.once('end', () => {
      setTimeout(() => {
        if (res.destroyed) return;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      }, Math.floor(Math.random() * (maxDelayMs + 1)));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    ids,
    counts,
    get inFlight() {
      return inFlight;
    },
    get peakInFlight() {
      return peakInFlight;
    },
    close() {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
