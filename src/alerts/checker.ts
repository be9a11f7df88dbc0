import type { Kysely, Transaction } from 'kysely';
import type { Logger } from 'pino';
import { emailDelivery } from '../channels/email.js';
import type { Outbox } from '../delivery/outbox.js';
import { iso } from '../iso-time.js';
import { bucketStart } from '../reports/buckets.js';
import { computeReport, OVERALL, UncomputableError, type ReportResult } from '../reports/compute.js';
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
import { alertPayload, alertText, type AlertPayload } from './wire.js';

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
    const from = Math.min(...due.map((a) => startFor(readJson<Condition>(a.condition), query, last)));
    let result: ReportResult;
    try {
      result = await computeReport(store, { project_id: report.project_id, type: report.type, query }, from, end, now);
    } catch (err) {
      if (!(err instanceof UncomputableError)) throw err;
      for (const a of due) await this.#invalidate(a, `its report "${report.name}" cannot be computed: ${err.message}`, now);
      return 0;
    }
    for (const a of due) await this.#check(a, report, query, result, now);
    return due.length;
  }

  async #check(alert: AlertRow, report: ReportRow, query: ReportQuery, result: ReportResult, now: number): Promise<void> {
    const condition = readJson<Condition>(alert.condition);
    const i = result.bounds.length - 2;
    const bucket = { from: result.bounds[i]!, to: result.bounds[i + 1]! };
    const series = alert.segment === '$any' ? result.series : result.series.filter((s) => s.segment === (alert.segment ?? OVERALL));
    if (alert.segment !== null && alert.segment !== '$any' && series.length === 0) series.push({ segment: alert.segment, values: [] });
    const past = pastIndices(result.bounds, i, query.interval, condition.type === 'anomaly' ? condition.weeks : 0);
    const checks = series.map((s) => ({ segment: s.segment, value: s.values[i] ?? null, verdict: judge(condition, s.values[i] ?? null, s.values[i - 1] ?? null, past.map((j) => s.values[j] ?? null)) }));
    const crossed = checks.filter((c) => c.verdict.crossed);
    const notify = crossed.length > 0 && inWindow(alert.windows === null ? null : readJson<Windows>(alert.windows), now);
    const note = crossed.length > 0 && !notify ? 'crossed outside the notification window: not sent' : null;
    await this.deps.store.db.transaction().execute(async (trx) => {
      await insertChecks(trx, checks.map((c) => row(alert.id, now, bucket, c.segment, c.value, c.verdict, notify && c.verdict.crossed, c.verdict.crossed ? note : c.verdict.note)));
      if (!notify) return markChecked(trx, alert.id, { checkedTo: bucket.to }, now);
      // The largest crossing is the one told (any segment: the others are in the history).
      const first = crossed.sort((a, b) => Math.abs((b.value ?? 0) - (b.verdict.baseline ?? 0)) - Math.abs((a.value ?? 0) - (a.verdict.baseline ?? 0)))[0]!;
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

export type { AlertPayload };

/** Where a check's computation must start: the bucket checked, the one before it, or the weeks an anomaly learns from. */
function startFor(c: Condition, q: ReportQuery, last: number): number {
  if (c.type === 'anomaly') return bucketStart(q.interval, q.timezone, last - c.weeks * WEEK);
  if (c.type === 'increase' || c.type === 'decrease') return bucketStart(q.interval, q.timezone, last - 1);
  return last;
}

/** The buckets of the same time in the past `weeks` weeks: the same local day (daily), week (weekly), or hour a week of hours back (hourly). */
function pastIndices(bounds: number[], i: number, interval: ReportQuery['interval'], weeks: number): number[] {
  const out: number[] = [];
  for (let k = 1; k <= weeks; k++) {
    if (interval === 'day') out.push(i - 7 * k);
    else if (interval === 'week') out.push(i - k);
    else {
      const target = bounds[i]! - k * WEEK;
      const j = bounds.findIndex((b) => b >= target);
      out.push(j);
    }
  }
  return out.filter((j) => j >= 0);
}

function row(alertId: number, now: number, bucket: { from: number; to: number }, segment: string, value: number | null, v: Verdict, notified: boolean, note: string | null) {
  return { alert_id: alertId, checked_at: now, bucket_from: bucket.from, bucket_to: bucket.to, segment, value, baseline: v.baseline, low: v.low, high: v.high, crossed: v.crossed ? 1 : 0, notified: notified ? 1 : 0, note };
}
