import type { Kysely, Transaction } from 'kysely';
import type { Logger } from 'pino';
import { emailDelivery } from '../channels/email.js';
import type { Outbox } from '../delivery/outbox.js';
import { iso } from '../iso-time.js';
import { boundaries, bucketStart } from '../reports/buckets.js';
import { computeBuckets, OVERALL, UncomputableError, type Series } from '../reports/compute.js';
import type { ReportQuery } from '../reports/query.js';
import type { ScheduledRun, ScheduleHandler } from '../scheduling/scheduler.js';
import { firstOccurrence } from '../scheduling/timing.js';
import { activeAlerts, insertChecks, invalidateAlert, markChecked, type AlertRow } from '../store/alerts-repo.js';
import type { Store } from '../store/database.js';
import { projectName } from '../store/projects-repo.js';
import { reportById, type ReportRow } from '../store/reports-repo.js';
import { readJson, type Database } from '../store/schema.js';
import { CompiledChannel, type ChannelSpec, type Envelope } from '../subscriptions/channel-specs.js';
import { newEventId, type Emitter } from '../subscriptions/emitter.js';
import { judge, type Condition, type Verdict } from './condition.js';
import { inWindow, type Windows } from './windows.js';
import { alertPayload, alertText } from './wire.js';

type Trx = Transaction<Database>;
export const ALERT_OWNER = 'alert';
export const ALERT_CHECKS_KIND = 'alert-checks';
const WEEK = 7 * 86_400_000;
/** Alerts read at a time. */
const PAGE = 500;
const PERIOD: Record<AlertRow['frequency'], string> = { hourly: '0 * * * *', daily: '0 0 * * *', weekly: '0 0 * * 1', monthly: '0 0 1 * *' };

/**
 * Checks every active alert once its report's latest bucket has closed (a singleton schedule,
 * every COHORTCAST_ALERT_CHECK_INTERVAL_MS, one process at a time). The alerts of one report
 * share one computation of it. Each alert's check is one transaction: its history rows, the
 * deliveries and the alert.fired event when it notifies, and its new state. An alert that
 * notified is not checked again before the next period of its frequency.
 */
export class AlertChecker implements ScheduleHandler {
  constructor(private readonly deps: { store: Store; outbox: Outbox; emitter: Emitter; publicUrl: string; log: Logger; wake(): void }) {}

  async run(job: ScheduledRun): Promise<void> {
    await this.checkAll(job.now);
  }

  /** Checks what is due at `now`; answers how many alerts were checked. */
  async checkAll(now: number): Promise<number> {
    let checked = 0;
    for (let after = 0; ; ) {
      const alerts = await activeAlerts(this.deps.store.db, after, PAGE);
      if (alerts.length === 0) break;
      after = alerts.at(-1)!.id;
      const byReport = new Map<number, AlertRow[]>();
      for (const a of alerts) byReport.set(a.report_id, [...(byReport.get(a.report_id) ?? []), a]);
      for (const [reportId, list] of byReport) checked += await this.#checkReport(reportId, list, now);
    }
    return checked;
  }

  async #checkReport(reportId: number, alerts: AlertRow[], now: number): Promise<number> {
    const { store } = this.deps;
    const report = await reportById(store.db, reportId);
    if (!report) {
      for (const a of alerts) await this.#invalidate(a, `its report ${reportId} was deleted`, now);
      return 0;
    }
    const query = readJson<ReportQuery>(report.query);
    const end = bucketStart(query.interval, query.timezone, now);
    const due = alerts.filter((a) => (a.checked_to ?? 0) < end && !(a.quiet_until !== null && now < a.quiet_until));
    if (due.length === 0) return 0;
    const last = bucketStart(query.interval, query.timezone, end - 1);
    // The buckets the due alerts need, and no others: the last, the one before it, the same bucket in past weeks.
    const conditions = due.map((a) => readJson<Condition>(a.condition));
    const starts = new Set([last]);
    if (conditions.some((c) => c.type === 'increase' || c.type === 'decrease')) starts.add(bucketStart(query.interval, query.timezone, last - 1));
    const weeks = Math.max(0, ...conditions.map((c) => (c.type === 'anomaly' ? c.weeks : 0)));
    for (let k = 1; k <= weeks; k++) starts.add(weekAgo(query, last, k));
    const buckets = [...starts].sort((a, b) => a - b).map((s): [number, number] => [s, bucketEnd(query, s)]);
    let series: Series[];
    try {
      series = await computeBuckets(store, { project_id: report.project_id, type: report.type, query }, buckets, now);
    } catch (err) {
      if (!(err instanceof UncomputableError)) throw err;
      for (const a of due) await this.#invalidate(a, `its report "${report.name}" cannot be computed: ${err.message}`, now);
      return 0;
    }
    const at = (start: number) => buckets.findIndex(([s]) => s === start);
    for (const a of due) await this.#check(a, report, query, series, { at, last, end }, now);
    return due.length;
  }

  async #check(alert: AlertRow, report: ReportRow, query: ReportQuery, all: Series[], b: { at: (start: number) => number; last: number; end: number }, now: number): Promise<void> {
    const condition = readJson<Condition>(alert.condition);
    const bucket = { from: b.last, to: b.end };
    const i = b.at(b.last);
    const previous = b.at(bucketStart(query.interval, query.timezone, b.last - 1));
    const past = condition.type === 'anomaly' ? Array.from({ length: condition.weeks }, (_, k) => b.at(weekAgo(query, b.last, k + 1))) : [];
    const series = alert.segment === '$any' ? all : all.filter((s) => s.segment === (alert.segment ?? OVERALL));
    if (alert.segment !== null && alert.segment !== '$any' && series.length === 0) series.push({ segment: alert.segment, values: [] });
    const value = (s: Series, j: number) => (j < 0 ? null : (s.values[j] ?? null));
    const checks = series.map((s) => ({ segment: s.segment, value: value(s, i), verdict: judge(condition, value(s, i), value(s, previous), past.map((j) => value(s, j))) }));
    const crossed = checks.filter((c) => c.verdict.crossed);
    const notify = crossed.length > 0 && inWindow(alert.windows === null ? null : readJson<Windows>(alert.windows), now);
    const note = crossed.length > 0 && !notify ? 'crossed outside the notification window: not sent' : null;
    await this.deps.store.db.transaction().execute(async (trx) => {
      await insertChecks(trx, checks.map((c) => row(alert.id, now, bucket, c.segment, c.value, c.verdict, notify && c.verdict.crossed, c.verdict.crossed ? note : c.verdict.note)));
      if (!notify) return markChecked(trx, alert.id, { checkedTo: bucket.to }, now);
      // The largest crossing is the one told (any segment: the others are in the history).
      const first = crossed.sort((x, y) => Math.abs((y.value ?? 0) - (y.verdict.baseline ?? 0)) - Math.abs((x.value ?? 0) - (x.verdict.baseline ?? 0)))[0]!;
      const { deliveries } = await this.send(trx, alert, report, { segment: first.segment, value: first.value!, bucket }, now, false);
      await this.deps.outbox.enqueue(trx, deliveries, now);
      const quietUntil = firstOccurrence(PERIOD[alert.frequency], query.timezone, now) ?? undefined;
      await markChecked(trx, alert.id, { checkedTo: bucket.to, firedAt: now, ...(quietUntil !== undefined ? { quietUntil } : {}) }, now);
    });
    if (notify) this.deps.wake();
  }

  /** A firing's payload and deliveries (one per channel, for the caller to enqueue) and, for a real one, its alert.fired event. */
  async send(trx: Trx | Kysely<Database>, alert: AlertRow, report: ReportRow, f: { segment: string; value: number; bucket: { from: number; to: number } }, now: number, test: boolean) {
    const payload = alertPayload(
      {
        alert: { id: alert.id, name: alert.name, creator: alert.creator, creator_email: alert.creator_email, condition: readJson<Condition>(alert.condition) },
        project: { id: alert.project_id, name: (await projectName(trx, alert.project_id)) ?? '' },
        report: { id: report.id, name: report.name, type: report.type },
        segment: f.segment,
        value: f.value,
        bucket: f.bucket,
        firedAt: now,
        test,
      },
      this.deps.publicUrl,
    );
    const envelope: Envelope = { event_id: newEventId(now), event_type: 'alert.fired', created_at: iso(now)!, project_id: alert.project_id, data: payload as unknown as Record<string, unknown>, ...(test ? { test: true as const } : {}) };
    const { subject, text } = alertText(payload);
    const deliveries = readJson<ChannelSpec[]>(alert.channels).flatMap((spec, k) =>
      new CompiledChannel(spec).deliveries(envelope, { kind: test ? 'alert-test' : ALERT_OWNER, id: `${alert.id}/${k}` }, { webhookBody: JSON.stringify(payload), subject, text }),
    );
    if (!test) await this.deps.emitter.emit(trx, alert.project_id, 'alert.fired', [payload as unknown as Record<string, unknown>], now);
    return { payload, deliveries };
  }

  async #invalidate(alert: AlertRow, reason: string, now: number): Promise<void> {
    const { store, outbox, log } = this.deps;
    await store.db.transaction().execute(async (trx) => {
      if (!(await invalidateAlert(trx, alert.id, reason, now))) return;
      log.warn({ alert: alert.id, reason }, 'an alert turned invalid');
      if (!alert.creator_email) return;
      // Said once: the alert is no longer checked until it is changed.
      const text = `Your alert "${alert.name}" can no longer be checked: ${reason}.\n\nIt will not notify until it is changed: ${this.deps.publicUrl.replace(/\/+$/, '')}/alerts/${alert.id}`;
      await outbox.enqueue(trx, [emailDelivery({ projectId: alert.project_id, to: [alert.creator_email], subject: `Alert "${alert.name}" is invalid`, text, ownerKind: ALERT_OWNER, ownerId: `${alert.id}/invalid` })], now);
    });
    this.deps.wake();
  }
}

/**
 * The start of the same bucket `k` weeks before: the same local day or week (a day is found from
 * two hours into it, so a daylight-saving change does not move it to the day before); for hours,
 * exactly k × 168 hours earlier.
 */
function weekAgo(q: ReportQuery, start: number, k: number): number {
  if (q.interval === 'hour') return start - k * WEEK;
  return bucketStart(q.interval, q.timezone, start - k * WEEK + 2 * 3_600_000);
}

const bucketEnd = (q: ReportQuery, start: number): number => boundaries(q.interval, q.timezone, start, start + 1)[1]!;

function row(alertId: number, now: number, bucket: { from: number; to: number }, segment: string, value: number | null, v: Verdict, notified: boolean, note: string | null) {
  return { alert_id: alertId, checked_at: now, bucket_from: bucket.from, bucket_to: bucket.to, segment, value, baseline: v.baseline, low: v.low, high: v.high, crossed: v.crossed ? 1 : 0, notified: notified ? 1 : 0, note };
}
