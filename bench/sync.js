// Cohort sync: `npm run bench:sync` (builds first, then runs this file).
//
// A fresh SQLite data folder gets BENCH_MEMBERS user profiles (written straight into the service's
// schema: loading is not what is measured). `cohortcast serve` then syncs a cohort holding all of
// them to a local sink (bench/sink-server.js, its own process), through the API as a user would:
//   full   the first run: every member, in pages of 1000 (COHORTCAST_SYNC_PAGE_SIZE)
//   diff   after 1% churn (half the churned members leave the cohort, as many new ones join, through
//          /engage): add_members and remove_members against the first run's snapshot
// Each run's time is the service's own record (started → finished: snapshot, pages, every page
// acknowledged by the sink). Beside it, in the same run, a bare undici loop posts the same full
// export (the same page bodies, built in this process beforehand) to the same sink, with as many
// requests in flight as the service can have: the connection's max_concurrency (16), or fewer when
// COHORTCAST_SYNC_PAGES_IN_FLIGHT (pages a run keeps queued, default 48) is lower.
// Peak RSS is the serve process's VmHWM after both runs.
//
// Targets (DESIGN.md): full under 3 s, diff under 2 s, peak RSS under 500 MB.
// Environment (all optional): BENCH_MEMBERS=1000000, BENCH_CHURN=0.01, BENCH_KEEP=1 keeps the data,
// BENCH_CPU_PROF=DIR runs the serve process under `node --cpu-prof` into DIR (summarise with
// `node bench/cpu-profile-top.js DIR/CPU.*.cpuprofile`; the largest file is the main thread).
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
const KEEP = process.env.BENCH_KEEP === '1';
const CPU_PROF = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : undefined;
const PAGE = 1000;
const CONNECTION_CONCURRENCY = 16;
const IN_FLIGHT = Math.min(CONNECTION_CONCURRENCY, Math.floor(envInt('COHORTCAST_SYNC_PAGES_IN_FLIGHT', 48)));
const TARGETS = { full_ms: 3000, diff_ms: 2000, peak_rss_mb: 500 };
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const SINK = path.join(ROOT, 'bench', 'sink-server.js');

const member = (i) => `member-${String(i).padStart(8, '0')}`;
const props = (i) => ({ plan: 'pro', $email: `${member(i)}@example.com`, $first_name: 'Ada', $last_name: `Lovelace${i % 100}` });

async function load(dir) {
  const store = openStore(loadConfig({ dataDir: dir }, { ...process.env, DATABASE_URL: '' }));
  try {
    await migrateToLatest(store);
    const project = await createProject(store, 'bench');
    const now = Date.now();
    const insert = store.raw.prepare('insert into profiles (project_id, distinct_id, properties, sync_member, created_at, updated_at) values (?, ?, jsonb(?), ?, ?, ?)');
    const t = performance.now();
    store.raw.transaction(() => {
      for (let i = 0; i < MEMBERS; i++) insert.run(project.id, member(i), JSON.stringify(props(i)), syncMemberHead(member(i), props(i)), now, now);
    })();
    log(`${MEMBERS.toLocaleString('en-US')} profiles in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    return project;
  } finally {
    await store.close();
  }
}

async function waitRun(base, secret, syncId, count, timeoutMs = 600_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const { results } = await api(base, secret, `/api/v1/cohort-syncs/${syncId}/runs`);
    const run = results[0];
    if (results.length === count && run.state === 'succeeded') return run;
    if (results.length === count && run.state !== 'running') throw new Error(`run ${count} ended ${run.state}: ${run.error}`);
    await sleep(20);
  }
  throw new Error(`run ${count} did not end within ${timeoutMs} ms`);
}

const durationMs = (run) => Date.parse(run.finished_at) - Date.parse(run.started_at);

function peakRssMb(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
  return Math.round(kb / 1024);
}

/** The same full export the service sends (same member fields, same sizes), posted by a bare loop. */
async function bareLoop(sinkOrigin) {
  const pages = Math.ceil(MEMBERS / PAGE);
  const bodies = [];
  for (let p = 0; p < pages; p++) {
    const members = [];
    for (let i = p * PAGE; i < Math.min(MEMBERS, (p + 1) * PAGE); i++) {
      const x = props(i);
      members.push({ mixpanel_distinct_id: member(i), email: x.$email, first_name: x.$first_name, last_name: x.$last_name });
    }
    bodies.push(
      JSON.stringify({
        action: 'members',
        parameters: {
          mixpanel_project_id: '1',
          mixpanel_cohort_id: '1',
          mixpanel_cohort_name: 'Everyone',
          mixpanel_cohort_description: '',
          mixpanel_session_id: 'bare',
          page_info: { total_pages: pages, page_count: p + 1 },
          members,
        },
      }),
    );
  }
  const pool = new Pool(sinkOrigin, { connections: IN_FLIGHT, pipelining: 1 });
  let next = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++];
        const res = await pool.request({ method: 'POST', path: '/hook', headers: { 'content-type': 'application/json' }, body });
        await res.body.text();
        if (res.statusCode !== 200) throw new Error(`bare loop: HTTP ${res.statusCode}`);
      }
    }),
  );
  const ms = performance.now() - t;
  await pool.close();
  return { ms, bytes: bodies.reduce((n, b) => n + b.length, 0) };
}

await runMain(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-bench-sync-'));
  log(`data in ${dir}`);
  try {
    const project = await load(dir);
    const sinkPort = await freePort();
    const sink = startChild('sink', [SINK, String(sinkPort)], process.env);
    await waitForLine(sink, 'ready');
    const sinkOrigin = `http://127.0.0.1:${sinkPort}`;

    const port = await freePort();
    const env = { ...process.env, DATABASE_URL: '', COHORTCAST_ALLOW_HTTP: 'true', COHORTCAST_ALLOWED_NETWORKS: '127.0.0.0/8', COHORTCAST_SCHEDULER_POLL_INTERVAL_MS: '20', COHORTCAST_LOG_LEVEL: 'warn' };
    const profile = CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`] : [];
    const serve = startChild('serve', [...profile, CLI, 'serve', '--port', String(port), '--data-dir', dir], env);
    const base = `http://127.0.0.1:${port}`;
    await waitReady(serve, `${base}/healthz`);

    const cohort = await api(base, project.secret, '/api/v1/cohorts', 'POST', { name: 'Everyone', definition: { property: 'plan', op: 'equals', value: 'pro' } });
    const connection = await api(base, project.secret, '/api/v1/connections', 'POST', { name: 'sink', url: `${sinkOrigin}/hook`, max_concurrency: CONNECTION_CONCURRENCY });
    const sync = await api(base, project.secret, '/api/v1/cohort-syncs', 'POST', { cohort_id: cohort.id, connection_id: connection.id });
    const full = await waitRun(base, project.secret, sync.id, 1);
    log(`full: ${full.members_added} members in ${full.total_pages} pages, ${durationMs(full)} ms`);

    // 1% churn through the ingestion API: half leave, as many new members join.
    const churn = Math.round(MEMBERS * CHURN);
    const updates = [];
    for (let k = 0; k < churn / 2; k++) updates.push({ $token: project.token, $distinct_id: member(k * 2), $set: { plan: 'free' } });
    for (let k = 0; k < churn / 2; k++) updates.push({ $token: project.token, $distinct_id: member(MEMBERS + k), $set: props(MEMBERS + k) });
    for (let i = 0; i < updates.length; i += 50) {
      const res = await request(`${base}/engage`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `data=${Buffer.from(JSON.stringify(updates.slice(i, i + 50))).toString('base64')}`,
      });
      if ((await res.body.text()) !== '1') throw new Error('engage refused the churn');
    }
    await api(base, project.secret, `/api/v1/cohort-syncs/${sync.id}/run`, 'POST');
    const diff = await waitRun(base, project.secret, sync.id, 2);
    log(`diff: +${diff.members_added} −${diff.members_removed} in ${diff.total_pages} pages, ${durationMs(diff)} ms`);
    const rss = peakRssMb(serve.child.pid);
    await stopChild(serve);

    const bare = await bareLoop(sinkOrigin);
    log(`bare loop: ${Math.ceil(MEMBERS / PAGE)} pages (${(bare.bytes / 1e6).toFixed(0)} MB) in ${Math.round(bare.ms)} ms`);
    await stopChild(sink);

    const figures = {
      members: MEMBERS,
      pages_in_flight: IN_FLIGHT,
      full_ms: durationMs(full),
      full_members_per_s: Math.round(full.members_added / (durationMs(full) / 1000)),
      bare_full_ms: Math.round(bare.ms),
      diff_ms: durationMs(diff),
      diff_added: diff.members_added,
      diff_removed: diff.members_removed,
      peak_rss_mb: rss,
    };
    const met = { full: figures.full_ms < TARGETS.full_ms, diff: figures.diff_ms < TARGETS.diff_ms, rss: rss < TARGETS.peak_rss_mb };
    console.log(`\n${MEMBERS.toLocaleString('en-US')} members, pages of ${PAGE}, up to ${IN_FLIGHT} requests in flight (SQLite)`);
    console.log(`${'run'.padEnd(26)}${'ms'.padStart(8)}${'members/s'.padStart(12)}${'target'.padStart(10)}`);
    console.log(`${'bare loop, same pages'.padEnd(26)}${String(figures.bare_full_ms).padStart(8)}${String(Math.round(MEMBERS / (bare.ms / 1000))).padStart(12)}${'-'.padStart(10)}`);
    console.log(`${'full sync'.padEnd(26)}${String(figures.full_ms).padStart(8)}${String(figures.full_members_per_s).padStart(12)}${(met.full ? 'met' : 'NOT met').padStart(10)}`);
    console.log(`${`diff (+${diff.members_added} −${diff.members_removed})`.padEnd(26)}${String(figures.diff_ms).padStart(8)}${'-'.padStart(12)}${(met.diff ? 'met' : 'NOT met').padStart(10)}`);
    console.log(`peak RSS of the serve process: ${rss} MB (target under ${TARGETS.peak_rss_mb}: ${met.rss ? 'met' : 'NOT met'})`);
    console.log(JSON.stringify({ ...figures, full_target_met: met.full, diff_target_met: met.diff, rss_target_met: met.rss }));
  } finally {
    if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
});
