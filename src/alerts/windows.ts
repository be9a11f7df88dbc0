import { calendarProblem } from '../scheduling/timing.js';
import { DAYS, type Day } from '../messages/schedule.js';

/**
 * When an alert may notify: days of the week and hours in a time zone. They limit notifying, not
 * checking: a crossing found outside them is recorded in the alert's history, not sent then nor
 * later; the alert stays unmuted, so the first check inside the window that still finds the metric
 * crossed notifies.
 */
export interface Windows {
  days_of_week: Day[];
  /** "HH:MM", inclusive, and "HH:MM", exclusive; "00:00" to "24:00" is the whole day. */
  from: string;
  to: string;
  timezone: string;
}

export class WindowsError extends Error {}

const TIME = /^([01]\d|2[0-3]):[0-5]\d$|^24:00$/;
const minutes = (t: string) => Number(t.slice(0, 2)) * 60 + Number(t.slice(3));

export function parseWindows(v: unknown): Windows | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw new WindowsError('windows: expected {"days_of_week"?, "from"?, "to"?, "timezone"?}');
  const w = v as Record<string, unknown>;
  const extra = Object.keys(w).find((k) => !['days_of_week', 'from', 'to', 'timezone'].includes(k));
  if (extra) throw new WindowsError(`windows.${extra}: unknown field; allowed: days_of_week, from, to, timezone`);
  const days = w.days_of_week ?? [...DAYS];
  if (!Array.isArray(days) || days.length === 0 || days.some((d) => typeof d !== 'string' || !DAYS.includes(d.toLowerCase() as Day))) throw new WindowsError(`windows.days_of_week: expected a list of one or more of ${DAYS.join(', ')}`);
  const from = w.from ?? '00:00';
  const to = w.to ?? '24:00';
  if (typeof from !== 'string' || !TIME.test(from)) throw new WindowsError('windows.from: expected "HH:MM"');
  if (typeof to !== 'string' || !TIME.test(to)) throw new WindowsError('windows.to: expected "HH:MM" (or "24:00")');
  if (minutes(from) >= minutes(to)) throw new WindowsError('windows.to: must be after windows.from');
  const timezone = w.timezone ?? 'UTC';
  if (typeof timezone !== 'string' || calendarProblem('0 0 * * *', timezone)) throw new WindowsError(`windows.timezone: ${JSON.stringify(timezone)} is not an IANA time zone`);
  return { days_of_week: [...new Set((days as string[]).map((d) => d.toLowerCase() as Day))], from, to, timezone };
}

export function inWindow(w: Windows | null, at: number): boolean {
  if (!w) return true;
  const parts = new Intl.DateTimeFormat('en-GB', { timeZone: w.timezone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(new Date(at));
  const get = (t: string) => parts.find((p) => p.type === t)!.value;
  const day = get('weekday').toLowerCase().slice(0, 3) as Day;
  const m = Number(get('hour')) * 60 + Number(get('minute'));
  return w.days_of_week.includes(day) && m >= minutes(w.from) && m < minutes(w.to);
}
