import type BetterSqlite3 from 'better-sqlite3';
import type { AttemptOutcomeRow, AttemptRow, ClaimedDelivery } from './outbox-repo.js';

/**
 * The dispatcher's hot statements on SQLite, prepared once per connection and run row by row.
 * Through Kysely each batch compiled a statement of its own size (and prepared it again), which
 * cost more than the writes themselves. Callers hold Kysely's connection (a transaction or
 * `db.connection()`), so nothing else runs on it meanwhile.
 */
export interface SqliteOutboxStatements {
  claim(connectionId: number, limit: number, worker: string, now: number, leaseMs: number): ClaimedDelivery[];
  /** Inserts the attempt log rows and writes each delivery's new state; answers the ids it changed. */
  record(worker: string, attempts: AttemptRow[], outcomes: AttemptOutcomeRow[], now: number): Set<number>;
}

const prepared = new WeakMap<BetterSqlite3.Database, SqliteOutboxStatements>();

export function sqliteOutbox(raw: BetterSqlite3.Database, claimedColumns: readonly string[]): SqliteOutboxStatements {
  let statements = prepared.get(raw);
  if (statements) return statements;
  // 'pending' is a literal so SQLite uses the partial index deliveries_due (WHERE state = 'pending').
  const claim = raw.prepare(
    `update deliveries set lease_owner = ?, lease_expires_at = ?, next_attempt_at = ?, updated_at = ?
     where id in (select id from deliveries where connection_id = ? and state = 'pending' and next_attempt_at <= ?
                  order by next_attempt_at, id limit ?)
     returning ${claimedColumns.join(', ')}`,
  );
  const insertAttempt = raw.prepare(
    `insert into delivery_attempts (delivery_id, attempt, worker, started_at, duration_ms, status, response_headers, response_body, error, outcome)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  // Only while this worker still holds the lease: one that ran out belongs to whoever claimed it next.
  const recordOutcome = raw.prepare(
    `update deliveries set attempts = ?, round_attempts = ?, first_attempt_at = coalesce(first_attempt_at, ?), state = ?, outcome = ?,
       next_attempt_at = ?, lease_owner = null, lease_expires_at = null, last_status = ?, last_error = ?, updated_at = ?, completed_at = ?
     where id = ? and lease_owner = ? and state = 'pending'`,
  );
  statements = {
    claim(connectionId, limit, worker, now, leaseMs) {
      const until = now + leaseMs;
      return claim.all(worker, until, until, now, connectionId, now, limit) as ClaimedDelivery[];
    },
    record(worker, attempts, outcomes, now) {
      for (const a of attempts) {
        insertAttempt.run(a.delivery_id, a.attempt, a.worker, a.started_at, a.duration_ms, a.status, a.response_headers, a.response_body, a.error, a.outcome);
      }
      const changed = new Set<number>();
      for (const o of outcomes) {
        const res = recordOutcome.run(o.attempts, o.roundAttempts, o.startedAt, o.state, o.outcome, o.nextAttemptAt, o.lastStatus, o.lastError, now, o.completedAt, o.id, worker);
        if (res.changes === 1) changed.add(o.id);
      }
      return changed;
    },
  };
  prepared.set(raw, statements);
  return statements;
}
