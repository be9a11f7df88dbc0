import { Cron } from 'croner';
import type { ScheduleTiming } from '../store/schedules-repo.js';

/**
 * When a schedule runs. Three shapes:
 *   every N ms         the next run is the planned one plus whole intervals, so the phase never
 *                      drifts with how long a run took or how late it started;
 *   cron + time zone   the next occurrence after now, in that zone (croner does the calendar,
 *                      daylight-saving changes included);
 *   neither            once each time it is asked for (next_run_at set), then not again.
 *
 * Runs missed while no process was up: a schedule that is due is run once when a process finds
 * it, however many of its occurrences passed meanwhile; they are not replayed one by one. With
 * max_lateness_ms set, a run found later than that after its planned time is skipped instead
 * (counted as missed) and the schedule moves on to its next occurrence.
 */

export const once: ScheduleTiming = { every_ms: null, cron: null, timezone: null, max_lateness_ms: null };
export const every = (ms: number): ScheduleTiming => ({ ...once, every_ms: ms });
export const calendar = (cron: string, timezone: string, maxLatenessMs: number | null = null): ScheduleTiming => ({ ...once, cron, timezone, max_lateness_ms: maxLatenessMs });

/** The next run after one planned for `planned` and finished (or skipped) at `now`; null when it does not repeat. */
export function nextRun(t: ScheduleTiming, planned: number, now: number): number | null {
  if (t.every_ms !== null && t.every_ms > 0) return planned + (Math.floor(Math.max(0, now - planned) / t.every_ms) + 1) * t.every_ms;
  if (t.cron !== null) return firstOccurrence(t.cron, t.timezone ?? 'UTC', now);
  return null;
}

/** The first occurrence of `cron` in `timezone` strictly after `after`; null when there is none. */
export function firstOccurrence(cron: string, timezone: string, after: number): number | null {
  const next = new Cron(cron, { timezone, paused: true }).nextRun(new Date(after));
  return next ? next.getTime() : null;
}

/** Whether a run planned for `planned` is found too late to run at `now`: skipped, not run. */
export const tooLate = (t: ScheduleTiming, planned: number, now: number): boolean => t.max_lateness_ms !== null && now - planned > t.max_lateness_ms;

/** Why a cron expression and time zone cannot be used, as a person reads it; undefined when they can. */
export function calendarProblem(cron: string, timezone: string): string | undefined {
  try {
    Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    return `"${timezone}" is not an IANA time zone (e.g. "America/Los_Angeles")`;
  }
  try {
    new Cron(cron, { timezone, paused: true });
  } catch (err) {
    return `"${cron}" is not a cron expression: ${(err as Error).message}`;
  }
  return undefined;
}
