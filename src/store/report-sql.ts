import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import type { Definition } from '../cohorts/definition.js';
import type { FunnelsQuery, InsightsQuery } from '../reports/query.js';
import { compileDefinition, filterOn, numberOf, segmentOf, type CompileContext } from './cohort-sql.js';
import type { Dialect } from './database.js';
import type { Database } from './schema.js';

/**
 * The SQL of reports. Buckets are given as their boundaries (milliseconds, computed in the report's
 * time zone by reports/buckets.ts) and become one CASE, so a bucket of any length or zone is one
 * group. An insight is one GROUP BY (bucket, segment) over the daily count table when that answers
 * it, over the events otherwise; a funnel's events come back ordered by user and time, and the
 * steps are matched in the process (reports/funnels.ts).
 */

type Db = Kysely<Database> | Transaction<Database>;
const DAY_MS = 86_400_000;

export interface ReportContext {
  dialect: Dialect;
  projectId: number;
  now: number;
  cohorts: ReadonlyMap<number, Definition>;
  /** The report's cohort, when it names one. */
  cohort: Definition | null;
}

export interface InsightRow {
  b: number;
  s: string | null;
  v: number | null;
}

/** Time ranges [from, to), in order: touching (a result's buckets) or apart (an alert needs its bucket and the same bucket of past weeks, not the weeks between). */
export type Ranges = [number, number][];

/** The index of the range `column` falls in. */
function bucketOf(column: RawBuilder<unknown>, ranges: Ranges): RawBuilder<number> {
  const whens = ranges.map(([, end], i) => sql`when ${column} < ${end} then ${i}`);
  return sql<number>`(case ${sql.join(whens, sql` `)} end)`;
}

/** Conditions on the profile `p`: its filters and its cohort (a left join: a user with no profile matches none). */
function profileConditions(q: { profile_where: InsightsQuery['profile_where'] }, ctx: ReportContext): RawBuilder<boolean>[] {
  const c: CompileContext = { dialect: ctx.dialect, projectId: ctx.projectId, now: ctx.now, cohorts: ctx.cohorts };
  const out = q.profile_where.map((f) => filterOn(f, 'p.properties', c));
  if (ctx.cohort) out.push(compileDefinition(ctx.cohort, c));
  return out;
}

const needsProfile = (q: InsightsQuery | FunnelsQuery, ctx: ReportContext) => q.profile_where.length > 0 || ctx.cohort !== null || q.breakdown?.on === 'profile';
const and = (conds: RawBuilder<boolean>[]) => (conds.length === 0 ? sql`` : sql` and ${sql.join(conds, sql` and `)}`);

/** Whether the daily count table answers the insight: users or events counted per UTC day or week, no event property in play. */
export function dailyCountsAnswer(q: InsightsQuery): boolean {
  return (q.measure.type === 'total' || q.measure.type === 'unique') && q.where.length === 0 && q.breakdown?.on !== 'event' && q.interval !== 'hour' && ['UTC', 'Etc/UTC', 'GMT', 'Etc/GMT'].includes(q.timezone);
}

export async function insightRows(db: Db, q: InsightsQuery, ranges: Ranges, ctx: ReportContext): Promise<InsightRow[]> {
  const touching = ranges.every((r, i) => i === 0 || ranges[i - 1]![1] === r[0]);
  if (!touching) {
    // Buckets apart (an alert's): one indexed range each, not one scan of everything between them.
    const parts = await Promise.all(ranges.map(async (r, i) => (await insightRows(db, q, [r], ctx)).map((row) => ({ ...row, b: i }))));
    return parts.flat();
  }
  const profile = needsProfile(q, ctx);
  const seg = q.breakdown ? segmentOf(ctx.dialect, q.breakdown.on === 'profile' ? 'p.properties' : 'e.properties', q.breakdown.property) : sql`null`;
  const conds = profileConditions(q, ctx);
  if (dailyCountsAnswer(q)) {
    const days: Ranges = ranges.map(([a, b]) => [Math.round(a / DAY_MS), Math.round(b / DAY_MS)]);
    const agg = q.measure.type === 'total' ? sql`sum(c.count)` : sql`count(distinct c.distinct_id)`;
    const join = profile ? sql`left join profiles as p on p.project_id = c.project_id and p.distinct_id = c.distinct_id` : sql``;
    const segment = q.breakdown ? segmentOf(ctx.dialect, 'p.properties', q.breakdown.property) : sql`null`;
    const { rows } = await sql<InsightRow>`select ${bucketOf(sql`c.day`, days)} as b, ${segment} as s, ${agg} as v
      from event_daily_counts as c ${join}
      where c.project_id = ${ctx.projectId}${q.event === null ? sql`` : sql` and c.event = ${q.event}`} and c.day >= ${days[0]![0]} and c.day < ${days.at(-1)![1]}${and(conds)}
      group by 1, 2`.execute(db);
    return rows.map(numeric);
  }
  const c: CompileContext = { dialect: ctx.dialect, projectId: ctx.projectId, now: ctx.now, cohorts: ctx.cohorts };
  const value = 'property' in q.measure ? numberOf(ctx.dialect, 'e.properties', q.measure.property) : null;
  const agg =
    q.measure.type === 'total'
      ? sql`count(*)`
      : q.measure.type === 'unique'
        ? sql`count(distinct e.distinct_id)`
        : q.measure.type === 'average'
          ? sql`avg(${value})`
          : sql`${sql.raw(q.measure.type)}(${value})`;
  const join = profile ? sql`left join profiles as p on p.project_id = e.project_id and p.distinct_id = e.distinct_id` : sql``;
  const where = [...q.where.map((f) => filterOn(f, 'e.properties', c)), ...conds];
  const { rows } = await sql<InsightRow>`select ${bucketOf(sql`e.time`, ranges)} as b, ${seg} as s, ${agg} as v
    from events as e ${join}
    where e.project_id = ${ctx.projectId} and e.time >= ${ranges[0]![0]} and e.time < ${ranges.at(-1)![1]}${q.event === null ? sql`` : sql` and e.event = ${q.event}`}${and(where)}
    group by 1, 2`.execute(db);
  return rows.map(numeric);
}

const numeric = (r: InsightRow): InsightRow => ({ b: Number(r.b), s: r.s, v: r.v === null ? null : Number(r.v) });

export interface FunnelRow {
  u: string;
  t: number;
  /** Bit k set: the event is step k (an event may be several steps). */
  m: number;
  s: string | null;
}

/** The events of a funnel's steps from `from` to `until`, by user and time. */
export async function funnelRows(db: Db, q: FunnelsQuery, from: number, until: number, ctx: ReportContext): Promise<FunnelRow[]> {
  const c: CompileContext = { dialect: ctx.dialect, projectId: ctx.projectId, now: ctx.now, cohorts: ctx.cohorts };
  const mask = sql.join(
    q.steps.map((s, k) => sql`(case when e.event = ${s.event}${and(s.where.map((f) => filterOn(f, 'e.properties', c)))} then ${2 ** k} else 0 end)`),
    sql` + `,
  );
  const seg = q.breakdown ? segmentOf(ctx.dialect, q.breakdown.on === 'profile' ? 'p.properties' : 'e.properties', q.breakdown.property) : sql`null`;
  const join = needsProfile(q, ctx) ? sql`left join profiles as p on p.project_id = e.project_id and p.distinct_id = e.distinct_id` : sql``;
  const events = [...new Set(q.steps.map((s) => s.event))];
  const { rows } = await sql<FunnelRow>`select * from (select e.distinct_id as u, e.time as t, ${mask} as m, ${seg} as s, e.id as id
      from events as e ${join}
      where e.project_id = ${ctx.projectId} and e.event in (${sql.join(events)}) and e.time >= ${from} and e.time < ${until}${and(profileConditions(q, ctx))}) as x
    where x.m > 0 order by x.u, x.t, x.id`.execute(db);
  return rows.map((r) => ({ u: r.u, t: Number(r.t), m: Number(r.m), s: r.s }));
}
