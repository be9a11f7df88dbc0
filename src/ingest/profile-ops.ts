import type { IngestLimits } from '../config.js';
import { Refusal, type Properties } from '../store/profile-writer.js';
import type { RecordError } from './errors.js';
import { MAX_TIME_MS, toMillis } from './events.js';
import { ProfileSizes } from './profile-sizes.js';
import { hasNul, jsonHasNul, stringifyOrUndefined, wellFormedValue } from './text.js';
import { overBytes, short, valueProblem, type ValueRules } from './value-limits.js';

/** The operations of Mixpanel's /engage, in the order they are applied when one update holds several. */
export const USER_OPERATIONS = ['$set', '$set_once', '$add', '$append', '$union', '$remove', '$unset', '$delete'] as const;
/** /groups accepts the same minus $add and $append. */
const GROUP_OPERATIONS = ['$set', '$set_once', '$union', '$remove', '$unset', '$delete'] as const;
export type Operation = (typeof USER_OPERATIONS)[number];

/** Keys of an update object that are not operations. */
const USER_MODIFIERS = new Set(['$token', 'token', '$distinct_id', '$ip', '$time', '$ignore_time', '$ignore_alias', '$device_id', '$user_id']);
const GROUP_MODIFIERS = new Set(['$token', 'token', '$group_key', '$group_id', '$ip', '$time', '$ignore_time']);

export interface ProfileUpdate {
  token: string | undefined;
  ops: { op: Operation; value: unknown }[];
  /** When $last_seen is set to (ms), or null with $ignore_time. */
  touchedAt: number | null;
  ignoreAlias: boolean;
}
export interface UserUpdate extends ProfileUpdate {
  distinctId: string;
}
export interface GroupUpdate extends ProfileUpdate {
  groupKey: string;
  groupId: string;
}

type Parsed<T> = { ok: true; update: T } | { ok: false; error: RecordError };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkValue(op: Operation, value: unknown): string | undefined {
  switch (op) {
    case '$delete':
      return undefined;
    case '$unset':
      return Array.isArray(value) && value.every((k) => typeof k === 'string') ? undefined : `${op} takes a list of property names`;
    default:
      if (!isObject(value)) return `${op} takes an object of properties`;
      if (op === '$add') {
        const bad = Object.entries(value).find(([, v]) => typeof v !== 'number' || !Number.isFinite(v));
        if (bad) return `$add takes numbers; "${bad[0]}" is not a number`;
      }
      if (op === '$union') {
        const bad = Object.entries(value).find(([, v]) => !Array.isArray(v));
        if (bad) return `$union takes lists; "${bad[0]}" is not a list`;
      }
      return undefined;
  }
}

const rulesOf = new WeakMap<IngestLimits, ValueRules>();
/** What a profile operation's value may hold: its values are property values, as an event's properties are. */
function profileRules(l: IngestLimits): ValueRules {
  let rules = rulesOf.get(l);
  if (!rules) rulesOf.set(l, (rules = { maxDepth: l.maxNestingDepth, maxNameBytes: l.maxPropertyNameBytes, maxObjectKeys: Math.max(l.maxNestedKeys, l.maxProfileProperties), maxListLength: Infinity }));
  return rules;
}

function parseCommon(
  record: Record<string, unknown>,
  index: number,
  allowed: readonly Operation[],
  modifiers: Set<string>,
  now: number,
  limits: IngestLimits,
): Parsed<ProfileUpdate> {
  const fail = (field: string, message: string): Parsed<ProfileUpdate> => ({ ok: false, error: { index, field, message } });
  const ops: ProfileUpdate['ops'] = [];
  for (const key of Object.keys(record)) {
    if (modifiers.has(key)) continue;
    if (!(allowed as readonly string[]).includes(key)) {
      return fail(short(key), `unknown operation "${short(key)}"; use one of ${allowed.join(', ')}`);
    }
    const problem = checkValue(key as Operation, record[key]);
    if (problem) return fail(key, problem);
    const found = valueProblem(record[key], profileRules(limits), key);
    if (found) return fail(found.field, found.message);
    const json = stringifyOrUndefined(record[key]);
    if (json === undefined) return fail(key, `${key} is nested too deeply`);
    if (jsonHasNul(json ?? '')) return fail(key, `${key} holds a NUL character (\\u0000), which cannot be stored`);
  }
  for (const op of allowed) if (Object.hasOwn(record, op)) ops.push({ op, value: wellFormedValue(record[op]) });
  if (ops.length === 0) return fail('$set', `an update needs one of ${allowed.join(', ')}`);
  let touchedAt: number | null = now;
  if (record.$ignore_time === true || record.$ignore_time === 'true') touchedAt = null;
  else if (record.$time !== undefined) {
    const ms = typeof record.$time === 'string' && Number.isNaN(Number(record.$time)) ? Date.parse(record.$time) : toMillis(record.$time);
    if (ms === undefined || Number.isNaN(ms) || ms < 0 || ms > MAX_TIME_MS) {
      return fail('$time', '$time must be seconds or milliseconds since epoch, or an ISO date');
    }
    touchedAt = ms;
  }
  const token = record.$token ?? record.token;
  return {
    ok: true,
    update: {
      token: typeof token === 'string' ? token : undefined,
      ops,
      touchedAt,
      ignoreAlias: record.$ignore_alias === true || record.$ignore_alias === 'true',
    },
  };
}

/** A profile key: text or a finite number, NUL refused (undefined), repaired to well-formed UTF-16. */
function idOf(v: unknown): string | undefined {
  const id = typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined;
  return id === undefined || hasNul(id) ? undefined : id.toWellFormed();
}

export function parseUserUpdate(record: unknown, index: number, now: number, limits: IngestLimits): Parsed<UserUpdate> {
  if (!isObject(record)) return { ok: false, error: { index, field: '$distinct_id', message: 'each update must be a JSON object' } };
  const distinctId = idOf(record.$distinct_id) ?? idOf(record.$user_id) ?? (idOf(record.$device_id) ? `$device:${idOf(record.$device_id)}` : undefined);
  if (distinctId === undefined || distinctId === '') {
    return { ok: false, error: { index, field: '$distinct_id', message: "'$distinct_id' is required (a non-empty string without NUL characters)" } };
  }
  if (overBytes(distinctId, limits.maxDistinctIdBytes)) return { ok: false, error: { index, field: '$distinct_id', message: `'$distinct_id' must be at most ${limits.maxDistinctIdBytes} bytes` } };
  const parsed = parseCommon(record, index, USER_OPERATIONS, USER_MODIFIERS, now, limits);
  return parsed.ok ? { ok: true, update: { ...parsed.update, distinctId } } : parsed;
}

export function parseGroupUpdate(record: unknown, index: number, now: number, limits: IngestLimits): Parsed<GroupUpdate> {
  if (!isObject(record)) return { ok: false, error: { index, field: '$group_key', message: 'each update must be a JSON object' } };
  const groupKey = idOf(record.$group_key);
  const groupId = idOf(record.$group_id);
  if (!groupKey) return { ok: false, error: { index, field: '$group_key', message: "'$group_key' is required (a non-empty string without NUL characters)" } };
  if (groupId === undefined || groupId === '') {
    return { ok: false, error: { index, field: '$group_id', message: "'$group_id' is required (a non-empty string without NUL characters, or a number)" } };
  }
  for (const [field, id] of [['$group_key', groupKey], ['$group_id', groupId]] as const) {
    if (overBytes(id, limits.maxDistinctIdBytes)) return { ok: false, error: { index, field, message: `'${field}' must be at most ${limits.maxDistinctIdBytes} bytes` } };
  }
  const parsed = parseCommon(record, index, GROUP_OPERATIONS, GROUP_MODIFIERS, now, limits);
  return parsed.ok ? { ok: true, update: { ...parsed.update, groupKey, groupId, touchedAt: null } } : parsed;
}

/** Own keys only: "__proto__" or "toString" are property names like any other here. */
const has = (obj: Properties, key: string) => Object.hasOwn(obj, key);
function put(obj: Properties, key: string, value: unknown) {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

/** Equality of list items as Mixpanel's $union and $remove use it: the same JSON. */
const itemKey = (v: unknown): string => (typeof v === 'string' ? `s${v}` : `j${JSON.stringify(v)}`);

/** Mixpanel's $last_seen format: ISO 8601 in UTC, to the second, without a zone suffix. */
export const mixpanelDate = (ms: number) => new Date(ms).toISOString().slice(0, 19);

export type ProfileLimits = Pick<IngestLimits, 'maxProfileProperties' | 'maxProfileValueBytes' | 'maxProfileBytes'>;

/**
 * Applies an update to a profile's properties exactly as Mixpanel defines the operations.
 * `current` null means no profile; the result null means no profile (deleted or never made). An
 * update that would take the profile over its limits is refused whole (the profile stays as it
 * was). Each operation costs about the size of what it changes ($union keeps a set of the list's
 * items), never the size of the profile times the size of the change.
 */
export function applyUpdate(current: Properties | null, update: ProfileUpdate, limits: ProfileLimits): Properties | null | Refusal {
  let props: Properties | null = current ? { ...current } : null;
  const sizes = current ? ProfileSizes.of(current).copy() : new ProfileSizes();
  for (const { op, value } of update.ops) {
    if (op === '$delete') return null;
    if (op === '$unset') {
      if (props) for (const key of value as string[]) if (has(props, key)) {
        delete props[key];
        sizes.remove(key);
      }
      continue;
    }
    const entries = Object.entries(value as Properties);
    if (op === '$remove') {
      if (!props) continue;
      for (const [k, v] of entries) {
        const list = props[k];
        if (!has(props, k) || !Array.isArray(list)) continue;
        const gone = itemKey(v);
        const kept = list.filter((item) => itemKey(item) !== gone);
        put(props, k, kept);
        sizes.set(k, kept);
      }
      continue;
    }
    props ??= {};
    for (const [k, v] of entries) {
      const existing = has(props, k) ? props[k] : undefined;
      switch (op) {
        case '$set':
          put(props, k, v);
          sizes.set(k, v);
          break;
        case '$set_once':
          if (!has(props, k)) {
            put(props, k, v);
            sizes.set(k, v);
          }
          break;
        case '$add':
          if (existing === undefined || typeof existing === 'number') {
            const sum = existing === undefined ? (v as number) : existing + (v as number);
            if (!Number.isFinite(sum)) return new Refusal(`$add.${short(k)}`, `$add.${short(k)}: the sum is out of range for a number`);
            put(props, k, sum);
            sizes.set(k, sum);
          }
          break;
        case '$append':
          if (existing === undefined) {
            put(props, k, [v]);
            sizes.set(k, [v]);
          } else if (Array.isArray(existing)) {
            put(props, k, [...existing, v]);
            sizes.grow(k, [v]);
          }
          break;
        case '$union': {
          const base = existing === undefined ? [] : existing;
          if (!Array.isArray(base)) break;
          const seen = new Set(base.map(itemKey));
          const added: unknown[] = [];
          for (const item of v as unknown[]) {
            const key = itemKey(item);
            if (seen.has(key)) continue;
            seen.add(key);
            added.push(item);
          }
          put(props, k, base.length === 0 ? added : [...base, ...added]);
          if (existing === undefined) sizes.set(k, added);
          else sizes.grow(k, added);
          break;
        }
      }
    }
  }
  const explicit = update.ops.some((o) => o.op === '$set' && has(o.value as Properties, '$last_seen'));
  if (props && update.touchedAt !== null && !explicit) {
    const seen = mixpanelDate(update.touchedAt);
    put(props, '$last_seen', seen);
    sizes.set('$last_seen', seen);
  }
  if (!props) return props;
  const over = sizes.over(limits);
  if (over) return over;
  sizes.remember(props);
  return props;
}
