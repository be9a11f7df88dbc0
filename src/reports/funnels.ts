import type { FunnelRow } from '../store/report-sql.js';

export interface FunnelCounts {
  /** Users who did the first step in the bucket, per bucket and segment. */
  entered: Map<string, number[]>;
  /** Of those, the users who then did every step, in order, within the window. */
  completed: Map<string, number[]>;
}

/**
 * Matches a funnel's steps in one pass over the events, ordered by user and time. A user enters a
 * bucket with their first first-step event in it (counted once per bucket, as Mixpanel counts
 * uniques), and completes it if the later steps follow in order, each after the one before and
 * all within `windowMs` of that first step. The segment is the first step's (its event's property,
 * or the profile's).
 */
export function countFunnel(rows: Iterable<FunnelRow>, steps: number, bounds: number[], windowMs: number, segmentKey: (s: string | null) => string): FunnelCounts {
  const buckets = bounds.length - 1;
  const out: FunnelCounts = { entered: new Map(), completed: new Map() };
  const add = (m: Map<string, number[]>, seg: string, b: number) => {
    let arr = m.get(seg);
    if (!arr) m.set(seg, (arr = new Array<number>(buckets).fill(0)));
    arr[b]!++;
  };
  let user: FunnelRow[] = [];
  const finish = () => {
    const seen = new Set<number>();
    for (let i = 0; i < user.length; i++) {
      const start = user[i]!;
      if ((start.m & 1) === 0 || start.t < bounds[0]! || start.t >= bounds[buckets]!) continue;
      const b = bucketIndex(bounds, start.t);
      if (seen.has(b)) continue;
      seen.add(b);
      const seg = segmentKey(start.s);
      add(out.entered, seg, b);
      let step = 1;
      for (let j = i + 1; j < user.length && step < steps; j++) {
        const e = user[j]!;
        if (e.t - start.t > windowMs) break;
        if (e.m & (1 << step)) step++;
      }
      if (step === steps) add(out.completed, seg, b);
    }
    user = [];
  };
  for (const r of rows) {
    if (user.length > 0 && user[0]!.u !== r.u) finish();
    user.push(r);
  }
  if (user.length > 0) finish();
  return out;
}

function bucketIndex(bounds: number[], t: number): number {
  let lo = 0;
  let hi = bounds.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (bounds[mid]! <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
