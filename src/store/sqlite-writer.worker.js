// @ts-check
/**
 * The SQLite ingestion writer thread. Events are written here, on a connection of its own, so
 * SQLite's work (B-tree inserts, WAL frames, checkpoints) runs on a second core while the main
 * thread parses requests. Plain JavaScript so that Node loads it as it is, from src/ in tests
 * and from dist/ when installed.
 *
 * Protocol: {type:'write', id, batches, receivedAt} -> {type:'done', results:[{id, result}|{id, error}]};
 * {type:'close'} -> flushes, closes the database, exits.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const port = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);
const { file, synchronous, busyTimeoutMs, checkpointIntervalMs, maxGroup } = workerData;
const db = new Database(file, { fileMustExist: true, timeout: busyTimeoutMs });
db.pragma(`synchronous = ${synchronous}`);
db.pragma('cache_size = -65536');
db.pragma('foreign_keys = ON');
// Checkpoints are this thread's job, on a timer, never inside a commit.
db.pragma('wal_autocheckpoint = 0');

const DAY_MS = 86_400_000;

/** @type {ReturnType<typeof prepare> | undefined} */
let statements;
// Prepared on first use: the main thread migrates the schema before any event arrives.
function prepare() {
  return {
    insertEvent: db.prepare(
      `insert into events (project_id, event, distinct_id, time, insert_id, dedup_key, properties, received_at)
       values (?, ?, ?, ?, ?, ?, ?, ?) on conflict (project_id, time, dedup_key) do nothing`,
    ),
    bumpCount: db.prepare(
      `insert into event_daily_counts (project_id, distinct_id, event, day, count) values (?, ?, ?, ?, ?)
       on conflict (project_id, distinct_id, event, day) do update set count = count + excluded.count`,
    ),
    hasAliases: db.prepare('select 1 from aliases where project_id = ? limit 1').pluck(),
    findAlias: db.prepare('select distinct_id from aliases where project_id = ? and alias = ?').pluck(),
    upsertAlias: db.prepare(
      `insert into aliases (project_id, alias, distinct_id, created_at) values (?, ?, ?, ?)
       on conflict (project_id, alias) do update set distinct_id = excluded.distinct_id`,
    ),
  };
}

/**
 * One request: aliases first, then events (de-duplicated by the unique index), then the daily
 * counts of exactly the rows inserted. Run as a savepoint inside the group's transaction.
 * @param {{projectId:number, events:{event:string,distinctId:string,time:number,insertId:string|null,dedupKey:string,properties:string}[], aliases:{alias:string,distinctId:string}[]}[]} batches
 * @param {number} receivedAt
 */
function writeRequest(batches, receivedAt) {
  const s = (statements ??= prepare());
  let inserted = 0;
  let total = 0;
  for (const { projectId, events, aliases } of batches) {
    for (const a of aliases) {
      const target = /** @type {string|undefined} */ (s.findAlias.get(projectId, a.distinctId)) ?? a.distinctId;
      if (target !== a.alias) s.upsertAlias.run(projectId, a.alias, target, receivedAt);
    }
    const resolve = s.hasAliases.get(projectId)
      ? (/** @type {string} */ id) => /** @type {string|undefined} */ (s.findAlias.get(projectId, id)) ?? id
      : (/** @type {string} */ id) => id;
    /** @type {Map<string, [string, string, number, number]>} */
    const counts = new Map();
    for (const e of events) {
      total++;
      const distinctId = resolve(e.distinctId);
      const changes = s.insertEvent.run(projectId, e.event, distinctId, e.time, e.insertId, e.dedupKey, e.properties, receivedAt).changes;
      inserted += changes;
      // Events with an empty distinct_id are kept but, as in Mixpanel, left out of behaviour.
      if (changes === 0 || distinctId === '') continue;
      const day = Math.floor(e.time / DAY_MS);
      const key = `${distinctId}\u0000${e.event}\u0000${day}`;
      const c = counts.get(key);
      if (c) c[3]++;
      else counts.set(key, [distinctId, e.event, day, 1]);
    }
    for (const [distinctId, event, day, n] of counts.values()) s.bumpCount.run(projectId, distinctId, event, day, n);
  }
  return { inserted, duplicates: total - inserted };
}
const writeInSavepoint = db.transaction(writeRequest);

/** @type {{id:number, batches:any, receivedAt:number}[]} */
let queue = [];
let scheduled = false;

/**
 * Group commit: every request that arrived while the last group was being written shares one
 * IMMEDIATE transaction (one COMMIT, shared pages written once); each request is its own
 * savepoint, so each stays all-or-nothing and a failure fails only that request.
 */
function flush() {
  scheduled = false;
  const group = queue.splice(0, maxGroup);
  if (queue.length) schedule();
  /** @type {({id:number, result:{inserted:number,duplicates:number}} | {id:number, error:string})[]} */
  let results = [];
  try {
    db.transaction(() => {
      results = group.map((m) => {
        try {
          return { id: m.id, result: writeInSavepoint(m.batches, m.receivedAt) };
        } catch (err) {
          return { id: m.id, error: err instanceof Error ? err.message : String(err) };
        }
      });
    }).immediate();
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    results = group.map((m) => ({ id: m.id, error }));
  }
  port.postMessage({ type: 'done', results });
}

function schedule() {
  if (scheduled) return;
  scheduled = true;
  setImmediate(flush);
}

const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const timer = setInterval(() => {
  try {
    checkpoint.get();
  } catch {
    // busy: the next tick tries again
  }
}, checkpointIntervalMs);

port.on('message', (msg) => {
  if (msg.type === 'write') {
    queue.push(msg);
    schedule();
  } else if (msg.type === 'close') {
    while (queue.length) flush();
    clearInterval(timer);
    db.close();
    port.close();
  }
});
