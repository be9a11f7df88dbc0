// Import benchmark: `npm run bench:import` (builds first, then runs this file).
//
// How fast `cohortcast import events FILE` loads a Mixpanel raw-export file, beside what POST /import
// reaches over HTTP on the same events in the same run:
//   file       BENCH_EVENTS events written, streaming, into a temporary folder as NDJSON in the shape
//              of Mixpanel's Raw Event Export ({"event", "properties": {"time" in epoch seconds,
//              "distinct_id", "$insert_id", …}}), gzipped with BENCH_GZIP=1: a few event names,
//              BENCH_USERS users, a few properties each, a random 32-hex-digit $insert_id on every
//              event, times in order over the last BENCH_DAYS days (a few minutes of jitter), as an
//              export of a range of days comes
//   HTTP       `cohortcast serve` on a fresh data folder (a project made with `project create`), sent
//              the first BENCH_HTTP_EVENTS events of that file through POST /import: NDJSON bodies of
//              2000 events (the request limit), Basic auth with the project secret, on
//              BENCH_CONNECTIONS keep-alive connections (undici Pool, one request in flight on each).
//              The bodies are read from the file before timing; the rate is over the whole send
//   import     `cohortcast import events FILE --json` on another fresh data folder: wall time from
//              start to exit (process start and migration included), the peak and the RSS at 10%,
//              50% and 90% of the run (VmHWM and VmRSS read from /proc every 500 ms), its --json
//              summary; on SQLite also the largest the write-ahead log grew (sampled with the memory)
//              and the database file's size afterwards (the HTTP run reports both too)
//   re-import  the same command again on the same folder: it must add nothing
// After each run the stored event count is checked: the events acknowledged over HTTP, BENCH_EVENTS
// after the import, still BENCH_EVENTS after the re-import. The goal: the import at no less than half
// the events/s of POST /import over HTTP.
// Each target (SQLite, PostgreSQL) runs all three on its own fresh data folder or database.
//
// Environment (all optional):
//   BENCH_EVENTS=10000000       events in the file, all imported
//   BENCH_HTTP_EVENTS=1000000   the first this many of them sent through POST /import
//   BENCH_CONNECTIONS=8         keep-alive connections for the HTTP run
//   BENCH_USERS=100000          distinct users
//   BENCH_DAYS=30               the events' times span this many days, ending a minute before the run
//   BENCH_GZIP=1                gzip the file (the command detects it by its bytes)
//   BENCH_REIMPORT=0            skip the re-import
//   BENCH_TARGETS=sqlite        sqlite, postgres or both (comma-separated)
//   BENCH_DATABASE_URL=postgres://…   admin URL of a PostgreSQL in which fresh databases are created;
//                               else a throwaway server started with .ci/start-postgres (skipped, with
//                               a note, if impossible)
//   BENCH_CPU_PROF=DIR          run the cohortcast children (serve and import) under `node --cpu-prof`
//                               writing into DIR (summarise with `node bench/cpu-profile-top.js FILE`)
//   BENCH_IMPORT_ARGS="…"      more arguments for both imports (e.g. "--batch 20000"), split on spaces
//   BENCH_IMPORT_TIMEOUT_S=3600 give up on an import running longer than this
//   BENCH_SHOW_SERVER_STDERR=1  copy the children's stderr to this one's
//   BENCH_KEEP=1                keep the temporary folder (the file and data folders) and the databases
// The temporary folder is made in TMPDIR (os.tmpdir()); the default file takes about 3 GB and the
// imported database about 3.7 GB: keep about 8 GB free. (The write-ahead log stays under
// COHORTCAST_SQLITE_WAL_RESTART_BYTES and a batch: it grew to 61 GB before the import restarted it.)
// Output: progress on stderr; on stdout a table, the verdict for each target, then one final line
// holding a JSON object of the figures. Exits 1 after printing them if a count check failed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import readline from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { Pool } from 'undici';
import { freshDatabase, postgresAdminUrlOrSkip } from './lib/postgres.js';
import { prng } from './lib/prng.js';
import { cleanup, CLI, cpuSeconds, createProject, envInt, freePort, log, noteMachineLoad, onCleanup, runMain, serviceEnv, startChild, stopChild, waitReady } from './lib/processes.js';

const EVENTS = Math.floor(envInt('BENCH_EVENTS', 10_000_000));
const HTTP_EVENTS = Math.min(EVENTS, Math.floor(envInt('BENCH_HTTP_EVENTS', 1_000_000)));
const CONNECTIONS = Math.floor(envInt('BENCH_CONNECTIONS', 8));
const USERS = Math.floor(envInt('BENCH_USERS', 100_000));
const DAYS = envInt('BENCH_DAYS', 30, 0.001);
const GZIP = process.env.BENCH_GZIP === '1';
const REIMPORT = process.env.BENCH_REIMPORT !== '0';
const TARGETS = (process.env.BENCH_TARGETS ?? 'sqlite').split(',').map((s) => s.trim()).filter(Boolean);
const CPU_PROF = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : undefined;
const IMPORT_ARGS = (process.env.BENCH_IMPORT_ARGS ?? '').split(/\s+/).filter(Boolean);
const IMPORT_TIMEOUT_MS = envInt('BENCH_IMPORT_TIMEOUT_S', 3600) * 1000;
const KEEP = process.env.BENCH_KEEP === '1';
// Mixpanel's /import limit, and ours: records in one request.
const BATCH = 2000;
// The goal: the import at no less than this share of /import's events/s over HTTP.
const TARGET_RATIO = 0.5;
const SAMPLE_MS = 500;
const MAX_ERRORS = 20;

for (const t of TARGETS) if (t !== 'sqlite' && t !== 'postgres') throw new Error(`BENCH_TARGETS: unknown target "${t}" (sqlite, postgres)`);

const fmt = (n, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-');
const round = (n, digits = 0) => (Number.isFinite(n) ? Number(n.toFixed(digits)) : null);
const mb = (kb) => kb / 1024;

// ---------------------------------------------------------------------------------------------
// The file: raw-export NDJSON, generated line by line and streamed to disk.

const EVENT_NAMES = ['Page View', 'Page View', 'Page View', 'Page View', 'Search', 'Search', 'Add to Cart', 'Sign Up', 'Purchase'];
const PLANS = ['free', 'free', 'pro', 'team', 'enterprise'];
const BROWSERS = ['Chrome', 'Chrome', 'Safari', 'Firefox', 'Edge', 'Mobile Safari'];
const OSES = ['Windows', 'Mac OS X', 'iOS', 'Android', 'Linux'];
const COUNTRIES = ['US', 'US', 'GB', 'DE', 'FR', 'IN', 'BR', 'JP'];
const SOURCES = ['google', 'newsletter', 'twitter', 'direct', 'direct'];
const PATHS = ['/', '/pricing', '/docs', '/blog', '/signup', '/cart', '/checkout'];

/** Lines of the file, joined into chunks of about 1 MB. Every value is plain ASCII: no escaping needed. */
function* exportChunks(count, endSeconds) {
  const rand = prng(20261206);
  const pick = (list) => list[Math.floor(rand() * list.length)];
  const hex8 = () => Math.floor(rand() * 4294967296).toString(16).padStart(8, '0');
  const span = DAYS * 86_400;
  const start = endSeconds - span;
  const jitter = Math.min(600, span);
  let chunk = '';
  for (let i = 0; i < count; i++) {
    const name = pick(EVENT_NAMES);
    // In order through the days, a few minutes out of order locally, never after the end.
    const time = Math.min(endSeconds, start + Math.floor((i / count) * span) + Math.floor(rand() * jitter));
    const page = pick(PATHS);
    let line =
      `{"event":"${name}","properties":{"time":${time},"distinct_id":"user-${Math.floor(rand() * USERS)}",` +
      `"$insert_id":"${hex8()}${hex8()}${hex8()}${hex8()}","mp_lib":"web","$browser":"${pick(BROWSERS)}",` +
      `"$os":"${pick(OSES)}","mp_country_code":"${pick(COUNTRIES)}","$current_url":"https://shop.example.com${page}",` +
      `"utm_source":"${pick(SOURCES)}","plan":"${pick(PLANS)}"`;
    if (name === 'Purchase') line += `,"amount":${(Math.floor(rand() * 20000) / 100).toFixed(2)},"currency":"USD"`;
    else if (name === 'Search') line += `,"query":"item ${Math.floor(rand() * 1000)}"`;
    chunk += line + '}}\n';
    if (chunk.length >= 1 << 20) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk) yield chunk;
}

async function generateFile(file) {
  const endSeconds = Math.floor(Date.now() / 1000) - 60;
  const t = performance.now();
  await pipeline(Readable.from(exportChunks(EVENTS, endSeconds)), ...(GZIP ? [zlib.createGzip()] : []), fs.createWriteStream(file));
  return { seconds: (performance.now() - t) / 1000, bytes: fs.statSync(file).size };
}

/** The first `count` events of the file as NDJSON bodies of BATCH events. */
async function readBodies(file, count) {
  const input = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  const lines = readline.createInterface({ input: GZIP ? input.pipe(zlib.createGunzip()) : input, crlfDelay: Infinity });
  const bodies = [];
  let batch = [];
  let read = 0;
  try {
    for await (const line of lines) {
      if (read === count) break;
      batch.push(line);
      read++;
      if (batch.length === BATCH) {
        bodies.push({ body: Buffer.from(batch.join('\n') + '\n'), events: batch.length });
        batch = [];
      }
    }
  } finally {
    lines.close();
    input.destroy();
  }
  if (batch.length) bodies.push({ body: Buffer.from(batch.join('\n') + '\n'), events: batch.length });
  if (read !== count) throw new Error(`the file holds ${read} events, fewer than the ${count} to send`);
  return bodies;
}

// ---------------------------------------------------------------------------------------------
// Children: memory and CPU sampled from /proc while they run.

/** VmRSS and VmHWM of a process in kB, or undefined once it is gone. */
function memoryKb(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+)/m.exec(status);
    const hwm = /^VmHWM:\s+(\d+)/m.exec(status);
    if (!rss || !hwm) return undefined;
    return { rss: Number(rss[1]), hwm: Number(hwm[1]) };
  } catch {
    return undefined;
  }
}

/** Bytes of a file, 0 when it is not there. */
function fileBytes(file) {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/**
 * Samples a child's memory and CPU every SAMPLE_MS until stop(), and with `sqliteDir` the size of
 * its SQLite write-ahead log; the first sample at once when `now` (a running server), else after
 * SAMPLE_MS (a process just spawned has no RSS worth reading).
 */
function sampler(pid, { now = false, sqliteDir } = {}) {
  const t0 = performance.now();
  const samples = [];
  const tick = () => {
    const m = memoryKb(pid);
    const cpu = cpuSeconds(pid);
    const wal = sqliteDir ? fileBytes(path.join(sqliteDir, 'cohortcast.db-wal')) : NaN;
    if (m) samples.push({ t: performance.now() - t0, ...m, cpu, wal });
  };
  if (now) tick();
  const timer = setInterval(tick, SAMPLE_MS);
  return {
    samples,
    stop() {
      clearInterval(timer);
      tick();
    },
  };
}

/** Peak RSS, the RSS nearest 10%, 50% and 90% of `durationMs`, CPU seconds and the largest WAL, from a sampler's samples. */
function memorySummary(samples, durationMs) {
  if (samples.length === 0) return { peakMb: NaN, rssMb: {}, cpuS: NaN, peakWalMb: NaN, samples: 0 };
  const peakKb = Math.max(...samples.map((s) => Math.max(s.hwm, s.rss)));
  const at = (fraction) => {
    const t = fraction * durationMs;
    let best = samples[0];
    for (const s of samples) if (Math.abs(s.t - t) < Math.abs(best.t - t)) best = s;
    return mb(best.rss);
  };
  const cpus = samples.map((s) => s.cpu).filter(Number.isFinite);
  return {
    peakMb: mb(peakKb),
    rssMb: { 10: at(0.1), 50: at(0.5), 90: at(0.9) },
    cpuS: cpus.length ? Math.max(...cpus) : NaN,
    peakWalMb: Math.max(...samples.map((s) => s.wal)) / 1e6,
    samples: samples.length,
  };
}

const profArgs = (name) => (CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`] : []);

/** Stored events: the SQLite file opened read-only, or the PostgreSQL database. */
async function storedEvents(target, dataDir, databaseUrl) {
  if (target === 'sqlite') {
    const db = new BetterSqlite3(path.join(dataDir, 'cohortcast.db'), { readonly: true, fileMustExist: true });
    try {
      return db.prepare('select count(*) as n from events').get().n;
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return Number((await client.query('select count(*)::bigint::text as n from events')).rows[0].n);
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------------
// The HTTP run: POST /import to `cohortcast serve`.

async function sendAll(origin, secret, bodies, pid) {
  const pool = new Pool(origin, {
    connections: CONNECTIONS,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: 120_000,
    bodyTimeout: 120_000,
  });
  const headers = {
    'content-type': 'application/x-ndjson',
    authorization: `Basic ${Buffer.from(`${secret}:`).toString('base64')}`,
  };
  const state = { next: 0, acknowledged: 0, sent: 0, errors: 0, errorSamples: [] };
  const noteError = (msg) => {
    state.errors++;
    if (state.errorSamples.length < 5) state.errorSamples.push(msg);
  };
  async function worker() {
    while (state.errors < MAX_ERRORS) {
      const index = state.next++;
      if (index >= bodies.length) return;
      const { body, events } = bodies[index];
      state.sent += events;
      try {
        const res = await pool.request({ method: 'POST', path: '/import?strict=1', headers, body });
        const text = await res.body.text();
        let reply;
        try {
          reply = JSON.parse(text);
        } catch {
          reply = undefined;
        }
        if (res.statusCode !== 200 || reply?.num_records_imported !== events) {
          noteError(`HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
        }
        if (typeof reply?.num_records_imported === 'number') state.acknowledged += reply.num_records_imported;
      } catch (err) {
        noteError(`request failed: ${err.message}`);
      }
    }
  }
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const serverCpuS = cpuSeconds(pid) - cpu0;
  await pool.close();
  return { ...state, seconds, eventsPerS: state.acknowledged / seconds, serverCpuS, cores: serverCpuS / seconds };
}

async function runHttp(target, file, databaseUrl, workDir) {
  const env = serviceEnv(databaseUrl);
  const dataDir = fs.mkdtempSync(path.join(workDir, `${target}-http-`));
  const project = await createProject(env, dataDir, 'bench');
  let t = performance.now();
  const bodies = await readBodies(file, HTTP_EVENTS);
  log(`${target} HTTP: read the first ${fmt(HTTP_EVENTS)} events into ${bodies.length} bodies of up to ${BATCH} (${fmt(bodies[0].body.length / 1e6, 2)} MB each) in ${fmt(performance.now() - t)} ms`);

  const port = await freePort();
  const handle = startChild(`${target}-serve`, [...profArgs(`${target}-serve`), CLI, 'serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir], env);
  const origin = `http://127.0.0.1:${port}`;
  let result;
  let memory;
  try {
    await waitReady(handle, `${origin}/healthz`);
    log(`${target} HTTP: cohortcast serve on ${origin}, data in ${dataDir}; sending on ${CONNECTIONS} connections`);
    const mem = sampler(handle.child.pid, { now: true, sqliteDir: databaseUrl ? undefined : dataDir });
    t = performance.now();
    try {
      result = await sendAll(origin, project.secret, bodies, handle.child.pid);
    } finally {
      mem.stop();
      memory = memorySummary(mem.samples, performance.now() - t);
    }
  } finally {
    const exit = await stopChild(handle);
    if (exit.code !== 0) log(`${target} serve exited with ${exit.signal ?? exit.code}`);
  }
  if (result.errors > 0) {
    throw new Error(`${target} HTTP: ${result.errors} request(s) did not import all their events, e.g.:\n  ${result.errorSamples.join('\n  ')}`);
  }
  result.stored = await storedEvents(target, dataDir, databaseUrl);
  result.memory = memory;
  result.dbMb = databaseUrl ? NaN : fileBytes(path.join(dataDir, 'cohortcast.db')) / 1e6;
  log(
    `${target} HTTP: ${fmt(result.acknowledged)} events in ${fmt(result.seconds, 2)} s = ${fmt(result.eventsPerS)} events/s ` +
      `(server ${fmt(result.cores, 2)} cores, peak RSS ${fmt(memory.peakMb)} MB` +
      `${databaseUrl ? '' : `, WAL at most ${fmt(memory.peakWalMb)} MB, database ${fmt(result.dbMb)} MB`}); stored ${fmt(result.stored)}`,
  );
  return result;
}

// ---------------------------------------------------------------------------------------------
// The import: `cohortcast import events FILE --json` as a child.

async function runImport(name, target, file, project, dataDir, databaseUrl) {
  const env = serviceEnv(databaseUrl);
  const args = [...profArgs(name), CLI, 'import', 'events', file, '--project', String(project.id), '--json', '--data-dir', dataDir, ...IMPORT_ARGS];
  const t0 = performance.now();
  const handle = startChild(name, args, env);
  let stdout = '';
  handle.child.stdout.on('data', (c) => (stdout += c.toString()));
  const mem = sampler(handle.child.pid, { sqliteDir: databaseUrl ? undefined : dataDir });
  // Progress every 30 s, so a long run shows it is alive (and how its memory goes).
  const progress = setInterval(() => {
    const last = mem.samples.at(-1);
    if (last) log(`${name}: ${fmt((performance.now() - t0) / 1000)} s, RSS ${fmt(mb(last.rss))} MB, CPU ${fmt(last.cpu, 1)} s`);
  }, 30_000);
  const timeout = setTimeout(() => {
    log(`${name}: still running after ${IMPORT_TIMEOUT_MS / 1000} s: stopping it`);
    stopChild(handle, 5000);
  }, IMPORT_TIMEOUT_MS);
  let exit;
  try {
    exit = await handle.exited;
  } finally {
    clearTimeout(timeout);
    clearInterval(progress);
    mem.stop();
  }
  const wallS = (performance.now() - t0) / 1000;
  const memory = memorySummary(mem.samples, wallS * 1000);
  if (exit.code !== 0) throw new Error(`${name} exited with ${exit.signal ?? exit.code}:\n${handle.output.text}`);
  const line = stdout.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  let summary;
  try {
    summary = JSON.parse(line);
  } catch {
    throw new Error(`${name} printed no JSON summary on stdout:\n${stdout.slice(-2000)}`);
  }
  const stored = await storedEvents(target, dataDir, databaseUrl);
  const dbMb = databaseUrl ? NaN : fileBytes(path.join(dataDir, 'cohortcast.db')) / 1e6;
  log(
    `${name}: ${fmt(wallS, 2)} s wall (the command's own: ${fmt(summary.seconds, 2)} s), imported ${fmt(summary.imported)}, duplicates ${fmt(summary.duplicates)}, ` +
      `rejected ${fmt(summary.rejected)}; peak RSS ${fmt(memory.peakMb)} MB (10/50/90%: ${fmt(memory.rssMb[10])}/${fmt(memory.rssMb[50])}/${fmt(memory.rssMb[90])}), ` +
      `CPU ${fmt(memory.cpuS, 1)} s${databaseUrl ? '' : `; WAL at most ${fmt(memory.peakWalMb)} MB, database ${fmt(dbMb)} MB`}; stored ${fmt(stored)}`,
  );
  return { wallS, eventsPerS: EVENTS / wallS, summary, memory, cores: memory.cpuS / wallS, stored, dbMb };
}

async function runTarget(target, file, workDir, notes, problems) {
  let httpUrl;
  let importUrl;
  if (target === 'postgres') {
    const admin = await postgresAdminUrlOrSkip(notes, 'PostgreSQL runs');
    if (!admin) return undefined;
    httpUrl = await freshDatabase(admin.url, { tag: 'http', keep: KEEP });
    importUrl = await freshDatabase(admin.url, { tag: 'import', keep: KEEP });
    log(`postgres: fresh databases ${new URL(httpUrl).pathname.slice(1)} and ${new URL(importUrl).pathname.slice(1)} (via ${admin.source})`);
  }
  const check = (ok, message) => {
    if (!ok) {
      problems.push(`${target}: ${message}`);
      log(`CHECK FAILED: ${target}: ${message}`);
    }
  };

  const http = await runHttp(target, file, httpUrl, workDir);
  check(http.stored === http.acknowledged, `HTTP: ${http.acknowledged} events were acknowledged but ${http.stored} are stored`);
  check(http.acknowledged === HTTP_EVENTS, `HTTP: ${http.acknowledged} events acknowledged of ${HTTP_EVENTS} sent`);

  const dataDir = fs.mkdtempSync(path.join(workDir, `${target}-import-`));
  const project = await createProject(serviceEnv(importUrl), dataDir, 'bench');
  log(`${target} import: ${fmt(EVENTS)} events into ${importUrl ? new URL(importUrl).pathname.slice(1) : dataDir}`);
  const first = await runImport(`${target}-import`, target, file, project, dataDir, importUrl);
  const s = first.summary;
  check(s.records === EVENTS, `import: records ${s.records}, expected ${EVENTS}`);
  check(s.imported === EVENTS, `import: imported ${s.imported}, expected ${EVENTS}`);
  check(s.duplicates === 0 && s.rejected === 0, `import: duplicates ${s.duplicates} and rejected ${s.rejected}, expected 0 and 0 (errors: ${JSON.stringify((s.errors ?? []).slice(0, 3))})`);
  check(first.stored === EVENTS, `import: ${first.stored} events stored, expected ${EVENTS}`);

  let again;
  if (REIMPORT) {
    log(`${target} re-import: the same file into the same ${importUrl ? 'database' : 'folder'}`);
    again = await runImport(`${target}-reimport`, target, file, project, dataDir, importUrl);
    const r = again.summary;
    check(r.imported === 0, `re-import: imported ${r.imported}, expected 0`);
    check(r.duplicates === EVENTS, `re-import: duplicates ${r.duplicates}, expected ${EVENTS}`);
    check(r.rejected === 0, `re-import: rejected ${r.rejected}, expected 0`);
    check(again.stored === EVENTS, `re-import: ${again.stored} events stored afterwards, expected ${EVENTS}`);
  }
  return { http, first, again };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm run bench:import does)`);
  log(
    `node ${process.version}, ${os.cpus().length} CPU(s); ${fmt(EVENTS)} events in the file${GZIP ? ' (gzip)' : ''}, ` +
      `the first ${fmt(HTTP_EVENTS)} over HTTP on ${CONNECTIONS} connections; targets: ${TARGETS.join(', ')}` +
      (IMPORT_ARGS.length ? `; import arguments: ${IMPORT_ARGS.join(' ')}` : ''),
  );
  const notes = [];
  const problems = [];
  noteMachineLoad(notes);

  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-bench-import-'));
  if (KEEP) log(`keeping ${workDir}`);
  else onCleanup(() => fs.rmSync(workDir, { recursive: true, force: true }));
  const file = path.join(workDir, GZIP ? 'export.ndjson.gz' : 'export.ndjson');
  const generated = await generateFile(file);
  log(`wrote ${fmt(EVENTS)} events, ${fmt(generated.bytes / 1e6, 1)} MB, to ${file} in ${fmt(generated.seconds, 2)} s`);

  const results = {};
  for (const target of TARGETS) {
    const r = await runTarget(target, file, workDir, notes, problems);
    if (r) results[target] = r;
  }

  await cleanup();

  const rows = [['target', 'run', 'events', 'seconds', 'events/s', 'vs HTTP', 'peak RSS MB', 'RSS 10/50/90% MB', 'CPU cores', 'peak WAL MB']];
  const verdicts = [];
  for (const [target, { http, first, again }] of Object.entries(results)) {
    const ratio = (r) => fmt(r.eventsPerS / http.eventsPerS, 3) + 'x';
    const rss = (m) => `${fmt(m.rssMb[10])} / ${fmt(m.rssMb[50])} / ${fmt(m.rssMb[90])}`;
    rows.push([target, 'POST /import (HTTP)', fmt(http.acknowledged), fmt(http.seconds, 1), fmt(http.eventsPerS), '1.000x', fmt(http.memory.peakMb), rss(http.memory), fmt(http.cores, 2), fmt(http.memory.peakWalMb)]);
    rows.push([target, 'import', fmt(EVENTS), fmt(first.wallS, 1), fmt(first.eventsPerS), ratio(first), fmt(first.memory.peakMb), rss(first.memory), fmt(first.cores, 2), fmt(first.memory.peakWalMb)]);
    if (again) rows.push([target, 're-import', fmt(EVENTS), fmt(again.wallS, 1), fmt(again.eventsPerS), ratio(again), fmt(again.memory.peakMb), rss(again.memory), fmt(again.cores, 2), fmt(again.memory.peakWalMb)]);
    const met = first.eventsPerS >= TARGET_RATIO * http.eventsPerS;
    verdicts.push(`${target}: import at least half of /import over HTTP: ${met ? 'met' : 'NOT met'} (${ratio(first)})`);
  }
  for (const target of TARGETS) if (!results[target]) rows.push([target, 'skipped', '-', '-', '-', '-', '-', '-', '-', '-']);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  console.log('');
  for (const [i, row] of rows.entries()) {
    console.log(row.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  console.log(`file: ${fmt(EVENTS)} events, ${fmt(generated.bytes / 1e6, 1)} MB${GZIP ? ' gzipped' : ''}, generated in ${fmt(generated.seconds, 1)} s`);
  for (const note of notes) console.log(`note: ${note}`);
  for (const problem of problems) console.log(`CHECK FAILED: ${problem}`);
  for (const verdict of verdicts) console.log(verdict);
  console.log('');

  const figures = {
    events: EVENTS,
    http_events: HTTP_EVENTS,
    connections: CONNECTIONS,
    users: USERS,
    days: DAYS,
    gzip: GZIP,
    import_args: IMPORT_ARGS.join(' '),
    file_bytes: generated.bytes,
    generate_seconds: round(generated.seconds, 2),
  };
  for (const [t, { http, first, again }] of Object.entries(results)) {
    Object.assign(figures, {
      [`${t}_http_events_per_s`]: round(http.eventsPerS),
      [`${t}_http_seconds`]: round(http.seconds, 2),
      [`${t}_http_server_cores`]: round(http.cores, 2),
      [`${t}_http_server_peak_rss_mb`]: round(http.memory.peakMb),
      [`${t}_http_stored`]: http.stored,
      [`${t}_http_peak_wal_mb`]: round(http.memory.peakWalMb),
      [`${t}_http_database_mb`]: round(http.dbMb),
      [`${t}_import_events_per_s`]: round(first.eventsPerS),
      [`${t}_import_ratio`]: round(first.eventsPerS / http.eventsPerS, 4),
      [`${t}_import_met`]: first.eventsPerS >= TARGET_RATIO * http.eventsPerS,
      [`${t}_import_seconds`]: round(first.wallS, 2),
      [`${t}_import_command_seconds`]: first.summary.seconds ?? null,
      [`${t}_import_command_records_per_second`]: first.summary.records_per_second ?? null,
      [`${t}_import_imported`]: first.summary.imported ?? null,
      [`${t}_import_duplicates`]: first.summary.duplicates ?? null,
      [`${t}_import_rejected`]: first.summary.rejected ?? null,
      [`${t}_import_stored`]: first.stored,
      [`${t}_import_peak_rss_mb`]: round(first.memory.peakMb),
      [`${t}_import_rss_mb_10`]: round(first.memory.rssMb[10]),
      [`${t}_import_rss_mb_50`]: round(first.memory.rssMb[50]),
      [`${t}_import_rss_mb_90`]: round(first.memory.rssMb[90]),
      [`${t}_import_cores`]: round(first.cores, 2),
      [`${t}_import_peak_wal_mb`]: round(first.memory.peakWalMb),
      [`${t}_import_database_mb`]: round(first.dbMb),
    });
    if (again) {
      Object.assign(figures, {
        [`${t}_reimport_events_per_s`]: round(again.eventsPerS),
        [`${t}_reimport_seconds`]: round(again.wallS, 2),
        [`${t}_reimport_imported`]: again.summary.imported ?? null,
        [`${t}_reimport_duplicates`]: again.summary.duplicates ?? null,
        [`${t}_reimport_stored`]: again.stored,
        [`${t}_reimport_peak_rss_mb`]: round(again.memory.peakMb),
        [`${t}_reimport_cores`]: round(again.cores, 2),
      [`${t}_reimport_peak_wal_mb`]: round(again.memory.peakWalMb),
      });
    }
  }
  for (const target of TARGETS) if (!results[target]) figures[`${target}_skipped`] = true;
  figures.checks_failed = problems;
  figures.load_average = round(os.loadavg()[0], 2);
  console.log(JSON.stringify(figures));
  if (problems.length) throw new Error(`${problems.length} check(s) failed:\n  ${problems.join('\n  ')}`);
}

await runMain(main);
