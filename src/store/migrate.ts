import { Migrator, sql, type Kysely, type Migration, type MigrationResultSet } from 'kysely';
import type { Store } from './database.js';
import { foundation } from './migrations/001_foundation.js';
import { delivery } from './migrations/002_delivery.js';
import { cohorts } from './migrations/003_cohorts.js';
import { cohortSyncs } from './migrations/004_cohort_syncs.js';
import { syncPagesApart } from './migrations/005_sync_pages_apart.js';
import { channelsSchedules } from './migrations/006_channels_schedules.js';
import { subscriptions } from './migrations/007_subscriptions.js';
import { messages } from './migrations/008_messages.js';
import { reportsAlerts } from './migrations/009_reports_alerts.js';
import { retention } from './migrations/010_retention.js';
import { deliveryQueue } from './migrations/011_delivery_queue.js';
import { deliveriesByTime } from './migrations/012_deliveries_by_time.js';

/**
 * Ordered by name; never edit a migration that has shipped, add the next one. A migration imports
 * nothing but Kysely and types, so what it writes never changes with the live code.
 */
const MIGRATIONS: [string, (dialect: Store['dialect']) => Migration][] = [
  ['001_foundation', foundation],
  ['002_delivery', delivery],
  ['003_cohorts', cohorts],
  ['004_cohort_syncs', cohortSyncs],
  ['005_sync_pages_apart', syncPagesApart],
  ['006_channels_schedules', channelsSchedules],
  ['007_subscriptions', subscriptions],
  ['008_messages', messages],
  ['009_reports_alerts', reportsAlerts],
  ['010_retention', retention],
  ['011_delivery_queue', deliveryQueue],
  ['012_deliveries_by_time', deliveriesByTime],
];

/** Every migration's name, in order: what a fully migrated database has recorded. */
export const migrationNames = MIGRATIONS.map(([name]) => name);

function migrations(store: Store): Record<string, Migration> {
  return Object.fromEntries(MIGRATIONS.map(([name, make]) => [name, make(store.dialect)]));
}

// Any fixed number: processes starting together on one PostgreSQL take turns migrating.
const MIGRATION_LOCK = 0x636f686f;

export async function migrateToLatest(store: Store): Promise<MigrationResultSet> {
  return migrateTo(store, migrationNames.at(-1)!);
}

/** Migrates up (or down) to the named migration: the latest for running, an earlier one to test an upgrade. */
export async function migrateTo(store: Store, name: string): Promise<MigrationResultSet> {
  const migratorOn = (db: Kysely<any>) => new Migrator({ db, provider: { getMigrations: async () => migrations(store) } });
  if (store.dialect === 'sqlite') return check(await migratorOn(store.db).migrateTo(name));
  // Kysely creates its bookkeeping tables before it locks, which races between
  // processes; a session advisory lock around the whole run closes that gap. The
  // migrator runs on the locking connection itself, so a pool of one suffices.
  return store.db.connection().execute(async (conn) => {
    await sql`select pg_advisory_lock(${MIGRATION_LOCK})`.execute(conn);
    try {
      return check(await migratorOn(conn).migrateTo(name));
    } finally {
      await sql`select pg_advisory_unlock(${MIGRATION_LOCK})`.execute(conn);
    }
  });
}

function check(result: MigrationResultSet): MigrationResultSet {
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error');
    const cause = result.error instanceof Error ? result.error.message : String(result.error);
    throw new Error(`migration ${failed?.migrationName ?? '(setup)'} failed: ${cause}`);
  }
  return result;
}
