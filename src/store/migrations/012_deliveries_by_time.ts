import type { Kysely, Migration } from 'kysely';

/**
 * GET /deliveries?since=&until=: a time window is turned into a range of ids (ids follow creation)
 * by one seek each end in this index, so the list keeps reading its own id-ordered indexes. The
 * column never changes after the insert, so PostgreSQL's updates of a delivery stay HOT.
 */
export function deliveriesByTime(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.createIndex('deliveries_by_created').on('deliveries').columns(['created_at', 'id']).execute();
    },
  };
}
