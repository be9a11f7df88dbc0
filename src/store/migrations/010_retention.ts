import type { Kysely, Migration } from 'kysely';

/**
 * Retention (retention/pruner.ts): a finished delivery's body may be removed before the delivery
 * and its attempt log are. `body_pruned_at` says when, so nothing sends a delivery again without
 * its body, and the API can say why the body is gone.
 */
export function retention(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('deliveries').addColumn('body_pruned_at', 'bigint').execute();
    },
  };
}
