import type { Kysely, Migration } from 'kysely';
import { sql } from 'kysely';
import type { Dialect } from '../database.js';

/**
 * PostgreSQL only: the queue of pending deliveries moves to a narrow table of its own.
 * - delivery_queue: one row per pending delivery (its lane, due time and lease's end), the one
 *   index claims scan, deleted when the delivery ends. A claim sets only leased_until, which no
 *   index holds, so it is a HOT update of a small row (fillfactor 50 leaves room on the page);
 *   claims pass over the index entries of rows in flight (a process's in-flight limit at most)
 *   instead of writing two index entries per row they take;
 * - deliveries loses its claim index (deliveries_due): no index of it names a column a claim or an
 *   outcome changes (state, next_attempt_at, the lease), so those updates are HOT (no index entry
 *   written), given room on the page (fillfactor 50).
 * SQLite keeps claiming from deliveries (one writer, rows rewritten whole anyway): nothing changes.
 */
export function deliveryQueue(dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      if (dialect !== 'postgres') return;
      await sql`create table delivery_queue (
        delivery_id bigint primary key,
        connection_id integer,
        channel text not null,
        run_at bigint not null,
        leased_until bigint
      ) with (fillfactor = 50)`.execute(db);
      await sql`create index delivery_queue_due on delivery_queue (connection_id, run_at, delivery_id)`.execute(db);
      await sql`insert into delivery_queue (delivery_id, connection_id, channel, run_at)
        select id, connection_id, channel, next_attempt_at from deliveries where state = 'pending'`.execute(db);
      await sql`drop index deliveries_due`.execute(db);
      await sql`alter table deliveries set (fillfactor = 50)`.execute(db);
    },
  };
}
