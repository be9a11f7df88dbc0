// Retention: `npm run bench:retention` (builds first, then runs this file). Two parts, on SQLite:
//
// levelling  A cohort of BENCH_MEMBERS profiles (written straight into a fresh data folder) is synced
//            by `cohortcast serve` to a local sink (bench/sink-server.js) again and again, time
//            compressed: a new run as soon as the last one ended (each one a "30-minute" sync),
//            BENCH_CHURN of the members churned through /engage before each. Twice, each on its own
//            fresh folder: `baseline` with retention off (every COHORTCAST_RETAIN_* = 0: the raw
//            growth), and `retention` with deliveries and runs kept BENCH_KEEP_S seconds, bodies a
//            third of that, pruning every 2 s. The database's size after every run is its pages in
//            use and free (page_count × page_size, read on a connection of the bench's own: the file's
//            size once the WAL is checkpointed into it).
// slices     A fresh folder holding a backlog past every default horizon, written straight into it:
//            BENCH_BACKLOG small finished deliveries with an attempt each, 1,000 cohort-sync pages of
//            125 KB, and a superseded 1,000,000-id snapshot. `serve` starts with the default horizons and
//            pruning every second, while a paced client sends /track (BENCH_TRACK_RPS requests/s of 20
//            events) and records each request's latency: while pruning works through the backlog, and
//            for as long again after it is done (the baseline of the same run). The longest slice is the
//            service's cohortcast_retention_longest_slice_seconds: the longest any one transaction of
//            pruning, or of dropping the superseded snapshot, held the database.
// Targets (issue: retention): the file stops growing once the horizon is reached; longest slice under 50 ms.
// Environment (all optional): BENCH_MEMBERS=1000000, BENCH_CHURN=0.01, BENCH_SECONDS=120 per levelling
// target, BENCH_KEEP_S=30, BENCH_BACKLOG=200000, BENCH_TRACK_RPS=50, BENCH_KEEP=1 keeps the data folders.
// Output: progress on stderr; on stdout a table, then one final line holding a JSON object of the figures.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { Pool, request } from 'undici';
import { loadConfig } from '../dist/config.js';
import { syncMemberHead } from '../dist/cohort-sync/wire.js';
import { createProject } from '../dist/projects/projects.js';
import { openStore } from '../dist/store/database.js';
import { migrateToLatest } from '../dist/store/migrate.js';
import { api, envInt, freePort, log, ROOT, runMain, sleep, startChild, stopChild, waitForLine, waitReady } from './lib/processes.js';

const MEMBERS = Math.floor(envInt('BENCH_MEMBERS', 1_000_000));
const CHURN = envInt('BENCH_CHURN', 0.01, 0.0001);
const SECONDS = envInt('BENCH_SECONDS', 120);
const KEEP_S = envInt('BENCH_KEEP_S', 30);
const BACKLOG = Math.floor(envInt('BENCH_BACKLOG', 200_000));
const TRACK_RPS = envInt('BENCH_TRACK_RPS', 50);
const KEEP = process.env.BENCH_KEEP === '1';
const TARGET_SLICE_MS = 50;
const DAY = 86_400_000;
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const SINK = path.join(ROOT, 'bench', 'sink-server.js');

const member = (i) => `member-${String(i).padStart(8, '0')}`;
const props = (i, plan = 'pro') => ({ plan, $email: `${member(i)}@example.com`, $first_name: 'Ada', $last_name: `Lovelace${i % 100}` });
const mb = (b) => Math.round(b / 1e5) / 10;

/** A fresh data folder with a project; `fill(raw, project)` writes into it before any service opens it. */
async function folder(name, fill) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `cohortcast-bench-retention-${name}-`));
  const store = openStore(loadConfig({ dataDir: dir }, { ...process.env, DATABASE_URL: '' }));
  try {
    await migrateToLatest(store);
    const project = await createProject(store, 'bench');
    store.raw.transaction(() => fill(store.raw, project))();
    return { dir, project };
  } finally {
    await store.close();
  }
}

const loadProfiles = (raw, project) => {
  const now = Date.now();
  const insert = raw.prepare('insert into profiles (project_id, distinct_id, properties, sync_member, created_at, updated_at) values (?, ?, jsonb(?), ?, ?, ?)');
  for (let i = 0; i < MEMBERS; i++) insert.run(project.id, member(i), JSON.stringify(props(i)), syncMemberHead(member(i), props(i)), now, now);
};

async function serve(name, dir, extraEnv) {
  const port = await freePort();
  const env = { ...process.env, DATABASE_URL: '', COHORTCAST_ALLOW_HTTP: 'true', COHORTCAST_ALLOWED_NETWORKS: '127.0.0.0/8', COHORTCAST_SCHEDULER_POLL_INTERVAL_MS: '20', COHORTCAST_LOG_LEVEL: 'warn', ...extraEnv };
  const child = startChild(`serve-${name}`, [CLI, 'serve', '--port', String(port), '--data-dir', dir], env);
  const base = `http://127.0.0.1:${port}`;
  await waitReady(child, `${base}/healthz`);
  return { child, base };
}

/** The service's metric lines named `name`, as {kind: value}. */
async function metric(base, name) {
  const text = await (await request(`${base}/metrics`)).body.text();
  const out = {};
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}(?:\\{kind="([^"]+)"\\})? (\\S+)$`).exec(line);
    if (m) out[m[1] ?? ''] = Number(m[2]);
  }
  return out;
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] * 10) / 10 : null;
};

// ----- levelling -----

async function levelling(name, sinkOrigin, retentionEnv) {
  log(`${name}: ${MEMBERS.toLocaleString('en-US')} profiles`);
  const { dir, project } = await folder(name, loadProfiles);
  try {
    const { child, base } = await serve(name, dir, retentionEnv);
    const reader = new Database(path.join(dir, 'cohortcast.db'), { readonly: true });
    const size = () => reader.prepare('select page_count * page_size as n from pragma_page_count(), pragma_page_size()').get().n;
    const cohort = await api(base, project.secret, '/api/v1/cohorts', 'POST', { name: 'Everyone', definition: { property: 'plan', op: 'equals', value: 'pro' } });
    const connection = await api(base, project.secret, '/api/v1/connections', 'POST', { name: 'sink', url: `${sinkOrigin}/hook`, max_concurrency: 16 });
    const started = performance.now();
    const sync = await api(base, project.secret, '/api/v1/cohort-syncs', 'POST', { cohort_id: cohort.id, connection_id: connection.id });
    const sizes = [];
    let lastId = 0;
    const churn = Math.round(MEMBERS * CHURN);
    while (performance.now() - started < SECONDS * 1000) {
      let run;
      for (;;) {
        const { results } = await api(base, project.secret, `/api/v1/cohort-syncs/${sync.id}/runs?limit=1`);
        run = results[0];
        if (run && run.id > lastId && run.state !== 'running') break;
        await sleep(50);
      }
      if (run.state !== 'succeeded') throw new Error(`${name}: run ${run.id} ended ${run.state}: ${run.error}`);
      lastId = run.id;
      sizes.push({ s: (performance.now() - started) / 1000, bytes: size() });
      const updates = Array.from({ length: churn }, (_, k) => {
        const i = (sizes.length * churn + k) % MEMBERS;
        return { $token: project.token, $distinct_id: member(i), $set: props(i, (sizes.length + k) % 2 ? 'pro' : 'free') };
      });
      for (let i = 0; i < updates.length; i += 2000) {
        const res = await request(`${base}/engage`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(updates.slice(i, i + 2000)) });
        await res.body.text();
        if (res.statusCode !== 200) throw new Error(`engage: HTTP ${res.statusCode}`);
      }
      await api(base, project.secret, `/api/v1/cohort-syncs/${sync.id}/run`, 'POST');
    }
    const removed = await metric(base, 'cohortcast_retention_rows_removed_total');
    reader.close();
    await stopChild(child);
    log(`${name}: ${sizes.length} runs, ${mb(sizes.at(-1).bytes)} MB at the end`);
    // The size at each tenth of the time (after the last run that had ended by then).
    const tenths = Array.from({ length: 10 }, (_, k) => sizes.filter((x) => x.s <= ((k + 1) * SECONDS) / 10).at(-1) ?? sizes[0]).map((x) => mb(x.bytes));
    return { runs: sizes.length, first: mb(sizes[0].bytes), tenths, removed };
  } finally {
    if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ----- slices -----

const pageBody = (p) =>
  JSON.stringify({ action: 'members', parameters: { mixpanel_session_id: 'old', page_info: { total_pages: 1000, page_count: p + 1 }, members: Array.from({ length: 1000 }, (_, i) => ({ mixpanel_distinct_id: member(p * 1000 + i), email: `${member(p * 1000 + i)}@example.com`, first_name: 'Ada', last_name: 'Lovelace' })) } });

const writeBacklog = (raw, project) => {
  const old = Date.now() - 40 * DAY;
  const conn = raw
    .prepare(`insert into connections (project_id, name, url, headers, signing_secret, timeout_ms, max_concurrency, created_at, updated_at) values (?, 'old', 'https://example.invalid/', '{}', 'x', 1000, 1, ?, ?) returning id`)
    .get(project.id, old, old).id;
  const delivery = raw.prepare(
    `insert into deliveries (project_id, channel, connection_id, webhook_id, owner_kind, owner_id, policy, content_type, body, body_apart, headers, state, outcome, attempts, round_attempts, next_attempt_at, created_at, updated_at, completed_at)
     values (?, 'webhook', ?, ?, ?, ?, 'standard', 'application/json', ?, ?, '{}', 'succeeded', 'delivered', 1, 1, ?, ?, ?, ?) returning id`,
  );
  const attempt = raw.prepare(`insert into delivery_attempts (delivery_id, attempt, worker, started_at, duration_ms, status, response_headers, response_body, error, outcome, reason) values (?, 1, 'w', ?, 12, 200, '{"content-type":"application/json"}', '{"status":"success"}', null, 'delivered', null)`);
  const body = raw.prepare('insert into delivery_bodies (delivery_id, body) values (?, ?)');
  for (let p = 0; p < 1000; p++) {
    const id = delivery.get(project.id, conn, `msg_${crypto.randomUUID()}`, 'cohort-sync', `1:${p + 1}`, '', 1, old, old, old, old).id;
    body.run(id, pageBody(p));
    attempt.run(id, old);
  }
  const small = JSON.stringify({ event: 'cohort.member_entered', data: { cohort_id: 1, distinct_id: 'someone' } });
  for (let i = 0; i < BACKLOG; i++) attempt.run(delivery.get(project.id, conn, `msg_${crypto.randomUUID()}`, 'subscription', String(i), small, 0, old, old, old, old).id, old);
  // A superseded run of a 1,000,000-member cohort: its snapshot is what the sweep drops.
  const cohort = raw.prepare(`insert into cohorts (project_id, name, description, definition, created_at, updated_at) values (?, 'old', '', '{"property":"plan","op":"equals","value":"pro"}', ?, ?) returning id`).get(project.id, old, old).id;
  const sync = raw
    .prepare(`insert into cohort_syncs (project_id, cohort_id, connection_id, properties_to_export, owner_emails, interval_ms, state, created_at, updated_at) values (?, ?, ?, '[]', '[]', null, 'done', ?, ?) returning id`)
    .get(project.id, cohort, conn, old, old).id;
  const run = raw
    .prepare(`insert into sync_runs (sync_id, session_id, kind, state, total_pages, pages_acked, members, members_added, members_removed, started_at, finished_at, stale) values (?, 'old', 'full', 'succeeded', 1000, 1000, 1000000, 1000000, 0, ?, ?, 1) returning id`)
    .get(sync, old, old).id;
  const chunk = raw.prepare('insert into sync_snapshots (run_id, chunk, first_id, last_id, member_count, ids) values (?, ?, ?, ?, 1000, ?)');
  for (let c = 0; c < 1000; c++) {
    const ids = Array.from({ length: 1000 }, (_, i) => member(c * 1000 + i));
    chunk.run(run, c, ids[0], ids.at(-1), JSON.stringify(ids));
  }
};

/** /track at a steady pace until stopped: each request's start (ms since `origin`) and latency. */
function trackLoad(base, token, origin) {
  const pool = new Pool(base, { connections: 8 });
  const samples = [];
  let stopped = false;
  let n = 0;
  const done = (async () => {
    const start = performance.now();
    while (!stopped) {
      const wait = start + (n * 1000) / TRACK_RPS - performance.now();
      if (wait > 0) await sleep(wait);
      const events = Array.from({ length: 20 }, (_, k) => ({ event: 'Viewed', properties: { token, distinct_id: member((n * 20 + k) % 100_000), $insert_id: `t${n}-${k}` } }));
      const body = `data=${Buffer.from(JSON.stringify(events)).toString('base64')}`;
      n++;
      const t = performance.now();
      void pool
        .request({ method: 'POST', path: '/track', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body })
        .then(async (res) => {
          await res.body.text();
          samples.push({ at: t - origin, ms: performance.now() - t });
        })
        .catch(() => {});
    }
  })();
  return {
    async stop() {
      stopped = true;
      await done;
      await sleep(500);
      await pool.close();
      return samples;
    },
  };
}

async function slices() {
  log(`slices: a backlog of ${BACKLOG.toLocaleString('en-US')} deliveries, 1,000 pages of 125 KB and a 1,000,000-id snapshot`);
  const { dir, project } = await folder('slices', writeBacklog);
  try {
    const { child, base } = await serve('slices', dir, { COHORTCAST_RETENTION_INTERVAL: '1s', COHORTCAST_SYNC_SWEEP_INTERVAL_MS: '1000' });
    const origin = performance.now();
    const track = trackLoad(base, project.token, origin);
    const expected = { deliveries: BACKLOG + 1000, sync_snapshots: 1000 };
    let doneAt;
    for (;;) {
      const removed = await metric(base, 'cohortcast_retention_rows_removed_total');
      if ((removed.deliveries ?? 0) >= expected.deliveries && (removed.sync_snapshots ?? 0) >= expected.sync_snapshots) {
        doneAt = performance.now() - origin;
        break;
      }
      if (performance.now() - origin > 600_000) throw new Error(`pruning did not finish in 10 minutes: ${JSON.stringify(removed)}`);
      await sleep(100);
    }
    log(`slices: the backlog was pruned in ${(doneAt / 1000).toFixed(1)} s; measuring ingestion as long again without it`);
    await sleep(Math.max(5000, doneAt));
    const samples = await track.stop();
    const longest = await metric(base, 'cohortcast_retention_longest_slice_seconds');
    const removed = await metric(base, 'cohortcast_retention_rows_removed_total');
    await stopChild(child);
    const during = samples.filter((x) => x.at < doneAt).map((x) => x.ms);
    const after = samples.filter((x) => x.at >= doneAt).map((x) => x.ms);
    const stats = (xs) => ({ requests: xs.length, p50: pct(xs, 50), p99: pct(xs, 99), max: pct(xs, 100) });
    return { prunedInS: Math.round(doneAt / 100) / 10, longestSliceMs: Object.fromEntries(Object.entries(longest).map(([k, v]) => [k, Math.round(v * 10000) / 10])), removed, during: stats(during), after: stats(after) };
  } finally {
    if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
}

await runMain(async () => {
  const sinkPort = await freePort();
  const sink = startChild('sink', [SINK, String(sinkPort)], process.env);
  await waitForLine(sink, 'ready');
  const sinkOrigin = `http://127.0.0.1:${sinkPort}`;
  const off = { COHORTCAST_RETAIN_DELIVERIES: '0', COHORTCAST_RETAIN_DELIVERY_BODIES: '0', COHORTCAST_RETAIN_SUBSCRIPTION_EVENTS: '0', COHORTCAST_RETAIN_SYNC_RUNS: '0', COHORTCAST_RETAIN_ALERT_CHECKS: '0' };
  const on = { COHORTCAST_RETAIN_DELIVERIES: `${KEEP_S}s`, COHORTCAST_RETAIN_DELIVERY_BODIES: `${Math.max(1, Math.round(KEEP_S / 3))}s`, COHORTCAST_RETAIN_SYNC_RUNS: `${KEEP_S}s`, COHORTCAST_RETENTION_INTERVAL: '2s' };
  const baseline = await levelling('baseline', sinkOrigin, off);
  const pruned = await levelling('retention', sinkOrigin, on);
  await stopChild(sink);
  const sliced = await slices();

  const growth = (r) => ({ first_half: Math.round((r.tenths[4] - r.tenths[0]) * 10) / 10, second_half: Math.round((r.tenths[9] - r.tenths[4]) * 10) / 10 });
  const longest = Math.max(0, ...Object.values(sliced.longestSliceMs));
  console.log(`\nlevelling: ${MEMBERS.toLocaleString('en-US')} members synced back to back for ${SECONDS} s per target, ${CHURN * 100}% churn a run (SQLite)`);
  console.log(`retention: deliveries and runs kept ${KEEP_S} s, bodies ${Math.max(1, Math.round(KEEP_S / 3))} s, pruning every 2 s; sizes in MB (pages in use and free)`);
  console.log(`${'target'.padEnd(12)}${'runs'.padStart(6)}${'1st run'.padStart(9)}${'end'.padStart(8)}${'+1st half'.padStart(11)}${'+2nd half'.padStart(11)}   at each tenth of the time`);
  for (const [name, r] of [['baseline', baseline], ['retention', pruned]]) {
    const g = growth(r);
    console.log(`${name.padEnd(12)}${String(r.runs).padStart(6)}${String(r.first).padStart(9)}${String(r.tenths[9]).padStart(8)}${String(g.first_half).padStart(11)}${String(g.second_half).padStart(11)}   ${r.tenths.join(', ')}`);
  }
  console.log(`rows removed by kind (retention): ${JSON.stringify(pruned.removed)}`);
  console.log(`\nslices: ${BACKLOG.toLocaleString('en-US')} finished deliveries, 1,000 pages of 125 KB and a 1,000,000-id snapshot past the horizon, pruned in ${sliced.prunedInS} s`);
  console.log(`longest slice by kind (ms): ${JSON.stringify(sliced.longestSliceMs)}; target under ${TARGET_SLICE_MS}: ${longest < TARGET_SLICE_MS ? 'met' : 'NOT met'}`);
  console.log(`${'/track, 20 events'.padEnd(28)}${'requests'.padStart(10)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'max ms'.padStart(9)}`);
  for (const [name, r] of [['while pruning', sliced.during], ['after (baseline)', sliced.after]]) {
    console.log(`${name.padEnd(28)}${String(r.requests).padStart(10)}${String(r.p50).padStart(9)}${String(r.p99).padStart(9)}${String(r.max).padStart(9)}`);
  }
  console.log(
    JSON.stringify({
      members: MEMBERS,
      seconds: SECONDS,
      keep_s: KEEP_S,
      runs: { baseline: baseline.runs, retention: pruned.runs },
      mb_by_tenth: { baseline: baseline.tenths, retention: pruned.tenths },
      growth_mb: { baseline: growth(baseline), retention: growth(pruned) },
      backlog: BACKLOG,
      pruned_in_s: sliced.prunedInS,
      longest_slice_ms: sliced.longestSliceMs,
      longest_slice_target_met: longest < TARGET_SLICE_MS,
      track_ms: { while_pruning: sliced.during, after: sliced.after },
    }),
  );
});
