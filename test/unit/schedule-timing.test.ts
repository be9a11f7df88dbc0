import { describe, expect, it } from 'vitest';
import { calendar, calendarProblem, every, nextRun, once, tooLate } from '../../src/scheduling/timing.js';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

describe('schedule timing', () => {
  it('keeps an interval on its own grid, however late or long a run was', () => {
    const planned = at('2026-01-01T00:00:00Z');
    const t = every(30 * 60_000);
    expect(iso(nextRun(t, planned, planned + 5_000))).toBe('2026-01-01T00:30:00.000Z');
    // A run that took 40 minutes: the 00:30 run is not made up, 01:00 is next.
    expect(iso(nextRun(t, planned, planned + 40 * 60_000))).toBe('2026-01-01T01:00:00.000Z');
    // Found three hours late (no process was up): run once now, then back on the grid.
    expect(iso(nextRun(t, planned, at('2026-01-01T03:10:00Z')))).toBe('2026-01-01T03:30:00.000Z');
    // Exactly on a grid point: the next one, never the same.
    expect(iso(nextRun(t, planned, at('2026-01-01T00:30:00Z')))).toBe('2026-01-01T01:00:00.000Z');
  });

  it('runs a calendar schedule at local time in its zone, across daylight-saving changes', () => {
    const t = calendar('0 9 * * 3', 'America/Los_Angeles');
    // 9:00 on Wednesdays: 17:00 UTC in winter (PST), 16:00 UTC once daylight saving started (8 March 2026).
    expect(iso(nextRun(t, 0, at('2026-03-01T00:00:00Z')))).toBe('2026-03-04T17:00:00.000Z');
    expect(iso(nextRun(t, 0, at('2026-03-04T17:00:00Z')))).toBe('2026-03-11T16:00:00.000Z');
    // A local time the spring change skips runs at the first moment after the gap (03:00 EDT)…
    const skipped = calendar('30 2 * * *', 'America/New_York');
    expect(iso(nextRun(skipped, 0, at('2026-03-08T05:00:00Z')))).toBe('2026-03-08T07:00:00.000Z');
    // …and one the autumn change repeats runs once, the first time.
    const repeated = calendar('30 1 * * *', 'America/New_York');
    expect(iso(nextRun(repeated, 0, at('2026-11-01T04:00:00Z')))).toBe('2026-11-01T05:30:00.000Z');
    expect(iso(nextRun(repeated, 0, at('2026-11-01T05:30:00Z')))).toBe('2026-11-02T06:30:00.000Z');
  });

  it('catches up a missed calendar run once, then moves to the next occurrence after now', () => {
    const t = calendar('0 * * * *', 'UTC');
    expect(iso(nextRun(t, at('2026-01-01T00:00:00Z'), at('2026-01-01T05:20:00Z')))).toBe('2026-01-01T06:00:00.000Z');
  });

  it('does not repeat a one-off', () => {
    expect(nextRun(once, 1000, 2000)).toBeNull();
  });

  it('skips a run found later than its max lateness', () => {
    const t = calendar('0 9 * * *', 'UTC', 60 * 60_000);
    expect(tooLate(t, at('2026-01-01T09:00:00Z'), at('2026-01-01T09:59:00Z'))).toBe(false);
    expect(tooLate(t, at('2026-01-01T09:00:00Z'), at('2026-01-01T10:01:00Z'))).toBe(true);
    expect(tooLate(every(1000), 0, 10 ** 12)).toBe(false);
  });

  it('explains a bad cron expression or time zone', () => {
    expect(calendarProblem('0 9 * * 3', 'America/Los_Angeles')).toBeUndefined();
    expect(calendarProblem('0 9 * * 3', 'Mars/Olympus')).toBe('"Mars/Olympus" is not an IANA time zone (e.g. "America/Los_Angeles")');
    expect(calendarProblem('every tuesday', 'UTC')).toMatch(/^"every tuesday" is not a cron expression: /);
  });
});
