// Cohort evaluation: `npm run bench:cohort-eval` (builds first, then runs this file).
//
// A fresh SQLite data folder with BENCH_PROFILES user profiles and BENCH_EVENTS events spread over the
// last 60 days (with their per-user daily counts, as ingestion keeps them), written straight into the
// service's own schema (dist/store/migrate.js) by prepared statements: loading is not what is measured.
// Then each cohort below is evaluated through the service's own code (dist/store/cohorts-repo.js:
// the compiled definition; a count, and the whole member list in one query), BENCH_RUNS times, and the median is
// reported beside a raw baseline in the same run: the same answer from a hand-written SQL query on a
// bare better-sqlite3 connection to the same file.
//
//   behavioural  did Purchase at least 2 times in the last 30 days, and plan = "pro"
//   narrowed     did Purchase at least once in the last 7 days with amount > 50 (reads the events)
//
// Target (DESIGN.md): a behavioural cohort over 10,000,000 events and 1,000,000 profiles in under 2 s.
// Environment (all optional): BENCH_PROFILES=1000000, BENCH_EVENTS=10000000, BENCH_RUNS=3,
// BENCH_KEEP=1 keeps the data folder.
// Output: progress on stderr; on stdout a table, then one final line holding a JSON object of the figures.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import BetterSqlite3 from 'better-sqlite3';
import { loadConfig } from '../dist/config.js';
import { syncMemberHead } from '../dist/cohort-sync/wire.js';
import { dedupKey } from '../dist/ingest/events.js';
import { cohortMembers, cohortSize } from '../dist/store/cohorts-repo.js';
import { openStore } from '../dist/store/database.js';
import { migrateToLatest } from '../dist/store/migrate.js';
import { envInt, log, runMain } from './lib/processes.js';

const PROFILES = Math.floor(envInt('BENCH_PROFILES', 1_000_000));
const EVENTS = Math.floor(envInt('BENCH_EVENTS', 10_000_000));
const RUNS = Math.floor(envInt('BENCH_RUNS', 3));
const KEEP = process.env.BENCH_KEEP === '1';
const DAY = 86_400_000;
const TARGET_MS = 2000;
const EVENT_NAMES = ['Page View', 'Page View', 'Page View', 'Page View', 'Login', 'Login', 'Search', 'Add to Cart', 'Purchase'];

const user = (i) => `user-${String(i).padStart(7, '0')}`;

function load(raw, now) {
  let seed = 7;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
  raw.prepare('insert into projects (id, name, token, secret_hash, created_at) values (1, ?, ?, ?, ?)').run('bench', 'bench-token', 'bench-secret-hash', now);
  const profile = raw.prepare('insert into profiles (project_id, distinct_id, properties, sync_member, created_at, updated_at) values (1, ?, jsonb(?), ?, ?, ?)');
  const plans = ['free', 'free', 'pro', 'team'];
  let t = performance.now();
  raw.transaction(() => {
    for (let i = 0; i < PROFILES; i++) {
      const props = { plan: plans[i % 4], $email: `${user(i)}@example.com`, $first_name: 'Ada', seats: i % 50 };
      profile.run(user(i), JSON.stringify(props), syncMemberHead(user(i), props), now, now);
    }
  })();
  log(`${PROFILES.toLocaleString('en-US')} profiles in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  t = performance.now();
  const event = raw.prepare('insert into events (project_id, event, distinct_id, time, insert_id, dedup_key, properties, received_at) values (1, ?, ?, ?, ?, ?, ?, ?)');
  const CHUNK = 200_000;
  // Events go in in time order (as ingestion mostly sees them), over the last 60 days; users skewed
  // so that some are much more active than others.
  const start = now - 60 * DAY;
  for (let done = 0; done < EVENTS; done += CHUNK) {
    raw.transaction(() => {
      for (let k = done; k < Math.min(EVENTS, done + CHUNK); k++) {
        const time = start + Math.floor((k / EVENTS) * 60 * DAY);
        const who = user(Math.floor(rand() * rand() * PROFILES));
        const name = EVENT_NAMES[Math.floor(rand() * EVENT_NAMES.length)];
        const props = name === 'Purchase' ? `{"amount":${Math.floor(rand() * 100)}}` : '{"path":"/"}';
        const insertId = `e${k.toString(36)}`;
        event.run(name, who, time, insertId, dedupKey(name, time, who, insertId), props, now);
      }
    })();
  }
  log(`${EVENTS.toLocaleString('en-US')} events in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  t = performance.now();
  raw.exec(`insert into event_daily_counts (project_id, distinct_id, event, day, count)
            select project_id, distinct_id, event, time / ${DAY}, count(*) from events group by project_id, distinct_id, event, time / ${DAY}`);
  raw.exec('analyze');
  log(`daily counts in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function time(fn) {
  const out = [];
  let result;
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    result = await fn();
    out.push(performance.now() - t);
  }
  return { ms: median(out), result };
}

await runMain(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-bench-cohort-'));
  log(`data in ${dir}`);
  const config = loadConfig({ dataDir: dir }, { ...process.env, DATABASE_URL: '' });
  const store = openStore(config);
  try {
    await migrateToLatest(store);
    const now = Date.now();
    load(store.raw, now);
    const bare = new BetterSqlite3(path.join(dir, 'cohortcast.db'), { readonly: true });
    const today = Math.floor(now / DAY);
    const cohorts = {
      behavioural: {
        definition: { and: [{ event: 'Purchase', count: { op: 'at_least', value: 2 }, within_days: 30 }, { property: 'plan', op: 'equals', value: 'pro' }] },
        baseline: `select p.distinct_id from profiles p
                   join (select distinct_id from event_daily_counts where project_id = 1 and event = 'Purchase' and day >= ${today - 29}
                         group by distinct_id having sum(count) >= 2) c on c.distinct_id = p.distinct_id
                   where p.project_id = 1 and p.properties ->> '$.plan' = 'pro' order by p.distinct_id`,
      },
      narrowed: {
        definition: { event: 'Purchase', within_days: 7, where: [{ property: 'amount', op: 'greater_than', value: 50 }] },
        baseline: `select p.distinct_id from profiles p
                   join (select distinct_id from events where project_id = 1 and event = 'Purchase' and time >= ${(today - 6) * DAY}
                         and properties ->> '$.amount' > 50 group by distinct_id) c on c.distinct_id = p.distinct_id
                   where p.project_id = 1 order by p.distinct_id`,
      },
    };
    const figures = {};
    const rows = [];
    for (const [name, c] of Object.entries(cohorts)) {
      const evaluation = { projectId: 1, definition: c.definition, cohorts: new Map(), now };
      const count = await time(() => cohortSize(store, evaluation));
      // The whole membership in one query: what a sync materialises at the start of a run.
      const list = await time(async () => (await cohortMembers(store, evaluation, undefined, PROFILES)).length);
      const statement = bare.prepare(c.baseline).pluck();
      const base = await time(() => statement.all().length);
      if (count.result !== base.result || list.result !== base.result) {
        throw new Error(`${name}: cohortcast counts ${count.result} (listed ${list.result}) but the baseline ${base.result}`);
      }
      figures[name] = { members: count.result, count_ms: Math.round(count.ms), list_ms: Math.round(list.ms), baseline_ms: Math.round(base.ms) };
      rows.push([name, count.result.toLocaleString('en-US'), Math.round(count.ms), Math.round(list.ms), Math.round(base.ms)]);
      log(`${name}: ${count.result} members; count ${Math.round(count.ms)} ms, list ${Math.round(list.ms)} ms, baseline ${Math.round(base.ms)} ms`);
    }
    bare.close();
    console.log(`\n${PROFILES.toLocaleString('en-US')} profiles, ${EVENTS.toLocaleString('en-US')} events over 60 days (SQLite); medians of ${RUNS} runs`);
    console.log(`${'cohort'.padEnd(14)}${'members'.padStart(10)}${'count ms'.padStart(10)}${'list ms'.padStart(10)}${'baseline ms'.padStart(13)}`);
    for (const r of rows) console.log(`${r[0].padEnd(14)}${r[1].padStart(10)}${String(r[2]).padStart(10)}${String(r[3]).padStart(10)}${String(r[4]).padStart(13)}`);
    const met = figures.behavioural.list_ms < TARGET_MS;
    console.log(`behavioural cohort, full membership under ${TARGET_MS} ms: ${met ? 'met' : 'NOT met'} (${figures.behavioural.list_ms} ms)`);
    console.log(JSON.stringify({ profiles: PROFILES, events: EVENTS, runs: RUNS, ...figures, target_met: met }));
  } finally {
    await store.close();
    if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
});
