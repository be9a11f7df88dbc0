import BetterSqlite3 from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { withStatementCache } from '../../src/store/sqlite-statements.js';

describe('prepared statement cache for Kysely on SQLite', () => {
  it('reuses a statement by its SQL, prepares afresh while one is being iterated, and stays bounded', () => {
    const raw = new BetterSqlite3(':memory:');
    const db = withStatementCache(raw, 2);
    const a = db.prepare('select 1 as n union all select 2');
    expect(db.prepare('select 1 as n union all select 2')).toBe(a);

    const rows = (a as unknown as BetterSqlite3.Statement).iterate();
    rows.next();
    const during = db.prepare('select 1 as n union all select 2');
    expect(during).not.toBe(a);
    expect(during.all([])).toEqual([{ n: 1 }, { n: 2 }]);
    rows.return?.();
    expect(db.prepare('select 1 as n union all select 2')).toBe(a);

    db.prepare('select 3');
    db.prepare('select 4');
    // Capacity 2: the least recently used statement was dropped and is prepared again.
    expect(db.prepare('select 1 as n union all select 2')).not.toBe(a);
    db.close();
  });
});
