/**
 * Whether a database error will come back however often the statement is tried again: the
 * statement or the data it reads is at fault (SQLite's generic SQL error, a value too big;
 * PostgreSQL's data exceptions, syntax or access errors, program limits), not the moment
 * (busy, locked, out of connections, a dropped connection, a serialisation failure). Surfaces
 * stop and show such a failure instead of retrying it forever.
 */
export function isPermanentFailure(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== 'string') return false;
  if (code.startsWith('SQLITE_')) return ['SQLITE_ERROR', 'SQLITE_TOOBIG', 'SQLITE_MISMATCH', 'SQLITE_RANGE'].includes(code);
  // PostgreSQL SQLSTATE classes: 22 data exception, 42 syntax error or access rule violation, 54 program limit exceeded.
  return /^(22|42|54)[0-9A-Z]{3}$/.test(code);
}
