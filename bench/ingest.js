// Ingestion benchmark: `npm run bench:ingest` (builds first, then runs this file).
//
// Events/s through POST /track in batches of BENCH_BATCH (50) events, form-encoded `data=<base64>`
// exactly as Mixpanel's official clients send it, on keep-alive connections, against:
//   baseline  a bare Fastify server whose /track reads the body and answers "1" (bench/noop-server.js)
//   sqlite    `cohortcast serve` on a fresh SQLite data folder
//   postgres  `cohortcast serve` on a fresh database: in BENCH_DATABASE_URL if set, else in a
//             throwaway server started with .ci/start-postgres (skipped, with a note, if impossible)
// Each server runs as a child process; the load generator (undici Pool) runs here.
// After each storing run the stored event count is checked against the acknowledged count.
//
// Environment (all optional):
//   BENCH_SECONDS=5         measured seconds per target (after BENCH_WARMUP_SECONDS=1 of warm-up)
//   BENCH_CONNECTIONS=32    keep-alive connections (one request in flight on each)
//   BENCH_BATCH=50          events per request
//   BENCH_MAX_REQUESTS=…    requests pre-generated per storing target (default: enough for 2,500 req/s)
//   BENCH_TIME_SPREAD_S=60  event times are spread over this many seconds before "now"
//   BENCH_TARGETS=baseline,sqlite,postgres
//   BENCH_DATABASE_URL=postgres://…   admin URL of a PostgreSQL in which a fresh database is created
//   BENCH_CPU_PROF=DIR      run the cohortcast children under `node --cpu-prof` writing into DIR
//                           (summarise with `node bench/cpu-profile-top.js DIR/*.cpuprofile`)
//   BENCH_SHOW_SERVER_STDERR=1  copy the servers' stderr to this one's
//   BENCH_KEEP=1            keep the temporary SQLite folder and the database made in BENCH_DATABASE_URL
// Output: progress on stderr; on stdout a table, then one final line holding a JSON object of the figures.
import { setMaxListeners } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { Pool } from 'undici';
import { freshDatabase, postgresAdminUrlOrSkip } from './lib/postgres.js';
import { prng } from './lib/prng.js';
import { cleanup, CLI, cpuSeconds, createProject, envInt, freePort, log, noteMachineLoad, onCleanup, ROOT, runMain, serviceEnv, startChild, stopChild, waitReady } from './lib/processes.js';

const NOOP = path.join(ROOT, 'bench', 'noop-server.js');

const SECONDS = envInt('BENCH_SECONDS', 5, 0.1);
const WARMUP_SECONDS = envInt('BENCH_WARMUP_SECONDS', 1, 0);
// 32 gets the most out of both the no-op baseline and cohortcast on a 2-core machine (tried 8-64).
const CONNECTIONS = Math.floor(envInt('BENCH_CONNECTIONS', 32));
const BATCH = Math.floor(envInt('BENCH_BATCH', 50));
const MAX_REQUESTS = Math.floor(envInt('BENCH_MAX_REQUESTS', Math.ceil((SECONDS + WARMUP_SECONDS) * 2500)));
const TARGETS = (process.env.BENCH_TARGETS ?? 'baseline,sqlite,postgres').split(',').map((s) => s.trim()).filter(Boolean);
const CPU_PROF = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : undefined;
const KEEP = process.env.BENCH_KEEP === '1';
// Live /track traffic is stamped "now" by the clients: times spread over the last minute by default.
const TIME_SPREAD_MS = envInt('BENCH_TIME_SPREAD_S', 60, 0) * 1000;
// The floor not to fall below on SQLite: about Mixpanel's own per-project ingestion limit (the 50,000 asked earlier was withdrawn for a 2-core machine).
const TARGET_EVENTS_PER_S = 30_000;
const USERS = 10_000;
const MAX_ERRORS = 50;

// ---------------------------------------------------------------------------------------------
// Request bodies: pre-encoded before timing, every event with its own $insert_id.

const EVENT_NAMES = ['Page View', 'Page View', 'Page View', 'Search', 'Add to Cart', 'Sign Up', 'Purchase'];
const PLANS = ['free', 'pro', 'team', 'enterprise'];
const BROWSERS = ['Chrome', 'Firefox', 'Safari', 'Edge'];
const OSES = ['Mac OS X', 'Windows', 'Linux', 'iOS', 'Android'];
const SOURCES = ['google', 'newsletter', 'twitter', 'direct'];
const WIDTHS = [390, 1280, 1440, 1920];

function makeBodies(token, count, tag) {
  const rand = prng(count * 7919 + tag.length);
  const pick = (list) => list[Math.floor(rand() * list.length)];
  const now = Date.now();
  const bodies = new Array(count);
  const runTag = `${tag}${process.pid.toString(36)}${now.toString(36)}`;
  for (let r = 0; r < count; r++) {
    const events = new Array(BATCH);
    const prefix = `${runTag}-${r.toString(36)}-`;
    for (let i = 0; i < BATCH; i++) {
      const n = Math.floor(rand() * 500);
      events[i] = {
        event: pick(EVENT_NAMES),
        properties: {
          token,
          distinct_id: `user-${Math.floor(rand() * USERS)}`,
          time: now - Math.floor(rand() * TIME_SPREAD_MS),
          $insert_id: prefix + i.toString(36),
          plan: pick(PLANS),
          path: `/p/${n}`,
          $browser: pick(BROWSERS),
          $os: pick(OSES),
          $screen_width: pick(WIDTHS),
          utm_source: pick(SOURCES),
          duration_ms: Math.floor(rand() * 5000),
        },
      };
    }
    // As mixpanel-node does: "data=" + base64(JSON), no further escaping.
    bodies[r] = Buffer.from('data=' + Buffer.from(JSON.stringify(events)).toString('base64'));
  }
  return bodies;
}

// ---------------------------------------------------------------------------------------------
// The load generator.

/**
 * Sends bodies on CONNECTIONS keep-alive connections until the time is up (or, when `unique`,
 * until every body has been sent once). Requests that complete inside the measured window count.
 */
async function load(origin, bodies, { unique, pid }) {
  const pool = new Pool(origin, {
    connections: CONNECTIONS,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  const latencies = new Float64Array(bodies.length + CONNECTIONS + 1024 * 1024);
  const state = {
    next: 0,
    acknowledged: 0, // events answered "1", warm-up included
    sent: 0,
    measuredRequests: 0,
    measuredEvents: 0,
    latencyCount: 0,
    errors: 0,
    errorSamples: [],
    exhausted: false,
    lastCompletion: 0,
  };
  const start = performance.now();
  const measureFrom = start + WARMUP_SECONDS * 1000;
  const stopAt = measureFrom + SECONDS * 1000;
  // A hard bound on the whole run, whatever happens to in-flight requests.
  const hardStop = AbortSignal.timeout((WARMUP_SECONDS + SECONDS) * 1000 + 60_000);
  setMaxListeners(CONNECTIONS * 4 + 16, hardStop);

  // The server's CPU time over the measured window: what one event costs it, whatever else runs.
  const cpu = {};
  const cpuStart = setTimeout(() => (cpu.start = cpuSeconds(pid)), Math.max(0, measureFrom - performance.now()));
  const cpuEnd = setTimeout(() => (cpu.end = cpuSeconds(pid)), Math.max(0, stopAt - performance.now()));

  const noteError = (msg) => {
    state.errors++;
    if (state.errorSamples.length < 5) state.errorSamples.push(msg);
  };

  async function worker() {
    while (state.errors < MAX_ERRORS && !hardStop.aborted) {
      if (performance.now() >= stopAt) return;
      let index = state.next++;
      if (index >= bodies.length) {
        if (unique) {
          state.exhausted = true;
          return;
        }
        index %= bodies.length;
      }
      const body = bodies[index];
      state.sent++;
      const t0 = performance.now();
      let status = 0;
      let text = '';
      try {
        const res = await pool.request({ method: 'POST', path: '/track?ip=0&verbose=0', headers, body, signal: hardStop });
        status = res.statusCode;
        text = await res.body.text();
      } catch (err) {
        noteError(`request failed: ${err.message}`);
        continue;
      }
      const t1 = performance.now();
      if (status !== 200 || text !== '1') {
        noteError(`HTTP ${status}: ${text.slice(0, 300)}`);
        continue;
      }
      state.acknowledged += BATCH;
      if (t1 >= measureFrom && t1 <= stopAt) {
        state.measuredRequests++;
        state.measuredEvents += BATCH;
        state.lastCompletion = t1;
        if (state.latencyCount < latencies.length) latencies[state.latencyCount++] = t1 - t0;
      }
    }
  }

  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  clearTimeout(cpuStart);
  clearTimeout(cpuEnd);
  if (cpu.end === undefined) cpu.end = cpuSeconds(pid);
  await pool.close();

  // If the bodies ran out early, the window ends with the last measured completion.
  const windowEnd = state.exhausted ? Math.min(stopAt, state.lastCompletion) : stopAt;
  const windowS = Math.max((windowEnd - measureFrom) / 1000, 1e-9);
  const sorted = latencies.subarray(0, state.latencyCount).sort();
  const pct = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN);
  const serverCpuS = cpu.start !== undefined && cpu.end !== undefined ? cpu.end - cpu.start : NaN;
  return {
    // Server CPU per event (µs) and the share of one core the server used in the window.
    cpuUsPerEvent: state.measuredEvents ? (serverCpuS * 1e6) / state.measuredEvents : NaN,
    serverCores: serverCpuS / ((stopAt - measureFrom) / 1000),
    eventsPerS: state.measuredEvents / windowS,
    requestsPerS: state.measuredRequests / windowS,
    p50: pct(50),
    p99: pct(99),
    windowS,
    acknowledged: state.acknowledged,
    sent: state.sent,
    errors: state.errors,
    errorSamples: state.errorSamples,
    exhausted: state.exhausted,
  };
}

// ---------------------------------------------------------------------------------------------
// Targets.

async function startService(name, env, dataDir) {
  const port = await freePort();
  const nodeArgs = CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`] : [];
  const handle = startChild(name, [...nodeArgs, CLI, 'serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir], env);
  const origin = `http://127.0.0.1:${port}`;
  await waitReady(handle, `${origin}/healthz`);
  return { handle, origin };
}

function assertClean(name, result) {
  if (result.errors > 0) {
    throw new Error(`${name}: ${result.errors} request(s) were not answered "1", e.g.:\n  ${result.errorSamples.join('\n  ')}`);
  }
}

async function runBaseline(bodies) {
  const port = await freePort();
  const handle = startChild('baseline', [NOOP, String(port)], process.env);
  const origin = `http://127.0.0.1:${port}`;
  await waitReady(handle, `${origin}/`);
  try {
    log(`baseline (no-op Fastify /track) on ${origin}`);
    const result = await load(origin, bodies, { unique: false, pid: handle.child.pid });
    assertClean('baseline', result);
    return result;
  } finally {
    await stopChild(handle);
  }
}

async function runSqlite(project, dataDir) {
  const env = serviceEnv(undefined);
  const { handle, origin } = await startService('sqlite', env, dataDir);
  let result;
  try {
    log(`sqlite on ${origin}, data in ${dataDir}`);
    const bodies = project.bodies;
    result = await load(origin, bodies, { unique: true, pid: handle.child.pid });
  } finally {
    const exit = await stopChild(handle);
    if (exit.code !== 0) log(`sqlite service exited with ${exit.signal ?? exit.code}`);
  }
  assertClean('sqlite', result);
  const db = new BetterSqlite3(path.join(dataDir, 'cohortcast.db'), { readonly: true, fileMustExist: true });
  try {
    result.stored = db.prepare('select count(*) as n from events').get().n;
  } finally {
    db.close();
  }
  return result;
}

async function runPostgres(project, env) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-bench-pgcli-'));
  onCleanup(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const { handle, origin } = await startService('postgres', env, dataDir);
  let result;
  try {
    log(`postgres on ${origin}`);
    result = await load(origin, project.bodies, { unique: true, pid: handle.child.pid });
  } finally {
    await stopChild(handle);
  }
  assertClean('postgres', result);
  const client = new pg.Client({ connectionString: env.DATABASE_URL });
  await client.connect();
  try {
    result.stored = (await client.query('select count(*)::bigint::text as n from events')).rows[0].n * 1;
  } finally {
    await client.end();
  }
  return result;
}

// ---------------------------------------------------------------------------------------------

const fmt = (n, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-');
const round = (n, digits = 0) => (Number.isFinite(n) ? Number(n.toFixed(digits)) : null);

function verify(name, result) {
  if (result.stored !== result.acknowledged) {
    throw new Error(`${name}: ${result.acknowledged} events were acknowledged but ${result.stored} are stored`);
  }
  log(`${name}: stored ${result.stored} events = acknowledged ${result.acknowledged}`);
}

async function main() {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm run bench:ingest does)`);
  log(
    `node ${process.version}, ${os.cpus().length} CPU(s); batch ${BATCH}, ${CONNECTIONS} connections, ` +
      `${WARMUP_SECONDS}s warm-up + ${SECONDS}s measured per target; targets: ${TARGETS.join(', ')}`,
  );
  const results = {};
  const notes = [];
  noteMachineLoad(notes);

  const sqliteDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-bench-sqlite-'));
  if (!KEEP) onCleanup(() => fs.rmSync(sqliteDir, { recursive: true, force: true }));
  const sqliteProject = await createProject(serviceEnv(undefined), sqliteDir);
  let t = performance.now();
  sqliteProject.bodies = makeBodies(sqliteProject.token, MAX_REQUESTS, 's');
  log(`pre-encoded ${MAX_REQUESTS} bodies of ${BATCH} events (${fmt(sqliteProject.bodies[0].length)} bytes each) in ${fmt(performance.now() - t)} ms`);

  if (TARGETS.includes('baseline')) results.baseline = await runBaseline(sqliteProject.bodies);
  if (TARGETS.includes('sqlite')) {
    results.sqlite = await runSqlite(sqliteProject, sqliteDir);
    verify('sqlite', results.sqlite);
  }
  sqliteProject.bodies = undefined;

  if (TARGETS.includes('postgres')) {
    const admin = await postgresAdminUrlOrSkip(notes, 'PostgreSQL run');
    if (admin) {
      const dbUrl = await freshDatabase(admin.url, { keep: KEEP });
      log(`postgres: fresh database ${new URL(dbUrl).pathname.slice(1)} (via ${admin.source})`);
      const env = serviceEnv(dbUrl);
      const pgProject = await createProject(env, sqliteDir);
      t = performance.now();
      pgProject.bodies = makeBodies(pgProject.token, MAX_REQUESTS, 'p');
      log(`pre-encoded ${MAX_REQUESTS} bodies in ${fmt(performance.now() - t)} ms`);
      results.postgres = await runPostgres(pgProject, env);
      verify('postgres', results.postgres);
      pgProject.bodies = undefined;
    }
  }

  for (const [name, r] of Object.entries(results)) {
    if (r.exhausted) notes.push(`${name}: all ${MAX_REQUESTS} pre-encoded bodies were sent before the time was up; measured over ${fmt(r.windowS, 2)} s (raise BENCH_MAX_REQUESTS)`);
  }

  // Stop every child and server now, so nothing is printed after the JSON line.
  await cleanup();

  const base = results.baseline?.eventsPerS;
  const rows = [['target', 'events/s', 'requests/s', 'p50 ms', 'p99 ms', 'vs baseline', 'server CPU µs/event', 'server cores']];
  for (const [name, r] of Object.entries(results)) {
    rows.push([
      name,
      fmt(r.eventsPerS),
      fmt(r.requestsPerS),
      fmt(r.p50, 2),
      fmt(r.p99, 2),
      base ? `${fmt(r.eventsPerS / base, 3)}x` : '-',
      fmt(r.cpuUsPerEvent, 2),
      fmt(r.serverCores, 2),
    ]);
  }
  if (TARGETS.includes('postgres') && !results.postgres) rows.push(['postgres', 'skipped', '-', '-', '-', '-', '-', '-']);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  console.log('');
  for (const [i, row] of rows.entries()) {
    console.log(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  for (const note of notes) console.log(`note: ${note}`);
  if (results.sqlite) {
    const met = results.sqlite.eventsPerS >= TARGET_EVENTS_PER_S;
    console.log(`SQLite floor of ${fmt(TARGET_EVENTS_PER_S)} events/s: ${met ? 'met' : 'NOT met'}`);
  }
  console.log('');

  const figures = {
    sqlite_events_per_s: round(results.sqlite?.eventsPerS),
    postgres_events_per_s: round(results.postgres?.eventsPerS),
    baseline_events_per_s: round(results.baseline?.eventsPerS),
    sqlite_ratio: base && results.sqlite ? round(results.sqlite.eventsPerS / base, 4) : null,
    postgres_ratio: base && results.postgres ? round(results.postgres.eventsPerS / base, 4) : null,
    sqlite_p50_ms: round(results.sqlite?.p50, 3),
    sqlite_p99_ms: round(results.sqlite?.p99, 3),
    postgres_p50_ms: round(results.postgres?.p50, 3),
    postgres_p99_ms: round(results.postgres?.p99, 3),
    baseline_p50_ms: round(results.baseline?.p50, 3),
    baseline_p99_ms: round(results.baseline?.p99, 3),
    sqlite_cpu_us_per_event: round(results.sqlite?.cpuUsPerEvent, 2),
    postgres_cpu_us_per_event: round(results.postgres?.cpuUsPerEvent, 2),
    baseline_cpu_us_per_event: round(results.baseline?.cpuUsPerEvent, 2),
    load_average: round(os.loadavg()[0], 2),
    postgres_skipped: TARGETS.includes('postgres') && !results.postgres,
    batch: BATCH,
    connections: CONNECTIONS,
    seconds: SECONDS,
  };
  console.log(JSON.stringify(figures));
}

await runMain(main);
