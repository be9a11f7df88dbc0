import type { Store } from './database.js';
import { jsonPropertyIn, profilePropertiesText } from './json-sql.js';
import { readJson } from './schema.js';
import type { Properties } from './profile-writer.js';

export interface ProfileRecord {
  distinctId: string;
  properties: Properties;
  createdAt: number;
  updatedAt: number;
}

export interface ProfileQuery {
  distinctIds?: string[];
  /** Property name to acceptable JSON texts (any one matches). */
  equals?: Record<string, string[]>;
  after?: string;
  limit: number;
}

export async function getProfile(store: Store, projectId: number, distinctId: string): Promise<ProfileRecord | undefined> {
  const row = await store.db
    .selectFrom('profiles')
    .select(['distinct_id', profilePropertiesText(store.dialect, 'properties').as('properties'), 'created_at', 'updated_at'])
    .where('project_id', '=', projectId)
    .where('distinct_id', '=', distinctId)
    .executeTakeFirst();
  return row && toRecord(row);
}

/** A page of profiles in distinct_id order, starting after `after`. */
export async function listProfiles(store: Store, projectId: number, q: ProfileQuery): Promise<ProfileRecord[]> {
  let query = store.db
    .selectFrom('profiles')
    .select(['distinct_id', profilePropertiesText(store.dialect, 'properties').as('properties'), 'created_at', 'updated_at'])
    .where('project_id', '=', projectId);
  if (q.distinctIds?.length) query = query.where('distinct_id', 'in', q.distinctIds);
  for (const [key, values] of Object.entries(q.equals ?? {})) {
    query = query.where(jsonPropertyIn(store.dialect, 'properties', key, values));
  }
  if (q.after !== undefined) query = query.where('distinct_id', '>', q.after);
  const rows = await query.orderBy('distinct_id').limit(q.limit).execute();
  return rows.map(toRecord);
}

function toRecord(row: { distinct_id: string; properties: unknown; created_at: number; updated_at: number }): ProfileRecord {
  return {
    distinctId: row.distinct_id,
    properties: readJson<Properties>(row.properties),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
