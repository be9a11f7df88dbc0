import { DefinitionError, parseDefinition, type PropertyFilter } from '../cohorts/definition.js';
import { calendarProblem } from '../scheduling/timing.js';

/**
 * A saved report's query, as the API takes it, checked whole with the offending path named:
 *   insights  one event (or every event) measured per time bucket: total, unique users, or the
 *             sum, average, min or max of a numeric property; filtered by event and profile
 *             properties (the cohort filter language) and optionally a cohort; optionally broken
 *             down by one property into its top N segments;
 *   funnels   ordered steps (events with filters) completed within a window; the metric is the
 *             conversion rate (%) or the number of users completing, per bucket of first steps.
 */

export type Interval = 'hour' | 'day' | 'week';
export type Measure = { type: 'total' | 'unique' } | { type: 'sum' | 'average' | 'min' | 'max'; property: string };

export interface Breakdown {
  property: string;
  /** Where the property is read: the event's properties or the user's profile. */
  on: 'event' | 'profile';
  limit: number;
}

interface Common {
  interval: Interval;
  timezone: string;
  profile_where: PropertyFilter[];
  cohort_id: number | null;
  breakdown: Breakdown | null;
}

export interface InsightsQuery extends Common {
  /** null: every event. */
  event: string | null;
  measure: Measure;
  where: PropertyFilter[];
}

export interface FunnelStep {
  event: string;
  where: PropertyFilter[];
}

export interface FunnelsQuery extends Common {
  steps: FunnelStep[];
  /** How long after the first step the last may come. */
  window_ms: number;
  measure: 'conversion' | 'completed';
}

export type ReportType = 'insights' | 'funnels';
export type ReportQuery = InsightsQuery | FunnelsQuery;

export class QueryError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

const INTERVALS: Interval[] = ['hour', 'day', 'week'];
const MAX_WINDOW_DAYS = 90;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function only(v: Record<string, unknown>, allowed: string[], path: string): void {
  const extra = Object.keys(v).find((k) => !allowed.includes(k));
  if (extra !== undefined) throw new QueryError(`${path}.${extra}`, `unknown field; allowed: ${allowed.join(', ')}`);
}

function name(v: unknown, path: string, what: string): string {
  if (typeof v !== 'string' || v === '' || v.length > 255 || /["\\]/.test(v)) throw new QueryError(path, `expected ${what} (1-255 characters, no quotes or backslashes)`);
  return v;
}

function filters(v: unknown, path: string): PropertyFilter[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > 50) throw new QueryError(path, 'expected a list of at most 50 property filters');
  return v.map((f, i) => {
    try {
      const parsed = parseDefinition(f, `${path}[${i}]`);
      if (!('property' in parsed)) throw new QueryError(`${path}[${i}]`, 'expected a property filter {"property", "op", "value"}');
      return parsed as PropertyFilter;
    } catch (err) {
      if (err instanceof DefinitionError) throw new QueryError(err.path, err.message.slice(err.path.length + 2));
      throw err;
    }
  });
}

function common(v: Record<string, unknown>, path: string): Common {
  const interval = v.interval ?? 'day';
  if (!INTERVALS.includes(interval as Interval)) throw new QueryError(`${path}.interval`, `expected one of ${INTERVALS.join(', ')}`);
  const timezone = v.timezone ?? 'UTC';
  if (typeof timezone !== 'string') throw new QueryError(`${path}.timezone`, 'expected an IANA time zone such as "America/Los_Angeles"');
  const problem = calendarProblem('0 0 * * *', timezone);
  if (problem) throw new QueryError(`${path}.timezone`, problem);
  let cohort: number | null = null;
  if (v.cohort_id !== undefined && v.cohort_id !== null) {
    if (!Number.isSafeInteger(v.cohort_id) || (v.cohort_id as number) < 1) throw new QueryError(`${path}.cohort_id`, 'expected a cohort id');
    cohort = v.cohort_id as number;
  }
  let breakdown: Breakdown | null = null;
  if (v.breakdown !== undefined && v.breakdown !== null) {
    const b = v.breakdown;
    if (!isObject(b)) throw new QueryError(`${path}.breakdown`, 'expected {"property", "on": "event" | "profile", "limit"?}');
    only(b, ['property', 'on', 'limit'], `${path}.breakdown`);
    const on = b.on ?? 'event';
    if (on !== 'event' && on !== 'profile') throw new QueryError(`${path}.breakdown.on`, 'expected "event" or "profile"');
    const limit = b.limit ?? 10;
    if (!Number.isInteger(limit) || (limit as number) < 1 || (limit as number) > 100) throw new QueryError(`${path}.breakdown.limit`, 'expected a whole number from 1 to 100');
    breakdown = { property: name(b.property, `${path}.breakdown.property`, 'a property name'), on, limit: limit as number };
  }
  return { interval: interval as Interval, timezone, profile_where: filters(v.profile_where, `${path}.profile_where`), cohort_id: cohort, breakdown };
}

export function parseQuery(type: unknown, v: unknown): { type: ReportType; query: ReportQuery } {
  if (type !== 'insights' && type !== 'funnels') throw new QueryError('type', 'expected "insights" or "funnels"');
  if (!isObject(v)) throw new QueryError('query', 'expected an object');
  if (type === 'insights') {
    only(v, ['event', 'measure', 'where', 'profile_where', 'cohort_id', 'breakdown', 'interval', 'timezone'], 'query');
    const event = v.event === undefined || v.event === null ? null : name(v.event, 'query.event', 'an event name, or null for every event');
    const m = v.measure ?? { type: 'total' };
    if (!isObject(m)) throw new QueryError('query.measure', 'expected {"type": "total" | "unique" | "sum" | "average" | "min" | "max", "property"?}');
    only(m, ['type', 'property'], 'query.measure');
    let measure: Measure;
    if (m.type === 'total' || m.type === 'unique') {
      if (m.property !== undefined) throw new QueryError('query.measure.property', `${m.type} counts ${m.type === 'total' ? 'events' : 'users'}: it takes no property`);
      measure = { type: m.type };
    } else if (m.type === 'sum' || m.type === 'average' || m.type === 'min' || m.type === 'max') {
      measure = { type: m.type, property: name(m.property, 'query.measure.property', 'the numeric event property to aggregate') };
    } else throw new QueryError('query.measure.type', 'expected one of total, unique, sum, average, min, max');
    return { type, query: { event, measure, where: filters(v.where, 'query.where'), ...common(v, 'query') } };
  }
  only(v, ['steps', 'window_days', 'window_hours', 'measure', 'profile_where', 'cohort_id', 'breakdown', 'interval', 'timezone'], 'query');
  if (!Array.isArray(v.steps) || v.steps.length < 2 || v.steps.length > 20) throw new QueryError('query.steps', 'expected 2 to 20 steps, each {"event", "where"?}');
  const steps = v.steps.map((s, i) => {
    if (!isObject(s)) throw new QueryError(`query.steps[${i}]`, 'expected {"event", "where"?}');
    only(s, ['event', 'where'], `query.steps[${i}]`);
    return { event: name(s.event, `query.steps[${i}].event`, 'an event name'), where: filters(s.where, `query.steps[${i}].where`) };
  });
  if (v.window_days !== undefined && v.window_hours !== undefined) throw new QueryError('query.window_hours', 'give window_days or window_hours, not both');
  let windowMs = 7 * 86_400_000;
  if (v.window_days !== undefined) {
    if (typeof v.window_days !== 'number' || !Number.isInteger(v.window_days) || v.window_days < 1 || v.window_days > MAX_WINDOW_DAYS) throw new QueryError('query.window_days', `expected a whole number of days from 1 to ${MAX_WINDOW_DAYS}`);
    windowMs = v.window_days * 86_400_000;
  }
  if (v.window_hours !== undefined) {
    if (typeof v.window_hours !== 'number' || !Number.isInteger(v.window_hours) || v.window_hours < 1 || v.window_hours > MAX_WINDOW_DAYS * 24) throw new QueryError('query.window_hours', `expected a whole number of hours from 1 to ${MAX_WINDOW_DAYS * 24}`);
    windowMs = v.window_hours * 3_600_000;
  }
  const measure = v.measure ?? 'conversion';
  if (measure !== 'conversion' && measure !== 'completed') throw new QueryError('query.measure', 'expected "conversion" (the rate completing, %) or "completed" (the users completing)');
  return { type, query: { steps, window_ms: windowMs, measure, ...common(v, 'query') } };
}
