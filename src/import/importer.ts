import crypto from 'node:crypto';
import type { Readable } from 'node:stream';
import { syncMemberHead } from '../cohort-sync/wire.js';
import type { IngestLimits } from '../config.js';
import { normalizeEvent } from '../ingest/events.js';
import { Ingestor, type BatchOutcome } from '../ingest/ingestor.js';
import { parseUserUpdate } from '../ingest/profile-ops.js';
import { createMetrics } from '../observability/metrics.js';
import { ProjectDirectory, type Project } from '../projects/projects.js';
import type { Store } from '../store/database.js';
import { restartWalPast } from '../store/sqlite-checkpointer.js';
import { readRecords, type Position } from './records.js';

export type ImportKind = 'events' | 'profiles';

export interface ImportOptions {
  kind: ImportKind;
  /** Profiles: apply properties with $set_once instead of $set. */
  setOnce?: boolean;
  /** Stop at the first bad record instead of counting it and going on. */
  strict?: boolean;
  /** Records written per transaction. */
  batchSize?: number;
  /** Bad records reported one by one (all are counted). */
  reportErrors?: number;
  /** SQLite: the WAL's size past which it is restarted between batches (config.sqlite.walRestartBytes). */
  walRestartBytes?: number;
  /** Called after each batch is written. */
  onProgress?: (stats: ImportStats) => void;
}

export interface ImportStats {
  /** Records read so far, good and bad. */
  records: number;
  /** Events newly stored, or profile updates applied. */
  imported: number;
  /** Events already stored (an earlier import, or /track and /import). */
  duplicates: number;
  rejected: number;
  /** The first `reportErrors` bad records: where, and why. */
  errors: { at: Position; reason: string }[];
  /** Set when --strict stopped at a bad record. */
  stoppedAt?: { at: Position; reason: string };
}

const PROFILE_OPERATIONS = ['$set', '$set_once', '$add', '$union', '$append', '$remove', '$unset', '$delete'];

/**
 * An event without $insert_id gets one made from its whole record, so importing the same file
 * again adds nothing (Mixpanel de-duplicates on $insert_id; without one, nothing could be matched).
 */
function withInsertId(record: unknown): unknown {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return record;
  const { properties } = record as { properties?: unknown };
  if (typeof properties !== 'object' || properties === null || Array.isArray(properties)) return record;
  if ((properties as Record<string, unknown>).$insert_id !== undefined) return record;
  const insertId = crypto.createHash('sha256').update(JSON.stringify(record)).digest('hex').slice(0, 32);
  return { ...record, properties: { ...properties, $insert_id: insertId } };
}

/** A profile as Mixpanel exports it ({$distinct_id, $properties}) as an /engage update; an /engage update as it is. */
function asProfileUpdate(record: unknown, token: string, setOnce: boolean): unknown {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return record;
  const r = record as Record<string, unknown>;
  if ('$properties' in r) {
    const { $distinct_id, $properties } = r;
    // $ignore_time: importing history must not stamp $last_seen with the time of the import.
    return { $token: token, $distinct_id, $ignore_time: true, [setOnce ? '$set_once' : '$set']: $properties };
  }
  if (PROFILE_OPERATIONS.some((op) => op in r)) return { ...r, $token: token };
  return undefined;
}

const NOT_A_PROFILE = 'expected a profile {"$distinct_id", "$properties"} (Engage export) or an /engage update ({"$distinct_id", "$set": {…}}, …)';

/**
 * Streams an export into a project: events through /import's normalisation and de-duplication,
 * profiles as $set (or $set_once) updates through /engage's. Each batch is one transaction of
 * the ingestion writers, so an interrupted import loses nothing it reported and, run again,
 * doubles nothing (events by their de-duplication key; profile updates are idempotent).
 */
export async function importRecords(store: Store, limits: IngestLimits, project: Project, input: Readable, opts: ImportOptions): Promise<ImportStats> {
  const { kind, setOnce = false, strict = false, batchSize = 2000, reportErrors = 10 } = opts;
  const ingestor = new Ingestor(store, new ProjectDirectory(store, 60_000), limits, createMetrics(), { syncMember: syncMemberHead });
  const stats: ImportStats = { records: 0, imported: 0, duplicates: 0, rejected: 0, errors: [] };
  const reject = (at: Position, reason: string) => {
    stats.rejected++;
    if (stats.errors.length < reportErrors) stats.errors.push({ at, reason });
    if (strict) stats.stoppedAt = { at, reason };
  };
  // The check strict mode makes before a record is written (the write makes it again).
  const check = (record: unknown): string | undefined => {
    const now = Date.now();
    const r = kind === 'events' ? normalizeEvent(record, 0, { mode: 'import', now, limits, requireInsertId: false }) : parseUserUpdate(record, 0, now, limits);
    return r.ok ? undefined : r.error.message;
  };

  let batch: unknown[] = [];
  let positions: Position[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const outcome: BatchOutcome = kind === 'events' ? await ingestor.importEvents(project, batch, { strict: false }) : await ingestor.engage(batch);
    for (const e of outcome.errors) reject(positions[e.index]!, e.message);
    stats.imported += outcome.accepted - outcome.duplicates;
    stats.duplicates += outcome.duplicates;
    batch = [];
    positions = [];
    if (opts.walRestartBytes !== undefined) restartWalPast(store, opts.walRestartBytes);
    opts.onProgress?.(stats);
  };

  const readAll = async () => {
    for await (const read of readRecords(input)) {
      stats.records++;
      const record = !read.ok ? undefined : kind === 'events' ? withInsertId(read.value) : asProfileUpdate(read.value, project.token, setOnce);
      const problem = !read.ok ? read.reason : record === undefined ? NOT_A_PROFILE : strict ? check(record) : undefined;
      if (problem !== undefined) {
        reject(read.at, problem);
        if (stats.stoppedAt) return;
        continue;
      }
      batch.push(record);
      positions.push(read.at);
      if (batch.length >= batchSize) await flush();
      if (stats.stoppedAt) return;
    }
  };

  try {
    await readAll();
  } finally {
    // What was read before the input failed (a syntax error that ends it, Ctrl-C) is written too.
    await flush();
  }
  return stats;
}

