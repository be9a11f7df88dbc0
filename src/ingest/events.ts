import crypto from 'node:crypto';
import type { IngestLimits } from '../config.js';
import type { EventInsert } from '../store/ingest-writer.js';
import type { RecordError } from './errors.js';
import { hasNul, jsonHasNul, stringifyOrUndefined, wellFormedJson } from './text.js';
import { overBytes, valueProblem } from './value-limits.js';

export type Mode = 'track' | 'import';

export interface NormalizedEvent extends EventInsert {
  /** The token the record carried, if any (selects the project on /track). */
  token: string | undefined;
  /** For $create_alias, $identify and $merge: the alias this event registers. */
  alias?: { alias: string; distinctId: string };
}

export type Normalized = { ok: true; event: NormalizedEvent } | { ok: false; error: RecordError };

/** Mixpanel refuses these distinct_ids: they are almost always an implementation mistake. */
const PLACEHOLDER_IDS = new Set([
  'anon', 'anonymous', 'nil', 'none', 'null', 'n/a', 'na', 'undefined', 'unknown', 'lmy47d', '[]', '{}', '-1', '0',
  '00000000-0000-0000-0000-000000000000', '<nil>',
]);
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: 'base64url') => string }).hash;
const INSERT_ID = /^[A-Za-z0-9-]+$/;
/** Below this a time is in seconds (1e11 s is year 5138; 1e11 ms is 1973). */
const SECONDS_BELOW = 1e11;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The last millisecond of year 9999: later times have no ISO 8601 form that clients read. */
export const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** Seconds or milliseconds (number or numeric string) to whole milliseconds; undefined if not a time. */
export function toMillis(value: unknown): number | undefined {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return undefined;
  const ms = Math.round(n < SECONDS_BELOW ? n * 1000 : n);
  return ms <= MAX_TIME_MS ? ms : undefined;
}

function idString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return undefined;
}

/** Simplified ID Merge: distinct_id, else $user_id, else "$device:" + $device_id. */
function distinctIdOf(p: Record<string, unknown>): string | undefined {
  const explicit = idString(p.distinct_id);
  if (explicit !== undefined) return explicit;
  const user = idString(p.$user_id);
  if (user) return user;
  const device = idString(p.$device_id);
  return device ? `$device:${device}` : undefined;
}

export function dedupKey(event: string, time: number, distinctId: string, insertId: string | null): string {
  if (insertId === null) return crypto.randomUUID();
  const text = `${event}\u0000${time}\u0000${distinctId}\u0000${insertId}`;
  // One-shot crypto.hash (Node >= 20.12) costs half of createHash().update().digest().
  if (oneShotHash) return oneShotHash('sha256', text, 'base64url').slice(0, 24);
  return crypto.createHash('sha256').update(text).digest('base64url').slice(0, 24);
}

/** An id usable as an alias: text without NUL, repaired to well-formed UTF-16. */
function aliasId(v: unknown): string | undefined {
  const id = idString(v);
  return id === undefined || hasNul(id) ? undefined : id.toWellFormed();
}

function aliasOf(event: string, p: Record<string, unknown>, distinctId: string): NormalizedEvent['alias'] {
  if (event === '$create_alias') {
    const alias = aliasId(p.alias);
    return alias ? { alias, distinctId } : undefined;
  }
  if (event === '$identify') {
    const anon = aliasId(p.$anon_distinct_id);
    return anon && anon !== distinctId ? { alias: anon, distinctId } : undefined;
  }
  if (event === '$merge' && Array.isArray(p.$distinct_ids) && p.$distinct_ids.length === 2) {
    const [keep, merged] = p.$distinct_ids.map(aliasId);
    return keep && merged && keep !== merged ? { alias: merged, distinctId: keep } : undefined;
  }
  return undefined;
}

const rulesOf = new WeakMap<IngestLimits, ReturnType<typeof rulesFor>>();
const rulesFor = (l: IngestLimits) => ({ maxDepth: l.maxNestingDepth, maxNameBytes: l.maxPropertyNameBytes, maxObjectKeys: l.maxNestedKeys, maxListLength: l.maxEventListLength });
function eventRules(limits: IngestLimits) {
  let rules = rulesOf.get(limits);
  if (!rules) rulesOf.set(limits, (rules = rulesFor(limits)));
  return rules;
}

/**
 * Validates one record as Mixpanel does and turns it into a row. /import is stricter:
 * time is required and must be after 1971 and at most an hour ahead; $insert_id is required
 * when `requireInsertId` (strict mode).
 */
export function normalizeEvent(
  record: unknown,
  index: number,
  ctx: { mode: Mode; now: number; limits: IngestLimits; requireInsertId: boolean; ip?: string },
): Normalized {
  const fail = (field: string, message: string, insertId?: string): Normalized => ({
    ok: false,
    error: insertId === undefined ? { index, field, message } : { index, insert_id: insertId, field, message },
  });
  if (!isObject(record)) return fail('event', 'each record must be a JSON object with "event" and "properties"');
  const { event, properties } = record;
  const p = properties === undefined ? {} : properties;
  if (!isObject(p)) return fail('properties', "'properties' must be a JSON object");
  const rawInsertId = p.$insert_id;
  const insertIdText = idString(rawInsertId);
  if (typeof event !== 'string' || event.trim() === '') return fail('event', "'event' must be a non-empty string", insertIdText);
  if (hasNul(event)) return fail('event', "'event' must not contain NUL characters", insertIdText);
  if (event.length > ctx.limits.maxEventNameLength) {
    return fail('event', `'event' must be at most ${ctx.limits.maxEventNameLength} characters`, insertIdText);
  }

  let insertId: string | null = null;
  if (rawInsertId !== undefined && rawInsertId !== null) {
    if (insertIdText === undefined || insertIdText.length > ctx.limits.maxInsertIdLength || !INSERT_ID.test(insertIdText)) {
      return fail(
        'properties.$insert_id',
        `'properties.$insert_id' must be at most ${ctx.limits.maxInsertIdLength} letters, digits or dashes`,
        insertIdText,
      );
    }
    insertId = insertIdText;
  } else if (ctx.requireInsertId) {
    return fail('properties.$insert_id', "'properties.$insert_id' is required in strict mode; it makes retries safe");
  }
  const withId = (field: string, message: string) => fail(field, message, insertId ?? undefined);

  const rawDistinctId = distinctIdOf(p);
  if (rawDistinctId === undefined) {
    return withId('properties.distinct_id', "'properties.distinct_id' is required (a string; use \"\" for events without a user)");
  }
  if (hasNul(rawDistinctId)) return withId('properties.distinct_id', "'properties.distinct_id' must not contain NUL characters");
  if (overBytes(rawDistinctId, ctx.limits.maxDistinctIdBytes)) return withId('properties.distinct_id', `'properties.distinct_id' must be at most ${ctx.limits.maxDistinctIdBytes} bytes`);
  const distinctId = rawDistinctId.toWellFormed();
  if (PLACEHOLDER_IDS.has(distinctId.trim().toLowerCase())) {
    return withId('properties.distinct_id', `'properties.distinct_id' "${distinctId}" is a placeholder value, not a user id`);
  }

  let time: number;
  if (p.time === undefined || p.time === null) {
    if (ctx.mode === 'import') return withId('properties.time', "'properties.time' is required: seconds or milliseconds since epoch");
    time = ctx.now;
  } else {
    const ms = toMillis(p.time);
    if (ms === undefined) return withId('properties.time', "'properties.time' must be seconds or milliseconds since epoch");
    time = ms;
  }
  if (time < ctx.limits.importEarliestTimeMs) return withId('properties.time', "'properties.time' is before 1971-01-01");
  // Also on /track: an event dated years ahead would count as "in the last day" of every window until then.
  if (time > ctx.now + ctx.limits.maxFutureMs) {
    return withId('properties.time', `'properties.time' is more than ${Math.round(ctx.limits.maxFutureMs / 60_000)} minutes in the future`);
  }

  const { token, time: _t, distinct_id: _d, $insert_id: _i, ...rest } = p;
  if (Object.keys(rest).length > ctx.limits.maxPropertiesPerEvent) {
    return withId('properties', `an event may have at most ${ctx.limits.maxPropertiesPerEvent} properties`);
  }
  if (ctx.ip !== undefined && rest.ip === undefined) rest.ip = ctx.ip;
  const problem = valueProblem(rest, eventRules(ctx.limits), 'properties');
  if (problem) return withId(problem.field, problem.message);
  let json = stringifyOrUndefined(rest);
  if (json === undefined) return withId('properties', 'properties are nested too deeply');
  if (jsonHasNul(json)) return withId('properties', 'a property name or value contains a NUL character (\\u0000), which cannot be stored');
  json = wellFormedJson(json);
  const name = event.toWellFormed();
  // UTF-8 needs at most 3 bytes per UTF-16 unit, so most events skip the byte count.
  if (json.length * 3 > ctx.limits.maxEventBytes && Buffer.byteLength(json) > ctx.limits.maxEventBytes) {
    return withId('properties', `an event must be smaller than ${ctx.limits.maxEventBytes} bytes of JSON`);
  }
  return {
    ok: true,
    event: {
      event: name,
      distinctId,
      time,
      insertId,
      dedupKey: dedupKey(name, time, distinctId, insertId),
      properties: json,
      token: idString(token),
      alias: aliasOf(name, p, distinctId),
    },
  };
}
