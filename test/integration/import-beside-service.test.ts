import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/**
 * `cohortcast import` into the database of a running service: the service goes on, a cohort a
 * subscription watches takes the imported users in at its sweep (member_entered is sent), and the
 * imported history itself notifies nothing (no event.ingested, no profile.created).
 */
let svc: TestService;
let receiver: Receiver;
let dir: string;

beforeAll(async () => {
  receiver = await startReceiver();
  svc = await startTestService((c) => {
    c.delivery.allowHttp = true;
    c.delivery.allowedNetworks = ['127.0.0.0/8'];
    c.membership.sweepIntervalMs = 100;
  });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-import-live-'));
});
afterAll(async () => {
  await svc?.close();
  await receiver?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const envelopes = () => receiver.received.map((r) => JSON.parse(r.body) as { event_type: string; data: { distinct_id?: string } });

describe('import beside a running service', () => {
  it('feeds watched cohorts at their sweep and notifies nothing of the history itself', async () => {
    const hook = await svc.json('/api/v1/connections', 'POST', { name: 'hook', url: receiver.url });
    const cohort = await svc.json('/api/v1/cohorts', 'POST', { name: 'Pros', definition: { property: 'plan', op: 'equals', value: 'pro' } });
    const sub = await svc.json('/api/v1/subscriptions', 'POST', {
      name: 'everything',
      event_types: ['cohort.member_entered', 'profile.created', 'event.ingested'],
      cohort_ids: [cohort.body.id],
      event_filter: { events: ['Bought'] },
      channels: [{ type: 'webhook', connection_id: hook.body.id }],
    });
    expect(sub.status).toBe(201);

    const profiles = path.join(dir, 'engage.json');
    fs.writeFileSync(profiles, JSON.stringify({ results: [{ $distinct_id: 'imp-1', $properties: { plan: 'pro' } }, { $distinct_id: 'imp-2', $properties: { plan: 'free' } }] }));
    const events = path.join(dir, 'events.ndjson');
    fs.writeFileSync(events, `${JSON.stringify({ event: 'Bought', properties: { time: 1_700_000_000, distinct_id: 'imp-1', $insert_id: 'b1' } })}\n`);
    for (const [kind, file] of [['profiles', profiles], ['events', events]]) {
      const res = await runCli(['import', kind!, file!, '--json', ...svc.database.args], svc.database.env);
      expect(res.code, res.stderr).toBe(0);
      expect(JSON.parse(res.stdout)).toMatchObject({ imported: kind === 'profiles' ? 2 : 1, rejected: 0 });
    }
    const entered = await waitFor('imp-1 to enter the watched cohort', () => envelopes().find((e) => e.event_type === 'cohort.member_entered' && e.data.distinct_id === 'imp-1'), 15_000);
    expect(entered).toBeDefined();
    // The service still answers, and the import's own records told no one.
    expect((await svc.json('/api/v1/profiles/imp-2')).status).toBe(200);
    const written = await svc.service.store.db.selectFrom('webhook_events').select(['type']).where('project_id', '=', svc.project.id).execute();
    expect(written.map((w) => w.type)).toEqual(['cohort.member_entered']);
    // …whereas the same event through the API is live activity, and is told.
    const live = await fetch(`${svc.url}/track`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ event: 'Bought', properties: { token: svc.project.token, distinct_id: 'imp-1', time: Date.now(), $insert_id: 'live-1' } }]) });
    expect(await live.text()).toBe('1');
    await waitFor('the live event to be told', () => envelopes().find((e) => e.event_type === 'event.ingested'), 15_000);
  });
});
