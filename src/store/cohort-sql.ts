import { sql, type RawBuilder } from 'kysely';
import type { DateValue, Definition, EventFilter, PropertyFilter } from '../cohorts/definition.js';
import type { Dialect } from './database.js';
import { jsonPropertyIn } from './json-sql.js';

const DAY_MS = 86_400_000;

export interface CompileContext {
  dialect: Dialect;
  projectId: number;
  /** Evaluation time: relative dates and "in the last N days" count back from here. */
  now: number;
  /** Definitions of the cohorts this one names, directly or through others (checked acyclic). */
  cohorts: ReadonlyMap<number, Definition>;
}

/**
 * A cohort definition as one SQL condition on the profile row `p` (`profiles as p`), for either
 * database. Every leaf is two-valued (a missing property is false, never NULL), so `not` means
 * what it says. Behavioural filters become `p.distinct_id [not] in (…)` over the daily count
 * table, or over the events themselves when event properties narrow them.
 */
export function compileDefinition(d: Definition, ctx: CompileContext): RawBuilder<boolean> {
  if ('and' in d) return balanced(d.and.map((x) => compileDefinition(x, ctx)), sql` and `);
  if ('or' in d) return balanced(d.or.map((x) => compileDefinition(x, ctx)), sql` or `);
  if ('not' in d) return sql<boolean>`(not ${compileDefinition(d.not, ctx)})`;
  if ('cohort' in d) {
    const other = ctx.cohorts.get(d.cohort);
    if (!other) throw new Error(`cohort ${d.cohort} was not loaded for evaluation`);
    return compileDefinition(other, ctx);
  }
  if ('event' in d) return eventCondition(d, ctx);
  return propertyCondition(d, 'p.properties', ctx);
}

/** Terms joined in groups of at most this many, so a long list nests log-deep, not list-deep. */
const GROUP = 8;

/**
 * `a and b and …` as a balanced tree of parenthesised groups: SQLite parses a flat chain of n
 * terms into an expression n levels deep and refuses past 1,000 ("Expression tree is too large").
 */
function balanced(terms: RawBuilder<boolean>[], op: RawBuilder<unknown>): RawBuilder<boolean> {
  if (terms.length <= GROUP) return sql<boolean>`(${sql.join(terms, op)})`;
  const size = Math.ceil(terms.length / GROUP);
  const groups: RawBuilder<boolean>[] = [];
  for (let i = 0; i < terms.length; i += size) groups.push(balanced(terms.slice(i, i + size), op));
  return balanced(groups, op);
}

/** SQL for reading one JSON property of `column`, typed, on either database. */
function property(dialect: Dialect, column: string, key: string) {
  const col = sql.ref(column);
  if (dialect === 'postgres') {
    return {
      type: sql<string>`jsonb_typeof(${col} -> ${key})`,
      number: sql`(case when jsonb_typeof(${col} -> ${key}) = 'number' then (${col} ->> ${key})::numeric end)`,
      text: sql<string>`(case when jsonb_typeof(${col} -> ${key}) = 'string' then ${col} ->> ${key} end)`,
    };
  }
  const path = `$."${key}"`;
  return {
    type: sql<string>`json_type(${col}, ${path})`,
    number: sql`(case when json_type(${col}, ${path}) in ('integer', 'real') then json_extract(${col}, ${path}) end)`,
    text: sql<string>`(case when json_type(${col}, ${path}) = 'text' then json_extract(${col}, ${path}) end)`,
  };
}

/** One property filter on the JSON column `column` (e.g. `e.properties` of an event), two-valued. */
export const filterOn = (f: PropertyFilter, column: string, ctx: CompileContext): RawBuilder<boolean> => propertyCondition(f, column, ctx);

/** A numeric JSON property of `column` (null when absent or not a number). */
export const numberOf = (dialect: Dialect, column: string, key: string): RawBuilder<number | null> => property(dialect, column, key).number as RawBuilder<number | null>;

/**
 * A JSON property of `column` as the text a breakdown shows: strings as they are, numbers and
 * booleans as JSON writes them, anything else (absent, null, lists, objects) as null.
 */
export function segmentOf(dialect: Dialect, column: string, key: string): RawBuilder<string | null> {
  const col = sql.ref(column);
  if (dialect === 'postgres') return sql<string | null>`(case when jsonb_typeof(${col} -> ${key}) in ('string', 'number', 'boolean') then ${col} ->> ${key} end)`;
  const path = `$."${key}"`;
  return sql<string | null>`(case json_type(${col}, ${path}) when 'text' then json_extract(${col}, ${path}) when 'integer' then cast(json_extract(${col}, ${path}) as text) when 'real' then cast(json_extract(${col}, ${path}) as text) when 'true' then 'true' when 'false' then 'false' end)`;
}

/** A date value as the text it is compared with: `YYYY-MM-DDTHH:MM:SS` in UTC, as Mixpanel stores dates. */
export function dateText(v: DateValue, now: number): string {
  if (typeof v !== 'string') return new Date(now - v.days_ago * DAY_MS).toISOString().slice(0, 19);
  // A zone makes it an instant: written in UTC. Without one it is taken as written (Mixpanel's dates are UTC).
  if (/(?:Z|[+-]\d{2}:?\d{2})$/.test(v) && v.length > 10) return new Date(v).toISOString().slice(0, 19);
  return v.replace(' ', 'T');
}

const twoValued = (condition: RawBuilder<unknown>) => sql<boolean>`coalesce(${condition}, false)`;

function propertyCondition(f: PropertyFilter, column: string, ctx: CompileContext): RawBuilder<boolean> {
  const p = property(ctx.dialect, column, f.property);
  const equalsAny = (values: (string | number | boolean)[]) => jsonPropertyIn(ctx.dialect, column, f.property, values.map((v) => JSON.stringify(v)));
  const equalsOne = (value: string | number | boolean) => (typeof value === 'number' ? sql<boolean>`${p.number} = ${value}` : equalsAny([value]));
  const contains = (value: string) =>
    ctx.dialect === 'postgres' ? sql<boolean>`strpos(lower(${p.text}), lower(${value})) > 0` : sql<boolean>`instr(lower(${p.text}), lower(${value})) > 0`;
  switch (f.op) {
    case 'equals':
      return twoValued(equalsOne(f.value));
    case 'not_equals':
      return sql<boolean>`(not ${twoValued(equalsOne(f.value))})`;
    case 'contains':
      return twoValued(contains(f.value));
    case 'not_contains':
      return sql<boolean>`(not ${twoValued(contains(f.value))})`;
    case 'greater_than':
      return twoValued(sql`${p.number} > ${f.value}`);
    case 'less_than':
      return twoValued(sql`${p.number} < ${f.value}`);
    case 'between':
      return twoValued(sql`${p.number} between ${f.value[0]} and ${f.value[1]}`);
    case 'before':
      return twoValued(sql`${p.text} < ${dateText(f.value, ctx.now)}`);
    case 'after':
      return twoValued(sql`${p.text} > ${dateText(f.value, ctx.now)}`);
    case 'between_dates': {
      const [a, b] = f.value.map((v) => dateText(v, ctx.now)).sort();
      return twoValued(sql`${p.text} between ${a} and ${b}`);
    }
    case 'set':
      return sql<boolean>`(coalesce(${p.type}, 'null') <> 'null')`;
    case 'not_set':
      return sql<boolean>`(coalesce(${p.type}, 'null') = 'null')`;
    case 'in':
      return twoValued(equalsAny(f.value));
    case 'not_in':
      return sql<boolean>`(not ${twoValued(equalsAny(f.value))})`;
  }
}

function eventCondition(f: EventFilter, ctx: CompileContext): RawBuilder<boolean> {
  const count = f.count ?? { op: 'at_least', value: 1 };
  if (count.op === 'at_least' && count.value === 0) return sql<boolean>`(1 = 1)`;
  // "In the last N days": today (UTC) and the N − 1 days before it; never later than today, so
  // an event dated in the future does not count as recent until it is.
  const today = Math.floor(ctx.now / DAY_MS);
  const fromDay = today - (f.within_days - 1);
  const users = (having: RawBuilder<unknown>) => {
    if (!f.where?.length) {
      return sql`select distinct_id from event_daily_counts where project_id = ${ctx.projectId} and event = ${f.event} and day between ${fromDay} and ${today} group by distinct_id having ${having}`;
    }
    const narrowed = balanced(
      f.where.map((w) => propertyCondition(w, 'e.properties', ctx)),
      sql` and `,
    );
    return sql`select e.distinct_id from events as e where e.project_id = ${ctx.projectId} and e.event = ${f.event} and e.time >= ${fromDay * DAY_MS} and e.time < ${(today + 1) * DAY_MS} and ${narrowed} group by e.distinct_id having ${having}`;
  };
  const total = f.where?.length ? sql`count(*)` : sql`sum(count)`;
  switch (count.op) {
    case 'at_least':
      return sql<boolean>`(p.distinct_id in (${users(sql`${total} >= ${count.value}`)}))`;
    case 'at_most':
      return sql<boolean>`(p.distinct_id not in (${users(sql`${total} > ${count.value}`)}))`;
    case 'exactly':
      return count.value === 0
        ? sql<boolean>`(p.distinct_id not in (${users(sql`${total} >= 1`)}))`
        : sql<boolean>`(p.distinct_id in (${users(sql`${total} = ${count.value}`)}))`;
  }
}
