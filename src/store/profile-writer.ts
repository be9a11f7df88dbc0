import { sql, type Transaction } from 'kysely';
import type { Store } from './database.js';
import { profilePropertiesText, profilePropertiesValue } from './json-sql.js';
import { readJson, type Database } from './schema.js';

export type Properties = Record<string, unknown>;

/** Why an update was refused (it would break a limit): failed_records' field and message. */
export class Refusal {
  constructor(
    readonly field: string,
    readonly message: string,
  ) {}
}

/** Turns a profile's properties (null: no profile) into its next state (null: deleted), or refuses, leaving it as it is. */
export type ProfileChange = (current: Properties | null) => Properties | null | Refusal;

/** An update refused, by its position in the list given to the writer. */
export interface RefusedUpdate {
  position: number;
  field: string;
  message: string;
}

export interface UserProfileUpdate {
  distinctId: string;
  /** $ignore_alias: apply to this exact distinct_id even if it is an alias. */
  ignoreAlias: boolean;
  change: ProfileChange;
}

/**
 * Forms of a profile kept beside its properties, computed by the surfaces that read them (given
 * by the service, so the store runs no surface's code of its own).
 */
export interface ProfileForms {
  /** The cohort-sync page member, without its closing brace (cohort-sync/wire.ts syncMemberHead). */
  syncMember(distinctId: string, properties: Properties): string;
  /** Told of the profiles an update changed, inside its transaction (live membership, profile.* events). */
  changed?(trx: Transaction<Database>, projectId: number, changes: ProfileChangeRecord[], now: number): Promise<void>;
}

/** A profile as it was and as it is now (null: none). */
export interface ProfileChangeRecord {
  distinctId: string;
  before: Properties | null;
  after: Properties | null;
}

export interface GroupProfileUpdate {
  groupKey: string;
  groupId: string;
  change: ProfileChange;
}

interface Row {
  properties: Properties | null;
  existed: boolean;
  /** An update to it was applied (not every one refused). */
  changed: boolean;
}

/** Applies the changes in order; returns the rows whose state changed, by key, and the updates refused. */
function applyInOrder<U extends { change: ProfileChange }>(
  updates: U[],
  keyOf: (u: U) => string,
  current: Map<string, Properties>,
  refused: RefusedUpdate[],
): Map<string, Row> {
  const rows = new Map<string, Row>();
  for (const [position, u] of updates.entries()) {
    const key = keyOf(u);
    let row = rows.get(key);
    if (!row) {
      const existing = current.get(key);
      row = { properties: existing ?? null, existed: existing !== undefined, changed: false };
      rows.set(key, row);
    }
    const next = u.change(row.properties);
    if (next instanceof Refusal) {
      refused.push({ position, field: next.field, message: next.message });
      continue;
    }
    row.properties = next;
    row.changed = true;
  }
  return rows;
}

/** On PostgreSQL, serialise writers of the same profiles across processes (sorted: no deadlock). */
async function lockKeys(store: Store, trx: Transaction<Database>, keys: string[]) {
  if (store.dialect !== 'postgres' || keys.length === 0) return;
  await sql`select pg_advisory_xact_lock(hashtextextended(k, 0)) from unnest(${[...keys].sort()}::text[]) as k order by k`.execute(trx);
}

/** Applies the updates in one transaction; answers those refused (the rest are stored). */
export async function updateUserProfiles(store: Store, forms: ProfileForms, projectId: number, updates: UserProfileUpdate[], now: number): Promise<RefusedUpdate[]> {
  const refused: RefusedUpdate[] = [];
  if (updates.length === 0) return refused;
  await store.db.transaction().execute(async (trx) => {
    const aliased = [...new Set(updates.filter((u) => !u.ignoreAlias).map((u) => u.distinctId))];
    const aliasOf = new Map<string, string>();
    if (aliased.length > 0) {
      const rows = await trx
        .selectFrom('aliases')
        .select(['alias', 'distinct_id'])
        .where('project_id', '=', projectId)
        .where('alias', 'in', aliased)
        .execute();
      for (const r of rows) aliasOf.set(r.alias, r.distinct_id);
    }
    const resolved = updates.map((u) => ({ ...u, distinctId: u.ignoreAlias ? u.distinctId : (aliasOf.get(u.distinctId) ?? u.distinctId) }));
    const ids = [...new Set(resolved.map((u) => u.distinctId))];
    await lockKeys(store, trx, ids.map((id) => `profile:${projectId}:${id}`));
    const existing = await trx
      .selectFrom('profiles')
      .select(['distinct_id', profilePropertiesText(store.dialect, 'properties').as('properties')])
      .where('project_id', '=', projectId)
      .where('distinct_id', 'in', ids)
      .execute();
    const current = new Map(existing.map((r) => [r.distinct_id, readJson<Properties>(r.properties)]));
    const changes: ProfileChangeRecord[] = [];
    for (const [distinctId, row] of applyInOrder(resolved, (u) => u.distinctId, current, refused)) {
      if (!row.changed) continue;
      changes.push({ distinctId, before: current.get(distinctId) ?? null, after: row.properties });
      if (row.properties === null) {
        if (row.existed) {
          await trx.deleteFrom('profiles').where('project_id', '=', projectId).where('distinct_id', '=', distinctId).execute();
        }
        continue;
      }
      const properties = profilePropertiesValue(store.dialect, JSON.stringify(row.properties));
      const sync_member = forms.syncMember(distinctId, row.properties);
      await trx
        .insertInto('profiles')
        .values({ project_id: projectId, distinct_id: distinctId, properties, sync_member, created_at: now, updated_at: now })
        .onConflict((oc) => oc.columns(['project_id', 'distinct_id']).doUpdateSet({ properties, sync_member, updated_at: now }))
        .execute();
    }
    if (forms.changed && changes.length > 0) await forms.changed(trx, projectId, changes, now);
  });
  return refused;
}

/** Applies the updates in one transaction; answers those refused (the rest are stored). */
export async function updateGroupProfiles(store: Store, projectId: number, updates: GroupProfileUpdate[], now: number): Promise<RefusedUpdate[]> {
  const refused: RefusedUpdate[] = [];
  if (updates.length === 0) return refused;
  const keyOf = (u: { groupKey: string; groupId: string }) => JSON.stringify([u.groupKey, u.groupId]);
  await store.db.transaction().execute(async (trx) => {
    const keys = [...new Set(updates.map(keyOf))];
    await lockKeys(store, trx, keys.map((k) => `group:${projectId}:${k}`));
    const current = new Map<string, Properties>();
    for (const groupKey of new Set(updates.map((u) => u.groupKey))) {
      const rows = await trx
        .selectFrom('group_profiles')
        .select(['group_id', 'properties'])
        .where('project_id', '=', projectId)
        .where('group_key', '=', groupKey)
        .where('group_id', 'in', [...new Set(updates.filter((u) => u.groupKey === groupKey).map((u) => u.groupId))])
        .execute();
      for (const r of rows) current.set(keyOf({ groupKey, groupId: r.group_id }), readJson<Properties>(r.properties));
    }
    for (const [key, row] of applyInOrder(updates, keyOf, current, refused)) {
      if (!row.changed) continue;
      const [groupKey, groupId] = JSON.parse(key) as [string, string];
      if (row.properties === null) {
        if (row.existed) {
          await trx
            .deleteFrom('group_profiles')
            .where('project_id', '=', projectId)
            .where('group_key', '=', groupKey)
            .where('group_id', '=', groupId)
            .execute();
        }
        continue;
      }
      const properties = JSON.stringify(row.properties);
      await trx
        .insertInto('group_profiles')
        .values({ project_id: projectId, group_key: groupKey, group_id: groupId, properties, created_at: now, updated_at: now })
        .onConflict((oc) => oc.columns(['project_id', 'group_key', 'group_id']).doUpdateSet({ properties, updated_at: now }))
        .execute();
    }
  });
  return refused;
}
