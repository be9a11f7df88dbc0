import { Agent, errors as undiciErrors, request } from 'undici';
import type { AttemptResult } from './classify.js';
import type { NetworkGuard } from './network-guard.js';

export interface OutboundRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}

/**
 * The one place that sends webhooks. Keep-alive pools per origin (undici's Agent), every address
 * checked by the network guard as it is connected to, redirects never followed, replies read up to
 * a cap and then cut off, and one deadline for the whole exchange.
 */
export class HttpSender {
  readonly #agent: Agent;

  constructor(
    private readonly guard: NetworkGuard,
    private readonly limits: { maxResponseBytes: number },
  ) {
    this.#agent = new Agent({ connect: guard.connectOptions(), keepAliveTimeout: 30_000, pipelining: 1 });
  }

  async send(req: OutboundRequest): Promise<AttemptResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const refused = this.guard.checkUrl(req.url);
    if (refused) return { body: '', truncated: false, error: { kind: 'refused', message: refused }, durationMs: 0 };
    const deadline = AbortSignal.timeout(req.timeoutMs);
    try {
      const res = await request(req.url, {
        method: 'POST',
        headers: req.headers,
        body: req.body,
        dispatcher: this.#agent,
        signal: deadline,
        // undici's own timers are coarse (they can fire hundreds of ms early): the deadline above,
        // a native timer, is the one timeout.
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
      const { text, truncated } = await readCapped(res.body, this.limits.maxResponseBytes);
      return { status: res.statusCode, headers, body: text, truncated, durationMs: elapsed() };
    } catch (err) {
      return { body: '', truncated: false, error: describe(err, deadline.aborted, req.timeoutMs), durationMs: elapsed() };
    }
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}

/** Reads at most `max` bytes, then drops the connection rather than drain a huge reply. */
async function readCapped(body: AsyncIterable<Buffer> & { destroy(): void }, max: number): Promise<{ text: string; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const room = max - size;
    if (chunk.length > room) {
      chunks.push(chunk.subarray(0, room));
      body.destroy();
      return { text: Buffer.concat(chunks).toString('utf8'), truncated: true };
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  return { text: Buffer.concat(chunks).toString('utf8'), truncated: false };
}

function describe(err: unknown, timedOut: boolean, timeoutMs: number): NonNullable<AttemptResult['error']> {
  if (timedOut || err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
    return { kind: 'timeout', message: `no complete answer within ${timeoutMs} ms` };
  }
  // The guard's refusal surfaces as the connect error's cause.
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_ADDRESS_REFUSED') return { kind: 'refused', message: e.message };
  }
  const e = err as NodeJS.ErrnoException;
  return { kind: 'network', message: [e.code, e.message].filter(Boolean).join(': ') || String(err) };
}
