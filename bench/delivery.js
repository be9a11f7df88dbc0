// Delivery benchmark: `npm run bench:delivery` (builds first, then runs this file).
//
// Webhook deliveries/s from a durable outbox to a local sink, and enqueue-to-first-attempt latency,
// against the same sink (bench/sink-server.js: a bare node:http server answering 200, its own process):
//   baseline  a bare undici loop (Pool, keep-alive, BENCH_CONCURRENCY requests in flight) POSTing
//             BENCH_BODY_BYTES-byte JSON bodies for BENCH_SECONDS: the most the sink and this machine allow
//   sqlite    `cohortcast worker` on a fresh SQLite data folder
//   postgres  `cohortcast worker` on a fresh database: in BENCH_DATABASE_URL if set, else in a throwaway
//             server started with .ci/start-postgres, fsync on (skipped, with a note, if impossible)
//   graphile  graphile-worker 0.17 (bench/graphile-worker-child.js) on another fresh database of the same
//             PostgreSQL: the same jobs (one POST of the same bytes each), the same concurrency
//   fairness  SQLite: "a destination that hangs until timeout must not slow a healthy one's deliveries by
//             more than 10%". Two runs, each on a fresh data folder with the same two connections: a healthy
//             one to the sink (max_concurrency BENCH_CONCURRENCY) and one to the sink's POST /hang, which
//             never answers (timeout_ms 2000, max_concurrency 16). (a) BENCH_FAIRNESS_DELIVERIES to the
//             healthy one alone; (b) 2,000 to the hanging one enqueued first, then the same number to the
//             healthy one. Each rate: the healthy arrivals at the sink, first to last; every healthy
//             delivery must be 'succeeded'. Slowdown = 1 − (b)/(a). The workers get
//             COHORTCAST_RETRY_SCHEDULE_STANDARD_MS=0,60000, so no hanging delivery is retried during a run.
//
// For each queue target:
//   throughput  BENCH_DELIVERIES deliveries (policy 'standard', to a connection with max_concurrency
//               BENCH_CONCURRENCY) are enqueued first, then the worker is started as a child process;
//               deliveries/s = sink arrivals from the first to the last. Afterwards every delivery must be
//               'succeeded' in the database (graphile-worker: its job table empty) and the sink must have
//               seen at least as many POSTs. cohortcast's figure from its own records (first attempt
//               started to last one recorded) is in the JSON line too.
//   latency     a fresh worker; this process enqueues at half the peak just measured (BENCH_LATENCY_RATE
//               overrides) for BENCH_LATENCY_SECONDS, in a batch every BENCH_PRODUCER_TICK_MS, each body
//               stamped with its enqueue time {"t": performance.timeOrigin + performance.now()}; the sink
//               keeps arrival − t. The first BENCH_LATENCY_WARMUP_S are left out of p50/p99. The enqueue
//               happens in another process than the worker: on SQLite cohortcast finds the work by polling
//               every COHORTCAST_DELIVERY_POLL_INTERVAL_MS (its default, 250, unless BENCH_POLL_INTERVAL_MS
//               is set); on PostgreSQL cohortcast and graphile-worker hear of it through LISTEN/NOTIFY.
//
// Environment (all optional):
//   BENCH_SECONDS=5            measured seconds of the bare loop (after BENCH_WARMUP_SECONDS=1 of warm-up)
//   BENCH_DELIVERIES=50000     deliveries (jobs) per queue target
//   BENCH_CONCURRENCY=64       requests in flight: bare loop, connection max_concurrency, graphile concurrentJobs
//   BENCH_BODY_BYTES=300       size of every JSON body
//   BENCH_TARGETS=baseline,sqlite,fairness,postgres,graphile
//   BENCH_FAIRNESS_DELIVERIES=20000  healthy deliveries per fairness run
//   BENCH_FAIRNESS_ROUNDS=3  alternating pairs of fairness runs; the medians are compared
//   BENCH_DATABASE_URL=postgres://…   admin URL of a PostgreSQL in which fresh databases are created
//   BENCH_LATENCY_SECONDS=3    producing time of each latency run (0 skips the latency runs)
//   BENCH_LATENCY_RATE=…       deliveries/s of the latency runs (default: half of each target's peak)
//   BENCH_POLL_INTERVAL_MS=…   COHORTCAST_DELIVERY_POLL_INTERVAL_MS for the cohortcast workers (default: theirs)
//   BENCH_GW_LOCAL_QUEUE=500, BENCH_GW_COMPLETE_BATCH_DELAY_MS=0, BENCH_GW_POOL_SIZE=concurrency+2
//                              graphile-worker's batching settings (see bench/graphile-worker-child.js)
//   BENCH_CPU_PROF=DIR         run the throughput workers under `node --cpu-prof`, each into a folder in DIR
//                              (summarise with `node bench/cpu-profile-top.js DIR/NAME-TIME/CPU.*.cpuprofile`;
//                              the largest file of a folder is the main thread)
//   BENCH_SHOW_SERVER_STDERR=1 copy the children's stderr to this one's
//   BENCH_KEEP=1               keep the temporary SQLite folder and the databases made in BENCH_DATABASE_URL
// Output: progress on stderr; on stdout a table, then one final line holding a JSON object of the figures.
import { setMaxListeners } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { pino } from 'pino';
import { Pool, request as undiciRequest } from 'undici';
import { freshDatabase, postgresAdminUrlOrSkip } from './lib/postgres.js';
import { assertAlive, cleanup, cpuSeconds, envInt, freePort, log, noteMachineLoad, onCleanup, ROOT, run, runMain, sleep, startChild, stopChild, waitForLine } from './lib/processes.js';

const DIST = path.join(ROOT, 'dist');
const CLI = path.join(DIST, 'cli', 'main.js');
const SINK = path.join(ROOT, 'bench', 'sink-server.js');
const GRAPHILE_CHILD = path.join(ROOT, 'bench', 'graphile-worker-child.js');

const SECONDS = envInt('BENCH_SECONDS', 5, 0.1);
const WARMUP_SECONDS = envInt('BENCH_WARMUP_SECONDS', 1, 0);
const DELIVERIES = Math.floor(envInt('BENCH_DELIVERIES', 50_000));
const CONCURRENCY = Math.floor(envInt('BENCH_CONCURRENCY', 64));
const BODY_BYTES = Math.floor(envInt('BENCH_BODY_BYTES', 300, 64));
const TARGETS = (process.env.BENCH_TARGETS ?? 'baseline,sqlite,fairness,postgres,graphile').split(',').map((s) => s.trim()).filter(Boolean);
const LATENCY_SECONDS = envInt('BENCH_LATENCY_SECONDS', 3, 0);
const LATENCY_RATE = process.env.BENCH_LATENCY_RATE ? envInt('BENCH_LATENCY_RATE', 0, 1) : undefined;
const LATENCY_WARMUP_S = envInt('BENCH_LATENCY_WARMUP_S', 0.5, 0);
const PRODUCER_TICK_MS = envInt('BENCH_PRODUCER_TICK_MS', 5, 1);
const POLL_INTERVAL_MS = process.env.BENCH_POLL_INTERVAL_MS ? Math.floor(envInt('BENCH_POLL_INTERVAL_MS', 250, 1)) : undefined;
const CPU_PROF = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : undefined;
const KEEP = process.env.BENCH_KEEP === '1';
// cohortcast's own default of COHORTCAST_DELIVERY_POLL_INTERVAL_MS, for the table when none is set.
const DEFAULT_POLL_INTERVAL_MS = 250;
const GW = {
  localQueue: Math.floor(envInt('BENCH_GW_LOCAL_QUEUE', 500, -1)),
  completeBatchDelayMs: Math.floor(envInt('BENCH_GW_COMPLETE_BATCH_DELAY_MS', 0, -1)),
  poolSize: Math.floor(envInt('BENCH_GW_POOL_SIZE', CONCURRENCY + 2, 2)),
};
const TARGET_RATIO = 0.5;
// The fairness target: a healthy destination's deliveries/s beside one that hangs until its timeout.
const FAIRNESS_DELIVERIES = Math.floor(envInt('BENCH_FAIRNESS_DELIVERIES', 20_000));
const FAIRNESS_ROUNDS = Math.floor(envInt('BENCH_FAIRNESS_ROUNDS', 3));
const HANGING_DELIVERIES = 2000;
const HANG_TIMEOUT_MS = 2000;
const HANG_CONCURRENCY = 16;
const FAIRNESS_RETRY_SCHEDULE = '0,60000';
const FAIRNESS_MAX_SLOWDOWN = 0.1;
// Every process gets the same key, so what one seals the others can open.
const SECRET_KEY = Buffer.alloc(32, 0x5c).toString('base64');
const ENQUEUE_BATCH = 1000;
const MAX_ERRORS = 50;

/** The clock shared with the sink (and any other process on this machine): ms since the epoch, sub-ms. */
const clock = () => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------------------------
// CPU profiles and accounting (Linux /proc; NaN elsewhere).

/**
 * `node --cpu-prof` into a folder of its own per child, e.g. BENCH_CPU_PROF/sqlite-worker-<time>/: the
 * default file names keep the main thread's profile apart from its worker threads' (a fixed
 * --cpu-prof-name would make them overwrite each other).
 */
function cpuProfArgs(name) {
  if (!CPU_PROF) return [];
  const dir = path.join(CPU_PROF, `${name}-${Date.now()}`);
  fs.mkdirSync(dir, { recursive: true });
  log(`${name}: CPU profile into ${dir}`);
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

/** Busy and total jiffies of the whole machine. */
function machineCpu() {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = v[3] + (v[4] ?? 0); // idle + iowait
    const total = v.reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: NaN, total: NaN };
  }
}

/** Starts a CPU window over the given pids; `end()` gives cores used per pid and the machine's busy share. */
function cpuWindow(pids) {
  const t0 = performance.now();
  const m0 = machineCpu();
  const c0 = pids.map(cpuSeconds);
  return {
    end() {
      const wallS = (performance.now() - t0) / 1000;
      const m1 = machineCpu();
      const cpu = pids.map((pid, i) => cpuSeconds(pid) - c0[i]);
      return { wallS, cpuS: cpu, cores: cpu.map((s) => s / wallS), machineBusy: (m1.busy - m0.busy) / (m1.total - m0.total) };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Bodies and the sink.

/** A JSON body of exactly BODY_BYTES bytes carrying its enqueue time `t` and its index `i`. */
function makeBody(i, t) {
  const head = `{"t":${t},"i":${i},"type":"bench.delivery","pad":"`;
  const tail = '"}';
  return head + 'x'.repeat(Math.max(0, BODY_BYTES - head.length - tail.length)) + tail;
}

async function getJson(url, init = {}) {
  const res = await undiciRequest(url, { method: 'GET', headersTimeout: 10_000, bodyTimeout: 10_000, ...init });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${init.method ?? 'GET'} ${url}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

async function startSink() {
  const port = await freePort();
  const handle = startChild('sink', [SINK, String(port)], process.env);
  await waitForLine(handle, 'ready');
  const origin = `http://127.0.0.1:${port}`;
  return {
    handle,
    origin,
    hookUrl: `${origin}/hook`,
    count: () => getJson(`${origin}/count`),
    reset: (record) => getJson(`${origin}/_sink/reset${record ? '?record=1' : ''}`, { method: 'POST' }),
    latencies: () => getJson(`${origin}/_sink/latencies`),
  };
}

// ---------------------------------------------------------------------------------------------
// Baseline: a bare undici loop against the sink.

async function runBaseline(sink) {
  await sink.reset(false);
  const pool = new Pool(sink.origin, {
    connections: CONCURRENCY,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const headers = { 'content-type': 'application/json' };
  const bodies = Array.from({ length: 1024 }, (_, i) => makeBody(i, clock()));
  const state = { next: 0, measured: 0, completed: 0, errors: 0, errorSamples: [] };
  const start = performance.now();
  const measureFrom = start + WARMUP_SECONDS * 1000;
  const stopAt = measureFrom + SECONDS * 1000;
  const hardStop = AbortSignal.timeout((WARMUP_SECONDS + SECONDS) * 1000 + 60_000);
  setMaxListeners(CONCURRENCY * 4 + 16, hardStop);
  let cpu;
  const cpuStart = setTimeout(() => (cpu = cpuWindow([sink.handle.child.pid, process.pid])), Math.max(0, measureFrom - performance.now()));
  let cpuResult;
  const cpuEnd = setTimeout(() => (cpuResult = cpu?.end()), Math.max(0, stopAt - performance.now()));

  async function worker() {
    while (state.errors < MAX_ERRORS && !hardStop.aborted && performance.now() < stopAt) {
      const body = bodies[state.next++ % bodies.length];
      try {
        const res = await pool.request({ method: 'POST', path: '/hook', headers, body, signal: hardStop });
        await res.body.text();
        if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
      } catch (err) {
        state.errors++;
        if (state.errorSamples.length < 5) state.errorSamples.push(err.message);
        continue;
      }
      state.completed++;
      const t = performance.now();
      if (t >= measureFrom && t <= stopAt) state.measured++;
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  clearTimeout(cpuStart);
  clearTimeout(cpuEnd);
  cpuResult ??= cpu?.end();
  await pool.close();
  if (state.errors > 0) throw new Error(`baseline: ${state.errors} request(s) failed, e.g.:\n  ${state.errorSamples.join('\n  ')}`);
  const { count } = await sink.count();
  if (count !== state.completed) throw new Error(`baseline: ${state.completed} requests were answered but the sink counted ${count}`);
  return {
    perS: state.measured / SECONDS,
    completed: state.completed,
    sinkCores: cpuResult?.cores[0],
    clientCores: cpuResult?.cores[1],
    machineBusy: cpuResult?.machineBusy,
  };
}

// ---------------------------------------------------------------------------------------------
// Shared by the queue targets: wait for N arrivals (and the queue's own record of them), then a
// latency run with a steady producer.

/**
 * Waits until the sink has seen `expected` POSTs and `isDone()` (the queue's own record) agrees.
 * Deliveries/s are the sink's arrivals from the first to the last.
 */
async function waitDelivered(name, sink, worker, expected, isDone, { timeoutMs = 150_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let window;
  let lastCount = -1;
  let lastProgressAt = Date.now();
  for (;;) {
    const exited = worker.exitedYet;
    const { count } = await sink.count();
    // A worker may end by itself once the queue is empty; before that it is a failure.
    if (exited && count < expected) throw new Error(`${name}: ${worker.name} exited after ${count} of ${expected} deliveries:\n${worker.output.text.slice(-3000)}`);
    if (count > 0 && !window) window = cpuWindow([worker.child.pid, sink.handle.child.pid]);
    if (count !== lastCount) {
      lastCount = count;
      lastProgressAt = Date.now();
    }
    if (count >= expected) break;
    if (Date.now() > deadline) throw new Error(`${name}: only ${count} of ${expected} deliveries arrived within ${timeoutMs / 1000} s`);
    if (Date.now() - lastProgressAt > 30_000) throw new Error(`${name}: stuck at ${count} of ${expected} deliveries for 30 s:\n${worker.output.text.slice(-3000)}`);
    await sleep(25);
  }
  const cpu = window?.end();
  const arrivals = await sink.count();
  for (;;) {
    if (await isDone()) break;
    if (Date.now() > deadline || worker.exitedYet) {
      throw new Error(`${name}: the sink saw ${arrivals.count} POSTs, but the queue has not recorded all ${expected} as done${worker.exitedYet ? ` and ${worker.name} has exited` : ''}`);
    }
    await sleep(25);
  }
  const spanS = (arrivals.last_ms - arrivals.first_ms) / 1000;
  return {
    perS: spanS > 0 ? (arrivals.count - 1) / spanS : NaN,
    spanS,
    sinkCount: arrivals.count,
    // The sink's counts when the last of them arrived (hung, hang_open: requests to POST /hang).
    sinkAtEnd: arrivals,
    workerCores: cpu?.cores[0],
    workerCpuUsPerDelivery: cpu ? (cpu.cpuS[0] * 1e6) / expected : NaN,
    sinkCores: cpu?.cores[1],
    machineBusy: cpu?.machineBusy,
  };
}

/**
 * Enqueues at `rate` per second for LATENCY_SECONDS, a batch every PRODUCER_TICK_MS, each body
 * stamped with the time it is handed to `enqueueBatch`; waits for every one to reach the sink; then
 * p50/p99 of arrival − enqueue over the bodies enqueued after the first LATENCY_WARMUP_S.
 */
async function latencyRun(name, sink, worker, rate, enqueueBatch) {
  await sink.reset(true);
  const start = clock();
  const end = start + LATENCY_SECONDS * 1000;
  let produced = 0;
  for (let now = clock(); now < end; now = clock()) {
    const due = Math.floor((rate * (now - start)) / 1000);
    if (due > produced) {
      const bodies = [];
      for (let i = produced; i < due; i++) bodies.push(makeBody(i, clock()));
      await enqueueBatch(bodies, produced);
      produced = due;
    }
    await sleep(PRODUCER_TICK_MS);
  }
  const producedRate = produced / ((clock() - start) / 1000);
  const deadline = Date.now() + 60_000;
  for (;;) {
    assertAlive(worker);
    const { count } = await sink.count();
    if (count >= produced) break;
    if (Date.now() > deadline) throw new Error(`${name} latency: ${count} of ${produced} deliveries arrived within 60 s`);
    await sleep(25);
  }
  const { samples, unreadable } = await sink.latencies();
  if (unreadable) throw new Error(`${name} latency: ${unreadable} bodies at the sink had no readable "t" and "i"`);
  const warmup = Math.floor(rate * LATENCY_WARMUP_S);
  // First arrivals only (a retried delivery arrives again): enqueue-to-first-attempt.
  const first = new Map();
  for (const [i, ms] of samples) if (i >= warmup && !first.has(i)) first.set(i, ms);
  const sorted = Float64Array.from(first.values()).sort();
  return { ...summarise(sorted), rate, producedRate, produced, warmupLeftOut: Math.min(warmup, produced), arrivals: samples.length };
}

function summarise(sorted) {
  const pct = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN);
  return { p50: pct(50), p99: pct(99), max: sorted.length ? sorted[sorted.length - 1] : NaN, samples: sorted.length };
}

// ---------------------------------------------------------------------------------------------
// cohortcast (SQLite or PostgreSQL).

let dist;
async function loadDist() {
  if (dist) return dist;
  const imp = (p) => import(pathToFileURL(path.join(DIST, p)).href);
  const [config, database, migrate, engine, admin, metrics] = await Promise.all([
    imp('config.js'),
    imp('store/database.js'),
    imp('store/migrate.js'),
    imp('delivery/engine.js'),
    imp('delivery/connection-admin.js'),
    imp('observability/metrics.js'),
  ]);
  dist = {
    loadConfig: config.loadConfig,
    openStore: database.openStore,
    migrateToLatest: migrate.migrateToLatest,
    createDeliveryEngine: engine.createDeliveryEngine,
    ConnectionAdmin: admin.ConnectionAdmin,
    createMetrics: metrics.createMetrics,
  };
  return dist;
}

function serviceEnv(databaseUrl) {
  const env = {
    ...process.env,
    COHORTCAST_LOG_LEVEL: 'warn',
    COHORTCAST_ALLOW_HTTP: 'true',
    COHORTCAST_ALLOWED_NETWORKS: '127.0.0.0/8',
    COHORTCAST_SECRET_KEY: SECRET_KEY,
  };
  delete env.DATABASE_URL;
  delete env.COHORTCAST_DATA_DIR;
  delete env.COHORTCAST_DELIVERY_POLL_INTERVAL_MS;
  if (POLL_INTERVAL_MS !== undefined) env.COHORTCAST_DELIVERY_POLL_INTERVAL_MS = String(POLL_INTERVAL_MS);
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  return env;
}

async function createProject(env, dataDir) {
  const out = await run(process.execPath, [CLI, 'project', 'create', '--name', 'Bench', '--json', '--data-dir', dataDir], { env });
  const project = JSON.parse(out.trim().split('\n').pop());
  if (!Number.isInteger(project.id)) throw new Error(`project create printed no id: ${out}`);
  return project;
}

function startWorker(name, env, dataDir, { profile = false } = {}) {
  const nodeArgs = profile ? cpuProfArgs(name) : [];
  return startChild(name, [...nodeArgs, CLI, 'worker', '--data-dir', dataDir], env);
}

/** A fresh temporary data folder, removed at cleanup unless BENCH_KEEP=1. */
function tempDataDir(name, prefix = 'cohortcast-bench-delivery-') {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (!KEEP) onCleanup(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  log(`${name}: data in ${dataDir}`);
  return dataDir;
}

/**
 * A fresh cohortcast store (`dataDir`, or `databaseUrl`) with a project and the given connections,
 * made the way the API makes them (secrets sealed with COHORTCAST_SECRET_KEY). This process plays the
 * producer: it opens the same database the worker will.
 */
async function setUpCohortcast(env, { dataDir, databaseUrl }, connectionInputs) {
  const { loadConfig, openStore, migrateToLatest, createDeliveryEngine, ConnectionAdmin, createMetrics } = await loadDist();
  const project = await createProject(env, dataDir);
  const config = loadConfig({ dataDir, databaseUrl }, env);
  const store = openStore(config);
  await migrateToLatest(store);
  // An engine that is never started: this process only makes connections and enqueues (through its outbox).
  const engine = await createDeliveryEngine(config, store, createMetrics(), pino({ level: 'warn' }));
  let closed = false;
  const closeStore = async () => {
    if (!closed) {
      await engine.close();
      await store.close();
    }
    closed = true;
  };
  onCleanup(closeStore);
  const enqueue = (db, items) => engine.outbox.enqueue(db, items);
  const connectionIds = [];
  const admin = new ConnectionAdmin(store, engine, config.delivery);
  for (const input of connectionInputs) connectionIds.push((await admin.create(project.id, input)).id);
  const delivery = (connectionId, ownerKind, i, body) => ({
    projectId: project.id,
    connectionId,
    ownerKind,
    ownerId: i,
    policy: 'standard',
    contentType: 'application/json',
    body,
  });
  /** Enqueues `n` deliveries to one connection in one transaction, ENQUEUE_BATCH at a time. */
  const enqueueMany = async (connectionId, ownerKind, n) => {
    await store.db.transaction().execute(async (trx) => {
      for (let from = 0; from < n; from += ENQUEUE_BATCH) {
        const items = [];
        for (let i = from; i < Math.min(n, from + ENQUEUE_BATCH); i++) items.push(delivery(connectionId, ownerKind, i, makeBody(i, clock())));
        await enqueue(trx, items);
      }
    });
  };
  /** Deliveries of `ownerKind` by state: { succeeded: n, … }. */
  const counts = async (ownerKind) => {
    const rows = await store.db.selectFrom('deliveries').select(['state', (eb) => eb.fn.countAll().as('n')]).where('owner_kind', '=', ownerKind).groupBy('state').execute();
    return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
  };
  return { store, closeStore, connectionIds, delivery, enqueue, enqueueMany, counts };
}

/**
 * Starts `cohortcast worker` on work already enqueued, waits (waitDelivered) until the sink has seen
 * `expected` POSTs and all `expected` deliveries of `ownerKind` are recorded, stops the worker, then
 * checks that every one of them is 'succeeded' and the sink saw at least that many POSTs.
 */
async function deliverAll(name, sink, env, dataDir, { counts, ownerKind, expected }) {
  await sink.reset(false);
  const worker = startWorker(`${name}-worker`, env, dataDir, { profile: true });
  let result;
  try {
    result = await waitDelivered(name, sink, worker, expected, async () => (await counts(ownerKind)).succeeded === expected);
  } finally {
    const endedAlone = worker.exitedYet;
    const exit = await stopChild(worker);
    if (exit.code !== 0) log(`${name}: worker exited with ${exit.signal ?? exit.code}${endedAlone ? ' by itself' : ''}:\n${worker.output.text.slice(-2000)}`);
    if (result) result.workerExitedWhenIdle = endedAlone;
  }
  // Every delivery recorded as succeeded, once; the sink saw at least that many POSTs.
  const states = await counts(ownerKind);
  if (states.succeeded !== expected || Object.keys(states).length !== 1) {
    throw new Error(`${name}: expected all ${expected} deliveries 'succeeded', found ${JSON.stringify(states)}`);
  }
  if (result.sinkCount < expected) throw new Error(`${name}: the sink saw ${result.sinkCount} POSTs for ${expected} deliveries`);
  return result;
}

async function runCohortcast(name, sink, { dataDir, databaseUrl }) {
  const env = serviceEnv(databaseUrl);
  const { store, closeStore, connectionIds, delivery, enqueue, enqueueMany, counts } = await setUpCohortcast(env, { dataDir, databaseUrl }, [
    { name: 'bench sink', url: sink.hookUrl, max_concurrency: CONCURRENCY },
  ]);
  const [connectionId] = connectionIds;

  // Throughput: everything enqueued first, then the worker.
  const t = performance.now();
  await enqueueMany(connectionId, 'bench-throughput', DELIVERIES);
  log(`${name}: enqueued ${DELIVERIES} deliveries in ${fmt(performance.now() - t)} ms; starting the worker`);
  const result = await deliverAll(name, sink, env, dataDir, { counts, ownerKind: 'bench-throughput', expected: DELIVERIES });
  const own = await store.db
    .selectFrom('deliveries')
    .select((eb) => [eb.fn.min('first_attempt_at').as('first'), eb.fn.max('completed_at').as('last'), eb.fn.sum('attempts').as('attempts')])
    .where('owner_kind', '=', 'bench-throughput')
    .executeTakeFirstOrThrow();
  result.attempts = Number(own.attempts);
  result.recordedPerS = DELIVERIES / ((Number(own.last) - Number(own.first)) / 1000);
  log(
    `${name}: ${fmt(result.perS)} deliveries/s at the sink (${fmt(result.recordedPerS)}/s by its own records), ` +
      `all ${DELIVERIES} 'succeeded' in ${result.attempts} attempts; sink saw ${result.sinkCount}`,
  );

  // Latency: a fresh worker, warmed up by one delivery, then a steady producer in this process.
  if (LATENCY_SECONDS > 0) {
    const rate = LATENCY_RATE ?? Math.max(1, Math.round(result.perS / 2));
    const lw = startWorker(`${name}-latency-worker`, env, dataDir);
    try {
      await warmUp(name, sink, lw, () => enqueue(store.db, [delivery(connectionId, 'bench-warmup', 0, makeBody(0, clock()))]));
      log(`${name}: latency run, ${fmt(rate)} deliveries/s for ${LATENCY_SECONDS} s (poll interval ${POLL_INTERVAL_MS ?? DEFAULT_POLL_INTERVAL_MS} ms)`);
      result.latency = await latencyRun(name, sink, lw, rate, (bodies, first) =>
        enqueue(
          store.db,
          bodies.map((body, k) => delivery(connectionId, 'bench-latency', first + k, body)),
        ),
      );
      const deadline = Date.now() + 30_000;
      for (;;) {
        const s = await counts('bench-latency');
        if ((s.succeeded ?? 0) === result.latency.produced) break;
        if (Date.now() > deadline) throw new Error(`${name} latency: not all ${result.latency.produced} deliveries recorded as succeeded: ${JSON.stringify(s)}`);
        await sleep(25);
      }
      logLatency(name, result.latency);
    } finally {
      await stopChild(lw);
    }
  }
  await closeStore();
  return result;
}

// ---------------------------------------------------------------------------------------------
// Fairness (SQLite): a destination that hangs until its timeout must not slow a healthy one.

/**
 * Two runs, each on a fresh SQLite data folder holding the same two connections: a healthy one to
 * the sink (max_concurrency BENCH_CONCURRENCY) and one to the sink's POST /hang, which never answers
 * (timeout_ms HANG_TIMEOUT_MS, max_concurrency HANG_CONCURRENCY). Run (a) enqueues FAIRNESS_DELIVERIES
 * to the healthy one alone; run (b) first HANGING_DELIVERIES to the hanging one, then the same
 * FAIRNESS_DELIVERIES, so the hanging one claims and holds its slots from the start. Each rate is the
 * healthy connection's sink arrivals from its first to its last (POST /hang is not counted there).
 */
async function runFairness(sink) {
  // The hanging deliveries time out and are retried a minute later: not during the run.
  const env = { ...serviceEnv(undefined), COHORTCAST_RETRY_SCHEDULE_STANDARD_MS: FAIRNESS_RETRY_SCHEDULE };
  const once = async (name, hanging) => {
    const dataDir = tempDataDir(name, 'cohortcast-bench-fairness-');
    const { closeStore, connectionIds, enqueueMany, counts } = await setUpCohortcast(env, { dataDir, databaseUrl: undefined }, [
      { name: 'bench hanging', url: `${sink.origin}/hang`, timeout_ms: HANG_TIMEOUT_MS, max_concurrency: HANG_CONCURRENCY },
      { name: 'bench sink', url: sink.hookUrl, max_concurrency: CONCURRENCY },
    ]);
    const [hangingId, healthyId] = connectionIds;
    if (hanging > 0) await enqueueMany(hangingId, 'bench-hanging', hanging);
    await enqueueMany(healthyId, 'bench-fairness', FAIRNESS_DELIVERIES);
    log(`${name}: enqueued ${hanging} deliveries to the hanging connection, then ${FAIRNESS_DELIVERIES} to the healthy one; starting the worker`);
    const result = await deliverAll(name, sink, env, dataDir, { counts, ownerKind: 'bench-fairness', expected: FAIRNESS_DELIVERIES });
    result.hung = result.sinkAtEnd.hung;
    result.hangOpen = result.sinkAtEnd.hang_open;
    if (hanging > 0) {
      result.hangingStates = await counts('bench-hanging');
      // Without requests held open at the hanging destination the comparison says nothing.
      if (result.hung === 0) throw new Error(`${name}: the hanging connection was sent nothing while the healthy one delivered; states ${JSON.stringify(result.hangingStates)}`);
      if ((result.hangingStates.succeeded ?? 0) > 0) throw new Error(`${name}: a delivery to the hanging connection succeeded: ${JSON.stringify(result.hangingStates)}`);
    }
    log(
      `${name}: healthy ${fmt(result.perS)} deliveries/s at the sink, all ${FAIRNESS_DELIVERIES} 'succeeded'` +
        (hanging > 0 ? `; hanging destination: ${result.hung} requests received, ${result.hangOpen} held open at the last healthy arrival` : ''),
    );
    await closeStore();
    return result;
  };
  // One pair of runs moves by more than 10% with the machine's load: alternate the two, several
  // rounds, and compare the medians.
  const alones = [];
  const besides = [];
  for (let round = 1; round <= FAIRNESS_ROUNDS; round++) {
    alones.push(await once(`fairness-alone-${round}`, 0));
    besides.push(await once(`fairness-hanging-${round}`, HANGING_DELIVERIES));
  }
  const median = (runs) => [...runs].sort((a, b) => a.perS - b.perS)[Math.floor(runs.length / 2)];
  const alone = median(alones);
  const beside = median(besides);
  const slowdown = 1 - beside.perS / alone.perS;
  log(`fairness: healthy alone ${alones.map((r) => fmt(r.perS)).join(', ')}/s; beside a hanging one ${besides.map((r) => fmt(r.perS)).join(', ')}/s`);
  log(`fairness: healthy destination slowed by ${fmt(slowdown * 100, 1)}% beside a hanging one (target ≤ ${FAIRNESS_MAX_SLOWDOWN * 100}%)`);
  return { alone, beside, slowdown };
}

/** Sends one delivery through a freshly started worker: it is up, and its connection to the sink is open. */
async function warmUp(name, sink, worker, enqueueOne) {
  await sink.reset(false);
  await enqueueOne();
  const deadline = Date.now() + 30_000;
  while ((await sink.count()).count < 1) {
    assertAlive(worker);
    if (Date.now() > deadline) throw new Error(`${name}: the latency worker delivered nothing within 30 s:\n${worker.output.text}`);
    await sleep(20);
  }
}

function logLatency(name, l) {
  log(
    `${name}: enqueue-to-first-attempt p50 ${fmt(l.p50, 1)} ms, p99 ${fmt(l.p99, 1)} ms, max ${fmt(l.max, 1)} ms ` +
      `over ${l.samples} deliveries (${fmt(l.producedRate)}/s produced, first ${l.warmupLeftOut} left out)`,
  );
}

// ---------------------------------------------------------------------------------------------
// graphile-worker 0.17 on PostgreSQL: the same work through the same sink.

async function loadGraphile() {
  try {
    return await import('graphile-worker');
  } catch (err) {
    throw new Error(`graphile-worker is not installed (npm install, it is a dev dependency): ${err.message}`);
  }
}

function graphileEnv(databaseUrl, sink) {
  const env = {
    ...process.env,
    BENCH_GW_DATABASE_URL: databaseUrl,
    BENCH_GW_SINK_URL: sink.hookUrl,
    BENCH_GW_CONCURRENCY: String(CONCURRENCY),
    BENCH_GW_POOL_SIZE: String(GW.poolSize),
    BENCH_GW_LOCAL_QUEUE: String(GW.localQueue),
    BENCH_GW_COMPLETE_BATCH_DELAY_MS: String(GW.completeBatchDelayMs),
  };
  delete env.DATABASE_URL;
  return env;
}

async function startGraphile(name, env, { profile = false } = {}) {
  const nodeArgs = profile ? cpuProfArgs(name) : [];
  return startChild(name, [...nodeArgs, GRAPHILE_CHILD], env);
}

async function runGraphile(sink, databaseUrl) {
  const { Logger, makeWorkerUtils, runMigrations } = await loadGraphile();
  const quiet = new Logger(() => (level, message) => {
    if (level === 'error') log(`graphile-worker: ${message}`);
  });
  await runMigrations({ connectionString: databaseUrl, logger: quiet });
  const utils = await makeWorkerUtils({ connectionString: databaseUrl, logger: quiet });
  onCleanup(() => utils.release());
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  onCleanup(() => client.end());
  const jobsLeft = async () => Number((await client.query('select count(*)::int as n from graphile_worker._private_jobs')).rows[0].n);
  const job = (body) => ({ identifier: 'post', payload: { body } });

  let t = performance.now();
  for (let from = 0; from < DELIVERIES; from += ENQUEUE_BATCH) {
    const specs = [];
    for (let i = from; i < Math.min(DELIVERIES, from + ENQUEUE_BATCH); i++) specs.push(job(makeBody(i, clock())));
    await utils.addJobs(specs);
  }
  if ((await jobsLeft()) !== DELIVERIES) throw new Error(`graphile: ${await jobsLeft()} jobs queued, expected ${DELIVERIES}`);
  log(`graphile: added ${DELIVERIES} jobs in ${fmt(performance.now() - t)} ms; starting graphile-worker`);
  const env = graphileEnv(databaseUrl, sink);
  await sink.reset(false);
  const worker = await startGraphile('graphile-worker', env, { profile: true });
  let result;
  try {
    // A job is deleted when it succeeds; a failed one stays (for its retry): an empty table means all succeeded.
    result = await waitDelivered('graphile', sink, worker, DELIVERIES, async () => (await jobsLeft()) === 0);
  } finally {
    await stopChild(worker);
  }
  if (result.sinkCount < DELIVERIES) throw new Error(`graphile: the sink saw ${result.sinkCount} POSTs for ${DELIVERIES} jobs`);
  log(`graphile: ${fmt(result.perS)} jobs/s at the sink; job table empty; sink saw ${result.sinkCount}`);

  if (LATENCY_SECONDS > 0) {
    const rate = LATENCY_RATE ?? Math.max(1, Math.round(result.perS / 2));
    const lw = await startGraphile('graphile-latency-worker', env);
    try {
      await waitForLine(lw, 'ready');
      await warmUp('graphile', sink, lw, () => utils.addJobs([job(makeBody(0, clock()))]));
      log(`graphile: latency run, ${fmt(rate)} jobs/s for ${LATENCY_SECONDS} s`);
      result.latency = await latencyRun('graphile', sink, lw, rate, (bodies) => utils.addJobs(bodies.map(job)));
      const deadline = Date.now() + 30_000;
      while ((await jobsLeft()) !== 0) {
        if (Date.now() > deadline) throw new Error(`graphile latency: ${await jobsLeft()} jobs still in the table after 30 s`);
        await sleep(25);
      }
      logLatency('graphile', result.latency);
    } finally {
      await stopChild(lw);
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------

const fmt = (n, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-');
const round = (n, digits = 0) => (Number.isFinite(n) ? Number(n.toFixed(digits)) : null);

async function main() {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm run bench:delivery does)`);
  const unknown = TARGETS.filter((t) => !['baseline', 'sqlite', 'fairness', 'postgres', 'graphile'].includes(t));
  if (unknown.length) throw new Error(`BENCH_TARGETS: unknown target(s) ${unknown.join(', ')}; use baseline,sqlite,fairness,postgres,graphile`);
  const pollMs = POLL_INTERVAL_MS ?? DEFAULT_POLL_INTERVAL_MS;
  log(
    `node ${process.version}, ${os.cpus().length} CPU(s); ${DELIVERIES} deliveries of ${BODY_BYTES} bytes, concurrency ${CONCURRENCY}; ` +
      `bare loop ${WARMUP_SECONDS}s warm-up + ${SECONDS}s; latency ${LATENCY_SECONDS}s per target; cohortcast poll interval ${pollMs} ms; ` +
      `targets: ${TARGETS.join(', ')}`,
  );
  const results = {};
  const notes = [];
  noteMachineLoad(notes);

  const sink = await startSink();
  log(`sink on ${sink.origin}`);

  if (TARGETS.includes('baseline')) {
    log(`baseline: bare undici loop, ${CONCURRENCY} in flight`);
    results.baseline = await runBaseline(sink);
    log(`baseline: ${fmt(results.baseline.perS)} requests/s`);
  }

  if (TARGETS.includes('sqlite')) {
    results.sqlite = await runCohortcast('sqlite', sink, { dataDir: tempDataDir('sqlite'), databaseUrl: undefined });
  }

  let fairness;
  if (TARGETS.includes('fairness')) {
    fairness = await runFairness(sink);
    results.fairnessAlone = fairness.alone;
    results.fairnessBeside = fairness.beside;
  }

  if (TARGETS.includes('postgres') || TARGETS.includes('graphile')) {
    const admin = await postgresAdminUrlOrSkip(notes, 'PostgreSQL runs');
    if (admin) {
      notes.push(`PostgreSQL: ${admin.source}`);
      if (TARGETS.includes('postgres')) {
        const dbUrl = await freshDatabase(admin.url, { tag: 'cc', keep: KEEP });
        log(`postgres: fresh database ${new URL(dbUrl).pathname.slice(1)} (via ${admin.source})`);
        const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-bench-delivery-pgcli-'));
        onCleanup(() => fs.rmSync(dataDir, { recursive: true, force: true }));
        results.postgres = await runCohortcast('postgres', sink, { dataDir, databaseUrl: dbUrl });
      }
      if (TARGETS.includes('graphile')) {
        const dbUrl = await freshDatabase(admin.url, { tag: 'gw', keep: KEEP });
        log(`graphile: fresh database ${new URL(dbUrl).pathname.slice(1)}`);
        results.graphile = await runGraphile(sink, dbUrl);
      }
    }
  }

  // Stop every child and server now, so nothing is printed after the JSON line.
  await cleanup();

  const base = results.baseline?.perS;
  const labels = {
    baseline: 'bare undici loop',
    sqlite: 'cohortcast, SQLite',
    postgres: 'cohortcast, PostgreSQL',
    graphile: 'graphile-worker 0.17, PostgreSQL',
    fairnessAlone: 'fairness: healthy alone',
    fairnessBeside: 'fairness: beside a hanging one',
  };
  const rows = [['target', 'deliveries/s', 'vs bare loop', 'p50 ms', 'p99 ms', 'latency at /s', 'worker cores', 'worker CPU µs/delivery', 'machine CPU']];
  for (const [name, r] of Object.entries(results)) {
    rows.push([
      labels[name],
      fmt(r.perS),
      base ? `${fmt(r.perS / base, 3)}x` : '-',
      fmt(r.latency?.p50, 1),
      fmt(r.latency?.p99, 1),
      fmt(r.latency?.rate),
      fmt(name === 'baseline' ? r.clientCores : r.workerCores, 2),
      fmt(r.workerCpuUsPerDelivery, 1),
      Number.isFinite(r.machineBusy) ? `${fmt(r.machineBusy * 100)}%` : '-',
    ]);
  }
  for (const name of ['postgres', 'graphile']) if (TARGETS.includes(name) && !results[name]) rows.push([labels[name], 'skipped', '-', '-', '-', '-', '-', '-', '-']);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  console.log('');
  for (const [i, row] of rows.entries()) {
    console.log(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  notes.push(
    `p50/p99: enqueue (in this process) to first arrival at the sink, at half each target's peak, enqueued in a batch every ${PRODUCER_TICK_MS} ms; ` +
      `cohortcast on SQLite polls for work enqueued by another process every ${pollMs} ms (COHORTCAST_DELIVERY_POLL_INTERVAL_MS${POLL_INTERVAL_MS === undefined ? ', its default' : ''}), ` +
      'cohortcast on PostgreSQL and graphile-worker are woken by LISTEN/NOTIFY',
  );
  if (results.graphile) {
    notes.push(
      `graphile-worker settings: concurrentJobs ${CONCURRENCY}, maxPoolSize ${GW.poolSize}, localQueue.size ${GW.localQueue}, completeJobBatchDelay ${GW.completeBatchDelayMs} ms`,
    );
  }
  for (const name of ['sqlite', 'postgres']) {
    const r = results[name];
    if (r?.workerExitedWhenIdle) notes.push(`${labels[name]}: \`cohortcast worker\` exited by itself once the queue was empty (it should stay up)`);
    if (r) notes.push(`${labels[name]}: ${fmt(r.recordedPerS)}/s by its own records (first attempt started to last recorded); ${r.attempts} attempts for ${DELIVERIES} deliveries`);
  }
  if (results.baseline) {
    const b = results.baseline;
    const bound = b.clientCores >= 0.9 ? ': the loop is one process, so about one core is its ceiling' : '';
    notes.push(`bare loop: the sink process used ${fmt(b.sinkCores, 2)} cores, the loop (this process) ${fmt(b.clientCores, 2)}${bound}`);
  }
  if (fairness) {
    const { alone, beside, slowdown } = fairness;
    notes.push(
      `fairness (SQLite): ${FAIRNESS_DELIVERIES} deliveries to a healthy connection (max_concurrency ${CONCURRENCY}), alone, then behind ` +
        `${HANGING_DELIVERIES} to one that never answers (timeout_ms ${HANG_TIMEOUT_MS}, max_concurrency ${HANG_CONCURRENCY}; ` +
        `${beside.hung} of its requests received, ${beside.hangOpen} held open at the last healthy arrival); retry schedule ${FAIRNESS_RETRY_SCHEDULE} ms; ` +
        `healthy ${fmt(alone.perS)}/s alone over ${fmt(alone.spanS, 2)} s, ${fmt(beside.perS)}/s beside over ${fmt(beside.spanS, 2)} s`,
    );
    notes.push(
      `healthy destination slowed by ${fmt(slowdown * 100, 1)}% (target ≤ ${FAIRNESS_MAX_SLOWDOWN * 100}%): ${slowdown <= FAIRNESS_MAX_SLOWDOWN ? 'met' : 'NOT met'}`,
    );
  }
  for (const note of notes) console.log(`note: ${note}`);
  if (results.sqlite && base) {
    const ratio = results.sqlite.perS / base;
    console.log(`SQLite target of ${TARGET_RATIO * 100}% of the bare loop: ${ratio >= TARGET_RATIO ? 'met' : 'NOT met'} (${fmt(ratio * 100, 1)}%)`);
  }
  console.log('');

  const ratio = (r) => (base && r ? round(r.perS / base, 4) : null);
  // One queue target's figures, keys prefixed (in this order: the JSON line's keys are its interface).
  // graphile-worker keeps no record of its own, so it has no recorded_per_s.
  const queueFigures = (prefix, r, { recorded = true, cpuKey = `${prefix}_worker_cpu_us_per_delivery` } = {}) => ({
    [`${prefix}_per_s`]: round(r?.perS),
    [`${prefix}_ratio`]: ratio(r),
    ...(recorded ? { [`${prefix}_recorded_per_s`]: round(r?.recordedPerS) } : {}),
    [`${prefix}_latency_p50_ms`]: round(r?.latency?.p50, 2),
    [`${prefix}_latency_p99_ms`]: round(r?.latency?.p99, 2),
    [`${prefix}_latency_rate_per_s`]: round(r?.latency?.rate),
    [cpuKey]: round(r?.workerCpuUsPerDelivery, 1),
  });
  const figures = {
    bare_per_s: round(base),
    ...queueFigures('sqlite', results.sqlite),
    ...queueFigures('postgres', results.postgres),
    ...queueFigures('graphile_worker', results.graphile, { recorded: false, cpuKey: 'graphile_worker_cpu_us_per_delivery' }),
    sqlite_target_met: results.sqlite && base ? results.sqlite.perS / base >= TARGET_RATIO : null,
    poll_interval_ms: pollMs,
    deliveries: DELIVERIES,
    concurrency: CONCURRENCY,
    body_bytes: BODY_BYTES,
    seconds: SECONDS,
    latency_seconds: LATENCY_SECONDS,
    load_average: round(os.loadavg()[0], 2),
    postgres_skipped: (TARGETS.includes('postgres') || TARGETS.includes('graphile')) && !results.postgres && !results.graphile,
    fairness_deliveries: fairness ? FAIRNESS_DELIVERIES : null,
    fairness_alone_per_s: round(fairness?.alone.perS),
    fairness_beside_hanging_per_s: round(fairness?.beside.perS),
    fairness_slowdown_pct: round(fairness ? fairness.slowdown * 100 : NaN, 2),
    fairness_target_met: fairness ? fairness.slowdown <= FAIRNESS_MAX_SLOWDOWN : null,
  };
  console.log(JSON.stringify(figures));
}

await runMain(main);
