import { afterAll, beforeAll, expect, it } from 'vitest';
import { enqueue } from '../../src/delivery/outbox.js';
import { claimDeliveries, renewLease } from '../../src/store/outbox-repo.js';
import { startTestService, type TestService } from '../helpers/service.js';

let svc: TestService;
let connectionId: number;

beforeAll(async () => {
  svc = await startTestService((c) => {
    c.delivery.allowHttp = true;
    c.delivery.allowedNetworks = ['127.0.0.0/8'];
  });
  // The service's own dispatcher must not touch these rows: the connection is disabled for it.
  const res = await svc.api('/api/v1/connections', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'leases', url: 'http://127.0.0.1:9/never' }),
  });
  connectionId = ((await res.json()) as { id: number }).id;
  await svc.service.store.db.updateTable('connections').set({ disabled_at: Date.now() }).where('id', '=', connectionId).execute();
});
afterAll(() => svc?.close());

it('renews a lease only for the claim that holds it: not after it ran out, not for a later claim', async () => {
  const { store } = svc.service;
  await enqueue(store.db, [{ projectId: svc.project.id, connectionId, ownerKind: 'test', ownerId: 1, policy: 'standard', contentType: 'application/json', body: '{}', notBefore: 0 }]);
  const t0 = Date.now();
  const [mine] = await claimDeliveries(store, connectionId, 1, 'worker-a', t0, 1000);
  expect(mine!.next_attempt_at).toBe(t0 + 1000);
  // While held: nobody else can claim it, and its holder can extend it.
  expect(await claimDeliveries(store, connectionId, 1, 'worker-b', t0 + 500, 1000)).toHaveLength(0);
  const renewed = await renewLease(store, 'worker-a', mine!.id, t0 + 1000, t0 + 500, 1000);
  expect(renewed).toBe(t0 + 1500);
  expect(await renewLease(store, 'worker-b', mine!.id, t0 + 1500, t0 + 600, 1000)).toBeUndefined();
  // Once it ran out, it is claimable again, and the old claim's renewal no longer applies.
  expect(await renewLease(store, 'worker-a', mine!.id, t0 + 1500, t0 + 1600, 1000)).toBeUndefined();
  const [again] = await claimDeliveries(store, connectionId, 1, 'worker-a', t0 + 1600, 1000);
  expect(again!.id).toBe(mine!.id);
  expect(await renewLease(store, 'worker-a', mine!.id, t0 + 1500, t0 + 1700, 1000)).toBeUndefined();
  expect(await renewLease(store, 'worker-a', mine!.id, t0 + 2600, t0 + 1700, 1000)).toBe(t0 + 2700);
});
