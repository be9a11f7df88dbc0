/**
 * Cohort definitions: a JSON tree of property filters, behavioural filters and other cohorts,
 * combined with and / or / not to any depth. `parseDefinition` checks an untrusted value and names
 * the offending path (`definition.and[2].count.value`) in its error.
 */

export type Scalar = string | number | boolean;
/** An ISO 8601 date or date-time, or a time relative to evaluation. */
export type DateValue = string | { days_ago: number };

export type PropertyFilter =
  | { property: string; op: 'equals' | 'not_equals'; value: Scalar }
  | { property: string; op: 'contains' | 'not_contains'; value: string }
  | { property: string; op: 'greater_than' | 'less_than'; value: number }
  | { property: string; op: 'between'; value: [number, number] }
  | { property: string; op: 'before' | 'after'; value: DateValue }
  | { property: string; op: 'between_dates'; value: [DateValue, DateValue] }
  | { property: string; op: 'set' | 'not_set' }
  | { property: string; op: 'in' | 'not_in'; value: Scalar[] };

export interface EventFilter {
  event: string;
  /** How many times in the window; omitted: at least once. */
  count?: { op: 'at_least' | 'at_most' | 'exactly'; value: number };
  within_days: number;
  /** Event property filters: only events matching all of them count. */
  where?: PropertyFilter[];
}

export type Definition = { and: Definition[] } | { or: Definition[] } | { not: Definition } | { cohort: number } | EventFilter | PropertyFilter;

export class DefinitionError extends Error {
  readonly path: string;
  /** The same place as a JSON pointer (`/definition/and/1/within_days`), for callers that point at it. */
  readonly pointer: string;
  /** `field`: an unknown key of the object at `path`; kept apart because it may hold any character, dots and brackets included. */
  constructor(path: string, message: string, field?: string) {
    const at = field === undefined ? path : `${path}.${field}`;
    super(`${at}: ${message}`);
    this.path = at;
    this.pointer = toPointer(path) + (field === undefined ? '' : `/${field.replace(/~/g, '~0').replace(/\//g, '~1')}`);
  }
}

/** `definition.and[1].within_days` → `/definition/and/1/within_days`; the dotted form's keys are the definition's own words. */
const toPointer = (path: string) => path.replace(/\[(\d+)\]/g, '.$1').split('.').map((key) => `/${key}`).join('');

const PROPERTY_OPS = ['equals', 'not_equals', 'contains', 'not_contains', 'greater_than', 'less_than', 'between', 'before', 'after', 'between_dates', 'set', 'not_set', 'in', 'not_in'] as const;
const COUNT_OPS = ['at_least', 'at_most', 'exactly'] as const;
/** Deeper trees are refused: they come from generators gone wrong, not from people. */
const MAX_DEPTH = 32;
const MAX_DAYS = 3650;
const MAX_LIST = 1000;
// ISO 8601 date, or date-time with optional seconds, fraction and zone.
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isScalar = (v: unknown): v is Scalar => typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
const describe = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'an object' : JSON.stringify(v));

/** Checks `value` and answers it typed; throws DefinitionError naming the first thing wrong. */
export function parseDefinition(value: unknown, path = 'definition'): Definition {
  return node(value, path, 0);
}

function node(v: unknown, path: string, depth: number): Definition {
  if (depth > MAX_DEPTH) throw new DefinitionError(path, `nested deeper than ${MAX_DEPTH} levels`);
  if (!isObject(v)) throw new DefinitionError(path, `expected an object (a filter, or and / or / not), got ${describe(v)}`);
  const kinds = ['and', 'or', 'not', 'cohort', 'event', 'property'].filter((k) => k in v);
  if (kinds.length !== 1) {
    throw new DefinitionError(path, kinds.length === 0 ? 'expected one of "and", "or", "not", "cohort", "event" or "property"' : `give only one of ${kinds.map((k) => `"${k}"`).join(', ')}`);
  }
  const kind = kinds[0]!;
  if (kind === 'and' || kind === 'or') {
    only(v, [kind], path);
    const list = v[kind];
    if (!Array.isArray(list) || list.length === 0) throw new DefinitionError(`${path}.${kind}`, 'expected a non-empty list of conditions');
    return { [kind]: list.map((item, i) => node(item, `${path}.${kind}[${i}]`, depth + 1)) } as Definition;
  }
  if (kind === 'not') {
    only(v, ['not'], path);
    return { not: node(v.not, `${path}.not`, depth + 1) };
  }
  if (kind === 'cohort') {
    only(v, ['cohort'], path);
    if (!Number.isSafeInteger(v.cohort) || (v.cohort as number) < 1) throw new DefinitionError(`${path}.cohort`, `expected a cohort id (a positive integer), got ${describe(v.cohort)}`);
    return { cohort: v.cohort as number };
  }
  if (kind === 'event') return eventFilter(v, path);
  return propertyFilter(v, path);
}

function only(v: Record<string, unknown>, allowed: string[], path: string): void {
  const extra = Object.keys(v).filter((k) => !allowed.includes(k));
  if (extra.length > 0) throw new DefinitionError(path, `unknown field; allowed here: ${allowed.join(', ')}`, extra[0]);
}

function name(v: unknown, path: string, what: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 255) throw new DefinitionError(path, `expected ${what} (1-255 characters), got ${describe(v)}`);
  if (/["\\]/.test(v)) throw new DefinitionError(path, `${what} cannot contain quotes or backslashes`);
  return v;
}

function wholeNumber(v: unknown, path: string, min: number, max: number): number {
  if (!Number.isSafeInteger(v) || (v as number) < min || (v as number) > max) throw new DefinitionError(path, `expected a whole number from ${min} to ${max}, got ${describe(v)}`);
  return v as number;
}

function eventFilter(v: Record<string, unknown>, path: string): EventFilter {
  only(v, ['event', 'count', 'within_days', 'where'], path);
  const filter: EventFilter = { event: name(v.event, `${path}.event`, 'an event name'), within_days: wholeNumber(v.within_days, `${path}.within_days`, 1, MAX_DAYS) };
  if (v.count !== undefined) {
    if (!isObject(v.count)) throw new DefinitionError(`${path}.count`, `expected {"op": "at_least" | "at_most" | "exactly", "value": N}, got ${describe(v.count)}`);
    only(v.count, ['op', 'value'], `${path}.count`);
    const op = v.count.op;
    if (!COUNT_OPS.includes(op as never)) throw new DefinitionError(`${path}.count.op`, `expected one of ${COUNT_OPS.join(', ')}, got ${describe(op)}`);
    filter.count = { op: op as (typeof COUNT_OPS)[number], value: wholeNumber(v.count.value, `${path}.count.value`, 0, 1_000_000_000) };
  }
  if (v.where !== undefined) {
    if (!Array.isArray(v.where)) throw new DefinitionError(`${path}.where`, 'expected a list of event property filters');
    filter.where = v.where.map((w, i) => {
      const p = `${path}.where[${i}]`;
      if (!isObject(w) || !('property' in w)) throw new DefinitionError(p, `expected an event property filter {"property", "op", "value"}, got ${describe(w)}`);
      return propertyFilter(w, p);
    });
  }
  return filter;
}

function dateValue(v: unknown, path: string): DateValue {
  if (typeof v === 'string') {
    if (!ISO_DATE.test(v) || Number.isNaN(Date.parse(v))) throw new DefinitionError(path, `expected an ISO 8601 date such as "2024-05-31" or "2024-05-31T12:00:00", got ${describe(v)}`);
    return v;
  }
  if (isObject(v) && 'days_ago' in v) {
    only(v, ['days_ago'], path);
    return { days_ago: wholeNumber(v.days_ago, `${path}.days_ago`, 0, MAX_DAYS) };
  }
  throw new DefinitionError(path, `expected an ISO 8601 date or {"days_ago": N}, got ${describe(v)}`);
}

function pair<T>(v: unknown, path: string, item: (x: unknown, p: string) => T): [T, T] {
  if (!Array.isArray(v) || v.length !== 2) throw new DefinitionError(path, `expected a list of two bounds [low, high], got ${describe(v)}`);
  return [item(v[0], `${path}[0]`), item(v[1], `${path}[1]`)];
}

function finite(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new DefinitionError(path, `expected a number, got ${describe(v)}`);
  return v;
}

function propertyFilter(v: Record<string, unknown>, path: string): PropertyFilter {
  const property = name(v.property, `${path}.property`, 'a property name');
  const op = v.op;
  if (!PROPERTY_OPS.includes(op as never)) throw new DefinitionError(`${path}.op`, `expected one of ${PROPERTY_OPS.join(', ')}, got ${describe(op)}`);
  const at = `${path}.value`;
  switch (op as (typeof PROPERTY_OPS)[number]) {
    case 'set':
    case 'not_set':
      only(v, ['property', 'op'], path);
      return { property, op: op as 'set' | 'not_set' };
    case 'equals':
    case 'not_equals':
      only(v, ['property', 'op', 'value'], path);
      if (!isScalar(v.value)) throw new DefinitionError(at, `expected a string, number or boolean, got ${describe(v.value)}`);
      return { property, op: op as 'equals', value: v.value };
    case 'contains':
    case 'not_contains':
      only(v, ['property', 'op', 'value'], path);
      if (typeof v.value !== 'string' || v.value === '') throw new DefinitionError(at, `expected a non-empty string, got ${describe(v.value)}`);
      return { property, op: op as 'contains', value: v.value };
    case 'greater_than':
    case 'less_than':
      only(v, ['property', 'op', 'value'], path);
      return { property, op: op as 'greater_than', value: finite(v.value, at) };
    case 'between': {
      only(v, ['property', 'op', 'value'], path);
      const [low, high] = pair(v.value, at, finite);
      if (low > high) throw new DefinitionError(at, `the low bound ${low} is above the high bound ${high}`);
      return { property, op: 'between', value: [low, high] };
    }
    case 'before':
    case 'after':
      only(v, ['property', 'op', 'value'], path);
      return { property, op: op as 'before', value: dateValue(v.value, at) };
    case 'between_dates':
      only(v, ['property', 'op', 'value'], path);
      return { property, op: 'between_dates', value: pair(v.value, at, dateValue) };
    case 'in':
    case 'not_in': {
      only(v, ['property', 'op', 'value'], path);
      if (!Array.isArray(v.value) || v.value.length === 0 || v.value.length > MAX_LIST) throw new DefinitionError(at, `expected a list of 1 to ${MAX_LIST} values`);
      const list = v.value.map((x, i) => {
        if (!isScalar(x)) throw new DefinitionError(`${at}[${i}]`, `expected a string, number or boolean, got ${describe(x)}`);
        return x;
      });
      return { property, op: op as 'in', value: list };
    }
  }
}

/** Every cohort a definition names, for reference checks. */
export function referencedCohorts(d: Definition): number[] {
  if ('and' in d) return d.and.flatMap(referencedCohorts);
  if ('or' in d) return d.or.flatMap(referencedCohorts);
  if ('not' in d) return referencedCohorts(d.not);
  if ('cohort' in d) return [d.cohort];
  return [];
}
