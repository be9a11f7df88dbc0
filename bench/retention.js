// Retention: `npm run bench:retention` (builds first, then runs this file).
//
// A cohort of BENCH_MEMBERS profiles (written straight into a fresh SQLite data folder) is synced by
// `cohortcast serve` to a local sink (bench/sink-server.js) again and again, time compressed: a new
// run as soon as the last one ended (each one a "30-minute" sync), BENCH_CHURN of the members churned
// through /engage before each, snapshots living COHORTCAST_SYNC_SNAPSHOT_TTL_MS (so full runs recur,
// as they do every 3 days in real time). Meanwhile a paced client sends /track requests (BENCH_TRACK_RPS
// requests/s of 5 events: few, so that events, which are kept, do not hide the rest) and records each one's latency. The same is done twice, each on its own
// fresh copy of the data:
//   baseline   retention off (every COHORTCAST_RETAIN_* = 0): the raw growth, and ingestion's latency
//              beside the same syncs without pruning
//   retention  deliveries and runs kept BENCH_KEEP_S seconds, bodies a third of that, pruning every 2 s
// Printed: the database's size (file + WAL) after every run, the longest slice of pruning (the
// service's cohortcast_retention_longest_slice_seconds: the longest any one transaction of pruning or
// of dropping superseded snapshots held the database), rows removed, and /track latency of both.
// Targets (issue: retention): the file stops growing once the horizon is reached; longest slice under 50 ms.
// Environment (all optional): BENCH_MEMBERS=1000000, BENCH_CHURN=0.01, BENCH_SECONDS=150 per target,
// BENCH_KEEP_S=30, BENCH_SNAPSHOT_TTL_S=40, BENCH_TRACK_RPS=20, BENCH_KEEP=1 keeps the data folders.
// Output: progress on stderr; on stdout a table, then one final line holding a JSON object of the figures.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Pool, request } from 'undici';
import { loadConfig } from '../dist/config.js';
import { syncMemberHead } from '../dist/cohort-sync/wire.js';
import { createProject } from '../dist/projects/projects.js';
import { openStore } from '../dist/store/database.js';
import { migrateToLatest } from '../dist/store/migrate.js';
import { api, envInt, freePort, log, ROOT, runMain, sleep, startChild, stopChild, waitForLine, waitReady } from './lib/processes.js';

const MEMBERS = Math.floor(envInt('BENCH_MEMBERS', 1_000_000));
const CHURN = envInt('BENCH_CHURN', 0.01, 0.0001);
const SECONDS = envInt('BENCH_SECONDS', 150);
const KEEP_S = envInt('BENCH_KEEP_S', 30);
const SNAPSHOT_TTL_S = envInt('BENCH_SNAPSHOT_TTL_S', 40);
const TRACK_RPS = envInt('BENCH_TRACK_RPS', 20);
const TRACK_EVENTS = 5;
const KEEP = process.env.BENCH_KEEP === '1';
const TARGET_SLICE_MS = 50;
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const SINK = path.join(ROOT, 'bench', 'sink-server.js');

const member = (i) => `member-${String(i).padStart(8, '0')}`;
const props = (i, plan = 'pro') => ({ plan, $email: `${member(i)}@example.com`, $first_name: 'Ada', $last_name: `Lovelace${i % 100}` });

async function load(dir) {
  const store = openStore(loadConfig({ dataDir: dir }, { ...process.env, DATABASE_URL: '' }));
  try {
    await migrateToLatest(store);
    const project = await createProject(store, 'bench');
    const now = Date.now();
    const insert = store.raw.prepare('insert into profiles (project_id, distinct_id, properties, sync_member, created_at, updated_at) values (?, ?, jsonb(?), ?, ?, ?)');
    store.raw.transaction(() => {
      for (let i = 0; i < MEMBERS; i++) insert.run(project.id, member(i), JSON.stringify(props(i)), syncMemberHead(member(i), props(i)), now, now);
    })();
    return project;
  } finally {
    await store.close();
  }
}

const dbBytes = (dir) => ['cohortcast.db', 'cohortcast.db-wal'].reduce((n, f) => n + (fs.statSync(path.join(dir, f), { throwIfNoEntry: false })?.size ?? 0), 0);

/** The service's metric lines named `name`, as {labels: value}. */
async function metric(base, name) {
  const text = await (await request(`${base}/metrics`)).body.text();
  const out = {};
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}(?:\\{kind="([^"]+)"\\})? (\\S+)$`).exec(line);
    if (m) out[m[1] ?? ''] = Number(m[2]);
  }
  return out;
}

/** /track at a steady pace until stopped: each request's latency in ms. */
function trackLoad(base, token) {
  const pool = new Pool(base, { connections: 4 });
  const latencies = [];
  let stopped = false;
  let n = 0;
  const done = (async () => {
    const start = performance.now();
    while (!stopped) {
      const due = start + (n * 1000) / TRACK_RPS;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const events = Array.from({ length: TRACK_EVENTS }, (_, k) => ({ event: 'Viewed', properties: { token, distinct_id: member((n * TRACK_EVENTS + k) % MEMBERS), $insert_id: `t${n}-${k}` } }));
      const body = `data=${Buffer.from(JSON.stringify(events)).toString('base64')}`;
      n++;
      const t = performance.now();
      void pool
        .request({ method: 'POST', path: '/track', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body })
        .then(async (res) => {
          await res.body.text();
          latencies.push(performance.now() - t);
        })
        .catch(() => {});
    }
  })();
  return {
    async stop() {
      stopped = true;
      await done;
      await sleep(200);
      await pool.close();
      return latencies;
    },
  };
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] * 10) / 10 : null;
};

async function target(name, sinkOrigin, retentionEnv) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `cohortcast-bench-retention-${name}-`));
  log(`${name}: ${MEMBERS.toLocaleString('en-US')} profiles into ${dir}`);
  try {
    const project = await load(dir);
    const port = await freePort();
    const env = {
      ...process.env,
      DATABASE_URL: '',
      COHORTCAST_ALLOW_HTTP: 'true',
      COHORTCAST_ALLOWED_NETWORKS: '127.0.0.0/8',
      COHORTCAST_SCHEDULER_POLL_INTERVAL_MS: '20',
      COHORTCAST_SYNC_SNAPSHOT_TTL_MS: String(SNAPSHOT_TTL_S * 1000),
      COHORTCAST_SYNC_SWEEP_INTERVAL_MS: '1000',
      COHORTCAST_LOG_LEVEL: 'warn',
      ...retentionEnv,
    };
    const serve = startChild(`serve-${name}`, [CLI, 'serve', '--port', String(port), '--data-dir', dir], env);
    const base = `http://127.0.0.1:${port}`;
    await waitReady(serve, `${base}/healthz`);
    const cohort = await api(base, project.secret, '/api/v1/cohorts', 'POST', { name: 'Everyone', definition: { property: 'plan', op: 'equals', value: 'pro' } });
    const connection = await api(base, project.secret, '/api/v1/connections', 'POST', { name: 'sink', url: `${sinkOrigin}/hook`, max_concurrency: 16 });
    const track = trackLoad(base, project.token);
    const started = performance.now();
    const sync = await api(base, project.secret, '/api/v1/cohort-syncs', 'POST', { cohort_id: cohort.id, connection_id: connection.id });
    const sizes = [];
    let runs = 0;
    let fulls = 0;
    let lastId = 0;
    const churn = Math.round(MEMBERS * CHURN);
    while (performance.now() - started < SECONDS * 1000) {
      // Wait for the run going to end, then churn and ask for the next.
      let run;
      for (;;) {
        const { results } = await api(base, project.secret, `/api/v1/cohort-syncs/${sync.id}/runs?limit=1`);
        run = results[0];
        if (run && run.id > lastId && run.state !== 'running') break;
        await sleep(50);
      }
      if (run.state !== 'succeeded') throw new Error(`${name}: run ${run.id} ended ${run.state}: ${run.error}`);
      lastId = run.id;
      runs++;
      if (run.kind === 'full') fulls++;
      sizes.push({ s: Math.round((performance.now() - started) / 100) / 10, bytes: dbBytes(dir) });
      const updates = Array.from({ length: churn }, (_, k) => {
        const i = (runs * churn + k) % MEMBERS;
        return { $token: project.token, $distinct_id: member(i), $set: props(i, (runs + k) % 2 ? 'pro' : 'free') };
      });
      for (let i = 0; i < updates.length; i += 2000) {
        const res = await request(`${base}/engage`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(updates.slice(i, i + 2000)) });
        if (res.statusCode !== 200) throw new Error(`engage: HTTP ${res.statusCode}: ${await res.body.text()}`);
        await res.body.text();
      }
      await api(base, project.secret, `/api/v1/cohort-syncs/${sync.id}/run`, 'POST');
    }
    const latencies = await track.stop();
    const longest = await metric(base, 'cohortcast_retention_longest_slice_seconds');
    const removed = await metric(base, 'cohortcast_retention_rows_removed_total');
    await stopChild(serve);
    log(`${name}: ${runs} runs (${fulls} full), ${(sizes.at(-1).bytes / 1e6).toFixed(0)} MB at the end`);
    return {
      runs,
      fulls,
      sizes,
      longestSliceMs: Object.fromEntries(Object.entries(longest).map(([k, v]) => [k, Math.round(v * 10000) / 10])),
      removed,
      track: { requests: latencies.length, p50: pct(latencies, 50), p99: pct(latencies, 99), max: pct(latencies, 100) },
    };
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
  const baseline = await target('baseline', sinkOrigin, off);
  const pruned = await target('retention', sinkOrigin, on);
  await stopChild(sink);

  const mb = (b) => Math.round(b / 1e5) / 10;
  // Growth over the second half of the run (past the horizon) against the first half's.
  const halves = (sizes) => {
    const mid = sizes.filter((x) => x.s <= SECONDS / 2).at(-1) ?? sizes[0];
    return { first: mb(mid.bytes - sizes[0].bytes), second: mb(sizes.at(-1).bytes - mid.bytes) };
  };
  const g = { baseline: halves(baseline.sizes), retention: halves(pruned.sizes) };
  const longest = Math.max(0, ...Object.values(pruned.longestSliceMs));
  console.log(`\n${MEMBERS.toLocaleString('en-US')} members synced back to back for ${SECONDS} s per target, ${CHURN * 100}% churn a run, snapshots live ${SNAPSHOT_TTL_S} s (SQLite)`);
  console.log(`retention: deliveries and runs kept ${KEEP_S} s, bodies ${Math.max(1, Math.round(KEEP_S / 3))} s, pruning every 2 s`);
  console.log(`${'target'.padEnd(12)}${'runs'.padStart(6)}${'full'.padStart(6)}${'MB 1st run'.padStart(12)}${'MB end'.padStart(9)}${'+MB 1st half'.padStart(14)}${'+MB 2nd half'.padStart(14)}${'track p50'.padStart(11)}${'p99'.padStart(8)}${'max'.padStart(8)}`);
  for (const [name, r] of [['baseline', baseline], ['retention', pruned]]) {
    console.log(
      `${name.padEnd(12)}${String(r.runs).padStart(6)}${String(r.fulls).padStart(6)}${String(mb(r.sizes[0].bytes)).padStart(12)}${String(mb(r.sizes.at(-1).bytes)).padStart(9)}${String(g[name].first).padStart(14)}${String(g[name].second).padStart(14)}${String(r.track.p50).padStart(11)}${String(r.track.p99).padStart(8)}${String(r.track.max).padStart(8)}`,
    );
  }
  // The size at each tenth of the run (the last run ended by then).
  const tenths = (sizes) => Array.from({ length: 10 }, (_, k) => sizes.filter((x) => x.s <= ((k + 1) * SECONDS) / 10).at(-1) ?? sizes[0]).map((x) => mb(x.bytes));
  console.log(`database MB at each tenth of the run, baseline:  ${tenths(baseline.sizes).join(', ')}`);
  console.log(`database MB at each tenth of the run, retention: ${tenths(pruned.sizes).join(', ')}`);
  console.log(`longest slice by kind (ms): ${JSON.stringify(pruned.longestSliceMs)}; target under ${TARGET_SLICE_MS}: ${longest < TARGET_SLICE_MS ? 'met' : 'NOT met'}`);
  console.log(`rows removed by kind: ${JSON.stringify(pruned.removed)}`);
  console.log(
    JSON.stringify({
      members: MEMBERS,
      seconds: SECONDS,
      keep_s: KEEP_S,
      runs: { baseline: baseline.runs, retention: pruned.runs },
      growth_mb: g,
      mb_by_tenth: { baseline: tenths(baseline.sizes), retention: tenths(pruned.sizes) },
      end_mb: { baseline: mb(baseline.sizes.at(-1).bytes), retention: mb(pruned.sizes.at(-1).bytes) },
      longest_slice_ms: pruned.longestSliceMs,
      longest_slice_target_met: longest < TARGET_SLICE_MS,
      track_ms: { baseline: baseline.track, retention: pruned.track },
    }),
  );
});
