import { evaluationProblem } from '../cohorts/cohort-admin.js';
import { cohortDefinitions } from '../store/cohorts-repo.js';
import type { Store } from '../store/database.js';
import { isPermanentFailure } from '../store/failures.js';
import { dailyCountsAnswer, funnelRows, insightRows, type InsightRow, type ReportContext } from '../store/report-sql.js';
import { boundaries } from './buckets.js';
import { countFunnel } from './funnels.js';
import type { FunnelsQuery, InsightsQuery, ReportQuery, ReportType } from './query.js';

/** The segment of an event or user whose breakdown property is absent. */
export const NOT_SET = '(not set)';
/** The one series of a report without a breakdown. */
export const OVERALL = '$overall';

export interface Series {
  segment: string;
  /** One value per bucket; null where there is nothing to measure (an average of no events, a funnel nobody entered). */
  values: (number | null)[];
}

export interface ReportResult {
  interval: ReportQuery['interval'];
  timezone: string;
  /** Which table answered: the per-user daily counts, or the events. */
  source: 'daily_counts' | 'events';
  /** n + 1 bucket boundaries (ms) for n values. */
  bounds: number[];
  series: Series[];
}

/** A report that cannot be computed any more (its cohort is gone, or cannot be evaluated). */
export class UncomputableError extends Error {}

/** Computes a report over the buckets covering [from, to). */
export async function computeReport(store: Store, report: { project_id: number; type: ReportType; query: ReportQuery }, from: number, to: number, now: number): Promise<ReportResult> {
  const q = report.query;
  const bounds = boundaries(q.interval, q.timezone, from, to);
  const ctx = await context(store, report.project_id, q, now);
  try {
    if (report.type === 'insights') return await insights(store, q as InsightsQuery, bounds, ctx);
    return await funnels(store, q as FunnelsQuery, bounds, ctx);
  } catch (err) {
    // Computing again would fail the same way (the data cannot be read as the query asks).
    if (isPermanentFailure(err)) throw new UncomputableError((err as Error).message);
    throw err;
  }
}

async function insights(store: Store, q: InsightsQuery, bounds: number[], ctx: ReportContext): Promise<ReportResult> {
  const rows = await insightRows(store.db, q, bounds.slice(0, -1).map((from, i) => [from, bounds[i + 1]!]), ctx);
  return { interval: q.interval, timezone: q.timezone, source: dailyCountsAnswer(q) ? 'daily_counts' : 'events', bounds, series: insightSeries(q, bounds.length - 1, rows) };
}

function insightSeries(q: InsightsQuery, buckets: number, rows: InsightRow[]): Series[] {
  const counts = q.measure.type === 'total' || q.measure.type === 'unique';
  const bySegment = new Map<string, (number | null)[]>();
  for (const r of rows) {
    const seg = q.breakdown ? (r.s ?? NOT_SET) : OVERALL;
    let values = bySegment.get(seg);
    if (!values) bySegment.set(seg, (values = new Array<number | null>(buckets).fill(counts ? 0 : null)));
    values[r.b] = r.v;
  }
  if (!q.breakdown && bySegment.size === 0) bySegment.set(OVERALL, new Array<number | null>(buckets).fill(counts ? 0 : null));
  return top(bySegment, q.breakdown?.limit);
}

/**
 * The report's values in some buckets only (each [from, to) one bucket of the report), in one
 * query: an alert needs its bucket, the one before, and the same bucket of past weeks, not the
 * weeks between. Segments are ranked over these buckets.
 */
export async function computeBuckets(store: Store, report: { project_id: number; type: ReportType; query: ReportQuery }, buckets: [number, number][], now: number): Promise<Series[]> {
  const q = report.query;
  if (report.type === 'funnels') {
    const each = await Promise.all(buckets.map(([from, to]) => computeReport(store, report, from, to, now)));
    const bySegment = new Map<string, (number | null)[]>();
    each.forEach((r, i) => {
      for (const s of r.series) {
        let values = bySegment.get(s.segment);
        if (!values) bySegment.set(s.segment, (values = new Array<number | null>(buckets.length).fill(null)));
        values[i] = s.values[0] ?? null;
      }
    });
    return top(bySegment, q.breakdown?.limit);
  }
  const ctx = await context(store, report.project_id, q, now);
  try {
    return insightSeries(q as InsightsQuery, buckets.length, await insightRows(store.db, q as InsightsQuery, buckets, ctx));
  } catch (err) {
    if (isPermanentFailure(err)) throw new UncomputableError((err as Error).message);
    throw err;
  }
}

async function context(store: Store, projectId: number, q: ReportQuery, now: number): Promise<ReportContext> {
  const cohorts = await cohortDefinitions(store.db, projectId);
  let cohort = null;
  if (q.cohort_id !== null) {
    cohort = cohorts.get(q.cohort_id) ?? null;
    if (!cohort) throw new UncomputableError(`its cohort ${q.cohort_id} no longer exists`);
    const problem = evaluationProblem(q.cohort_id, cohorts);
    if (problem) throw new UncomputableError(problem);
  }
  return { dialect: store.dialect, projectId, now, cohorts, cohort };
}

async function funnels(store: Store, q: FunnelsQuery, bounds: number[], ctx: ReportContext): Promise<ReportResult> {
  const rows = await funnelRows(store.db, q, bounds[0]!, bounds.at(-1)! + q.window_ms, ctx);
  const counts = countFunnel(rows, q.steps.length, bounds, q.window_ms, (s) => (q.breakdown ? (s ?? NOT_SET) : OVERALL));
  const bySegment = new Map<string, (number | null)[]>();
  for (const [seg, entered] of counts.entered) {
    const completed = counts.completed.get(seg) ?? new Array<number>(entered.length).fill(0);
    bySegment.set(seg, entered.map((n, b) => (q.measure === 'completed' ? completed[b]! : n === 0 ? null : (completed[b]! / n) * 100)));
  }
  if (!q.breakdown && bySegment.size === 0) bySegment.set(OVERALL, new Array<number | null>(bounds.length - 1).fill(q.measure === 'completed' ? 0 : null));
  return { interval: q.interval, timezone: q.timezone, source: 'events', bounds, series: top(bySegment, q.breakdown?.limit) };
}

/** The `limit` segments with the largest sum over the range (all of them without a breakdown), largest first. */
function top(bySegment: Map<string, (number | null)[]>, limit: number | undefined): Series[] {
  const sum = (v: (number | null)[]) => v.reduce<number>((a, b) => a + (b ?? 0), 0);
  const series = [...bySegment].map(([segment, values]) => ({ segment, values }));
  series.sort((a, b) => sum(b.values) - sum(a.values) || a.segment.localeCompare(b.segment));
  return limit === undefined ? series : series.slice(0, limit);
}
