import type { DeliveryEngine } from '../delivery/engine.js';
import { ActionableError } from '../errors.js';
import { iso } from '../iso-time.js';
import { bucketStart } from '../reports/buckets.js';
import { computeReport, OVERALL, UncomputableError } from '../reports/compute.js';
import type { ReportQuery } from '../reports/query.js';
import { alertHistory, deleteAlert, findAlert, insertAlert, listAlerts, updateAlert, type AlertCheckRow, type AlertFields, type AlertRow } from '../store/alerts-repo.js';
import type { Store } from '../store/database.js';
import { findReport } from '../store/reports-repo.js';
import { readJson } from '../store/schema.js';
import { checkChannels } from '../subscriptions/channel-check.js';
import type { AlertChecker } from './checker.js';
import { ConditionError, parseCondition, type Condition } from './condition.js';
import { parseWindows, WindowsError, type Windows } from './windows.js';

export interface AlertInput {
  name?: unknown;
  report_id?: unknown;
  condition?: unknown;
  segment?: unknown;
  frequency?: unknown;
  windows?: unknown;
  channels?: unknown;
  creator?: unknown;
  creator_email?: unknown;
}

const invalid = (message: string) => new ActionableError(400, 'invalid_alert', message);
const notFound = (id: number) => new ActionableError(404, 'not_found', `no alert ${id} in this project`);
const FREQUENCIES = ['hourly', 'daily', 'weekly', 'monthly'] as const;
const EMAIL = /^[^\s@<>(),;:"]+@[^\s@<>(),;:"]+\.[^\s@<>(),;:"]+$/;

/**
 * Alerts as the API manages them: checked whole when saved (report, condition, segment, windows,
 * channels and their connections); a changed alert is active again and checked afresh.
 */
export class AlertAdmin {
  constructor(private readonly deps: { store: Store; engine: DeliveryEngine; checker: AlertChecker; now?: () => number }) {}

  async create(projectId: number, input: AlertInput): Promise<AlertRow> {
    for (const k of ['name', 'report_id', 'condition', 'channels'] as const) if (input[k] === undefined) throw invalid(`${k}: required`);
    const f = await this.#check(projectId, input, undefined);
    return insertAlert(this.deps.store.db, projectId, f, Date.now());
  }

  async update(projectId: number, id: number, input: AlertInput): Promise<AlertRow> {
    const current = await this.get(projectId, id);
    const f = await this.#check(projectId, input, current);
    const row = await updateAlert(this.deps.store.db, projectId, id, f, Date.now());
    if (!row) throw notFound(id);
    return row;
  }

  async get(projectId: number, id: number): Promise<AlertRow> {
    const row = await findAlert(this.deps.store.db, projectId, id);
    if (!row) throw notFound(id);
    return row;
  }

  list(projectId: number, after: number | undefined, limit: number): Promise<AlertRow[]> {
    return listAlerts(this.deps.store.db, projectId, after, limit);
  }

  async remove(projectId: number, id: number): Promise<void> {
    if (!(await deleteAlert(this.deps.store.db, projectId, id))) throw notFound(id);
  }

  async history(projectId: number, id: number, before: number | undefined, limit: number): Promise<AlertCheckRow[]> {
    await this.get(projectId, id);
    return alertHistory(this.deps.store.db, id, before, limit);
  }

  /**
   * Sends the alert to every channel at once, its name prefixed "[TEST] ", with the report's value
   * in its last whole bucket (0 when it cannot be computed), and answers what each channel replied.
   * Tried once; never recorded in the history.
   */
  async test(projectId: number, id: number) {
    const alert = await this.get(projectId, id);
    const { store, engine, checker } = this.deps;
    const report = await findReport(store.db, projectId, alert.report_id);
    if (!report) throw new ActionableError(409, 'alert_invalid', `alert ${id}'s report ${alert.report_id} no longer exists`);
    const query = readJson<ReportQuery>(report.query);
    const now = (this.deps.now ?? Date.now)();
    const end = bucketStart(query.interval, query.timezone, now);
    const bucket = { from: bucketStart(query.interval, query.timezone, end - 1), to: end };
    let value = 0;
    let segment = alert.segment === null || alert.segment === '$any' ? OVERALL : alert.segment;
    try {
      const result = await computeReport(store, { project_id: projectId, type: report.type, query }, bucket.from, bucket.to, now);
      const series = alert.segment === '$any' ? result.series[0] : result.series.find((s) => s.segment === segment);
      if (series) [segment, value] = [series.segment, series.values[0] ?? 0];
    } catch (err) {
      if (!(err instanceof UncomputableError)) throw err;
    }
    const { payload, deliveries } = await checker.send(store.db, alert, report, { segment, value, bucket }, Date.now(), true);
    const made = await engine.outbox.enqueue(store.db, deliveries.map((d) => ({ ...d, policy: 'once', notBefore: Date.now() + 60_000 })));
    const results = [];
    for (const [i, d] of made.entries()) {
      const done = await engine.dispatcher.sendNow(d.id);
      results.push({
        channel: i,
        type: deliveries[i]!.channel ?? 'webhook',
        delivery_id: d.id,
        ok: done?.verdict.kind === 'success',
        status: done?.result.status ?? null,
        error: done ? (done.verdict.kind === 'success' ? null : done.verdict.reason) : 'the channel could not be sent to now (connection disabled or throttled, or no SMTP server set)',
      });
    }
    return { alert_id: id, payload, results };
  }

  async #check(projectId: number, input: AlertInput, current: AlertRow | undefined): Promise<AlertFields> {
    const { store } = this.deps;
    const name = input.name ?? current?.name;
    if (typeof name !== 'string' || name.trim() === '' || name.length > 200) throw invalid('name: expected 1-200 characters');
    let condition: Condition;
    let windows: Windows | null;
    try {
      condition = parseCondition(input.condition ?? readJson(current!.condition));
      windows = parseWindows(input.windows !== undefined ? input.windows : current?.windows == null ? null : readJson(current.windows));
    } catch (err) {
      if (err instanceof ConditionError || err instanceof WindowsError) throw invalid(err.message);
      throw err;
    }
    const frequency = input.frequency ?? current?.frequency ?? 'daily';
    if (!FREQUENCIES.includes(frequency as (typeof FREQUENCIES)[number])) throw invalid(`frequency: expected one of ${FREQUENCIES.join(', ')}: the most often it notifies`);
    const creator = input.creator !== undefined ? input.creator : (current?.creator ?? null);
    if (creator !== null && (typeof creator !== 'string' || creator.length > 200)) throw invalid('creator: expected a name, at most 200 characters');
    const creatorEmail = input.creator_email !== undefined ? input.creator_email : (current?.creator_email ?? null);
    if (creatorEmail !== null && (typeof creatorEmail !== 'string' || !EMAIL.test(creatorEmail))) throw invalid(`creator_email: ${JSON.stringify(creatorEmail)} is not an e-mail address`);
    const reportId = input.report_id ?? current?.report_id;
    const report = typeof reportId === 'number' && Number.isSafeInteger(reportId) ? await findReport(store.db, projectId, reportId) : undefined;
    if (!report) throw invalid(`report_id: no report ${JSON.stringify(reportId)} in this project`);
    const query = readJson<ReportQuery>(report.query);
    const segment = input.segment !== undefined ? input.segment : (current?.segment ?? null);
    if (query.breakdown) {
      if (typeof segment !== 'string' || segment === '' || segment.length > 255) throw invalid(`segment: report ${report.id} is broken down by "${query.breakdown.property}": give one of its values, or "$any" (fires when any segment crosses)`);
    } else if (segment !== null) throw invalid(`segment: report ${report.id} has no breakdown, so no segment`);
    const rawChannels = input.channels ?? readJson<unknown[]>(current!.channels);
    if (!Array.isArray(rawChannels) || rawChannels.length === 0 || rawChannels.length > 10) throw invalid('channels: expected 1 to 10 channels (webhook, slack, email)');
    const sms = rawChannels.findIndex((c) => typeof c === 'object' && c !== null && (c as { type?: unknown }).type === 'sms');
    if (sms >= 0) throw invalid(`channels[${sms}].type: alerts notify by webhook, slack or email`);
    const channels = await checkChannels(store, projectId, rawChannels, 'invalid_alert');
    return { name, report_id: report.id, condition, segment: segment as string | null, frequency: frequency as AlertFields['frequency'], windows, channels, creator: creator as string | null, creator_email: creatorEmail as string | null };
  }
}

export const presentAlert = (a: AlertRow) => ({
  id: a.id,
  name: a.name,
  report_id: a.report_id,
  condition: readJson(a.condition),
  segment: a.segment,
  frequency: a.frequency,
  windows: a.windows === null ? null : readJson(a.windows),
  channels: readJson(a.channels),
  creator: a.creator,
  creator_email: a.creator_email,
  state: a.state,
  state_reason: a.state_reason,
  last_fired_at: iso(a.last_fired_at),
  quiet_until: iso(a.quiet_until),
  checked_to: iso(a.checked_to),
  created_at: iso(a.created_at),
  updated_at: iso(a.updated_at),
});

export const presentCheck = (c: AlertCheckRow) => ({
  id: c.id,
  checked_at: iso(c.checked_at),
  bucket: { from: iso(c.bucket_from), to: iso(c.bucket_to) },
  segment: c.segment,
  value: c.value,
  baseline: c.baseline,
  band: c.low === null ? null : { low: c.low, high: c.high },
  crossed: c.crossed === 1,
  notified: c.notified === 1,
  note: c.note,
});
