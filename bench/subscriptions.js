// Subscriptions and live membership: `npm run bench:subscriptions` (builds first, then runs this file).
//
// A fresh SQLite data folder gets BENCH_PROFILES (1,000,000) profiles written straight into the
// service's schema; `cohortcast serve` runs on it with its default intervals, and a local sink
// (bench/sink-server.js, its own process) receives every webhook. Through the API, as a user would:
//   sweep     a cohort of BENCH_PROFILES profiles ("due_at before now"), watched by a subscription to
//             cohort.member_entered: its baseline recorded silently, then the sweep timed as the
//             service's own histogram reports it, once with no change and once when BENCH_DRIFT
//             profiles come due (a change time alone makes: each is an event and a delivery);
//             sweeps every 5 s here, then the service is restarted with the default 60 s
//   latency   while BENCH_UPDATES_PER_S (1,000) profile updates/s go through /engage, every 50 ms an
//             /engage makes one new user match "plan = pro"; the latency is from just before that
//             request to the member_entered webhook's arrival at the sink (p50, p99)
//   fanout    an event.ingested subscription (Purchase events) to the sink; /track is offered at rising
//             rates for BENCH_STEP_SECONDS each; a rate is sustained when the backlog (events not yet
//             fanned out plus deliveries waiting, read from /metrics) at the step's end is under a
//             second of that rate. Beside it, in the same run, a bare undici loop posts the same
//             bodies to the same sink (64 in flight, as many as the connection allows).
// Environment (all optional): BENCH_PROFILES=1000000, BENCH_DRIFT=10000, BENCH_UPDATES_PER_S=1000,
// BENCH_LATENCY_SECONDS=20, BENCH_STEP_SECONDS=5, BENCH_KEEP=1 keeps the data folder.
// Output: progress on stderr; on stdout a table, then one final line holding a JSON object of the figures.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import BetterSqlite3 from 'better-sqlite3';
import { Pool, request } from 'undici';
import { loadConfig } from '../dist/config.js';
import { syncMemberHead } from '../dist/cohort-sync/wire.js';
import { createProject } from '../dist/projects/projects.js';
import { openStore } from '../dist/store/database.js';
import { migrateToLatest } from '../dist/store/migrate.js';
import { api, envInt, freePort, log, ROOT, runMain, sleep, startChild, stopChild, waitForLine, waitReady } from './lib/processes.js';

const PROFILES = Math.floor(envInt('BENCH_PROFILES', 1_000_000));
const DRIFT = Math.min(PROFILES, Math.floor(envInt('BENCH_DRIFT', 10_000)));
const UPDATES_PER_S = envInt('BENCH_UPDATES_PER_S', 1000);
const LATENCY_SECONDS = envInt('BENCH_LATENCY_SECONDS', 20);
const STEP_SECONDS = envInt('BENCH_STEP_SECONDS', 5);
const KEEP = process.env.BENCH_KEEP === '1';
const IN_FLIGHT = 64;
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const SINK = path.join(ROOT, 'bench', 'sink-server.js');
// The drifting profiles come due this long after the load: after the baseline and a quiet sweep.
const DRIFT_AFTER_MS = 60_000;

const user = (i) => `user-${String(i).padStart(8, '0')}`;

async function load(dir, dueSoon) {
  const store = openStore(loadConfig({ dataDir: dir }, { ...process.env, DATABASE_URL: '' }));
  try {
    await migrateToLatest(store);
    const project = await createProject(store, 'bench');
    const now = Date.now();
    const past = new Date(now - 86_400_000).toISOString().slice(0, 19);
    const soon = new Date(dueSoon).toISOString().slice(0, 19);
    const insert = store.raw.prepare('insert into profiles (project_id, distinct_id, properties, sync_member, created_at, updated_at) values (?, ?, jsonb(?), ?, ?, ?)');
    const t = performance.now();
    store.raw.transaction(() => {
      for (let i = 0; i < PROFILES; i++) {
        const props = { plan: 'free', due_at: i < DRIFT ? soon : past, $email: `${user(i)}@example.com` };
        insert.run(project.id, user(i), JSON.stringify(props), syncMemberHead(user(i), props), now, now);
      }
    })();
    log(`${PROFILES.toLocaleString('en-US')} profiles in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    return project;
  } finally {
    await store.close();
  }
}

/** The service's own figures, from /metrics. */
async function metrics(base) {
  const text = await (await request(`${base}/metrics`)).body.text();
  const value = (name, labels = '') => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };
  return {
    sweepCount: value('cohortcast_membership_sweep_duration_seconds_count'),
    sweepSum: value('cohortcast_membership_sweep_duration_seconds_sum'),
    sweptEntered: value('cohortcast_membership_changes_total', '{change="entered",source="sweep"}'),
    eventsWaiting: value('cohortcast_subscription_events_waiting'),
    profilesWaiting: value('cohortcast_membership_profiles_waiting'),
    queue: value('cohortcast_delivery_queue_depth'),
  };
}

async function until(what, probe, timeoutMs = 600_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const sink = async (origin, p, method = 'GET') => JSON.parse(await (await request(`${origin}${p}`, { method })).body.text());

function form(records) {
  return `data=${Buffer.from(JSON.stringify(records)).toString('base64')}`;
}

/** Sends `perSecond` records a second for `seconds`, in requests of 50 spread evenly; answers how many went. */
async function offer(base, endpoint, perSecond, seconds, make) {
  const pool = new Pool(base, { connections: 16 });
  const requests = Math.max(1, Math.round((perSecond * seconds) / 50));
  const gap = (seconds * 1000) / requests;
  const start = performance.now();
  let sent = 0;
  const pending = [];
  for (let r = 0; r < requests; r++) {
    const wait = start + r * gap - performance.now();
    if (wait > 1) await sleep(wait);
    const records = Array.from({ length: 50 }, () => make(sent++));
    pending.push(
      pool.request({ method: 'POST', path: endpoint, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form(records) }).then(async (res) => {
        if ((await res.body.text()) !== '1') throw new Error(`${endpoint} refused a batch`);
      }),
    );
  }
  await Promise.all(pending);
  await pool.close();
  return sent;
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

await runMain(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-bench-subscriptions-'));
  log(`data in ${dir}`);
  try {
    const dueAt = Date.now() + DRIFT_AFTER_MS;
    const project = await load(dir, dueAt);
    const sinkPort = await freePort();
    const sinkChild = startChild('sink', [SINK, String(sinkPort)], process.env);
    await waitForLine(sinkChild, 'ready');
    const sinkOrigin = `http://127.0.0.1:${sinkPort}`;

    const port = await freePort();
    const env = { ...process.env, DATABASE_URL: '', COHORTCAST_ALLOW_HTTP: 'true', COHORTCAST_ALLOWED_NETWORKS: '127.0.0.0/8', COHORTCAST_LOG_LEVEL: 'warn', COHORTCAST_MEMBERSHIP_SWEEP_INTERVAL_MS: '5000' };
    let serve = startChild('serve', [CLI, 'serve', '--port', String(port), '--data-dir', dir], env);
    const base = `http://127.0.0.1:${port}`;
    await waitReady(serve, `${base}/healthz`);
    const call = (p, method, body) => api(base, project.secret, p, method, body);
    const connection = await call('/api/v1/connections', 'POST', { name: 'sink', url: `${sinkOrigin}/hook`, max_concurrency: IN_FLIGHT });

    // Sweep: the baseline of the big cohort, a quiet sweep, then one that finds DRIFT profiles come due.
    const due = await call('/api/v1/cohorts', 'POST', { name: 'Due', definition: { property: 'due_at', op: 'before', value: { days_ago: 0 } } });
    const pros = await call('/api/v1/cohorts', 'POST', { name: 'Pros', definition: { property: 'plan', op: 'equals', value: 'pro' } });
    let t = performance.now();
    await call('/api/v1/subscriptions', 'POST', { name: 'members', event_types: ['cohort.member_entered'], cohort_ids: [due.id, pros.id], channels: [{ type: 'webhook', connection_id: connection.id }] });
    // Read beside the service (WAL readers never block it): the watches leave 'baseline' when recorded.
    const reader = new BetterSqlite3(path.join(dir, 'cohortcast.db'), { readonly: true });
    await until('the baseline', async () => (reader.prepare("select count(*) as n from cohort_watches where state = 'live'").get().n === 2 ? true : undefined));
    reader.close();
    const baselineMs = Math.round(performance.now() - t);
    log(`baseline of ${(PROFILES - DRIFT).toLocaleString('en-US')} members in ${baselineMs} ms`);
    // The first sweep to end may have begun before the watches were live: the second is timed.
    const live = await metrics(base);
    const first = await until('a sweep', async () => {
      const m = await metrics(base);
      return m.sweepCount >= live.sweepCount + 1 ? m : undefined;
    });
    const quiet = await until('a sweep with nothing to change', async () => {
      const m = await metrics(base);
      return m.sweepCount >= first.sweepCount + 1 ? m : undefined;
    });
    const quietMs = Math.round((quiet.sweepSum - first.sweepSum) * 1000 / (quiet.sweepCount - first.sweepCount));
    if (Date.now() > dueAt) throw new Error('the drift came due before the quiet sweep was measured; raise DRIFT_AFTER_MS');
    log(`quiet sweep: ${quietMs} ms; waiting for ${DRIFT.toLocaleString('en-US')} profiles to come due`);
    const before = await until('the due profiles to come due', async () => (Date.now() > dueAt ? metrics(base) : undefined));
    // The sweep that finds them counts its changes as it goes: from the first of them to its end is that sweep alone.
    const finding = await until('a sweep finding the due profiles', async () => {
      const m = await metrics(base);
      return m.sweptEntered > before.sweptEntered ? m : undefined;
    });
    const drifted = await until('the sweep of the due profiles to end', async () => {
      const m = await metrics(base);
      return m.sweepCount > finding.sweepCount ? m : undefined;
    });
    if (drifted.sweptEntered - before.sweptEntered !== DRIFT) throw new Error(`the sweep found ${drifted.sweptEntered - before.sweptEntered} of ${DRIFT} due profiles`);
    const driftMs = Math.round((drifted.sweepSum - finding.sweepSum) * 1000);
    log(`sweep with ${DRIFT} entering: ${driftMs} ms`);
    await until('the drift delivered', async () => ((await sink(sinkOrigin, '/count')).count >= DRIFT ? true : undefined));

    // The rest runs with the default sweep interval (60 s), as a user would.
    await stopChild(serve);
    serve = startChild('serve', [CLI, 'serve', '--port', String(port), '--data-dir', dir], { ...env, COHORTCAST_MEMBERSHIP_SWEEP_INTERVAL_MS: '' });
    await waitReady(serve, `${base}/healthz`);

    // Latency under 1,000 updates/s.
    await sink(sinkOrigin, '/_sink/reset?record=1', 'POST');
    const background = offer(base, '/engage', UPDATES_PER_S, LATENCY_SECONDS, (k) => ({ $token: project.token, $distinct_id: user((k * 7919) % PROFILES), $set: { visits: k } }));
    const engagePool = new Pool(base, { connections: 2 });
    let probes = 0;
    const end = performance.now() + LATENCY_SECONDS * 1000;
    while (performance.now() < end) {
      const i = probes++;
      const sentAt = performance.timeOrigin + performance.now();
      const res = await engagePool.request({ method: 'POST', path: '/engage', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form([{ $token: project.token, $distinct_id: `probe-${i}`, $set: { plan: 'pro', t: sentAt, i } }]) });
      if ((await res.body.text()) !== '1') throw new Error('engage refused a probe');
      await sleep(50);
    }
    await background;
    await engagePool.close();
    const samples = await until('every probe to arrive', async () => {
      const got = await sink(sinkOrigin, '/_sink/latencies');
      return got.samples.length >= probes ? got.samples : undefined;
    }, 60_000);
    const latencies = samples.map(([, ms]) => ms).sort((a, b) => a - b);
    const latency = { p50: Math.round(percentile(latencies, 50)), p99: Math.round(percentile(latencies, 99)), max: Math.round(latencies[latencies.length - 1]) };
    log(`latency over ${probes} users: p50 ${latency.p50} ms, p99 ${latency.p99} ms`);

    // event.ingested fan-out at rising rates.
    await call('/api/v1/subscriptions', 'POST', { name: 'purchases', event_types: ['event.ingested'], event_filter: { events: ['Purchase'] }, channels: [{ type: 'webhook', connection_id: connection.id }] });
    await sleep(1500); // the subscription index of the serving process refreshes within a second
    const steps = [];
    let sustained = 0;
    for (const rate of [500, 1000, 2000, 3000, 4000, 5000, 6000, 8000, 10_000, 12_000, 16_000, 24_000, 32_000]) {
      await sink(sinkOrigin, '/_sink/reset', 'POST');
      const now = Date.now();
      const sent = await offer(base, '/track', rate, STEP_SECONDS, (k) => ({ event: 'Purchase', properties: { token: project.token, distinct_id: user(k % PROFILES), time: now, $insert_id: `r${rate}-${k}`, amount: k % 100 } }));
      const m = await metrics(base);
      const arrived = await sink(sinkOrigin, '/count');
      const backlog = m.eventsWaiting + m.queue;
      const ok = backlog < rate;
      steps.push({ rate, sent, arrived_per_s: Math.round(arrived.count / STEP_SECONDS), backlog });
      log(`offered ${rate}/s: ${arrived.count} arrived during the step, backlog ${backlog} at its end: ${ok ? 'sustained' : 'falling behind'}`);
      if (!ok) break;
      sustained = rate;
      await until('the backlog to drain', async () => {
        const n = await metrics(base);
        return n.eventsWaiting + n.queue === 0 ? true : undefined;
      });
    }
    // The ceiling: how fast the service drains what fell behind.
    await sink(sinkOrigin, '/_sink/reset', 'POST');
    const drainStart = performance.now();
    await until('the last backlog to drain', async () => {
      const n = await metrics(base);
      return n.eventsWaiting + n.queue === 0 ? true : undefined;
    });
    const drained = (await sink(sinkOrigin, '/count')).count;
    const drainRate = Math.round(drained / ((performance.now() - drainStart) / 1000));
    await stopChild(serve);

    // The bare loop: the same body size, to the same sink, for the same time.
    const body = JSON.stringify({ event_id: 'evt_0000000000000000000000000000', event_type: 'event.ingested', created_at: new Date().toISOString(), project_id: 1, data: { event: 'Purchase', distinct_id: user(1), properties: { amount: 1, time: 0, $insert_id: 'x', distinct_id: user(1) } } });
    const pool = new Pool(sinkOrigin, { connections: IN_FLIGHT, pipelining: 1 });
    let bareCount = 0;
    t = performance.now();
    const bareEnd = t + STEP_SECONDS * 1000;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (performance.now() < bareEnd) {
          const res = await pool.request({ method: 'POST', path: '/hook', headers: { 'content-type': 'application/json' }, body });
          await res.body.text();
          bareCount++;
        }
      }),
    );
    const bareRate = Math.round(bareCount / ((performance.now() - t) / 1000));
    await pool.close();
    await stopChild(sinkChild);

    const figures = {
      profiles: PROFILES,
      baseline_ms: baselineMs,
      sweep_quiet_ms: quietMs,
      sweep_drift_ms: driftMs,
      sweep_drift_entered: DRIFT,
      latency_probes: probes,
      latency_p50_ms: latency.p50,
      latency_p99_ms: latency.p99,
      latency_max_ms: latency.max,
      latency_target_met: latency.p99 < 1000,
      updates_per_s: UPDATES_PER_S,
      fanout_sustained_per_s: sustained,
      fanout_drain_per_s: drainRate,
      bare_loop_per_s: bareRate,
      fanout_vs_bare: Number((sustained / bareRate).toFixed(3)),
      steps,
    };
    console.log(`\n${PROFILES.toLocaleString('en-US')} profiles (SQLite)`);
    console.log(`${'figure'.padEnd(58)}${'value'.padStart(12)}`);
    const row = (name, value) => console.log(`${name.padEnd(58)}${String(value).padStart(12)}`);
    row(`baseline of ${(PROFILES - DRIFT).toLocaleString('en-US')} members (recorded silently), ms`, baselineMs);
    row(`sweep of the ${PROFILES.toLocaleString('en-US')}-profile cohort, no change, ms`, quietMs);
    row(`sweep, ${DRIFT.toLocaleString('en-US')} entering (events written), ms`, driftMs);
    row(`latency /engage → webhook, p50 ms (${UPDATES_PER_S} updates/s)`, latency.p50);
    row(`latency /engage → webhook, p99 ms (target under 1000: ${latency.p99 < 1000 ? 'met' : 'NOT met'})`, latency.p99);
    row('event.ingested forwarded, highest sustained offered rate /s', sustained);
    row('event.ingested backlog drained at, /s', drainRate);
    row('bare undici loop, same sink and body, /s', bareRate);
    console.log(JSON.stringify(figures));
  } finally {
    if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
});
