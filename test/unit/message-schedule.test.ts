import { describe, expect, it } from 'vitest';
import { cronOf, describeSchedule, parseSchedule, periodOf, ScheduleError, sendsInWeekOf, timingOf } from '../../src/messages/schedule.js';
import { formBody, userJson } from '../../src/messages/wire.js';
import { firstOccurrence, nextRun } from '../../src/scheduling/timing.js';

describe('message schedules', () => {
  it('fill in their defaults and become cron expressions in their time zone', () => {
    const weekly = parseSchedule({ type: 'scheduled', at: '09:00', days_of_week: ['WED', 'fri', 'wed'], timezone: 'America/Los_Angeles' });
    expect(weekly).toEqual({ type: 'scheduled', at: '09:00', days_of_week: ['wed', 'fri'], every_weeks: 1, timezone: 'America/Los_Angeles' });
    expect(cronOf(weekly)).toBe('0 9 * * 3,5');
    expect(cronOf(parseSchedule({ type: 'scheduled', at: '23:45' }))).toBe('45 23 * * 0,1,2,3,4,5,6');
    expect(cronOf(parseSchedule({ type: 'recurring', every: 'daily' }))).toBe('0 9 * * *');
    expect(cronOf(parseSchedule({ type: 'recurring', every: 'weekly', day_of_week: 'sun', at: '07:05' }))).toBe('5 7 * * 0');
    expect(cronOf(parseSchedule({ type: 'recurring', every: 'monthly', day_of_month: 31 }))).toBe('0 9 31 * *');
    expect(cronOf(parseSchedule({ type: 'asap' }))).toBeUndefined();
    expect(timingOf(parseSchedule({ type: 'recurring', every: 'as_met', limit: { max: 1, per: 'day' } }))).toEqual({ every_ms: null, cron: null, timezone: null, max_lateness_ms: null });
    expect(timingOf(weekly)).toMatchObject({ cron: '0 9 * * 3,5', timezone: 'America/Los_Angeles', max_lateness_ms: 86_400_000 });
  });

  it('run at 09:00 local time on both sides of a daylight-saving change', () => {
    const timing = timingOf(parseSchedule({ type: 'scheduled', at: '09:00', days_of_week: ['wed'], timezone: 'America/Los_Angeles' }));
    // PST (UTC-8) on 4 March 2026, PDT (UTC-7) from 8 March; back to PST on 1 November.
    const first = firstOccurrence(timing.cron!, timing.timezone!, Date.UTC(2026, 2, 3))!;
    expect(new Date(first).toISOString()).toBe('2026-03-04T17:00:00.000Z');
    expect(new Date(nextRun(timing, first, first + 1000)!).toISOString()).toBe('2026-03-11T16:00:00.000Z');
    const autumn = firstOccurrence(timing.cron!, timing.timezone!, Date.UTC(2026, 9, 29))!;
    expect(new Date(autumn).toISOString()).toBe('2026-11-04T17:00:00.000Z');
  });

  it('every N weeks: sends in the week it was made in and every Nth after, in its time zone', () => {
    const s = parseSchedule({ type: 'scheduled', at: '09:00', days_of_week: ['mon'], every_weeks: 2, timezone: 'Pacific/Auckland' });
    const created = Date.UTC(2026, 11, 1); // Tuesday 1 December, 13:00 in Auckland
    const mondays = [7, 14, 21, 28].map((d) => Date.UTC(2026, 11, d - 1, 20)); // 09:00 Monday in Auckland is 20:00 UTC the day before
    expect(mondays.map((t) => sendsInWeekOf(s, created, t))).toEqual([false, true, false, true]);
    expect(sendsInWeekOf(parseSchedule({ type: 'scheduled', at: '09:00' }), created, mondays[0]!)).toBe(true);
  });

  it('count message limits in calendar periods of their time zone', () => {
    const t = Date.UTC(2026, 11, 5, 7); // Saturday 5 December 07:00 UTC: still Friday in Los Angeles
    expect(periodOf('day', 'America/Los_Angeles', t)).toBe('2026-12-04');
    expect(periodOf('day', 'UTC', t)).toBe('2026-12-05');
    expect(periodOf('month', 'UTC', Date.UTC(2026, 11, 31, 23))).toBe('2026-12');
    expect(periodOf('month', 'Asia/Tokyo', Date.UTC(2026, 11, 31, 23))).toBe('2027-01');
    // Monday to Sunday: a Sunday and the Monday after are in different weeks.
    expect(periodOf('week', 'UTC', Date.UTC(2026, 11, 6))).not.toBe(periodOf('week', 'UTC', Date.UTC(2026, 11, 7)));
    expect(periodOf('week', 'UTC', Date.UTC(2026, 11, 7))).toBe(periodOf('week', 'UTC', Date.UTC(2026, 11, 13, 23)));
  });

  it('are refused with the field that is wrong', () => {
    const refused = (v: unknown) => {
      try {
        parseSchedule(v);
      } catch (err) {
        if (err instanceof ScheduleError) return err.field;
        throw err;
      }
      return 'accepted';
    };
    expect(refused('asap')).toBe('schedule');
    expect(refused({ type: 'weekly' })).toBe('schedule.type');
    expect(refused({ type: 'scheduled' })).toBe('schedule.at');
    expect(refused({ type: 'scheduled', at: '9:00' })).toBe('schedule.at');
    expect(refused({ type: 'scheduled', at: '09:00', every_weeks: 0 })).toBe('schedule.every_weeks');
    expect(refused({ type: 'scheduled', at: '09:00', days_of_week: [] })).toBe('schedule.days_of_week');
    expect(refused({ type: 'scheduled', at: '09:00', timezone: 'PST8PDT-ish' })).toBe('schedule.timezone');
    expect(refused({ type: 'scheduled', cron: '61 * * * *' })).toBe('schedule.cron');
    expect(refused({ type: 'scheduled', cron: '0 0 31 4 *' })).toBe('schedule.cron');
    expect(refused({ type: 'scheduled', cron: '0 9 * * *', at: '09:00' })).toBe('schedule.at');
    expect(refused({ type: 'recurring', every: 'daily', limit: { per: 'day' } })).toBe('schedule.limit.max');
    expect(refused({ type: 'recurring', every: 'daily', limit: { max: 3 } })).toBe('schedule.limit.per');
    expect(refused({ type: 'recurring', every: 'daily', limit: { max: 3, per: 'year' } })).toBe('schedule.limit.per');
    expect(refused({ type: 'recurring', every: 'as_met', at: '09:00' })).toBe('schedule.at');
    expect(refused({ type: 'recurring', every: 'daily', day_of_week: 'mon' })).toBe('schedule.day_of_week');
    expect(refused({ type: 'scheduled', limit: { max: 1, per: 'day' }, at: '09:00' })).toBe('schedule.limit');
  });

  it('say what they do in words', () => {
    expect(describeSchedule(parseSchedule({ type: 'scheduled', at: '09:00', days_of_week: ['wed'], every_weeks: 2, timezone: 'America/Los_Angeles' }))).toBe('scheduled 09:00 wed every 2 weeks (America/Los_Angeles)');
    expect(describeSchedule(parseSchedule({ type: 'recurring', every: 'weekly', limit: { max: 2, per: 'month' } }))).toBe('recurring weekly on mon at 09:00 (UTC), at most 2 a month per user');
  });
});

describe('the webhook message body', () => {
  it('is a form with one users parameter that decodes to the JSON list, whatever the text holds', () => {
    const props = JSON.stringify({ $email: 'a+b@example.com', note: '100% & more = ok?', city: 'Zürich 🏔', plan: 'pro' });
    const body = formBody([userJson('id with spaces&=+', props, null), userJson('ünï', props, ['plan', 'missing'])]);
    expect(body.startsWith('users=')).toBe(true);
    expect(body.slice('users='.length)).not.toMatch(/[ &=+]/);
    const users = JSON.parse(new URLSearchParams(body).get('users')!);
    expect(users).toEqual([
      { $distinct_id: 'id with spaces&=+', $properties: JSON.parse(props) },
      { $distinct_id: 'ünï', $properties: { plan: 'pro' } },
    ]);
    expect(JSON.parse(new URLSearchParams(formBody([userJson('gone', null, null)])).get('users')!)).toEqual([{ $distinct_id: 'gone', $properties: {} }]);
  });
});
