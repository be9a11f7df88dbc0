import path from 'node:path';
import { parseDuration } from './duration.js';

/**
 * One typed configuration object, built from the environment and command-line flags.
 * Every duration and limit the service obeys lives here, so tests can shrink them.
 */
export interface Config {
  host: string;
  port: number;
  /** Folder of the embedded SQLite database (ignored when databaseUrl is set). */
  dataDir: string;
  /** postgres://… selects PostgreSQL; undefined means embedded SQLite under dataDir. */
  databaseUrl: string | undefined;
  tls: { certFile: string; keyFile: string } | undefined;
  logLevel: string;
  /** Take the client address from X-Forwarded-For (behind a reverse proxy). */
  trustProxy: boolean;
  /** /metrics asks for `Authorization: Bearer <token>` when set; open when unset (scraped on a private network). */
  metricsToken: string | undefined;
  sqlite: {
    /** NORMAL survives a process crash (kill -9) without loss; FULL also survives power loss. */
    synchronous: 'NORMAL' | 'FULL';
    busyTimeoutMs: number;
    /** How often a background thread checkpoints the WAL into the database file. */
    checkpointIntervalMs: number;
    /** Back-to-back writes (an import) leave that thread no moment to finish: past this size the writer restarts the WAL itself. */
    walRestartBytes: number;
    /** Ingestion requests that may share one transaction (group commit). */
    maxGroupedRequests: number;
  };
  postgres: { poolSize: number; statementTimeoutMs: number };
  ingest: IngestLimits;
  /** How long a token or secret lookup is cached in memory. */
  projectCacheTtlMs: number;
  api: { defaultPageSize: number; maxPageSize: number };
  /** Server-side timeouts: a client that stalls mid-request is cut off. */
  http: { requestTimeoutMs: number; keepAliveTimeoutMs: number };
  delivery: DeliveryConfig;
  scheduler: SchedulerConfig;
  sync: SyncConfig;
  mail: MailConfig;
  subscriptions: SubscriptionsConfig;
  membership: MembershipConfig;
  messages: MessagesConfig;
  alerts: AlertsConfig;
  retention: RetentionConfig;
}

/**
 * How long finished work is kept (0: for ever), and how pruning paces itself (retention/pruner.ts).
 * Durations in the environment take a unit: `30d`, `12h`, `90m`, `45s`, `500ms` (a bare number is ms).
 */
export interface RetentionConfig {
  /** Finished deliveries (succeeded, failed, cancelled), with their attempt log and message batch rows. */
  deliveriesMs: number;
  /** The bodies of finished deliveries (a cohort-sync page is ~125 KB), sooner than the rows; a body never outlives its delivery. */
  bodiesMs: number;
  /** Subscription events once fanned out (the deliveries they made keep their own). */
  subscriptionEventsMs: number;
  /** Finished cohort-sync runs' rows (their snapshots and pages go as soon as no diff needs them). */
  syncRunsMs: number;
  /** An alert's check history. */
  alertChecksMs: number;
  /** Events and their daily counts, by day; 0 (the default) keeps them, as Mixpanel does. */
  eventsMs: number;
  /** How often pruning runs. */
  intervalMs: number;
  /** One slice (one transaction) aims to hold the database this long at most; its rows adapt to it. */
  sliceTargetMs: number;
  /** Rows of the first slice of each kind (small: a row may be a 25 KB snapshot chunk), and the most any slice takes. */
  sliceRows: number;
  maxSliceRows: number;
  /** Least pause after a slice (it is at least as long as the slice), so ingestion and delivery take turns with pruning on SQLite's one writer. */
  slicePauseMs: number;
  /** Work one run does before it gives the scheduler back (runs again at once if more is left). */
  runBudgetMs: number;
}

/** Reports and alerts (seed 000). */
export interface AlertsConfig {
  /** How often alerts are looked at; each alert's bucket is checked once, when it has closed. */
  checkIntervalMs: number;
  /** The dashboard's public base URL, for the links an alert sends. */
  publicUrl: string;
}

/** Webhook messages (seeds 001 and 003). */
export interface MessagesConfig {
  /** How often waiting users are looked for (users queued in this process are looked for at once). */
  batchIntervalMs: number;
  /** Batches of one message in the outbox at once; more are cut as these end. */
  batchesInFlight: number;
  /** A live (ASAP or as-met) message's unsent users go again after this, doubled at each failure in a row … */
  retryBaseMs: number;
  /** … up to this. */
  retryMaxMs: number;
}

/** Event subscriptions: how events become deliveries. */
export interface SubscriptionsConfig {
  /** How often the fan-out looks for written events (events written in this process are looked for at once). */
  fanoutIntervalMs: number;
  /** Events fanned out in one transaction. */
  fanoutBatch: number;
  /** How long a project's subscriptions are cached (changes made in the same process apply at once). */
  indexTtlMs: number;
}

/** Live cohort membership. */
export interface MembershipConfig {
  /** How often touched profiles are looked for (those touched in this process are looked for at once). */
  evaluateIntervalMs: number;
  /** Profiles evaluated in one transaction. */
  batch: number;
  /** How often every watched cohort is re-evaluated whole, for changes time alone makes. */
  sweepIntervalMs: number;
  /** Profiles a sweep reads in one statement (their changes applied in one transaction). */
  sweepSlice: number;
  /** The first watch of a cohort: record its members silently, or announce each as entered. */
  baseline: 'silent' | 'announce';
}

/** The schedules table's runner (scheduling/scheduler.ts). */
export interface SchedulerConfig {
  /** How often each process looks for due runs (work scheduled in the same process is looked for at once). */
  pollIntervalMs: number;
  /** A run held by a process that died is taken over after this long (renewed while the run goes on). */
  leaseMs: number;
  /** A run whose handler failed is tried again after this long (or at its next run, if sooner). */
  errorRetryMs: number;
}

/** E-mail to people (a sync paused): the 'email' channel of the outbox, over SMTP. */
export interface MailConfig {
  /** smtp://user:pass@host:port (smtps:// for TLS from the start); unset: e-mails wait, logged, until it is set. */
  smtpUrl: string | undefined;
  from: string;
  /** Delay before each attempt after the first (the 'email' retry policy); then the e-mail is given up (logged). */
  retryScheduleMs: number[];
  /** E-mails a process sends at once. */
  maxConcurrency: number;
}

/** Cohort syncs (seed 002): Mixpanel's numbers by default. */
export interface SyncConfig {
  /** Members per cohort-sync request (Mixpanel: 1000). */
  pageSize: number;
  /** Pages of one run sent before the first of them is acknowledged (receivers get them in any order). */
  pagesInFlight: number;
  /** A successful run's snapshot is the base of diffs this long (Mixpanel: 3 days); then a full sync again. */
  snapshotTtlMs: number;
  /** interval_minutes of a sync that gives none (Mixpanel: 30). */
  defaultIntervalMinutes: number;
  /** How often superseded runs' snapshots and pages are dropped (also as soon as a run supersedes one). */
  sweepIntervalMs: number;
}

/** Outbound webhooks: safety, dispatcher pacing, retry schedules. */
export interface DeliveryConfig {
  /** http:// destinations are refused unless this is set (development only). */
  allowHttp: boolean;
  /** CIDRs exempt from the private-address refusal (e.g. 127.0.0.0/8 in tests). */
  allowedNetworks: string[];
  /** Key that seals destination secrets at rest: 32 bytes, base64 or hex. Unset on SQLite: a key file in the data folder. */
  secretKey: string | undefined;
  /** Idle dispatcher polls the outbox this often; new work found by this process is sent at once. */
  pollIntervalMs: number;
  /** PostgreSQL: after the connection that LISTENs for work enqueued elsewhere drops, try again this long after (polling meanwhile). */
  listenRetryMs: number;
  /** Deliveries claimed per destination per round. */
  claimBatch: number;
  /** Requests in flight at once from this process, over all destinations (on the wire or waiting for a slot). */
  maxInFlight: number;
  /** A claimed delivery whose process died is taken over after this long. */
  leaseMs: number;
  defaultTimeoutMs: number;
  /** Longest per-destination timeout accepted: it must end well inside the lease. */
  maxTimeoutMs: number;
  defaultMaxConcurrency: number;
  /** Bytes of a response read before the connection is cut; the first storedResponseBytes are kept. */
  maxResponseBytes: number;
  storedResponseBytes: number;
  /** After a secret rotation, the old secret still signs for this long. */
  rotationGraceMs: number;
  /** How long a 429 or 503 without Retry-After slows the whole destination. */
  throttleMs: number;
  /** Retry-After is honoured up to this. */
  maxRetryAfterMs: number;
  /** Delay before each attempt, first one included (Standard Webhooks: now, 5 s, 5 min, …). */
  standardSchedule: number[];
  /** Mixpanel's cohort sync: 5 retries within 60 s, exponential. */
  cohortSyncSchedule: number[];
  /** ± this fraction of random jitter on the standard schedule's delays. */
  jitter: number;
  /** Send (sign, write, read replies) on a thread of its own, beside the claims and records. */
  senderThread: boolean;
}

/** Mixpanel's documented ingestion limits as defaults, and stated ones where it documents none. */
export interface IngestLimits {
  maxEventsPerRequest: number;
  maxEventBytes: number;
  /** Largest uncompressed body of any ingestion request (Mixpanel: 10 MB for /import). */
  maxBodyBytes: number;
  maxPropertiesPerEvent: number;
  maxEventNameLength: number;
  maxInsertIdLength: number;
  /** UTF-8 bytes of a property name, at any level (Mixpanel: 255). */
  maxPropertyNameBytes: number;
  /** UTF-8 bytes of a distinct_id, group key or group id (Mixpanel: 255). */
  maxDistinctIdBytes: number;
  /** Keys of any object in a property value, and items of a list in an event (Mixpanel: 255). */
  maxNestedKeys: number;
  maxEventListLength: number;
  /** Levels of nesting in a property value (stated: both databases read far deeper; SQLite stops at 1,000). */
  maxNestingDepth: number;
  /** A profile's properties (Mixpanel: 2,000), one property's value (Mixpanel: 256 KB for lists and objects) and the whole profile as JSON (stated). */
  maxProfileProperties: number;
  maxProfileValueBytes: number;
  maxProfileBytes: number;
  /** Events dated earlier than this are refused (ms since epoch; Mixpanel's /import: 1971-01-01). */
  importEarliestTimeMs: number;
  /** Events dated further than this into the future are refused, on /import (Mixpanel: one hour) and /track alike. */
  maxFutureMs: number;
}

export const defaultIngestLimits: IngestLimits = {
  maxEventsPerRequest: 2000,
  maxEventBytes: 1024 * 1024,
  maxBodyBytes: 10 * 1024 * 1024,
  maxPropertiesPerEvent: 255,
  maxEventNameLength: 255,
  maxInsertIdLength: 36,
  maxPropertyNameBytes: 255,
  maxDistinctIdBytes: 255,
  maxNestedKeys: 255,
  maxEventListLength: 255,
  maxNestingDepth: 32,
  maxProfileProperties: 2000,
  maxProfileValueBytes: 256 * 1024,
  maxProfileBytes: 1024 * 1024,
  importEarliestTimeMs: Date.UTC(1971, 0, 1),
  maxFutureMs: 60 * 60 * 1000,
};

export interface ConfigOverrides {
  host?: string;
  port?: number;
  dataDir?: string;
  databaseUrl?: string;
  tlsCert?: string;
  tlsKey?: string;
}

type Env = Record<string, string | undefined>;

function msListFromEnv(env: Env, name: string, fallback: number[]): number[] {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const list = raw.split(',').map((part) => Number(part.trim()));
  if (list.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new Error(`${name} must be a comma-separated list of milliseconds (whole numbers >= 0), got "${raw}"`);
  }
  return list;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** A duration with a unit (`30d`, `12h`, `90m`, `45s`, `500ms`) or bare milliseconds. */
function durationFromEnv(env: Env, name: string, fallback: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const ms = parseDuration(raw);
  if (ms === undefined) throw new Error(`${name} must be a duration such as 30d, 12h, 90m, 45s or 500ms (a bare number is milliseconds; 0 keeps for ever), got "${raw}"`);
  return ms;
}

function retentionConfig(env: Env): RetentionConfig {
  const keep = (name: string, fallback: number) => durationFromEnv(env, `COHORTCAST_RETAIN_${name}`, fallback);
  const deliveriesMs = keep('DELIVERIES', 30 * DAY);
  const bodiesMs = keep('DELIVERY_BODIES', 7 * DAY);
  const sliceRows = intFromEnv(env, 'COHORTCAST_RETENTION_SLICE_ROWS', 16, 1);
  const maxSliceRows = intFromEnv(env, 'COHORTCAST_RETENTION_MAX_SLICE_ROWS', 5000, 1);
  if (sliceRows > maxSliceRows) throw new Error(`COHORTCAST_RETENTION_SLICE_ROWS (${sliceRows}) must be at most COHORTCAST_RETENTION_MAX_SLICE_ROWS (${maxSliceRows})`);
  return {
    deliveriesMs,
    bodiesMs,
    subscriptionEventsMs: keep('SUBSCRIPTION_EVENTS', 7 * DAY),
    syncRunsMs: keep('SYNC_RUNS', 30 * DAY),
    alertChecksMs: keep('ALERT_CHECKS', 90 * DAY),
    eventsMs: keep('EVENTS', 0),
    intervalMs: durationFromEnv(env, 'COHORTCAST_RETENTION_INTERVAL', 10 * MINUTE) || 1,
    sliceTargetMs: intFromEnv(env, 'COHORTCAST_RETENTION_SLICE_TARGET_MS', 20, 1),
    sliceRows,
    maxSliceRows,
    slicePauseMs: intFromEnv(env, 'COHORTCAST_RETENTION_SLICE_PAUSE_MS', 10, 0),
    runBudgetMs: intFromEnv(env, 'COHORTCAST_RETENTION_RUN_BUDGET_MS', 2000, 1),
  };
}

function boolFromEnv(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === 'false') return raw === 'true';
  throw new Error(`${name} must be true or false, got "${raw}"`);
}

function intFromEnv(env: Env, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${name} must be an integer of at least ${min}, got "${raw}"`);
  }
  return value;
}

function baselineFromEnv(env: Env): 'silent' | 'announce' {
  const raw = env.COHORTCAST_WATCH_BASELINE || 'silent';
  if (raw !== 'silent' && raw !== 'announce') throw new Error(`COHORTCAST_WATCH_BASELINE must be silent or announce, got "${raw}"`);
  return raw;
}

export function loadConfig(overrides: ConfigOverrides = {}, env: Env = process.env): Config {
  const tlsCert = overrides.tlsCert ?? env.COHORTCAST_TLS_CERT;
  const tlsKey = overrides.tlsKey ?? env.COHORTCAST_TLS_KEY;
  if (Boolean(tlsCert) !== Boolean(tlsKey)) {
    throw new Error('HTTPS needs both --tls-cert and --tls-key');
  }
  const synchronous = (env.COHORTCAST_SQLITE_SYNCHRONOUS ?? 'NORMAL').toUpperCase();
  if (synchronous !== 'NORMAL' && synchronous !== 'FULL') {
    throw new Error(`COHORTCAST_SQLITE_SYNCHRONOUS must be NORMAL or FULL, got "${synchronous}"`);
  }
  const port = overrides.port ?? intFromEnv(env, 'COHORTCAST_PORT', 8080);
  if (port > 65535) throw new Error(`port must be at most 65535, got ${port}`);
  return {
    host: overrides.host ?? env.COHORTCAST_HOST ?? '127.0.0.1',
    port,
    dataDir: path.resolve(overrides.dataDir ?? env.COHORTCAST_DATA_DIR ?? '.cohortcast'),
    databaseUrl: overrides.databaseUrl ?? (env.DATABASE_URL || undefined),
    tls: tlsCert && tlsKey ? { certFile: tlsCert, keyFile: tlsKey } : undefined,
    logLevel: env.COHORTCAST_LOG_LEVEL ?? 'info',
    trustProxy: env.COHORTCAST_TRUST_PROXY === 'true',
    metricsToken: env.COHORTCAST_METRICS_TOKEN || undefined,
    sqlite: {
      synchronous,
      busyTimeoutMs: intFromEnv(env, 'COHORTCAST_SQLITE_BUSY_TIMEOUT_MS', 5000),
      checkpointIntervalMs: intFromEnv(env, 'COHORTCAST_SQLITE_CHECKPOINT_INTERVAL_MS', 100, 1),
      walRestartBytes: intFromEnv(env, 'COHORTCAST_SQLITE_WAL_RESTART_BYTES', 128 * 1024 * 1024, 1024 * 1024),
      maxGroupedRequests: intFromEnv(env, 'COHORTCAST_SQLITE_MAX_GROUPED_REQUESTS', 64, 1),
    },
    postgres: {
      poolSize: intFromEnv(env, 'COHORTCAST_PG_POOL_SIZE', 10, 1),
      statementTimeoutMs: intFromEnv(env, 'COHORTCAST_PG_STATEMENT_TIMEOUT_MS', 30000),
    },
    ingest: {
      ...defaultIngestLimits,
      maxEventsPerRequest: intFromEnv(env, 'COHORTCAST_MAX_EVENTS_PER_REQUEST', defaultIngestLimits.maxEventsPerRequest, 1),
      maxEventBytes: intFromEnv(env, 'COHORTCAST_MAX_EVENT_BYTES', defaultIngestLimits.maxEventBytes, 1),
      maxBodyBytes: intFromEnv(env, 'COHORTCAST_MAX_BODY_BYTES', defaultIngestLimits.maxBodyBytes, 1),
    },
    projectCacheTtlMs: intFromEnv(env, 'COHORTCAST_PROJECT_CACHE_TTL_MS', 10000),
    api: {
      defaultPageSize: intFromEnv(env, 'COHORTCAST_API_DEFAULT_PAGE_SIZE', 100, 1),
      maxPageSize: intFromEnv(env, 'COHORTCAST_API_MAX_PAGE_SIZE', 1000, 1),
    },
    http: {
      requestTimeoutMs: intFromEnv(env, 'COHORTCAST_HTTP_REQUEST_TIMEOUT_MS', 60000),
      keepAliveTimeoutMs: intFromEnv(env, 'COHORTCAST_HTTP_KEEP_ALIVE_TIMEOUT_MS', 72000),
    },
    delivery: deliveryConfig(env),
    scheduler: {
      pollIntervalMs: intFromEnv(env, 'COHORTCAST_SCHEDULER_POLL_INTERVAL_MS', 1000, 1),
      leaseMs: intFromEnv(env, 'COHORTCAST_SCHEDULER_LEASE_MS', 60_000, 1),
      errorRetryMs: intFromEnv(env, 'COHORTCAST_SCHEDULER_ERROR_RETRY_MS', 5000, 1),
    },
    mail: {
      smtpUrl: env.COHORTCAST_SMTP_URL || undefined,
      from: env.COHORTCAST_MAIL_FROM || 'cohortcast <cohortcast@localhost>',
      retryScheduleMs: msListFromEnv(env, 'COHORTCAST_MAIL_RETRY_SCHEDULE_MS', [60_000, 5 * MINUTE, 30 * MINUTE, 2 * HOUR, 6 * HOUR]),
      maxConcurrency: intFromEnv(env, 'COHORTCAST_MAIL_MAX_CONCURRENCY', 4, 1),
    },
    subscriptions: {
      fanoutIntervalMs: intFromEnv(env, 'COHORTCAST_FANOUT_INTERVAL_MS', 100, 1),
      fanoutBatch: intFromEnv(env, 'COHORTCAST_FANOUT_BATCH', 200, 1),
      indexTtlMs: intFromEnv(env, 'COHORTCAST_SUBSCRIPTIONS_CACHE_TTL_MS', 1000, 0),
    },
    membership: {
      evaluateIntervalMs: intFromEnv(env, 'COHORTCAST_MEMBERSHIP_INTERVAL_MS', 100, 1),
      batch: intFromEnv(env, 'COHORTCAST_MEMBERSHIP_BATCH', 500, 1),
      sweepIntervalMs: intFromEnv(env, 'COHORTCAST_MEMBERSHIP_SWEEP_INTERVAL_MS', 60_000, 1),
      sweepSlice: intFromEnv(env, 'COHORTCAST_MEMBERSHIP_SWEEP_SLICE', 5000, 1),
      baseline: baselineFromEnv(env),
    },
    alerts: {
      checkIntervalMs: intFromEnv(env, 'COHORTCAST_ALERT_CHECK_INTERVAL_MS', 60_000, 1),
      publicUrl: env.COHORTCAST_PUBLIC_URL || `http://${overrides.host ?? env.COHORTCAST_HOST ?? '127.0.0.1'}:${port}`,
    },
    messages: {
      batchIntervalMs: intFromEnv(env, 'COHORTCAST_MESSAGE_BATCH_INTERVAL_MS', 250, 1),
      batchesInFlight: intFromEnv(env, 'COHORTCAST_MESSAGE_BATCHES_IN_FLIGHT', 64, 1),
      retryBaseMs: intFromEnv(env, 'COHORTCAST_MESSAGE_RETRY_BASE_MS', 30_000, 1),
      retryMaxMs: intFromEnv(env, 'COHORTCAST_MESSAGE_RETRY_MAX_MS', HOUR, 1),
    },
    retention: retentionConfig(env),
    sync: {
      pageSize: intFromEnv(env, 'COHORTCAST_SYNC_PAGE_SIZE', 1000, 1),
      pagesInFlight: intFromEnv(env, 'COHORTCAST_SYNC_PAGES_IN_FLIGHT', 48, 1),
      snapshotTtlMs: intFromEnv(env, 'COHORTCAST_SYNC_SNAPSHOT_TTL_MS', 3 * 24 * HOUR, 1),
      defaultIntervalMinutes: intFromEnv(env, 'COHORTCAST_SYNC_DEFAULT_INTERVAL_MINUTES', 30, 1),
      sweepIntervalMs: intFromEnv(env, 'COHORTCAST_SYNC_SWEEP_INTERVAL_MS', 60_000, 1),
    },
  };
}

function deliveryConfig(env: Env): DeliveryConfig {
  const leaseMs = intFromEnv(env, 'COHORTCAST_DELIVERY_LEASE_MS', 30_000, 1);
  // A request must end well inside its lease (which starts at the claim), or a live worker's
  // delivery could be claimed and sent again by another.
  const maxTimeoutMs = intFromEnv(env, 'COHORTCAST_DELIVERY_MAX_TIMEOUT_MS', Math.min(25_000, Math.floor(leaseMs * 0.8)), 1);
  if (maxTimeoutMs > leaseMs * 0.8) {
    throw new Error(`COHORTCAST_DELIVERY_MAX_TIMEOUT_MS (${maxTimeoutMs}) must be at most 80% of COHORTCAST_DELIVERY_LEASE_MS (${leaseMs})`);
  }
  const jitter = Number(env.COHORTCAST_RETRY_JITTER ?? '0.2');
  if (!(jitter >= 0 && jitter < 1)) throw new Error(`COHORTCAST_RETRY_JITTER must be a fraction from 0 to below 1, got "${env.COHORTCAST_RETRY_JITTER}"`);
  const schedule = (name: string, fallback: number[]) => {
    const list = msListFromEnv(env, name, fallback);
    if (list.length === 0) throw new Error(`${name} needs at least one delay (the first attempt's)`);
    return list;
  };
  return {
    allowHttp: env.COHORTCAST_ALLOW_HTTP === 'true',
    allowedNetworks: (env.COHORTCAST_ALLOWED_NETWORKS ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    secretKey: env.COHORTCAST_SECRET_KEY || undefined,
    pollIntervalMs: intFromEnv(env, 'COHORTCAST_DELIVERY_POLL_INTERVAL_MS', 250, 1),
    listenRetryMs: intFromEnv(env, 'COHORTCAST_DELIVERY_LISTEN_RETRY_MS', 1000, 1),
    claimBatch: intFromEnv(env, 'COHORTCAST_DELIVERY_CLAIM_BATCH', 200, 1),
    maxInFlight: intFromEnv(env, 'COHORTCAST_DELIVERY_MAX_IN_FLIGHT', 256, 1),
    leaseMs,
    defaultTimeoutMs: Math.min(intFromEnv(env, 'COHORTCAST_DELIVERY_TIMEOUT_MS', 10_000, 1), maxTimeoutMs),
    maxTimeoutMs,
    defaultMaxConcurrency: intFromEnv(env, 'COHORTCAST_DELIVERY_MAX_CONCURRENCY', 16, 1),
    maxResponseBytes: intFromEnv(env, 'COHORTCAST_DELIVERY_MAX_RESPONSE_BYTES', 64 * 1024, 1),
    storedResponseBytes: intFromEnv(env, 'COHORTCAST_DELIVERY_STORED_RESPONSE_BYTES', 1024, 0),
    rotationGraceMs: intFromEnv(env, 'COHORTCAST_SECRET_ROTATION_GRACE_MS', 24 * HOUR),
    throttleMs: intFromEnv(env, 'COHORTCAST_DELIVERY_THROTTLE_MS', 5000),
    maxRetryAfterMs: intFromEnv(env, 'COHORTCAST_DELIVERY_MAX_RETRY_AFTER_MS', HOUR),
    standardSchedule: schedule('COHORTCAST_RETRY_SCHEDULE_STANDARD_MS', [0, 5000, 5 * MINUTE, 30 * MINUTE, 2 * HOUR, 5 * HOUR, 10 * HOUR, 10 * HOUR]),
    cohortSyncSchedule: schedule('COHORTCAST_RETRY_SCHEDULE_COHORT_SYNC_MS', [0, 2000, 4000, 8000, 16_000, 30_000]),
    jitter,
    senderThread: boolFromEnv(env, 'COHORTCAST_DELIVERY_SENDER_THREAD', true),
  };
}
