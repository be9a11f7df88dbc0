import { calendar, calendarProblem, firstOccurrence, once } from '../scheduling/timing.js';
import type { ScheduleTiming } from '../store/schedules-repo.js';

/**
 * When a webhook message sends (seeds 001 and 003), as the API takes it, checked whole, and the
 * calendar arithmetic it needs (croner does the calendar, daylight-saving changes included):
 *   asap       each user as they come to match, once per message (live membership);
 *   scheduled  at a time on days of the week, every N weeks (or a cron expression): each run
 *              sends the users who match then and were never sent this message;
 *   recurring  daily, weekly or monthly at a time, or as_met (each time a user newly matches),
 *              to every qualified user again, within the message limit per user.
 */

export const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Day = (typeof DAYS)[number];
export type Period = 'day' | 'week' | 'month';
export type MessageKind = 'asap' | 'scheduled' | 'recurring' | 'as_met';

export type MessageSchedule =
  | { type: 'asap' }
  | { type: 'scheduled'; at: string; days_of_week: Day[]; every_weeks: number; timezone: string }
  | { type: 'scheduled'; cron: string; timezone: string }
  | { type: 'recurring'; every: 'daily' | 'weekly' | 'monthly'; at: string; day_of_week?: Day; day_of_month?: number; timezone: string; limit?: Limit }
  | { type: 'recurring'; every: 'as_met'; timezone: string; limit?: Limit };

export interface Limit {
  max: number;
  per: Period;
}

/** A schedule the API refuses: `field` is its path in the request body. */
export class ScheduleError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

const AT = /^([01]\d|2[0-3]):([0-5]\d)$/;
const EVERY = ['daily', 'weekly', 'monthly', 'as_met'] as const;
const PERIODS: Period[] = ['day', 'week', 'month'];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function only(v: Record<string, unknown>, allowed: string[], where: string): void {
  const extra = Object.keys(v).find((k) => !allowed.includes(k));
  if (extra !== undefined) throw new ScheduleError(`${where}.${extra}`, `not a field of this schedule; allowed: ${allowed.join(', ')}`);
}

function timezone(v: unknown): string {
  if (v === undefined) return 'UTC';
  if (typeof v !== 'string' || v === '') throw new ScheduleError('schedule.timezone', 'expected an IANA time zone such as "America/Los_Angeles"');
  const problem = calendarProblem('0 0 * * *', v);
  if (problem) throw new ScheduleError('schedule.timezone', problem);
  return v;
}

function at(v: unknown, fallback?: string): string {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'string' || !AT.test(v)) throw new ScheduleError('schedule.at', 'expected a time of day as "HH:MM" (24-hour clock, e.g. "09:00")');
  return v;
}

function day(v: unknown, field: string): Day {
  if (typeof v !== 'string' || !DAYS.includes(v.toLowerCase() as Day)) throw new ScheduleError(field, `expected one of ${DAYS.join(', ')}`);
  return v.toLowerCase() as Day;
}

function whole(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new ScheduleError(field, `expected a whole number from ${min} to ${max}`);
  return v;
}

function limit(v: unknown): Limit | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) throw new ScheduleError('schedule.limit', 'expected {"max": N, "per": "day" | "week" | "month"}');
  only(v, ['max', 'per'], 'schedule.limit');
  if (v.max === undefined) throw new ScheduleError('schedule.limit.max', 'required: how many times one user may be sent the message in a period');
  if (v.per === undefined) throw new ScheduleError('schedule.limit.per', `required: the period the limit counts in, one of ${PERIODS.join(', ')}`);
  if (!PERIODS.includes(v.per as Period)) throw new ScheduleError('schedule.limit.per', `expected one of ${PERIODS.join(', ')}`);
  return { max: whole(v.max, 'schedule.limit.max', 1, 10_000), per: v.per as Period };
}

/** Checks a schedule as the API takes it; fills in its defaults (time zone UTC, every day, every week). */
export function parseSchedule(v: unknown): MessageSchedule {
  if (!isObject(v)) throw new ScheduleError('schedule', 'expected an object with a "type": asap, scheduled or recurring');
  if (v.type === 'asap') {
    only(v, ['type'], 'schedule');
    return { type: 'asap' };
  }
  if (v.type === 'scheduled') {
    const tz = timezone(v.timezone);
    if (v.cron !== undefined) {
      only(v, ['type', 'cron', 'timezone'], 'schedule');
      if (typeof v.cron !== 'string') throw new ScheduleError('schedule.cron', 'expected a cron expression such as "0 9 * * wed"');
      const problem = calendarProblem(v.cron, tz);
      if (problem) throw new ScheduleError('schedule.cron', problem);
      const s = { type: 'scheduled' as const, cron: v.cron, timezone: tz };
      checkOccurs(s);
      return s;
    }
    only(v, ['type', 'at', 'days_of_week', 'every_weeks', 'timezone'], 'schedule');
    if (v.at === undefined) throw new ScheduleError('schedule.at', 'required (or a "cron" expression instead): the time of day it runs, as "HH:MM"');
    let days: Day[] = [...DAYS];
    if (v.days_of_week !== undefined) {
      if (!Array.isArray(v.days_of_week) || v.days_of_week.length === 0) throw new ScheduleError('schedule.days_of_week', `expected a list of one or more of ${DAYS.join(', ')}`);
      days = [...new Set(v.days_of_week.map((d, i) => day(d, `schedule.days_of_week[${i}]`)))];
    }
    const everyWeeks = v.every_weeks === undefined ? 1 : whole(v.every_weeks, 'schedule.every_weeks', 1, 52);
    return { type: 'scheduled', at: at(v.at), days_of_week: days, every_weeks: everyWeeks, timezone: tz };
  }
  if (v.type === 'recurring') {
    if (!EVERY.includes(v.every as (typeof EVERY)[number])) throw new ScheduleError('schedule.every', `expected one of ${EVERY.join(', ')}`);
    const tz = timezone(v.timezone);
    const lim = limit(v.limit);
    if (v.every === 'as_met') {
      only(v, ['type', 'every', 'timezone', 'limit'], 'schedule');
      return { type: 'recurring', every: 'as_met', timezone: tz, ...(lim ? { limit: lim } : {}) };
    }
    const every = v.every as 'daily' | 'weekly' | 'monthly';
    const allowed = ['type', 'every', 'at', 'timezone', 'limit', ...(every === 'weekly' ? ['day_of_week'] : every === 'monthly' ? ['day_of_month'] : [])];
    only(v, allowed, 'schedule');
    return {
      type: 'recurring',
      every,
      at: at(v.at, '09:00'),
      timezone: tz,
      ...(every === 'weekly' ? { day_of_week: v.day_of_week === undefined ? 'mon' : day(v.day_of_week, 'schedule.day_of_week') } : {}),
      ...(every === 'monthly' ? { day_of_month: v.day_of_month === undefined ? 1 : whole(v.day_of_month, 'schedule.day_of_month', 1, 31) } : {}),
      ...(lim ? { limit: lim } : {}),
    };
  }
  throw new ScheduleError('schedule.type', 'expected asap, scheduled or recurring');
}

/** A cron expression that never fires (the 30th of February) is an impossible schedule. */
function checkOccurs(s: MessageSchedule): void {
  const cron = cronOf(s);
  if (cron && firstOccurrence(cron, s.type === 'asap' ? 'UTC' : s.timezone, Date.now()) === null) {
    throw new ScheduleError('schedule.cron', `"${cron}" never occurs`);
  }
}

export function kindOf(s: MessageSchedule): MessageKind {
  if (s.type === 'recurring' && s.every === 'as_met') return 'as_met';
  return s.type;
}

/** Live messages follow cohort membership as it changes: their cohort is watched. */
export const isLive = (kind: MessageKind): boolean => kind === 'asap' || kind === 'as_met';

/** The cron expression of a calendar schedule; undefined for live ones. */
export function cronOf(s: MessageSchedule): string | undefined {
  if (s.type === 'asap' || (s.type === 'recurring' && s.every === 'as_met')) return undefined;
  if ('cron' in s) return s.cron;
  const [h, m] = s.at.split(':').map(Number) as [number, number];
  if (s.type === 'scheduled') return `${m} ${h} * * ${s.days_of_week.map((d) => DAYS.indexOf(d)).join(',')}`;
  if (s.every === 'daily') return `${m} ${h} * * *`;
  if (s.every === 'weekly') return `${m} ${h} * * ${DAYS.indexOf(s.day_of_week ?? 'mon')}`;
  return `${m} ${h} ${s.day_of_month ?? 1} * *`;
}

/**
 * The message's timing in the schedules table: a live message runs once when it starts (to queue
 * the users matching then); a calendar one at each occurrence, in its time zone. A run found more
 * than a day late (no process was up) is skipped, not sent at an hour nobody chose.
 */
export function timingOf(s: MessageSchedule): ScheduleTiming {
  const cron = cronOf(s);
  return cron === undefined ? once : calendar(cron, s.type === 'asap' ? 'UTC' : s.timezone, 24 * 60 * 60 * 1000);
}

/** Days since the epoch of the calendar date at `at` in `timezone`. */
function localDay(at: number, timezone: string): number {
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone: timezone, year: 'numeric', month: '2-digit', day: '2-digit' }).formatToParts(new Date(at));
  const get = (type: string) => Number(parts.find((p) => p.type === type)!.value);
  return Math.floor(Date.UTC(get('year'), get('month') - 1, get('day')) / 86_400_000);
}

/** Weeks (Monday to Sunday, in `timezone`) since the epoch's. 1970-01-01 was a Thursday. */
const weekIndex = (at: number, timezone: string) => Math.floor((localDay(at, timezone) + 3) / 7);

/**
 * Whether a scheduled message sends in the week of `planned`: every `every_weeks` weeks, counted
 * from the week it was created in.
 */
export function sendsInWeekOf(s: MessageSchedule, createdAt: number, planned: number): boolean {
  if (s.type !== 'scheduled' || !('every_weeks' in s) || s.every_weeks === 1) return true;
  return (weekIndex(planned, s.timezone) - weekIndex(createdAt, s.timezone)) % s.every_weeks === 0;
}

/** The limit period `at` falls in, in the message's time zone: "2026-12-05", "week 2918", "2026-12". */
export function periodOf(per: Period, timezone: string, at: number): string {
  const dayNumber = localDay(at, timezone);
  const date = new Date(dayNumber * 86_400_000).toISOString();
  if (per === 'day') return date.slice(0, 10);
  if (per === 'month') return date.slice(0, 7);
  return `week ${weekIndex(at, timezone)}`;
}

export const limitOf = (s: MessageSchedule): Limit | undefined => (s.type === 'recurring' ? s.limit : undefined);
export const timezoneOf = (s: MessageSchedule): string => (s.type === 'asap' ? 'UTC' : s.timezone);

/** A schedule in words, for the command line. */
export function describeSchedule(s: MessageSchedule): string {
  const limit = s.type === 'recurring' && s.limit ? `, at most ${s.limit.max} a ${s.limit.per} per user` : '';
  if (s.type === 'asap') return 'ASAP, as users come to match';
  if (s.type === 'scheduled') {
    if ('cron' in s) return `scheduled "${s.cron}" (${s.timezone})`;
    const weeks = s.every_weeks === 1 ? '' : ` every ${s.every_weeks} weeks`;
    const days = s.days_of_week.length === 7 ? 'every day' : s.days_of_week.join(',');
    return `scheduled ${s.at} ${days}${weeks} (${s.timezone})`;
  }
  if (s.every === 'as_met') return `recurring as users newly match${limit}`;
  const when = s.every === 'weekly' ? ` on ${s.day_of_week ?? 'mon'}` : s.every === 'monthly' ? ` on day ${s.day_of_month ?? 1}` : '';
  return `recurring ${s.every}${when} at ${s.at} (${s.timezone})${limit}`;
}
