// Reports and alerts: `npm run bench:alerts` (builds first, then runs this file).
//
// A fresh SQLite data folder gets BENCH_EVENTS (10,000,000) events over the last 60 days, 20 event
// names, each with an amount and a store, and their per-user daily counts (as ingestion keeps
// them), written straight into the service's schema: loading is not what is measured. Then
// BENCH_REPORTS (1,000) reports and 10 alerts on each are saved, a mix as people make them:
//   half   total of one event per day (answered by the daily count table)
//   a fifth  unique users of one event per hour, a fifth  the sum of its amount per hour,
//   a tenth  total per day broken down by store (these three read the events)
// and alerts above and below thresholds, up or down by a percentage against the previous bucket,
// and anomalies against 8 weeks of the same bucket (4 of every 10).
// Measured through the service's own code, in a worker process's engine (the scheduler left idle):
//   check     every alert checked once (AlertChecker.checkAll, as its schedule runs it): each report
//             computed once for all its alerts, each alert's history written, firings enqueued
//   result    one report's result over its default range (30 days, 48 hours), p50 and p99 over
//             BENCH_RESULTS reports picked at random
// Beside them, in the same run, the raw baseline: the same reports' values for the same buckets,
// from one hand-written SQL query each on a bare better-sqlite3 connection to the same file.
//
// Target (DESIGN.md): 10,000 alerts over 1,000 reports checked in under 60 s.
// Environment (all optional): BENCH_EVENTS=10000000, BENCH_REPORTS=1000, BENCH_RESULTS=200,
// BENCH_KEEP=1 keeps the data folder.
// Output: progress on stderr; on stdout a table, then one final line holding a JSON object of the figures.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import BetterSqlite3 from 'better-sqlite3';
import { loadConfig } from '../dist/config.js';
import { dedupKey } from '../dist/ingest/events.js';
import { parseQuery } from '../dist/reports/query.js';
import { ReportAdmin } from '../dist/reports/admin.js';
import { parseCondition } from '../dist/alerts/condition.js';
import { startWorker } from '../dist/service.js';
import { openStore } from '../dist/store/database.js';
import { migrateToLatest } from '../dist/store/migrate.js';
import { insertReport } from '../dist/store/reports-repo.js';
import { insertAlert } from '../dist/store/alerts-repo.js';
import { envInt, log, runMain } from './lib/processes.js';

const EVENTS = Math.floor(envInt('BENCH_EVENTS', 10_000_000));
const REPORTS = Math.floor(envInt('BENCH_REPORTS', 1000));
const RESULTS = Math.floor(envInt('BENCH_RESULTS', 200));
const ALERTS_PER_REPORT = 10;
const KEEP = process.env.BENCH_KEEP === '1';
const USERS = 200_000;
const H = 3_600_000;
const DAY = 24 * H;
const TARGET_MS = 60_000;
const NAMES = Array.from({ length: 20 }, (_, i) => `Event ${i}`);
const STORES = ['web', 'app', 'pos'];

function load(raw, now) {
  let seed = 11;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
  raw.prepare('insert into projects (id, name, token, secret_hash, created_at) values (1, ?, ?, ?, ?)').run('bench', 'bench-token', 'bench-secret-hash', now);
  const event = raw.prepare('insert into events (project_id, event, distinct_id, time, insert_id, dedup_key, properties, received_at) values (1, ?, ?, ?, ?, ?, ?, ?)');
  const start = now - 60 * DAY;
  const t = performance.now();
  for (let done = 0; done < EVENTS; done += 200_000) {
    raw.transaction(() => {
      for (let k = done; k < Math.min(EVENTS, done + 200_000); k++) {
        const time = start + Math.floor((k / EVENTS) * 60 * DAY);
        const who = `user-${Math.floor(rand() * rand() * USERS)}`;
        const name = NAMES[Math.floor(rand() * NAMES.length)];
        const insertId = `e${k.toString(36)}`;
        event.run(name, who, time, insertId, dedupKey(name, time, who, insertId), `{"amount":${Math.floor(rand() * 100)},"store":"${STORES[k % 3]}"}`, now);
      }
    })();
  }
  raw.exec(`insert into event_daily_counts (project_id, distinct_id, event, day, count)
            select project_id, distinct_id, event, time / ${DAY}, count(*) from events group by project_id, distinct_id, event, time / ${DAY}`);
  raw.exec('analyze');
  log(`${EVENTS.toLocaleString('en-US')} events and their daily counts in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}

/** The k-th report: its query as the API takes it. */
function reportQuery(k) {
  const event = NAMES[k % NAMES.length];
  const kind = k % 10;
  if (kind < 5) return { event, measure: { type: 'total' }, interval: 'day' };
  if (kind < 7) return { event, measure: { type: 'unique' }, interval: 'hour' };
  if (kind < 9) return { event, measure: { type: 'sum', property: 'amount' }, interval: 'hour' };
  return { event, measure: { type: 'total' }, breakdown: { property: 'store', on: 'event' }, interval: 'day' };
}

const CONDITIONS = [
  { type: 'above', value: 1e9 },
  { type: 'below', value: 1 },
  { type: 'increase', by: 20, unit: 'percent' },
  { type: 'decrease', by: 20, unit: 'percent' },
  { type: 'anomaly' },
  { type: 'anomaly', sensitivity: 4 },
  { type: 'above', value: 10 },
  { type: 'increase', by: 1000, unit: 'amount' },
  { type: 'anomaly', sensitivity: 2 },
  { type: 'anomaly', weeks: 6 },
];

/** The buckets a report's alerts need: the last whole one, the one before, the same one in the 8 weeks before (UTC). */
function neededRanges(q, now) {
  const span = q.interval === 'hour' ? H : DAY;
  const last = Math.floor(now / span) * span - span;
  const starts = [last, last - span, ...Array.from({ length: 8 }, (_, k) => last - (k + 1) * 7 * DAY)];
  return [...new Set(starts)].sort((a, b) => a - b).map((s) => [s, s + span]);
}

/** The bare baseline: each report's values in the same buckets, one hand-written query each on a bare connection. */
function bare(raw, queries, now) {
  const t = performance.now();
  for (const q of queries) {
    const ranges = neededRanges(q, now);
    const span = q.interval === 'hour' ? H : DAY;
    const times = ranges.map(() => '(time >= ? and time < ?)').join(' or ');
    const args = ranges.flat();
    if (q.measure.type === 'total' && !q.breakdown) {
      const days = ranges.map(() => '(day >= ? and day < ?)').join(' or ');
      raw.prepare(`select day, sum(count) from event_daily_counts where project_id = 1 and event = ? and (${days}) group by day`).all(q.event, ...args.map((x) => x / DAY));
    } else if (q.measure.type === 'unique') {
      raw.prepare(`select time / ?, count(distinct distinct_id) from events where project_id = 1 and event = ? and (${times}) group by 1`).all(span, q.event, ...args);
    } else if (q.measure.type === 'sum') {
      raw.prepare(`select time / ?, sum(json_extract(properties, '$.amount')) from events where project_id = 1 and event = ? and (${times}) group by 1`).all(span, q.event, ...args);
    } else {
      raw.prepare(`select time / ?, json_extract(properties, '$.store'), count(*) from events where project_id = 1 and event = ? and (${times}) group by 1, 2`).all(span, q.event, ...args);
    }
  }
  return performance.now() - t;
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

await runMain(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-bench-alerts-'));
  log(`data in ${dir}`);
  try {
    const now = Math.floor(Date.now() / H) * H + 60_000;
    const config = loadConfig({ dataDir: dir }, { ...process.env, DATABASE_URL: '', COHORTCAST_LOG_LEVEL: 'warn', COHORTCAST_ALERT_CHECK_INTERVAL_MS: String(DAY) });
    const setup = openStore(config);
    await migrateToLatest(setup);
    load(setup.raw, now);
    const queries = [];
    for (let k = 0; k < REPORTS; k++) {
      const { type, query } = parseQuery('insights', reportQuery(k));
      queries.push(query);
      const report = await insertReport(setup.db, 1, { name: `Report ${k}`, type, query }, now);
      for (let a = 0; a < ALERTS_PER_REPORT; a++) {
        const condition = parseCondition(CONDITIONS[a]);
        const segment = query.breakdown ? (a % 2 ? '$any' : 'web') : null;
        await insertAlert(setup.db, 1, { name: `Alert ${k}/${a}`, report_id: report.id, condition, segment, frequency: 'daily', windows: null, channels: [{ type: 'email', to: ['oncall@example.com'] }], creator: 'bench', creator_email: null }, now);
      }
    }
    await setup.close();
    log(`${REPORTS.toLocaleString('en-US')} reports and ${(REPORTS * ALERTS_PER_REPORT).toLocaleString('en-US')} alerts saved`);

    const engine = await startWorker(config, { now: () => now });
    let checkMs;
    let checked;
    let fired;
    const results = [];
    try {
      const t = performance.now();
      checked = await engine.alerts.checker.checkAll(now);
      checkMs = performance.now() - t;
      if (checked !== REPORTS * ALERTS_PER_REPORT) throw new Error(`checked ${checked} of ${REPORTS * ALERTS_PER_REPORT} alerts`);
      fired = Number((await engine.store.db.selectFrom('alerts').select((e) => e.fn.countAll().as('n')).where('last_fired_at', 'is not', null).executeTakeFirstOrThrow()).n);
      log(`${checked.toLocaleString('en-US')} alerts checked in ${Math.round(checkMs)} ms (${fired} fired)`);
      const admin = new ReportAdmin({ store: engine.store, now: () => now });
      let seed = 5;
      for (let i = 0; i < RESULTS; i++) {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        const id = 1 + (seed % REPORTS);
        const s = performance.now();
        await admin.result(1, id, {});
        results.push(performance.now() - s);
      }
    } finally {
      await engine.close();
    }
    const raw = new BetterSqlite3(path.join(dir, 'cohortcast.db'), { readonly: true });
    const bareMs = bare(raw, queries, now);
    raw.close();
    results.sort((a, b) => a - b);
    const figures = {
      events: EVENTS,
      reports: REPORTS,
      alerts: checked,
      fired,
      check_ms: Math.round(checkMs),
      bare_ms: Math.round(bareMs),
      ratio_to_bare: Number((checkMs / bareMs).toFixed(2)),
      result_p50_ms: Math.round(percentile(results, 50)),
      result_p99_ms: Math.round(percentile(results, 99)),
      check_target_met: checkMs < TARGET_MS,
    };
    console.log(`\n${EVENTS.toLocaleString('en-US')} events, ${REPORTS.toLocaleString('en-US')} reports, ${checked.toLocaleString('en-US')} alerts (SQLite)`);
    console.log(`${'figure'.padEnd(64)}${'value'.padStart(10)}`);
    const row = (name, value) => console.log(`${name.padEnd(64)}${String(value).padStart(10)}`);
    row(`every alert checked once, ms (target under 60,000: ${figures.check_target_met ? 'met' : 'NOT met'})`, figures.check_ms);
    row('bare SQL, the same reports over the same buckets, ms', figures.bare_ms);
    row('ratio to the bare SQL', figures.ratio_to_bare);
    row('alerts that fired', fired);
    row(`one report's result (default range), p50 ms`, figures.result_p50_ms);
    row(`one report's result (default range), p99 ms`, figures.result_p99_ms);
    console.log(JSON.stringify(figures));
  } finally {
    if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
});
