import type { ColumnType, Generated } from 'kysely';

/**
 * Table types shared by both dialects. JSON columns are TEXT on SQLite and JSONB on
 * PostgreSQL: they are written as JSON strings and read back through `readJson`.
 */
type Json = ColumnType<unknown, string, string>;

export interface ProjectsTable {
  id: Generated<number>;
  name: string;
  token: string;
  /** SHA-256 of the secret: a stolen database does not hand out API access. */
  secret_hash: string;
  created_at: number;
}

export interface EventsTable {
  id: Generated<number>;
  project_id: number;
  event: string;
  distinct_id: string;
  /** Milliseconds since the epoch. */
  time: number;
  insert_id: string | null;
  /** Hash of (event, time, distinct_id, $insert_id); random when there is no $insert_id. */
  dedup_key: string;
  /** Every property but token, time, distinct_id and $insert_id, which have columns. */
  properties: Json;
  received_at: number;
}

export interface EventDailyCountsTable {
  project_id: number;
  distinct_id: string;
  event: string;
  /** Days since the epoch (UTC). */
  day: number;
  count: number;
}

export interface ProfilesTable {
  project_id: number;
  distinct_id: string;
  properties: Json;
  /** The profile as a cohort-sync page member, without its closing brace (cohort-sync/wire.ts syncMemberHead). */
  sync_member: string;
  created_at: number;
  updated_at: number;
}

export interface GroupProfilesTable {
  project_id: number;
  group_key: string;
  group_id: string;
  properties: Json;
  created_at: number;
  updated_at: number;
}

export interface AliasesTable {
  project_id: number;
  alias: string;
  distinct_id: string;
  created_at: number;
}

export interface ConnectionsTable {
  id: Generated<number>;
  project_id: number;
  name: string;
  url: string;
  /** Sealed JSON {username, password}. */
  basic_auth: string | null;
  /** Custom headers sent with every request, in the clear. */
  headers: Json;
  secret_header_name: string | null;
  /** Sealed. */
  secret_header_value: string | null;
  /** Sealed whsec_… secret; the previous one stays valid until previous_secret_expires_at. */
  signing_secret: string;
  previous_signing_secret: string | null;
  previous_secret_expires_at: number | null;
  /** Sealed whsk_… key when ed25519 (v1a) signing is on; its whpk_… public key beside it. */
  ed25519_private_key: string | null;
  ed25519_public_key: string | null;
  timeout_ms: number;
  max_concurrency: number;
  rate_limit_per_s: number | null;
  disabled_at: number | null;
  disabled_reason: string | null;
  throttled_until: number | null;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
}

export type DeliveryState = 'pending' | 'succeeded' | 'failed' | 'cancelled';

export interface DeliveriesTable {
  id: Generated<number>;
  project_id: number;
  /** How it is sent (delivery/channels.ts): 'webhook' over HTTP, 'email' over SMTP, … */
  channel: string;
  /** The destination of a connection-bound channel; null for a channel with one destination of its own (e-mail). */
  connection_id: number | null;
  /** Standard Webhooks webhook-id: the same on every attempt, so receivers can de-duplicate. */
  webhook_id: string;
  owner_kind: string;
  owner_id: string;
  /** The event a subscription's delivery tells of (webhook_events.event_id); null for other deliveries. */
  event_id: string | null;
  policy: string;
  content_type: string;
  /** Empty when body_apart: a large body lives in delivery_bodies. */
  body: string;
  body_apart: Generated<number>;
  headers: Json;
  state: DeliveryState;
  outcome: string | null;
  attempts: number;
  /** Attempts since last (re)queued: the position in the retry schedule. */
  round_attempts: number;
  next_attempt_at: number;
  first_attempt_at: number | null;
  /** The worker holding the lease (for the log and the API), and the claim's own token, which every renewal and outcome must show. */
  lease_owner: string | null;
  lease_token: string | null;
  lease_expires_at: number | null;
  last_status: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
  completed_at: number | null;
  /** When retention removed the body of this finished delivery (it cannot be sent again); null while it has it. */
  body_pruned_at: Generated<number | null>;
}

/**
 * PostgreSQL only: one narrow row per pending delivery, what claims scan, deleted when the delivery
 * ends. It keeps the claim index off `deliveries`, so that table's updates stay HOT.
 */
export interface DeliveryQueueTable {
  delivery_id: number;
  connection_id: number | null;
  channel: string;
  /** When it is due (deliveries.next_attempt_at before any lease). */
  run_at: number;
  /** The lease's end while a claim holds it (deliveries.lease_expires_at); not indexed, so claiming is a HOT update. */
  leased_until: Generated<number | null>;
}

export interface DeliveryAttemptsTable {
  id: Generated<number>;
  delivery_id: number;
  attempt: number;
  worker: string;
  started_at: number;
  duration_ms: number;
  status: number | null;
  response_headers: Json | null;
  response_body: string | null;
  error: string | null;
  outcome: string;
  /** Why the attempt was judged as it was (the receiver's own message where it gave one); null for a success. */
  reason: string | null;
}

export interface CohortsTable {
  id: Generated<number>;
  project_id: number;
  name: string;
  description: string;
  /** cohorts/definition.ts Definition, as JSON. */
  definition: Json;
  created_at: number;
  updated_at: number;
}

export interface CohortSyncsTable {
  id: Generated<number>;
  project_id: number;
  cohort_id: number;
  connection_id: number;
  properties_to_export: Json;
  owner_emails: Json;
  interval_ms: number | null;
  state: 'active' | 'paused' | 'done';
  state_reason: string | null;
  base_run_id: number | null;
  base_at: number | null;
  current_run_id: number | null;
  created_at: number;
  updated_at: number;
}

export interface SyncRunsTable {
  id: Generated<number>;
  sync_id: number;
  session_id: string;
  kind: 'full' | 'diff';
  state: 'running' | 'succeeded' | 'failed' | 'paused' | 'abandoned';
  base_run_id: number | null;
  total_pages: number;
  pages_acked: number;
  members: number;
  members_added: number;
  members_removed: number;
  error: string | null;
  started_at: number;
  finished_at: number | null;
  /** The cohort's name and description when the run started: every page of the session carries them. */
  cohort_name: string | null;
  cohort_description: string | null;
  /** 1 once no sync will read its snapshot and pages again: the sweep drops them and sets it back to 0. */
  stale: number;
}

export interface SyncSnapshotsTable {
  run_id: number;
  chunk: number;
  first_id: string;
  last_id: string;
  member_count: number;
  /** JSON array of distinct ids, code-point order. */
  ids: string;
}

export interface SyncPagesTable {
  run_id: number;
  page: number;
  action: 'members' | 'add_members' | 'remove_members';
  first_id: string | null;
  last_id: string | null;
  member_count: number;
  scan: number;
  state: 'pending' | 'queued' | 'acked' | 'stopped';
  delivery_id: number | null;
}

export interface SyncPageIdsTable {
  run_id: number;
  page: number;
  /** JSON array of distinct ids, code-point order. */
  ids: string;
}

export interface DeliveryBodiesTable {
  delivery_id: number;
  body: string;
}

/**
 * Work that runs on a schedule, claimed with a lease so that one process runs each due run. `kind`
 * names the handler a surface registered (scheduling/scheduler.ts), `key` which one of its jobs.
 * Repeats every `every_ms`, or at the occurrences of `cron` in `timezone`; with neither it runs
 * once each time next_run_at is set.
 */
export interface SchedulesTable {
  id: Generated<number>;
  kind: string;
  key: string;
  every_ms: number | null;
  cron: string | null;
  timezone: string | null;
  /** A run due longer ago than this is skipped (counted in `missed`), not run late; null: always run once late. */
  max_lateness_ms: number | null;
  /** When it is due next (the planned time, kept while it runs); null: not scheduled. */
  next_run_at: number | null;
  lease_owner: string | null;
  lease_token: string | null;
  lease_expires_at: number | null;
  runs: number;
  missed: number;
  last_started_at: number | null;
  last_finished_at: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

export interface SubscriptionsTable {
  id: Generated<number>;
  project_id: number;
  name: string;
  /** subscriptions/event-types.ts names. */
  event_types: Json;
  /** The cohorts whose cohort.member_* events it wants (they are watched while it is enabled). */
  cohort_ids: Json;
  /** For event.ingested: event names and property filters (subscriptions/admin.ts EventFilter); null: every event. */
  event_filter: Json | null;
  /** subscriptions/channels.ts ChannelSpec[], templates as written. */
  channels: Json;
  enabled: number;
  created_at: number;
  updated_at: number;
}

/** An event cohortcast emitted, written in its producer's transaction; fanned out to deliveries after. */
export interface WebhookEventsTable {
  id: Generated<number>;
  /** evt_…: the same on every channel and retry, for receivers to de-duplicate on. */
  event_id: string;
  project_id: number;
  type: string;
  /** JSON text of the event's data. */
  data: string;
  created_at: number;
  /** 0 until the fan-out made its deliveries. */
  fanned_out: number;
}

export interface CohortWatchesTable {
  cohort_id: number;
  project_id: number;
  /** baseline: its members are not recorded yet; live: they are, and every change is an event. */
  state: 'baseline' | 'live';
  since: number;
}

export interface CohortMembersTable {
  cohort_id: number;
  distinct_id: string;
  since: number;
}

export interface DirtyProfilesTable {
  project_id: number;
  distinct_id: string;
  marked_at: number;
}

export interface MessagesTable {
  id: Generated<number>;
  project_id: number;
  name: string;
  cohort_id: number;
  /** 1: the cohort was made from the message's inline definition and is deleted with it. */
  own_cohort: number;
  connection_id: number;
  /** messages/schedule.ts MessageSchedule, as written. */
  schedule: Json;
  kind: 'asap' | 'scheduled' | 'recurring' | 'as_met';
  /** The profile properties sent; null: all of them. */
  properties: Json | null;
  enabled: number;
  /** A live message's matching users were queued when it started (0 until then). */
  seeded: number;
  created_at: number;
  updated_at: number;
}

export interface MessageRunsTable {
  id: Generated<number>;
  message_id: number;
  kind: 'live' | 'scheduled' | 'recurring';
  planned_at: number;
  started_at: number;
  finished_at: number | null;
  users: number;
  sent: number;
  failed: number;
  dropped: number;
  /** Users of the run waiting or queued. */
  outstanding: number;
}

/** The ledger: one row per message and user. */
export interface MessageRecipientsTable {
  message_id: number;
  distinct_id: string;
  state: 'waiting' | 'queued' | 'sent' | 'failed' | 'dropped';
  run_id: number;
  batch_id: number | null;
  due_at: number;
  attempts: number;
  sends: number;
  first_sent_at: number | null;
  last_sent_at: number | null;
  period: string | null;
  period_sends: number;
  reason: string | null;
  updated_at: number;
}

export interface MessageBatchesTable {
  id: Generated<number>;
  message_id: number;
  /** Set in the transaction that makes the batch, once its delivery exists. */
  delivery_id: number | null;
  /** JSON text of the distinct ids. */
  user_ids: string;
  users: number;
  /** JSON text {run id: users}. */
  runs: string;
  /** 1: unacknowledged users wait on a backoff (live messages); 0: they wait for the next run. */
  retry: number;
  created_at: number;
  finished_at: number | null;
  outcome: 'sent' | 'failed' | null;
  status: number | null;
  reason: string | null;
}

export interface ReportsTable {
  id: Generated<number>;
  project_id: number;
  name: string;
  type: 'insights' | 'funnels';
  /** reports/query.ts ReportQuery, with its defaults filled in. */
  query: Json;
  created_at: number;
  updated_at: number;
}

export interface AlertsTable {
  id: Generated<number>;
  project_id: number;
  name: string;
  report_id: number;
  /** alerts/condition.ts Condition. */
  condition: Json;
  /** null: the report's one series; '$any': any segment; else one segment's value. */
  segment: string | null;
  frequency: 'hourly' | 'daily' | 'weekly' | 'monthly';
  /** alerts/windows.ts Windows; null: any time. */
  windows: Json | null;
  /** subscriptions/channel-specs.ts ChannelSpec[] (webhook, slack, email). */
  channels: Json;
  creator: string | null;
  creator_email: string | null;
  state: 'active' | 'invalid';
  state_reason: string | null;
  quiet_until: number | null;
  checked_to: number | null;
  last_fired_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface AlertChecksTable {
  id: Generated<number>;
  alert_id: number;
  checked_at: number;
  bucket_from: number;
  bucket_to: number;
  segment: string;
  value: number | null;
  baseline: number | null;
  low: number | null;
  high: number | null;
  crossed: number;
  notified: number;
  note: string | null;
}

export interface SettingsTable {
  name: string;
  value: string;
}

export interface Database {
  projects: ProjectsTable;
  events: EventsTable;
  event_daily_counts: EventDailyCountsTable;
  profiles: ProfilesTable;
  group_profiles: GroupProfilesTable;
  aliases: AliasesTable;
  settings: SettingsTable;
  connections: ConnectionsTable;
  deliveries: DeliveriesTable;
  delivery_attempts: DeliveryAttemptsTable;
  delivery_queue: DeliveryQueueTable;
  delivery_bodies: DeliveryBodiesTable;
  cohorts: CohortsTable;
  cohort_syncs: CohortSyncsTable;
  sync_runs: SyncRunsTable;
  sync_snapshots: SyncSnapshotsTable;
  sync_pages: SyncPagesTable;
  sync_page_ids: SyncPageIdsTable;
  schedules: SchedulesTable;
  subscriptions: SubscriptionsTable;
  webhook_events: WebhookEventsTable;
  cohort_watches: CohortWatchesTable;
  cohort_members: CohortMembersTable;
  dirty_profiles: DirtyProfilesTable;
  messages: MessagesTable;
  message_runs: MessageRunsTable;
  message_recipients: MessageRecipientsTable;
  message_batches: MessageBatchesTable;
  reports: ReportsTable;
  alerts: AlertsTable;
  alert_checks: AlertChecksTable;
}

/** JSON columns come back as text from SQLite and already parsed from PostgreSQL. */
export function readJson<T = Record<string, unknown>>(value: unknown): T {
  return (typeof value === 'string' ? JSON.parse(value) : value) as T;
}
