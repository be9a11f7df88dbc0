import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AttemptResult } from '../../src/delivery/classify.js';
import { HttpSender, type OutboundRequest, type Sender, type SendOutcome } from '../../src/delivery/http-sender.js';
import { NetworkGuard } from '../../src/delivery/network-guard.js';
import { generateSigningSecret } from '../../src/delivery/signing.js';
import { ThreadedSender } from '../../src/delivery/threaded-sender.js';
import { waitFor } from '../helpers/wait.js';

const policy = { allowHttp: true, allowedNetworks: ['127.0.0.0/8'] };
const limits = { maxResponseBytes: 1024 };

/** A receiver that holds every request until the test lets it answer. */
interface HeldReceiver {
  url: string;
  held: { path: string; headers: http.IncomingHttpHeaders; body: string; answer(status?: number): void }[];
  close(): Promise<void>;
}

async function heldReceiver(): Promise<HeldReceiver> {
  const held: HeldReceiver['held'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () =>
      held.push({
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        answer: (status = 200) => res.writeHead(status, { 'content-type': 'application/json' }).end('{"ok":true}'),
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    held,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

const answered = (outcome: SendOutcome): AttemptResult => {
  if ('unsent' in outcome) throw new Error(`expected an answer, got unsent: ${outcome.unsent}`);
  return outcome;
};

describe.each([
  ['in the dispatcher thread', () => new HttpSender(new NetworkGuard(policy), limits)],
  ['on a sender thread', () => new ThreadedSender({ policy, limits }, pino({ level: 'silent' }))],
] as [string, () => Sender][])('sender %s', (_name, make) => {
  let receiver: HeldReceiver;
  let sender: Sender;
  beforeAll(async () => {
    receiver = await heldReceiver();
    sender = make();
  });
  afterAll(async () => {
    await receiver.close();
    await sender.close();
  });

  const request = (path: string, extra: Partial<OutboundRequest> = {}): OutboundRequest => ({
    url: `${receiver.url}${path}`,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ path }),
    timeoutMs: 5000,
    ...extra,
  });

  it('keeps a destination to its max concurrency, sends the rest in order as slots free, and hands back the waiting ones on withdraw', async () => {
    const destination = { id: 7, maxConcurrency: 3 };
    const outcomes = Array.from({ length: 8 }, (_, i) => sender.send(request(`/gate/${i}`, { destination })));
    await waitFor('three requests on the wire', () => (receiver.held.length === 3 ? true : undefined));
    // The other five wait for a slot: the sender says so, and none of them went out.
    expect(await sender.load(7)).toEqual({ active: 3, waiting: 5 });
    expect(receiver.held.map((h) => h.path)).toEqual(['/gate/0', '/gate/1', '/gate/2']);

    receiver.held[0]!.answer(200);
    await waitFor('the fourth request', () => (receiver.held.length === 4 ? true : undefined));
    expect(receiver.held[3]!.path).toBe('/gate/3');
    expect(await sender.load(7)).toEqual({ active: 3, waiting: 4 });
    expect(answered(await outcomes[0]!)).toMatchObject({ status: 200, body: '{"ok":true}', truncated: false });

    // Another destination is not held back by this one's full slots.
    const other = sender.send(request('/other', { destination: { id: 8, maxConcurrency: 1 } }));
    await waitFor('the other destination’s request', () => (receiver.held.some((h) => h.path === '/other') ? true : undefined));
    receiver.held.find((h) => h.path === '/other')!.answer(201);
    expect(answered(await other).status).toBe(201);

    sender.withdraw(7);
    expect(await sender.load(7)).toEqual({ active: 3, waiting: 0 });
    const withdrawn = await Promise.all(outcomes.slice(4));
    expect(withdrawn).toEqual([{ unsent: 'withdrawn' }, { unsent: 'withdrawn' }, { unsent: 'withdrawn' }, { unsent: 'withdrawn' }]);
    for (const h of receiver.held.filter((x) => x.path.startsWith('/gate/')).slice(1)) h.answer(204);
    const done = (await Promise.all(outcomes.slice(1, 4))).map(answered);
    expect(done.map((r) => r.status)).toEqual([204, 204, 204]);
    expect(receiver.held.filter((h) => h.path.startsWith('/gate/'))).toHaveLength(4);
  });

  it('hands back unsent a request whose lease would end before its timeout', async () => {
    const before = receiver.held.length;
    const outcome = await sender.send(request('/lease', { leaseUntil: Date.now() + 1000, timeoutMs: 5000, destination: { id: 9, maxConcurrency: 1 } }));
    expect(outcome).toEqual({ unsent: 'lease-short' });
    expect(receiver.held.length).toBe(before);
  });

  it('signs as it sends, times out at the deadline and says when it started', async () => {
    const secret = generateSigningSecret();
    const body = JSON.stringify({ hello: 'signed' });
    const startedBefore = Date.now();
    const outcome = sender.send({ ...request('/signed'), body, timeoutMs: 300, signature: { webhookId: 'msg_signed1', keys: { secrets: [secret] } } });
    const held = await waitFor('the signed request', () => receiver.held.find((h) => h.path === '/signed'));
    expect(held.headers['webhook-id']).toBe('msg_signed1');
    const headers = Object.fromEntries(Object.entries(held.headers).map(([k, v]) => [k, String(v)]));
    expect(new Webhook(secret).verify(held.body, headers)).toEqual({ hello: 'signed' });
    // Left unanswered: the sender gives up at its deadline.
    const result = answered(await outcome);
    expect(result.error).toEqual({ kind: 'timeout', message: 'no complete answer within 300 ms' });
    expect(result.startedAt).toBeGreaterThanOrEqual(startedBefore);
    expect(result.durationMs).toBeGreaterThanOrEqual(290);
  });

  it('refuses a URL the network policy forbids without sending', async () => {
    const result = answered(await sender.send({ ...request('/x'), url: 'http://10.1.2.3/hook' }));
    expect(result.error?.kind).toBe('refused');
    expect(result.error?.message).toMatch(/10\.0\.0\.0\/8/);
  });
});

describe('sender thread', () => {
  it('starts a new thread when asked to send after its thread stopped', async () => {
    const receiver = await heldReceiver();
    const sender = new ThreadedSender({ policy, limits }, pino({ level: 'silent' }));
    try {
      const first = sender.send({ url: `${receiver.url}/first`, headers: {}, body: '{}', timeoutMs: 5000 });
      (await waitFor('the first request', () => receiver.held[0])).answer(200);
      expect(answered(await first).status).toBe(200);
      await sender.close();
      const outcome = sender.send({ url: `${receiver.url}/after-close`, headers: {}, body: '{}', timeoutMs: 5000 });
      (await waitFor('the request after close', () => receiver.held[1])).answer(200);
      expect(answered(await outcome).status).toBe(200);
      expect(receiver.held.map((h) => h.path)).toEqual(['/first', '/after-close']);
    } finally {
      await sender.close();
      await receiver.close();
    }
  });
});
