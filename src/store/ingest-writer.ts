import { sql } from 'kysely';
import type { PostgresStore, SqliteStore, Store } from './database.js';

/** One event, validated and normalised by ingest/, ready to store. */
export interface EventInsert {
  event: string;
  distinctId: string;
  time: number;
  insertId: string | null;
  dedupKey: string;
  /** JSON text of the properties without the columns above. */
  properties: string;
}

export interface AliasInsert {
  alias: string;
  distinctId: string;
}

/** A request's events for one project. Aliases are registered before the events are stored. */
export interface EventBatch {
  projectId: number;
  events: EventInsert[];
  aliases: AliasInsert[];
}

export interface WriteResult {
  inserted: number;
  duplicates: number;
}

/**
 * The ingestion hot path: events, aliases and the per-user daily counts of one request
 * are written in one transaction, so a crash leaves all of a request or none of it.
 */
export interface IngestWriter {
  writeEvents(batches: EventBatch[], receivedAt: number): Promise<WriteResult>;
}

const DAY_MS = 86_400_000;

/** On SQLite the writer thread stores events (see sqlite-writer.worker.js). */
class SqliteIngestWriter implements IngestWriter {
  constructor(private readonly store: SqliteStore) {}

  writeEvents(batches: EventBatch[], receivedAt: number): Promise<WriteResult> {
    return this.store.writer.write(batches, receivedAt);
  }
}

class PostgresIngestWriter implements IngestWriter {
  constructor(private readonly store: PostgresStore) {}

  writeEvents(batches: EventBatch[], receivedAt: number): Promise<WriteResult> {
    return this.store.db.transaction().execute(async (trx) => {
      let inserted = 0;
      let total = 0;
      for (const batch of batches) {
        const { projectId } = batch;
        for (const a of batch.aliases) {
          await sql`insert into aliases (project_id, alias, distinct_id, created_at)
            select ${projectId}, ${a.alias}, coalesce((select distinct_id from aliases where project_id = ${projectId} and alias = ${a.distinctId}), ${a.distinctId}), ${receivedAt}
            on conflict (project_id, alias) do update set distinct_id = excluded.distinct_id`.execute(trx);
        }
        if (batch.events.length === 0) continue;
        total += batch.events.length;
        const ids = batch.events.map((e) => e.distinctId);
        const aliasRows = await sql<{ alias: string; distinct_id: string }>`
          select alias, distinct_id from aliases where project_id = ${projectId} and alias = any(${ids}::text[])`.execute(trx);
        const aliasOf = new Map(aliasRows.rows.map((r) => [r.alias, r.distinct_id]));
        const resolved = ids.map((id) => aliasOf.get(id) ?? id);
        // One statement: insert what is new, then add exactly those rows to the daily counts.
        // Counts are upserted in key order so concurrent writers lock rows in the same order.
        const result = await sql<{ inserted: number }>`
          with input as (
            select * from unnest(
              ${batch.events.map((e) => e.event)}::text[], ${resolved}::text[], ${batch.events.map((e) => e.time)}::bigint[],
              ${batch.events.map((e) => e.insertId)}::text[], ${batch.events.map((e) => e.dedupKey)}::text[],
              ${batch.events.map((e) => e.properties)}::text[]
            ) as t(event, distinct_id, time, insert_id, dedup_key, properties)
          ), ins as (
            insert into events (project_id, event, distinct_id, time, insert_id, dedup_key, properties, received_at)
            select ${projectId}, event, distinct_id, time, insert_id, dedup_key, properties::jsonb, ${receivedAt} from input
            on conflict (project_id, time, dedup_key) do nothing
            returning distinct_id, event, time
          ), counted as (
            insert into event_daily_counts (project_id, distinct_id, event, day, count)
            select ${projectId}, distinct_id, event, floor(time / ${DAY_MS})::int as day, count(*)
            from ins where distinct_id <> '' group by 2, 3, 4 order by 2, 3, 4
            on conflict (project_id, distinct_id, event, day) do update set count = event_daily_counts.count + excluded.count
            returning 1
          )
          select (select count(*) from ins)::int as inserted, (select count(*) from counted)::int as counted`.execute(trx);
        inserted += result.rows[0]?.inserted ?? 0;
      }
      return { inserted, duplicates: total - inserted };
    });
  }
}

export function createIngestWriter(store: Store): IngestWriter {
  return store.dialect === 'sqlite' ? new SqliteIngestWriter(store) : new PostgresIngestWriter(store);
}
