/**
 * The events cohortcast emits to subscriptions, each with what its `data` holds and a sample (GET
 * /api/v1/event-types; the samples are also what `/test` sends). Each surface adds its own here.
 */
export interface EventType {
  type: string;
  description: string;
  sample: Record<string, unknown>;
}

const member = {
  distinct_id: 'user-42',
  cohort: { id: 7, name: 'Lapsed buyers' },
  member: { mixpanel_distinct_id: 'user-42', email: 'ada@example.com', first_name: 'Ada' },
  user: { $distinct_id: 'user-42', $properties: { $email: 'ada@example.com', $first_name: 'Ada', plan: 'pro' } },
};
const run = { id: 12, session_id: '5f3b…', kind: 'diff', total_pages: 2, members_added: 10, members_removed: 3 };

export const EVENT_TYPES: readonly EventType[] = [
  { type: 'profile.created', description: 'A user profile was created (/engage).', sample: { distinct_id: 'user-42', properties: { plan: 'pro', $email: 'ada@example.com' } } },
  { type: 'profile.updated', description: 'A user profile changed; `changed` names the properties that did.', sample: { distinct_id: 'user-42', properties: { plan: 'enterprise', $email: 'ada@example.com' }, changed: ['plan'] } },
  { type: 'profile.deleted', description: 'A user profile was deleted ($delete).', sample: { distinct_id: 'user-42' } },
  { type: 'cohort.member_entered', description: 'A user came to match a watched cohort (named in the subscription’s cohort_ids).', sample: member },
  { type: 'cohort.member_exited', description: 'A user stopped matching a watched cohort.', sample: member },
  { type: 'event.ingested', description: 'A tracked event was stored that matches the subscription’s event_filter.', sample: { event: 'Purchase', distinct_id: 'user-42', time: '2026-12-01T10:00:00.000Z', properties: { amount: 25 } } },
  { type: 'cohort_sync.run_succeeded', description: 'Every page of a cohort sync run was acknowledged.', sample: { sync_id: 3, cohort_id: 7, connection_id: 2, run } },
  { type: 'cohort_sync.run_failed', description: 'A cohort sync run failed: a page used up its retries.', sample: { sync_id: 3, cohort_id: 7, connection_id: 2, run: { ...run, error: 'HTTP 503' } } },
  { type: 'cohort_sync.paused', description: 'A cohort sync paused: the receiver refused a page (400, 401, 403, 404) or the cohort cannot be evaluated.', sample: { sync_id: 3, cohort_id: 7, connection_id: 2, reason: 'the receiver refused page 1: HTTP 401' } },
  { type: 'connection.disabled', description: 'A connection was switched off after 410 Gone.', sample: { connection_id: 2, reason: 'disabled after HTTP 410' } },
  {
    type: 'alert.fired',
    description: 'An alert found its report crossing its condition and notified (the data is the custom_alert_triggered payload its webhooks receive).',
    sample: {
      event_type: 'custom_alert_triggered',
      alert: { id: 4, name: 'Purchases spike', creator: 'Ada', creator_email: 'ada@example.com', project_id: 1, project_name: 'Shop', fired_at: '2026-12-01T10:00:00.000Z', workspace_id: 1, workspace_name: 'Shop' },
      condition: { type: 'absolute', operator: 'greater than', threshold: 100, current_value: '1234.5678', formatted_value: '1,234.57', sentence: 'Purchases was 1,234.57 from 2026-12-01T09:00:00.000Z to 2026-12-01T10:00:00.000Z: above 100.' },
      report: { name: 'Purchases', type: 'insights', url: 'http://127.0.0.1:8080/reports/3' },
      links: { report_url: 'http://127.0.0.1:8080/reports/3', edit_alert_url: 'http://127.0.0.1:8080/alerts/4', root_cause_analysis_url: 'http://127.0.0.1:8080/reports/3?from=…&to=…' },
    },
  },
  { type: 'delivery.exhausted', description: 'A delivery used up its retries.', sample: { delivery_id: 991, connection_id: 2, channel: 'webhook', owner: { kind: 'cohort-sync', id: '12:1' }, attempts: 6, last_error: 'HTTP 503' } },
];

export const EVENT_TYPE_NAMES = EVENT_TYPES.map((t) => t.type);
export const MEMBER_EVENTS = ['cohort.member_entered', 'cohort.member_exited'];
export const isEventType = (t: unknown): t is string => typeof t === 'string' && EVENT_TYPE_NAMES.includes(t);
