import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertDeliveries } from '../../src/store/outbox-repo.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Channels and retry policies are registries: a name nobody registered is an error, never a
 * default. At enqueue it is refused before anything is stored; a delivery already stored under
 * such a name (written by another version) fails unsent, and says why.
 */
let svc: TestService;
let receiver: Receiver;
let connectionId: number;

beforeAll(async () => {
  receiver = await startReceiver();
  svc = await startTestService((c) => {
    c.logLevel = 'error';
    c.delivery.allowHttp = true;
    c.delivery.allowedNetworks = ['127.0.0.0/8'];
    c.delivery.pollIntervalMs = 20;
  });
  connectionId = (await svc.json('/api/v1/connections', 'POST', { name: 'r', url: receiver.url })).body.id;
});
afterAll(async () => {
  await svc?.close();
  await receiver?.close();
});

const item = (over: Record<string, unknown>) => ({ projectId: svc.project.id, connectionId, ownerKind: 'refused', ownerId: 1, policy: 'standard', contentType: 'application/json', body: '{}', ...over });

describe('the channel and policy registries', () => {
  it('refuses to enqueue an unknown policy or channel, or a delivery without the destination its channel needs', async () => {
    const { outbox } = svc.service.delivery;
    const db = svc.service.store.db;
    await expect(outbox.enqueue(db, [item({ policy: 'standrad' })])).rejects.toThrow('unknown retry policy "standrad"; registered: standard, once, email, mixpanel-message, slack, sms, mixpanel-cohort-sync');
    await expect(outbox.enqueue(db, [item({ channel: 'pager' })])).rejects.toThrow(/^unknown channel "pager"; registered: webhook, email, slack, sms$/);
    await expect(outbox.enqueue(db, [item({ connectionId: null })])).rejects.toThrow('webhook deliveries need a connection');
    await expect(outbox.enqueue(db, [item({ channel: 'email', policy: 'email' })])).rejects.toThrow("email deliveries go to the channel's own destination, not to a connection");
    // Nothing of a refused batch is stored, the good items included.
    await expect(outbox.enqueue(db, [item({}), item({ policy: 'nope' })])).rejects.toThrow(/unknown retry policy "nope"/);
    expect((await svc.json('/api/v1/deliveries?owner_kind=refused')).body.results).toEqual([]);
  });

  it('fails a stored delivery naming a policy or channel this process does not know, without sending it', async () => {
    const row = (over: { policy?: string; channel?: string }) => ({
      projectId: svc.project.id,
      channel: over.channel ?? 'webhook',
      connectionId,
      webhookId: `msg_unknown_${over.policy ?? over.channel}`,
      ownerKind: 'test',
      ownerId: 'x',
      policy: over.policy ?? 'standard',
      contentType: 'application/json',
      body: '{}',
      headers: {},
      notBefore: 0,
    });
    const [byPolicy, byChannel] = await insertDeliveries(svc.service.store.db, [row({ policy: 'from-the-future' }), row({ channel: 'carrier-pigeon' })], Date.now());
    svc.service.delivery.dispatcher.wake(true);
    for (const [created, message] of [
      [byPolicy!, 'unknown retry policy "from-the-future"'],
      [byChannel!, 'unknown channel "carrier-pigeon"'],
    ] as const) {
      const ended = await waitFor(`delivery ${created.id} to end`, async () => {
        const d = (await svc.json(`/api/v1/deliveries/${created.id}`)).body;
        return d.state === 'pending' ? undefined : d;
      });
      expect(ended).toMatchObject({ state: 'failed', outcome: 'rejected', attempts: 1, last_status: null });
      expect(ended.last_error).toContain(message);
      expect(ended.attempts_log[0]).toMatchObject({ status: null, outcome: 'rejected', error: expect.stringContaining(message) });
    }
    expect(receiver.received).toEqual([]);
  });
});
