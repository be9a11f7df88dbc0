import { Cron } from 'croner';
import type { Interval } from './query.js';

/**
 * Time buckets in a time zone: hours, days (midnight to midnight) and weeks (from Monday 00:00),
 * as croner's calendar has them, so a day across a daylight-saving change is 23 or 25 hours long.
 */

const PATTERN: Record<Interval, string> = { hour: '0 * * * *', day: '0 0 * * *', week: '0 0 * * 1' };
const SPAN: Record<Interval, number> = { hour: 3_600_000, day: 86_400_000, week: 7 * 86_400_000 };
/** Buckets one result may hold. */
export const MAX_BUCKETS = 2000;

const cron = (interval: Interval, timezone: string) => new Cron(PATTERN[interval], { timezone, paused: true });

/** The start of the bucket `t` falls in. */
export function bucketStart(interval: Interval, timezone: string, t: number): number {
  const c = cron(interval, timezone);
  // Step forward from well before t (a bucket is at most a week and a DST hour long).
  let at = c.nextRun(new Date(t - SPAN[interval] - 2 * 3_600_000))!.getTime();
  for (;;) {
    const next = c.nextRun(new Date(at))!.getTime();
    if (next > t) return at;
    at = next;
  }
}

/**
 * The bucket boundaries covering [from, to): the first is the start of from's bucket, the last
 * the end of to's (or of the last bucket starting before to). n + 1 boundaries for n buckets.
 */
export function boundaries(interval: Interval, timezone: string, from: number, to: number): number[] {
  const c = cron(interval, timezone);
  const out = [bucketStart(interval, timezone, from)];
  while (out.at(-1)! < to) {
    if (out.length > MAX_BUCKETS) throw new RangeError(`more than ${MAX_BUCKETS} ${interval}s between from and to: ask for a shorter range or a longer interval`);
    out.push(c.nextRun(new Date(out.at(-1)!))!.getTime());
  }
  return out;
}

/** The last whole bucket before `now`, and the one before it: [start, end) of each. */
export function lastWholeBuckets(interval: Interval, timezone: string, now: number, count: number): number[] {
  const end = bucketStart(interval, timezone, now);
  let from = end;
  for (let i = 0; i < count; i++) from = bucketStart(interval, timezone, from - 1);
  return boundaries(interval, timezone, from, end);
}
