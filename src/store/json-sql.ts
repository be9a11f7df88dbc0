import { sql, type RawBuilder } from 'kysely';
import type { Dialect } from './database.js';

/** True where properties[key] equals one of `jsonValues` (each a JSON text), on either database. */
export function jsonPropertyIn(dialect: Dialect, column: string, key: string, jsonValues: string[]): RawBuilder<boolean> {
  const values = sql.join(jsonValues.map((v) => (dialect === 'postgres' ? sql`${v}::jsonb` : sql`${v}`)));
  if (dialect === 'postgres') return sql<boolean>`(${sql.ref(column)} -> ${key}) in (${values})`;
  // SQLite's -> yields the value as minified JSON text, comparable with JSON.stringify output.
  return sql<boolean>`(${sql.ref(column)} -> ${`$."${key}"`}) in (${values})`;
}

/** Property names a JSON path can address on both databases. */
export const isAddressableKey = (key: string): boolean => key.length > 0 && key.length <= 255 && !/["\\]/.test(key);
