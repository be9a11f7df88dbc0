import { Agent, errors as undiciErrors, type Dispatcher } from 'undici';
import type { AttemptResult } from './classify.js';
import type { NetworkGuard } from './network-guard.js';
import { webhookHeaders, type SigningKeys } from './signing.js';

export interface OutboundRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  /** Adds the Standard Webhooks headers, signed as the request leaves (when it is sent, not queued). */
  signature?: { webhookId: string; keys: SigningKeys };
  /**
   * At most `maxConcurrency` requests to this destination are on the wire at once; the rest wait
   * here, in order, and go out as slots free up (no round trip to the dispatcher in between).
   */
  destination?: { id: number; maxConcurrency: number };
  /** The delivery's lease ends then: a request that waited until its timeout would outlast it goes back unsent. */
  leaseUntil?: number;
}

/** A request handed back without being sent: its lease is too short now, or its destination's queue was withdrawn. */
export interface Unsent {
  unsent: 'lease-short' | 'withdrawn';
}
export type SendOutcome = AttemptResult | Unsent;

/** What the dispatcher sends through: in its own thread or in a sender thread (threaded-sender.ts). */
export interface Sender {
  send(req: OutboundRequest): Promise<SendOutcome>;
  /** Hands back, unsent, every request of the destination that is still waiting for a slot. */
  withdraw(destinationId: number): void;
  /** A destination's requests on the wire and waiting for a slot, as the sender holds them now. */
  load(destinationId: number): Promise<DestinationLoad>;
  close(): Promise<void>;
}

export interface DestinationLoad {
  active: number;
  waiting: number;
}

interface Waiting {
  req: OutboundRequest;
  target: Target;
  resolve: (outcome: SendOutcome) => void;
}

/** A destination's slots: requests on the wire and those waiting for one. */
interface Gate {
  active: number;
  waiting: Waiting[];
}

/** A destination URL, parsed and judged once: a dispatcher sends to the same few URLs all day. */
interface Target {
  origin: string;
  path: string;
  refused: string | undefined;
}

/**
 * The one place that sends webhooks. Keep-alive pools (an undici Agent per destination), every address
 * checked by the network guard as it is connected to, redirects never followed, replies read up to
 * a cap and then cut off, and one deadline for the whole exchange.
 *
 * It speaks undici's dispatch API rather than `request()`: no stream and no AbortSignal per request
 * (measured: a third of the CPU per request), which is most of a delivery's cost on the wire.
 */
export class HttpSender implements Sender {
  /** Connection pools of their own per destination: one that hangs never holds sockets another would pick from. */
  readonly #agents = new Map<number | undefined, Agent>();
  readonly #targets = new Map<string, Target>();
  readonly #gates = new Map<number, Gate>();

  constructor(
    private readonly guard: NetworkGuard,
    private readonly limits: { maxResponseBytes: number },
  ) {}

  send(req: OutboundRequest): Promise<SendOutcome> {
    const target = this.#target(req.url);
    if (target.refused) return Promise.resolve({ body: '', truncated: false, error: { kind: 'refused', message: target.refused }, durationMs: 0 });
    return new Promise((resolve) => {
      const destination = req.destination;
      if (!destination) return this.#start({ active: 0, waiting: [] }, { req, target, resolve });
      let gate = this.#gates.get(destination.id);
      if (!gate) this.#gates.set(destination.id, (gate = { active: 0, waiting: [] }));
      if (gate.active < destination.maxConcurrency) this.#start(gate, { req, target, resolve });
      else gate.waiting.push({ req, target, resolve });
    });
  }

  withdraw(destinationId: number): void {
    const gate = this.#gates.get(destinationId);
    if (!gate) return;
    for (const w of gate.waiting.splice(0)) w.resolve({ unsent: 'withdrawn' });
    if (gate.active === 0) this.#gates.delete(destinationId);
  }

  async load(destinationId: number): Promise<DestinationLoad> {
    const gate = this.#gates.get(destinationId);
    return { active: gate?.active ?? 0, waiting: gate?.waiting.length ?? 0 };
  }

  #start(gate: Gate, { req, target, resolve }: Waiting): void {
    gate.active++;
    const finish = (outcome: SendOutcome) => {
      resolve(outcome);
      gate.active--;
      const next = gate.waiting.shift();
      if (next) this.#start(gate, next);
      else if (gate.active === 0 && req.destination) this.#gates.delete(req.destination.id);
    };
    if (req.leaseUntil !== undefined && req.leaseUntil - Date.now() < req.timeoutMs) return finish({ unsent: 'lease-short' });
    const sig = req.signature;
    let headers = req.headers;
    try {
      if (sig) headers = { ...headers, ...webhookHeaders(sig.webhookId, Math.floor(Date.now() / 1000), req.body, sig.keys) };
    } catch (err) {
      // A malformed stored key: nothing is sent, and the attempt log says why.
      return finish({ body: '', truncated: false, error: { kind: 'network', message: (err as Error).message }, durationMs: 0 });
    }
    const exchange = new Exchange(req.timeoutMs, this.limits.maxResponseBytes, finish);
    try {
      this.#agent(req.destination?.id).dispatch(
        // undici's own timers are coarse (they can fire hundreds of ms early): the exchange's
        // deadline, a native timer, is the one timeout.
        { origin: target.origin, path: target.path, method: 'POST', headers, body: req.body, headersTimeout: 0, bodyTimeout: 0 },
        exchange,
      );
    } catch (err) {
      exchange.onResponseError(undefined, err as Error);
    }
  }

  #target(url: string): Target {
    let target = this.#targets.get(url);
    if (!target) {
      const refused = this.guard.checkUrl(url);
      let origin = '';
      let path = '/';
      if (!refused) {
        const parsed = new URL(url);
        origin = parsed.origin;
        path = `${parsed.pathname}${parsed.search}`;
      }
      target = { origin, path, refused };
      if (this.#targets.size >= 10_000) this.#targets.clear();
      this.#targets.set(url, target);
    }
    return target;
  }

  #agent(destinationId: number | undefined): Agent {
    let agent = this.#agents.get(destinationId);
    if (!agent) {
      agent = new Agent({ connect: this.guard.connectOptions(), keepAliveTimeout: 30_000, pipelining: 1 });
      this.#agents.set(destinationId, agent);
    }
    return agent;
  }

  async close(): Promise<void> {
    const agents = [...this.#agents.values()];
    this.#agents.clear();
    await Promise.all(agents.map((a) => a.close()));
  }
}

/** One request's handler: collects the capped reply and settles once, at the end, on error or at the deadline. */
class Exchange implements Dispatcher.DispatchHandler {
  readonly #startedAt = Date.now();
  readonly #started = performance.now();
  readonly #timer: NodeJS.Timeout;
  #controller: Dispatcher.DispatchController | undefined;
  #settled = false;
  /** Timed out: whatever undici does with the request from now on is of no interest. */
  #dead = false;
  #status: number | undefined;
  #headers: Record<string, string> | undefined;
  readonly #chunks: Buffer[] = [];
  #size = 0;

  constructor(
    timeoutMs: number,
    private readonly maxBytes: number,
    private readonly resolve: (outcome: SendOutcome) => void,
  ) {
    this.#timer = setTimeout(() => {
      // Abort first, then settle (which frees the slot for the next request): the receiver sees
      // this connection close before the next one opens. Before the request reached a socket
      // there is no controller yet: onRequestStart aborts it.
      this.#dead = true;
      this.#controller?.abort(new undiciErrors.RequestAbortedError());
      this.#settle({ body: '', truncated: false, error: { kind: 'timeout', message: `no complete answer within ${timeoutMs} ms` } });
    }, timeoutMs);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#dead) controller.abort(new undiciErrors.RequestAbortedError());
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (statusCode < 200) return; // 1xx: the real answer follows
    this.#status = statusCode;
    const flat: Record<string, string> = {};
    for (const k in headers) {
      const v = headers[k];
      if (v !== undefined) flat[k] = Array.isArray(v) ? v.join(', ') : v;
    }
    this.#headers = flat;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#dead) return;
    const room = this.maxBytes - this.#size;
    if (chunk.length > room) {
      // Drop the connection rather than drain a huge reply.
      this.#chunks.push(chunk.subarray(0, room));
      this.#dead = true;
      controller.abort(new undiciErrors.RequestAbortedError());
      this.#answer(true);
      return;
    }
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  onResponseEnd(): void {
    this.#answer(false);
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    // Our own abort (timeout, reply cap) reports here too; the reason is already known.
    if (this.#dead) return;
    this.#settle({ body: '', truncated: false, error: describe(err) });
  }

  #answer(truncated: boolean): void {
    const body = this.#chunks.length === 1 ? this.#chunks[0]!.toString('utf8') : Buffer.concat(this.#chunks).toString('utf8');
    this.#settle({ status: this.#status, headers: this.#headers, body, truncated });
  }

  #settle(result: Omit<AttemptResult, 'durationMs'>): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    this.resolve({ ...result, startedAt: this.#startedAt, durationMs: Math.round(performance.now() - this.#started) });
  }
}

function describe(err: unknown): NonNullable<AttemptResult['error']> {
  // The guard's refusal surfaces as the connect error's cause.
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_ADDRESS_REFUSED') return { kind: 'refused', message: e.message };
  }
  const e = err as NodeJS.ErrnoException;
  return { kind: 'network', message: [e.code, e.message].filter(Boolean).join(': ') || String(err) };
}
