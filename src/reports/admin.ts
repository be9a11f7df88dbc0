import { ActionableError } from '../errors.js';
import { iso } from '../iso-time.js';
import { getCohort } from '../store/cohorts-repo.js';
import type { Store } from '../store/database.js';
import { alertsOnReport, deleteReport, findReport, insertReport, listReports, updateReport, type ReportRow } from '../store/reports-repo.js';
import { readJson } from '../store/schema.js';
import { lastWholeBuckets } from './buckets.js';
import { computeReport, UncomputableError, type ReportResult } from './compute.js';
import { parseQuery, QueryError, type ReportQuery } from './query.js';

export interface ReportInput {
  name?: unknown;
  type?: unknown;
  query?: unknown;
}

const invalid = (message: string) => new ActionableError(400, 'invalid_report', message);
const notFound = (id: number) => new ActionableError(404, 'not_found', `no report ${id} in this project`);
/** Buckets a result shows when the caller names no range. */
const DEFAULT_BUCKETS = { hour: 48, day: 30, week: 12 } as const;

/** Saved reports: checked whole when saved, computed on demand. */
export class ReportAdmin {
  constructor(private readonly deps: { store: Store; now?: () => number }) {}

  async create(projectId: number, input: ReportInput): Promise<ReportRow> {
    const f = await this.#check(projectId, input, undefined);
    return insertReport(this.deps.store.db, projectId, f, Date.now());
  }

  async update(projectId: number, id: number, input: ReportInput): Promise<ReportRow> {
    const current = await this.get(projectId, id);
    const f = await this.#check(projectId, input, current);
    const row = await updateReport(this.deps.store.db, projectId, id, f, Date.now());
    if (!row) throw notFound(id);
    return row;
  }

  async get(projectId: number, id: number): Promise<ReportRow> {
    const row = await findReport(this.deps.store.db, projectId, id);
    if (!row) throw notFound(id);
    return row;
  }

  list(projectId: number, after: number | undefined, limit: number): Promise<ReportRow[]> {
    return listReports(this.deps.store.db, projectId, after, limit);
  }

  async remove(projectId: number, id: number): Promise<void> {
    await this.get(projectId, id);
    const alerts = await alertsOnReport(this.deps.store.db, projectId, id);
    if (alerts.length > 0) throw new ActionableError(409, 'report_in_use', `report ${id} is watched by alert${alerts.length > 1 ? 's' : ''} ${alerts.join(', ')}; delete those first`);
    if (!(await deleteReport(this.deps.store.db, projectId, id))) throw notFound(id);
  }

  /** The report's series over [from, to); by default its last 30 days (48 hours, 12 weeks) up to now. */
  async result(projectId: number, id: number, range: { from?: number; to?: number }): Promise<ReportResult> {
    const row = await this.get(projectId, id);
    const query = readJson<ReportQuery>(row.query);
    const now = (this.deps.now ?? Date.now)();
    const to = range.to ?? now;
    const from = range.from ?? lastWholeBuckets(query.interval, query.timezone, to, DEFAULT_BUCKETS[query.interval])[0]!;
    if (from >= to) throw new ActionableError(400, 'invalid_range', 'from: must be before to');
    try {
      return await computeReport(this.deps.store, { project_id: projectId, type: row.type, query }, from, to, now);
    } catch (err) {
      if (err instanceof UncomputableError) throw new ActionableError(422, 'report_not_computable', `report ${id} cannot be computed: ${err.message}`);
      if (err instanceof RangeError) throw new ActionableError(400, 'invalid_range', err.message);
      throw err;
    }
  }

  async #check(projectId: number, input: ReportInput, current: ReportRow | undefined) {
    const name = input.name ?? current?.name;
    if (typeof name !== 'string' || name.trim() === '' || name.length > 200) throw invalid('name: expected 1-200 characters');
    const type = input.type ?? current?.type;
    const raw = input.query ?? (current ? readJson(current.query) : undefined);
    if (raw === undefined) throw invalid('query: required');
    let parsed: ReturnType<typeof parseQuery>;
    try {
      parsed = parseQuery(type, raw);
    } catch (err) {
      if (err instanceof QueryError) throw invalid(err.message);
      throw err;
    }
    if (parsed.query.cohort_id !== null && !(await getCohort(this.deps.store, projectId, parsed.query.cohort_id))) throw invalid(`query.cohort_id: no cohort ${parsed.query.cohort_id} in this project`);
    return { name, type: parsed.type, query: parsed.query };
  }
}

export const presentReport = (r: ReportRow) => ({ id: r.id, name: r.name, type: r.type, query: readJson(r.query), created_at: iso(r.created_at), updated_at: iso(r.updated_at) });

export const presentResult = (id: number, r: ReportResult) => ({
  report_id: id,
  interval: r.interval,
  timezone: r.timezone,
  source: r.source,
  buckets: r.bounds.slice(0, -1).map((from, i) => ({ from: iso(from), to: iso(r.bounds[i + 1]!) })),
  series: r.series,
});
