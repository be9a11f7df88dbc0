import { sql, type RawBuilder } from 'kysely';

/**
 * PostgreSQL: a statement whose text starts with this line runs as a named prepared statement
 * (database.ts), so each connection plans it once rather than at every call. For the dispatcher's
 * hot statements, whose text never changes (their values come as arrays): planning one cost about
 * as much as running it on a batch of twenty.
 */
export const PREPARED_PREFIX = '-- prepared: ';

/** Put first in a statement's text: `sql\`${prepared('name')}select …\``. */
export const prepared = (name: string): RawBuilder<unknown> => sql.raw(`${PREPARED_PREFIX}${name}\n`);
