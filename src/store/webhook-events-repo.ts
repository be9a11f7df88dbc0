import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { Dialect } from './database.js';
import type { Database, WebhookEventsTable } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;
export type WebhookEventRow = Selectable<WebhookEventsTable>;
export interface NewWebhookEvent {
  eventId: string;
  projectId: number;
  type: string;
  /** JSON text. */
  data: string;
  createdAt: number;
}

/** Writes events in the producer's transaction; their deliveries are made by the fan-out. */
export async function insertWebhookEvents(db: Db, events: NewWebhookEvent[]): Promise<void> {
  for (let i = 0; i < events.length; i += 200) {
    await db
      .insertInto('webhook_events')
      .values(events.slice(i, i + 200).map((e) => ({ event_id: e.eventId, project_id: e.projectId, type: e.type, data: e.data, created_at: e.createdAt, fanned_out: 0 })))
      .execute();
  }
}

/**
 * Events not yet fanned out, oldest first, locked for the caller's transaction (on PostgreSQL
 * rows another process is fanning out are skipped, not waited for).
 */
export async function pendingWebhookEvents(trx: Transaction<Database>, dialect: Dialect, limit: number): Promise<WebhookEventRow[]> {
  return trx
    .selectFrom('webhook_events')
    .selectAll()
    .where('fanned_out', '=', sql.lit(0))
    .orderBy('id')
    .limit(limit)
    .$if(dialect === 'postgres', (q) => q.forUpdate().skipLocked())
    .execute();
}

export async function markFannedOut(trx: Transaction<Database>, ids: number[]): Promise<void> {
  if (ids.length > 0) await trx.updateTable('webhook_events').set({ fanned_out: 1 }).where('id', 'in', ids).execute();
}


/** The projects of the oldest events waiting to be fanned out. */
export async function pendingProjects(db: Db, limit: number): Promise<number[]> {
  const rows = await db.selectFrom('webhook_events').select('project_id').where('fanned_out', '=', sql.lit(0)).orderBy('id').limit(limit).execute();
  return [...new Set(rows.map((r) => r.project_id))];
}

/** The subscription backlog: events not yet fanned out, and profiles not yet evaluated. */
export async function subscriptionBacklog(db: Db): Promise<{ eventsWaiting: number; profilesWaiting: number }> {
  const events = await db.selectFrom('webhook_events').select((eb) => eb.fn.countAll<number>().as('n')).where('fanned_out', '=', sql.lit(0)).executeTakeFirstOrThrow();
  const profiles = await db.selectFrom('dirty_profiles').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return { eventsWaiting: Number(events.n), profilesWaiting: Number(profiles.n) };
}
