// Storage side of ingestion, without HTTP: `npm run bench:ingest-storage`.
//
// Drives the service's own SQLite ingest writer (dist/store/ingest-writer.js: events, the
// de-duplication index and the per-user daily counts in one transaction, group commit, the
// checkpoint thread) with the same events bench/ingest.js sends, in groups of BENCH_GROUP_REQUESTS
// requests of 50 events (16: the group size the HTTP service forms at 32 connections). Beside it,
// in the same run, the same rows appended to a table with no index and no counts through a bare
// better-sqlite3 connection with the same settings: the floor any SQLite design pays for the rows.
// CPU is the whole process (every thread, the checkpoint thread included), per event.
//
// Environment (all optional): BENCH_EVENTS=400000, BENCH_GROUP_REQUESTS=16, BENCH_TIME_SPREAD_S=60;
// the service's own COHORTCAST_SQLITE_* settings apply to the writer.
// Output: a table on stdout, then one line holding a JSON object of the figures.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import BetterSqlite3 from 'better-sqlite3';
import { loadConfig } from '../dist/config.js';
import { dedupKey } from '../dist/ingest/events.js';
import { openStore } from '../dist/store/database.js';
import { createIngestWriter } from '../dist/store/ingest-writer.js';
import { migrateToLatest } from '../dist/store/migrate.js';

function envInt(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number >= 1, got "${raw}"`);
  return n;
}
const EVENTS = envInt('BENCH_EVENTS', 400_000);
const GROUP_REQUESTS = envInt('BENCH_GROUP_REQUESTS', 16);
const TIME_SPREAD_MS = envInt('BENCH_TIME_SPREAD_S', 60) * 1000;
const BATCH = 50;
const USERS = 10_000;

const EVENT_NAMES = ['Page View', 'Page View', 'Page View', 'Search', 'Add to Cart', 'Sign Up', 'Purchase'];
const PLANS = ['free', 'pro', 'team', 'enterprise'];
const BROWSERS = ['Chrome', 'Firefox', 'Safari', 'Edge'];

/** Requests of 50 events as the ingestor hands them to the writer: the same shape bench/ingest.js sends. */
function makeRequests() {
  let seed = 42;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
  const pick = (list) => list[Math.floor(rand() * list.length)];
  const now = Date.now();
  const requests = [];
  for (let r = 0; r * BATCH < EVENTS; r++) {
    const events = [];
    for (let i = 0; i < BATCH; i++) {
      const event = pick(EVENT_NAMES);
      const distinctId = `user-${Math.floor(rand() * USERS)}`;
      const time = now - Math.floor(rand() * TIME_SPREAD_MS);
      const insertId = `b${r.toString(36)}-${i.toString(36)}`;
      const properties = JSON.stringify({
        plan: pick(PLANS),
        path: `/p/${Math.floor(rand() * 500)}`,
        $browser: pick(BROWSERS),
        $os: 'Mac OS X',
        $screen_width: 1440,
        utm_source: 'google',
        duration_ms: Math.floor(rand() * 5000),
      });
      events.push({ event, distinctId, time, insertId, dedupKey: dedupKey(event, time, distinctId, insertId), properties });
    }
    requests.push(events);
  }
  return requests;
}

function measure(fn) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  return Promise.resolve(fn()).then(() => {
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const events = EVENTS;
    return { eventsPerS: events / seconds, cpuUsPerEvent: (cpu.user + cpu.system) / events };
  });
}

async function runWriter(requests, dir) {
  const config = loadConfig({ dataDir: dir }, { COHORTCAST_LOG_LEVEL: 'warn', ...process.env });
  const store = openStore(config);
  try {
    await migrateToLatest(store);
    const { id: projectId } = await store.db
      .insertInto('projects')
      .values({ name: 'bench', token: 'bench-token', secret_hash: 'bench-secret', created_at: Date.now() })
      .returning('id')
      .executeTakeFirstOrThrow();
    const writer = createIngestWriter(store);
    let stored = 0;
    const result = await measure(async () => {
      for (let r = 0; r < requests.length; r += GROUP_REQUESTS) {
        const group = requests.slice(r, r + GROUP_REQUESTS);
        // Issued together, so the writer commits them as one group, as under concurrent load.
        const results = await Promise.all(group.map((events) => writer.writeEvents([{ projectId, events, aliases: [] }], Date.now())));
        for (const x of results) stored += x.inserted;
      }
    });
    if (stored !== EVENTS) throw new Error(`the writer stored ${stored} of ${EVENTS} events`);
    return result;
  } finally {
    await store.close();
  }
}

async function runAppend(requests, dir) {
  const db = new BetterSqlite3(path.join(dir, 'append.db'));
  try {
    for (const p of ['journal_mode = WAL', 'synchronous = NORMAL', 'cache_size = -65536', 'temp_store = MEMORY']) db.pragma(p);
    db.exec(`create table events (id integer primary key, project_id integer not null, event text not null,
      distinct_id text not null, time bigint not null, insert_id text, dedup_key text not null,
      properties text not null, received_at bigint not null)`);
    const insert = db.prepare('insert into events (project_id, event, distinct_id, time, insert_id, dedup_key, properties, received_at) values (?, ?, ?, ?, ?, ?, ?, ?)');
    const writeGroup = db.transaction((group, receivedAt) => {
      for (const events of group) {
        for (const e of events) insert.run(1, e.event, e.distinctId, e.time, e.insertId, e.dedupKey, e.properties, receivedAt);
      }
    });
    return await measure(() => {
      for (let r = 0; r < requests.length; r += GROUP_REQUESTS) writeGroup(requests.slice(r, r + GROUP_REQUESTS), Date.now());
    });
  } finally {
    db.close();
  }
}

async function main() {
  const requests = makeRequests();
  console.error(`[bench] ${EVENTS.toLocaleString('en-US')} events, groups of ${GROUP_REQUESTS} requests of ${BATCH}, node ${process.version}, ${os.cpus().length} CPU(s)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-bench-storage-'));
  try {
    const append = await runAppend(requests, dir);
    const writer = await runWriter(requests, dir);
    const row = (name, r) => `${name.padEnd(30)}${Math.round(r.eventsPerS).toLocaleString('en-US').padStart(10)}${r.cpuUsPerEvent.toFixed(2).padStart(16)}`;
    console.log(`${'target'.padEnd(30)}${'events/s'.padStart(10)}${'CPU µs/event'.padStart(16)}`);
    console.log(row('append only (baseline)', append));
    console.log(row('ingest writer', writer));
    console.log(
      JSON.stringify({
        writer_events_per_s: Math.round(writer.eventsPerS),
        writer_cpu_us_per_event: Number(writer.cpuUsPerEvent.toFixed(2)),
        append_events_per_s: Math.round(append.eventsPerS),
        append_cpu_us_per_event: Number(append.cpuUsPerEvent.toFixed(2)),
        ratio: Number((writer.eventsPerS / append.eventsPerS).toFixed(3)),
        events: EVENTS,
        group_requests: GROUP_REQUESTS,
      }),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`[bench] FAILED: ${err.stack ?? err}`);
  process.exit(1);
});
