import { sql, type Transaction } from 'kysely';
import type BetterSqlite3 from 'better-sqlite3';
import type { PostgresStore, SqliteStore, Store } from './database.js';
import type { Database } from './schema.js';

type Statement = BetterSqlite3.Statement<unknown[]>;

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

interface AliasInsert {
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
 * What live membership and event subscriptions want of a project's newly stored events (from a
 * cache): their users marked for evaluation, and event.ingested events written. The writer asks
 * for each project of a request; undefined, the usual case, costs nothing more.
 */
export interface IngestTap {
  forProject(projectId: number): ProjectTap | undefined;
  /** After a commit that wrote marks or events: the workers of this process look at once. */
  written(): void;
}

export interface ProjectTap {
  /** Whether an event of this name is counted by a watched cohort: its user is evaluated again. */
  marks(event: string): boolean;
  /** Whether the project watches cohorts at all (an alias then marks its user too). */
  watching: boolean;
  /** The event.ingested event to write for a stored event ({event_id, data JSON}), or undefined. */
  forward(e: { event: string; distinctId: string; time: number; properties: string }): { eventId: string; data: string } | undefined;
}

/**
 * The ingestion hot path: events, aliases and the per-user daily counts of one request
 * are written in one transaction, so a crash leaves all of a request or none of it.
 */
export interface IngestWriter {
  writeEvents(batches: EventBatch[], receivedAt: number): Promise<WriteResult>;
}

const DAY_MS = 86_400_000;
const dayOf = (timeMs: number): number => Math.floor(timeMs / DAY_MS);

/** Events with an empty distinct_id are kept but, as in Mixpanel, left out of behaviour. */
const countsForBehaviour = (distinctId: string): boolean => distinctId !== '';

interface PendingWrite {
  batches: EventBatch[];
  receivedAt: number;
  resolve: (result: WriteResult) => void;
  reject: (err: unknown) => void;
}

class SqliteIngestWriter implements IngestWriter {
  #write?: (batches: EventBatch[], receivedAt: number) => WriteResult;
  #pending: PendingWrite[] = [];
  #flushScheduled = false;

  #tapped = false;

  constructor(
    private readonly store: SqliteStore,
    /** At most this many requests share one transaction. */
    private readonly maxGroup: number,
    private readonly tap: IngestTap | undefined,
  ) {}

  /**
   * Group commit: the requests that arrive while the event loop is busy are written in one
   * transaction (one COMMIT, one set of WAL frames for the pages they share), each inside its
   * own savepoint, so each request is still all-or-nothing and one failure fails only itself.
   */
  writeEvents(batches: EventBatch[], receivedAt: number): Promise<WriteResult> {
    return new Promise<WriteResult>((resolve, reject) => {
      this.#pending.push({ batches, receivedAt, resolve, reject });
      this.#scheduleFlush();
    });
  }

  #scheduleFlush() {
    if (this.#flushScheduled || this.#pending.length === 0) return;
    this.#flushScheduled = true;
    setImmediate(() => void this.#flush());
  }

  async #flush(): Promise<void> {
    this.#flushScheduled = false;
    const group = this.#pending.splice(0, this.maxGroup);
    this.#scheduleFlush();
    const outcomes: ({ ok: true; result: WriteResult } | { ok: false; error: unknown })[] = [];
    try {
      // Through Kysely's connection mutex, so no Kysely transaction is open around this one.
      await this.store.db.connection().execute(async () => {
        const write = this.#transaction();
        this.store.raw.transaction(() => {
          outcomes.length = 0;
          for (const item of group) {
            try {
              // Inside a transaction, better-sqlite3 runs `write` in a savepoint of its own.
              outcomes.push({ ok: true, result: write(item.batches, item.receivedAt) });
            } catch (error) {
              outcomes.push({ ok: false, error });
            }
          }
        })();
      });
    } catch (error) {
      for (const item of group) item.reject(error);
      return;
    }
    group.forEach((item, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) item.resolve(outcome.result);
      else item.reject(outcome.error);
    });
    if (this.#tapped) {
      this.#tapped = false;
      this.tap?.written();
    }
  }

  #transaction() {
    if (this.#write) return this.#write;
    const raw = this.store.raw;
    const s: Record<'insertEvent' | 'bumpCount' | 'hasAliases' | 'findAlias' | 'upsertAlias' | 'markDirty' | 'insertWebhookEvent', Statement> = {
      insertEvent: raw.prepare(
        `insert into events (project_id, event, distinct_id, time, insert_id, dedup_key, properties, received_at)
         values (?, ?, ?, ?, ?, ?, ?, ?) on conflict (project_id, time, dedup_key) do nothing`,
      ),
      bumpCount: raw.prepare(
        `insert into event_daily_counts (project_id, distinct_id, event, day, count) values (?, ?, ?, ?, ?)
         on conflict (project_id, distinct_id, event, day) do update set count = count + excluded.count`,
      ),
      hasAliases: raw.prepare('select 1 from aliases where project_id = ? limit 1').pluck(),
      findAlias: raw.prepare('select distinct_id from aliases where project_id = ? and alias = ?').pluck(),
      upsertAlias: raw.prepare(
        `insert into aliases (project_id, alias, distinct_id, created_at) values (?, ?, ?, ?)
         on conflict (project_id, alias) do update set distinct_id = excluded.distinct_id`,
      ),
      markDirty: raw.prepare(`insert into dirty_profiles (project_id, distinct_id, marked_at) values (?, ?, ?) on conflict (project_id, distinct_id) do nothing`),
      insertWebhookEvent: raw.prepare(`insert into webhook_events (event_id, project_id, type, data, created_at, fanned_out) values (?, ?, 'event.ingested', ?, ?, 0)`),
    };
    this.#write = raw.transaction((batches: EventBatch[], receivedAt: number): WriteResult => {
      let inserted = 0;
      let total = 0;
      for (const batch of batches) {
        const { projectId } = batch;
        const tap = this.tap?.forProject(projectId);
        for (const a of batch.aliases) {
          const target = (s.findAlias.get(projectId, a.distinctId) as string | undefined) ?? a.distinctId;
          if (target !== a.alias) s.upsertAlias.run(projectId, a.alias, target, receivedAt);
          if (tap?.watching) {
            s.markDirty.run(projectId, target, receivedAt);
            this.#tapped = true;
          }
        }
        const seen = new Map<string, string>();
        const resolve = s.hasAliases.get(projectId)
          ? (id: string) => {
              let canonical = seen.get(id);
              if (canonical === undefined) seen.set(id, (canonical = (s.findAlias.get(projectId, id) as string | undefined) ?? id));
              return canonical;
            }
          : (id: string) => id;
        const counts = new Map<string, [string, string, number, number]>();
        for (const e of batch.events) {
          total++;
          const distinctId = resolve(e.distinctId);
          const r = s.insertEvent.run(projectId, e.event, distinctId, e.time, e.insertId, e.dedupKey, e.properties, receivedAt);
          if (tap && r.changes === 1) {
            if (countsForBehaviour(distinctId) && tap.marks(e.event)) s.markDirty.run(projectId, distinctId, receivedAt);
            const forward = tap.forward({ event: e.event, distinctId, time: e.time, properties: e.properties });
            if (forward) s.insertWebhookEvent.run(forward.eventId, projectId, forward.data, receivedAt);
            this.#tapped = true;
          }
          if (r.changes === 0 || !countsForBehaviour(distinctId)) {
            inserted += r.changes;
            continue;
          }
          inserted++;
          const day = dayOf(e.time);
          const key = `${distinctId}\u0000${e.event}\u0000${day}`;
          const c = counts.get(key);
          if (c) c[3]++;
          else counts.set(key, [distinctId, e.event, day, 1]);
        }
        for (const [distinctId, event, day, n] of counts.values()) s.bumpCount.run(projectId, distinctId, event, day, n);
      }
      return { inserted, duplicates: total - inserted };
    });
    return this.#write;
  }
}

class PostgresIngestWriter implements IngestWriter {
  constructor(
    private readonly store: PostgresStore,
    private readonly tap: IngestTap | undefined,
  ) {}

  async writeEvents(batches: EventBatch[], receivedAt: number): Promise<WriteResult> {
    let tapped = false;
    const result = await this.store.db.transaction().execute(async (trx) => {
      let inserted = 0;
      let total = 0;
      for (const batch of batches) {
        const { projectId } = batch;
        const tap = this.tap?.forProject(projectId);
        for (const a of batch.aliases) {
          if (tap?.watching) {
            tapped = true;
            await sql`insert into dirty_profiles (project_id, distinct_id, marked_at)
              values (${projectId}, coalesce((select distinct_id from aliases where project_id = ${projectId} and alias = ${a.distinctId}), ${a.distinctId}), ${receivedAt})
              on conflict (project_id, distinct_id) do nothing`.execute(trx);
          }
          await sql`insert into aliases (project_id, alias, distinct_id, created_at)
            select * from (select ${projectId}::int, ${a.alias}::text, coalesce((select distinct_id from aliases where project_id = ${projectId} and alias = ${a.distinctId}), ${a.distinctId}) as target, ${receivedAt}::bigint) as t
            where target <> ${a.alias}
            on conflict (project_id, alias) do update set distinct_id = excluded.distinct_id`.execute(trx);
        }
        if (batch.events.length === 0) continue;
        total += batch.events.length;
        const ids = batch.events.map((e) => e.distinctId);
        const aliasRows = await sql<{ alias: string; distinct_id: string }>`
          select alias, distinct_id from aliases where project_id = ${projectId} and alias = any(${[...new Set(ids)]}::text[])`.execute(trx);
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
            returning distinct_id, event, time, dedup_key
          ), counted as (
            insert into event_daily_counts (project_id, distinct_id, event, day, count)
            select ${projectId}, distinct_id, event, floor(time / ${DAY_MS})::int as day, count(*)
            from ins where distinct_id <> '' group by 2, 3, 4 order by 2, 3, 4
            on conflict (project_id, distinct_id, event, day) do update set count = event_daily_counts.count + excluded.count
            returning 1
          )
          select (select count(*) from ins)::int as inserted, (select count(*) from counted)::int as counted,
            ${tap ? sql`(select coalesce(array_agg(dedup_key), '{}') from ins)` : sql`null`} as stored`.execute(trx);
        const row = result.rows[0] as { inserted: number; stored: string[] | null } | undefined;
        inserted += row?.inserted ?? 0;
        if (tap && row?.stored?.length) {
          tapped = true;
          await tapStored(trx, projectId, tap, batch.events, resolved, new Set(row.stored), receivedAt);
        }
      }
      return { inserted, duplicates: total - inserted };
    });
    if (tapped) this.tap?.written();
    return result;
  }
}

/** Marks and forwards the events a request newly stored (PostgreSQL: two statements for the whole batch). */
async function tapStored(trx: Transaction<Database>, projectId: number, tap: ProjectTap, events: EventInsert[], resolved: string[], stored: Set<string>, receivedAt: number): Promise<void> {
  const marked = new Set<string>();
  const forwarded: { eventId: string; data: string }[] = [];
  events.forEach((e, i) => {
    if (!stored.has(e.dedupKey)) return;
    const distinctId = resolved[i]!;
    if (countsForBehaviour(distinctId) && tap.marks(e.event)) marked.add(distinctId);
    const forward = tap.forward({ event: e.event, distinctId, time: e.time, properties: e.properties });
    if (forward) forwarded.push(forward);
  });
  if (marked.size > 0) {
    await sql`insert into dirty_profiles (project_id, distinct_id, marked_at) select ${projectId}, id, ${receivedAt} from unnest(${[...marked]}::text[]) as id
      on conflict (project_id, distinct_id) do nothing`.execute(trx);
  }
  if (forwarded.length > 0) {
    await sql`insert into webhook_events (event_id, project_id, type, data, created_at, fanned_out)
      select id, ${projectId}, 'event.ingested', data, ${receivedAt}, 0 from unnest(${forwarded.map((f) => f.eventId)}::text[], ${forwarded.map((f) => f.data)}::text[]) as t(id, data)`.execute(trx);
  }
}

export function createIngestWriter(store: Store, tap?: IngestTap): IngestWriter {
  return store.dialect === 'sqlite' ? new SqliteIngestWriter(store, store.maxGroupedRequests, tap) : new PostgresIngestWriter(store, tap);
}
