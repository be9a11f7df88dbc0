import fs from 'node:fs';
import { Ajv } from 'ajv';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { webhookHeaders, generateSigningSecret } from '../../../src/delivery/signing.js';
import {
  AlertFormatError,
  parseAlert,
  CohortMirror,
  CohortSyncFormatError,
  cohortSyncReply,
  MessageFormatError,
  parseCohortSync,
  parseMessage,
  verifySignature,
  WebhookVerificationError,
  type CohortSyncRequest,
} from '../src/index.js';

const schema = JSON.parse(fs.readFileSync(new URL('../schema/cohort-sync.schema.json', import.meta.url), 'utf8'));
const validate = new Ajv({ allErrors: true }).compile(schema);

const page = (action: CohortSyncRequest['action'], session: string, pageCount: number, total: number, ids: string[], cohort = '7'): CohortSyncRequest => ({
  action,
  parameters: {
    mixpanel_project_id: '1',
    mixpanel_cohort_id: cohort,
    mixpanel_cohort_name: 'Pros',
    mixpanel_cohort_description: 'on the pro plan',
    mixpanel_session_id: session,
    page_info: { total_pages: total, page_count: pageCount },
    members: ids.map((id) => ({ mixpanel_distinct_id: id, email: `${id}@example.com` })),
  },
});

describe('verifySignature', () => {
  const secret = generateSigningSecret();
  const body = JSON.stringify(page('members', 's1', 1, 1, ['a']));
  const at = 1_700_000_000;
  const signed = (keys = [secret], ts = at) => webhookHeaders('msg_abc', ts, body, { secrets: keys });

  it('accepts what cohortcast signs and what the standardwebhooks package signs, at an injected time', () => {
    expect(verifySignature({ secrets: secret, headers: signed(), body, now: () => at * 1000 })).toEqual({ webhookId: 'msg_abc', timestamp: at });
    const theirs = new Webhook(secret).sign('msg_xyz', new Date(at * 1000), body);
    const headers = { 'webhook-id': 'msg_xyz', 'webhook-timestamp': String(at), 'webhook-signature': theirs };
    expect(verifySignature({ secrets: secret, headers, body: Buffer.from(body), now: () => at * 1000 + 299_000 }).webhookId).toBe('msg_xyz');
  });

  it('accepts either secret while the sender rotates, and either of its signatures', () => {
    const next = generateSigningSecret();
    const headers = signed([next, secret]);
    expect(headers['webhook-signature']!.split(' ')).toHaveLength(2);
    expect(() => verifySignature({ secrets: secret, headers, body, now: () => at * 1000 })).not.toThrow();
    expect(() => verifySignature({ secrets: [next], headers, body, now: () => at * 1000 })).not.toThrow();
  });

  it.each([
    ['a stale timestamp', { now: () => (at + 301) * 1000 }, 'too_old'],
    ['a timestamp from the future', { now: () => (at - 301) * 1000 }, 'too_new'],
    ['another secret', { secrets: generateSigningSecret() }, 'no_match'],
    ['a changed body', { body: body.replace('"a"', '"b"') }, 'no_match'],
    ['no signature header', { headers: { 'webhook-id': 'msg_abc', 'webhook-timestamp': String(at) } }, 'missing_headers'],
    ['a timestamp that is not a number', { headers: { ...signed(), 'webhook-timestamp': 'soon' } }, 'bad_timestamp'],
  ])('refuses %s', (_name, change, reason) => {
    const attempt = () => verifySignature({ secrets: secret, headers: signed(), body, now: () => at * 1000, ...change });
    expect(attempt).toThrow(WebhookVerificationError);
    try {
      attempt();
    } catch (err) {
      expect((err as WebhookVerificationError).reason).toBe(reason);
    }
  });
});

describe('parseCohortSync and the JSON Schema', () => {
  it('accepts a page with exported properties, and the schema agrees', () => {
    const req = page('add_members', 's', 2, 3, ['a', 'b']);
    req.parameters.members[0]!.plan = 'pro';
    expect(parseCohortSync(JSON.stringify(req))).toEqual(req);
    expect(validate(req)).toBe(true);
  });

  it.each([
    ['an unknown action', (r: any) => (r.action = 'replace'), 'action'],
    ['a numeric cohort id', (r: any) => (r.parameters.mixpanel_cohort_id = 7), 'parameters.mixpanel_cohort_id'],
    ['a page past the end', (r: any) => (r.parameters.page_info.page_count = 4), 'parameters.page_info'],
    ['a page 0', (r: any) => (r.parameters.page_info.page_count = 0), 'parameters.page_info'],
    ['1001 members', (r: any) => (r.parameters.members = Array.from({ length: 1001 }, (_, i) => ({ mixpanel_distinct_id: `u${i}` }))), 'parameters.members'],
    ['a member without a distinct id', (r: any) => (r.parameters.members = [{ email: 'x@example.com' }]), 'parameters.members[0].mixpanel_distinct_id'],
    ['a null field', (r: any) => (r.parameters.members[0].last_name = null), 'parameters.members[0].last_name'],
  ])('refuses %s, naming the field, as the schema does', (_name, spoil, path) => {
    const req = page('members', 's', 1, 3, ['a']);
    spoil(req);
    expect(() => parseCohortSync(req)).toThrow(CohortSyncFormatError);
    expect(() => parseCohortSync(req)).toThrow(`${path}: `);
    // page_count past total_pages is a rule between two fields, which the schema cannot state.
    if (path !== 'parameters.page_info' || (req.parameters.page_info.page_count as number) < 1) expect(validate(req)).toBe(false);
  });

  it('builds the reply the sender expects', () => {
    expect(cohortSyncReply('add_members')).toEqual({ action: 'add_members', status: 'success' });
    expect(cohortSyncReply('members', { message: 'quota exceeded', code: 429 })).toEqual({ action: 'members', status: 'failure', error: { message: 'quota exceeded', code: 429 } });
  });
});

describe('CohortMirror', () => {
  it('replaces a cohort when every page of a full export has arrived, in any order, once', () => {
    const mirror = new CohortMirror();
    expect(mirror.receive(page('members', 'full-1', 2, 3, ['c', 'd']), 'msg_2')).toEqual({ duplicate: false, sessionComplete: false });
    expect(mirror.receive(page('members', 'full-1', 1, 3, ['a', 'b']), 'msg_1')).toEqual({ duplicate: false, sessionComplete: false });
    // Until the export is complete, the old copy stands.
    expect(mirror.members('7')).toEqual([]);
    expect(mirror.openSessions()).toEqual(['full-1']);
    expect(mirror.receive(page('members', 'full-1', 1, 3, ['a', 'b']), 'msg_1')).toEqual({ duplicate: true, sessionComplete: false });
    expect(mirror.receive(page('members', 'full-1', 3, 3, ['e']), 'msg_3')).toEqual({ duplicate: false, sessionComplete: true });
    expect(mirror.members('7').map((m) => m.mixpanel_distinct_id)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(mirror.openSessions()).toEqual([]);

    // A diff: adds and removes in one session (both calls made, even an empty one).
    expect(mirror.receive(page('add_members', 'diff-1', 1, 2, ['f']), 'msg_4').duplicate).toBe(false);
    expect(mirror.receive(page('remove_members', 'diff-1', 2, 2, ['b', 'd']), 'msg_5')).toEqual({ duplicate: false, sessionComplete: true });
    expect(mirror.members('7').map((m) => m.mixpanel_distinct_id)).toEqual(['a', 'c', 'e', 'f']);
    // The same page sent again under a new webhook-id (a resumed run) changes nothing.
    expect(mirror.receive(page('remove_members', 'diff-1', 2, 2, ['b', 'd']), 'msg_6').duplicate).toBe(true);
    expect(mirror.receive(page('add_members', 'diff-2', 1, 2, []), 'msg_7').duplicate).toBe(false);
    expect(mirror.receive(page('remove_members', 'diff-2', 2, 2, []), 'msg_8').sessionComplete).toBe(true);
    expect(mirror.members('7')).toHaveLength(4);

    // A new full export replaces everything, whatever came before.
    mirror.receive(page('members', 'full-2', 1, 1, ['z']), 'msg_9');
    expect(mirror.members('7').map((m) => m.mixpanel_distinct_id)).toEqual(['z']);
  });
});

describe('parseMessage', () => {
  it('reads the users of a webhook message', () => {
    const users = [{ $distinct_id: 'a', $properties: { $email: 'a@example.com' } }];
    expect(parseMessage(new URLSearchParams({ users: JSON.stringify(users) }).toString())).toEqual(users);
  });

  it.each([
    ['no users parameter', 'other=1', 'the form has no "users" parameter'],
    ['users that are not JSON', 'users=%5B', '"users" is not JSON'],
    ['more than 50 users', new URLSearchParams({ users: JSON.stringify(Array.from({ length: 51 }, (_, i) => ({ $distinct_id: `u${i}` }))) }).toString(), 'at most 50 users'],
    ['a user without a distinct id', new URLSearchParams({ users: '[{"$properties":{}}]' }).toString(), 'users[0]: expected'],
  ])('refuses %s', (_name, body, message) => {
    expect(() => parseMessage(body)).toThrow(MessageFormatError);
    expect(() => parseMessage(body)).toThrow(message);
  });
});

describe('parseAlert and its JSON Schema', () => {
  const alert = {
    event_type: 'custom_alert_triggered',
    alert: { id: 4, name: '[TEST] Spike', creator: null, creator_email: null, project_id: 1, project_name: 'Shop', fired_at: '2026-06-01T07:00:00.000Z', workspace_id: 1, workspace_name: 'Shop' },
    condition: { type: 'absolute', operator: 'greater than', threshold: 30, current_value: '50', formatted_value: '50', sentence: 'Purchases was 50: above 30.' },
    report: { name: 'Purchases', type: 'insights', url: 'https://x.example/reports/1' },
    links: { report_url: 'https://x.example/reports/1', edit_alert_url: 'https://x.example/alerts/4', root_cause_analysis_url: 'https://x.example/reports/1?from=a' },
  };
  const validate = new Ajv({ allErrors: true }).compile(JSON.parse(fs.readFileSync(new URL('../schema/custom-alert.schema.json', import.meta.url), 'utf8')));

  it('accepts an alert, tells a test, and the schema agrees', () => {
    expect(parseAlert(JSON.stringify(alert))).toMatchObject({ isTest: true, condition: { current_value: '50' } });
    expect(validate(alert)).toBe(true);
  });

  it('names what is wrong, as the schema does', () => {
    const numeric = { ...alert, condition: { ...alert.condition, current_value: 50 } };
    expect(() => parseAlert(numeric)).toThrow(new AlertFormatError('condition.current_value', 'missing or of the wrong type'));
    expect(validate(numeric)).toBe(false);
    expect(() => parseAlert({ ...alert, event_type: 'other' })).toThrow('event_type');
    expect(() => parseAlert('{')).toThrow('body: not JSON');
  });
});
