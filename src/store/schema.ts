import type { ColumnType, Generated } from 'kysely';

/**
 * Table types shared by both dialects. JSON columns are TEXT on SQLite and JSONB on
 * PostgreSQL: they are written as JSON strings and read back through `readJson`.
 */
type Json = ColumnType<unknown, string, string>;

export interface ProjectsTable {
  id: Generated<number>;
  name: string;
  token: string;
  /** SHA-256 of the secret: a stolen database does not hand out API access. */
  secret_hash: string;
  created_at: number;
}

export interface EventsTable {
  id: Generated<number>;
  project_id: number;
  event: string;
  distinct_id: string;
  /** Milliseconds since the epoch. */
  time: number;
  insert_id: string | null;
  /** Hash of (event, time, distinct_id, $insert_id); random when there is no $insert_id. */
  dedup_key: string;
  /** Every property but token, time, distinct_id and $insert_id, which have columns. */
  properties: Json;
  received_at: number;
}

export interface EventDailyCountsTable {
  project_id: number;
  distinct_id: string;
  event: string;
  /** Days since the epoch (UTC). */
  day: number;
  count: number;
}

export interface ProfilesTable {
  project_id: number;
  distinct_id: string;
  properties: Json;
  created_at: number;
  updated_at: number;
}

export interface GroupProfilesTable {
  project_id: number;
  group_key: string;
  group_id: string;
  properties: Json;
  created_at: number;
  updated_at: number;
}

export interface AliasesTable {
  project_id: number;
  alias: string;
  distinct_id: string;
  created_at: number;
}

export interface Database {
  projects: ProjectsTable;
  events: EventsTable;
  event_daily_counts: EventDailyCountsTable;
  profiles: ProfilesTable;
  group_profiles: GroupProfilesTable;
  aliases: AliasesTable;
}

/** JSON columns come back as text from SQLite and already parsed from PostgreSQL. */
export function readJson<T = Record<string, unknown>>(value: unknown): T {
  return (typeof value === 'string' ? JSON.parse(value) : value) as T;
}
