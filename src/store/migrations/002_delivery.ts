import { sql, type CreateTableBuilder, type Kysely, type Migration } from 'kysely';
import type { Dialect } from '../database.js';

/** Destinations ("connections"), the delivery outbox and its attempt log. */
export function delivery(dialect: Dialect): Migration {
  const json = dialect === 'postgres' ? sql`jsonb` : sql`text`;
  const withId = (table: CreateTableBuilder<string, never>, type: 'serial' | 'bigserial') =>
    dialect === 'postgres'
      ? table.addColumn('id', type, (c) => c.primaryKey())
      : // Connection ids are handed out and must never be reused: AUTOINCREMENT for those only.
        table.addColumn('id', 'integer', (c) => (type === 'serial' ? c.primaryKey().autoIncrement() : c.primaryKey()));
  return {
    async up(db: Kysely<any>) {
      // Service-wide values, e.g. the check value of the key that seals secrets.
      await db.schema
        .createTable('settings')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
      await withId(db.schema.createTable('connections'), 'serial')
        .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('url', 'text', (c) => c.notNull())
        // Secrets are sealed (AES-256-GCM) with the operator's key; never stored in the clear.
        .addColumn('basic_auth', 'text')
        .addColumn('headers', json, (c) => c.notNull())
        .addColumn('secret_header_name', 'text')
        .addColumn('secret_header_value', 'text')
        .addColumn('signing_secret', 'text', (c) => c.notNull())
        .addColumn('previous_signing_secret', 'text')
        .addColumn('previous_secret_expires_at', 'bigint')
        .addColumn('ed25519_private_key', 'text')
        .addColumn('ed25519_public_key', 'text')
        .addColumn('timeout_ms', 'integer', (c) => c.notNull())
        .addColumn('max_concurrency', 'integer', (c) => c.notNull())
        .addColumn('rate_limit_per_s', 'integer')
        .addColumn('disabled_at', 'bigint')
        .addColumn('disabled_reason', 'text')
        // 429 and 503 slow the whole destination down until then.
        .addColumn('throttled_until', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('deleted_at', 'bigint')
        .execute();
      await db.schema.createIndex('connections_by_project').on('connections').columns(['project_id', 'id']).execute();

      await withId(db.schema.createTable('deliveries'), 'bigserial')
        .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
        .addColumn('connection_id', 'integer', (c) => c.notNull().references('connections.id'))
        .addColumn('webhook_id', 'text', (c) => c.notNull().unique())
        .addColumn('owner_kind', 'text', (c) => c.notNull())
        .addColumn('owner_id', 'text', (c) => c.notNull())
        .addColumn('policy', 'text', (c) => c.notNull())
        .addColumn('content_type', 'text', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('headers', json, (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('outcome', 'text')
        .addColumn('attempts', 'integer', (c) => c.notNull())
        // Attempts since the delivery was last (re)queued: its place in the retry schedule.
        .addColumn('round_attempts', 'integer', (c) => c.notNull())
        .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
        .addColumn('first_attempt_at', 'bigint')
        .addColumn('lease_owner', 'text')
        .addColumn('lease_expires_at', 'bigint')
        .addColumn('last_status', 'integer')
        .addColumn('last_error', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('completed_at', 'bigint')
        .execute();
      // The dispatcher's claim: due work per destination, pending rows only (finished ones drop out).
      await db.schema
        .createIndex('deliveries_due')
        .on('deliveries')
        .columns(['connection_id', 'next_attempt_at', 'id'])
        .where(sql.ref('state'), '=', 'pending')
        .execute();
      await db.schema.createIndex('deliveries_by_project').on('deliveries').columns(['project_id', 'id']).execute();
      await db.schema.createIndex('deliveries_by_connection').on('deliveries').columns(['connection_id', 'id']).execute();
      await db.schema.createIndex('deliveries_by_owner').on('deliveries').columns(['owner_kind', 'owner_id', 'id']).execute();

      await withId(db.schema.createTable('delivery_attempts'), 'bigserial')
        .addColumn('delivery_id', 'bigint', (c) => c.notNull().references('deliveries.id'))
        .addColumn('attempt', 'integer', (c) => c.notNull())
        .addColumn('worker', 'text', (c) => c.notNull())
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('duration_ms', 'integer', (c) => c.notNull())
        .addColumn('status', 'integer')
        .addColumn('response_headers', json)
        .addColumn('response_body', 'text')
        .addColumn('error', 'text')
        .addColumn('outcome', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('delivery_attempts_by_delivery').on('delivery_attempts').columns(['delivery_id', 'attempt']).execute();
    },
  };
}
