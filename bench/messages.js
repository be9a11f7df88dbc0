// Webhook messages: `npm run bench:messages` (builds first, then runs this file).
//
// A fresh SQLite data folder gets BENCH_PROFILES (1,000,000) profiles written straight into the
// service's schema (loading is not what is measured), each with the properties of Mixpanel's
// example ($email, $first_name, $last_name, $city, $region, $country_code, $created, "Last Seen",
// plan). `cohortcast serve` runs on it with its default settings, and a local sink
// (bench/sink-server.js, its own process) answers every request with a 200. Through the API, as a
// user would:
//   scheduled  a message to a cohort holding every profile, on the cron "* * * * *" (it runs at the
//              next minute boundary; no write behind the service's back): every user posted once,
//              BENCH_PROFILES / 50 form requests of 50. Its time is the service's own record of the
//              run (started → finished: the users targeted, batches cut, every batch answered 200).
//              Beside it, in the same run, a bare undici loop posts the same bodies (built in this
//              process beforehand with the service's own wire functions, from the same properties)
//              to the same sink, with as many requests in flight as the service can have toward one
//              connection: the connection's max_concurrency (created without one, so the default
//              COHORTCAST_DELIVERY_MAX_CONCURRENCY, 16; read back from the API), or fewer when
//              COHORTCAST_MESSAGE_BATCHES_IN_FLIGHT (64) or COHORTCAST_DELIVERY_MAX_IN_FLIGHT (256) is lower.
//   asap       an ASAP message on a cohort ("vip" is true) that starts empty; every 50 ms for
//              BENCH_LATENCY_SECONDS one new user is made to match through /engage; the latency is
//              from just before that request to the arrival at the sink of the request carrying that
//              user (p50, p99). Run after the scheduled run has finished (and the message disabled),
//              on a second connection (path /asap), so the two do not mix.
// Every setting of the service is its default (scheduler poll 1 s, batch interval 250 ms, 64
// batches in flight): the run's own record starts when the scheduler picks it up, so the poll
// interval does not count in its time. CPU seconds (user + system, all threads, from /proc) are
// counted beside both: the serve process's and the sink's from the minute boundary to the run's
// end, the bare loop's own and the sink's around it (on a machine busy with other work, wall times
// grow where these do not). Peak RSS is the serve process's VmHWM at the end (after both).
//
// Targets (DESIGN.md): within 2x the bare loop, ASAP p99 under 1 s, peak RSS under 500 MB.
// Environment (all optional): BENCH_PROFILES=1000000, BENCH_LATENCY_SECONDS=20, BENCH_KEEP=1 keeps
// the data, BENCH_CPU_PROF=DIR runs the serve process under `node --cpu-prof` into DIR (summarise with
// `node bench/cpu-profile-top.js DIR/CPU.*.cpuprofile`; the largest file is the main thread).
// Output: progress on stderr; on stdout a table (and a note when the load average was above 1 at the
// start), then one final line holding a JSON object of the figures.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Pool, request } from 'undici';
import { loadConfig } from '../dist/config.js';
import { syncMemberHead } from '../dist/cohort-sync/wire.js';
import { formBody, userJson, BATCH_SIZE } from '../dist/messages/wire.js';
import { createProject } from '../dist/projects/projects.js';
import { openStore } from '../dist/store/database.js';
import { migrateToLatest } from '../dist/store/migrate.js';
import { api, cpuSeconds, envInt, freePort, log, noteMachineLoad, onCleanup, ROOT, runMain, sleep, startChild, stopChild, waitForLine, waitReady } from './lib/processes.js';

const PROFILES = Math.floor(envInt('BENCH_PROFILES', 1_000_000));
const LATENCY_SECONDS = envInt('BENCH_LATENCY_SECONDS', 20);
const KEEP = process.env.BENCH_KEEP === '1';
const CPU_PROF = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : undefined;
// What caps the requests in flight toward one connection besides its max_concurrency (the service's defaults).
const BATCHES_IN_FLIGHT = Math.floor(envInt('COHORTCAST_MESSAGE_BATCHES_IN_FLIGHT', 64));
const MAX_IN_FLIGHT = Math.floor(envInt('COHORTCAST_DELIVERY_MAX_IN_FLIGHT', 256));
const TARGETS = { ratio: 2, asap_p99_ms: 1000, peak_rss_mb: 500 };
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const SINK = path.join(ROOT, 'bench', 'sink-server.js');

const user = (i) => `user-${String(i).padStart(8, '0')}`;
const CITIES = [['Los Angeles', 'California'], ['Mountain View', 'California'], ['Auckland', 'Auckland'], ['Berlin', 'Berlin']];
function props(i) {
  const [city, region] = CITIES[i % CITIES.length];
  return {
    $email: `${user(i)}@example.com`,
    $first_name: 'Harry',
    $last_name: `Bovik${i % 1000}`,
    $city: city,
    $region: region,
    $country_code: 'US',
    $created: '2012-11-20T15:26:16',
    'Last Seen': '2012-11-20T15:26:17',
    plan: 'free',
  };
}

async function load(dir) {
  const store = openStore(loadConfig({ dataDir: dir }, { ...process.env, DATABASE_URL: '' }));
  try {
    await migrateToLatest(store);
    const project = await createProject(store, 'bench');
    const now = Date.now();
    const insert = store.raw.prepare('insert into profiles (project_id, distinct_id, properties, sync_member, created_at, updated_at) values (?, ?, jsonb(?), ?, ?, ?)');
    const t = performance.now();
    store.raw.transaction(() => {
      for (let i = 0; i < PROFILES; i++) insert.run(project.id, user(i), JSON.stringify(props(i)), syncMemberHead(user(i), props(i)), now, now);
    })();
    log(`${PROFILES.toLocaleString('en-US')} profiles in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    return project;
  } finally {
    await store.close();
  }
}

async function until(what, probe, timeoutMs = 900_000, intervalMs = 20) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

const sink = async (origin, p, method = 'GET') => JSON.parse(await (await request(`${origin}${p}`, { method })).body.text());
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

function peakRssMb(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]) / 1024);
}

/** The same requests the service makes (users in distinct-id order, 50 a request), posted by a bare loop. */
async function bareLoop(sinkOrigin, sinkPid, inFlight) {
  const bodies = [];
  for (let first = 0; first < PROFILES; first += BATCH_SIZE) {
    const users = [];
    for (let i = first; i < Math.min(PROFILES, first + BATCH_SIZE); i++) users.push(userJson(user(i), JSON.stringify(props(i)), null));
    bodies.push(formBody(users));
  }
  const pool = new Pool(sinkOrigin, { connections: inFlight, pipelining: 1 });
  let next = 0;
  const cpu = { self: process.cpuUsage(), sink: cpuSeconds(sinkPid) };
  const t = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++];
        const res = await pool.request({ method: 'POST', path: '/bare', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
        await res.body.text();
        if (res.statusCode !== 200) throw new Error(`bare loop: HTTP ${res.statusCode}`);
      }
    }),
  );
  const ms = performance.now() - t;
  const self = process.cpuUsage(cpu.self);
  const cpuS = { self: (self.user + self.system) / 1e6, sink: cpuSeconds(sinkPid) - cpu.sink };
  await pool.close();
  return { ms, cpuS, requests: bodies.length, bytes: bodies.reduce((n, b) => n + b.length, 0) };
}

function form(records) {
  return `data=${Buffer.from(JSON.stringify(records)).toString('base64')}`;
}

await runMain(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-bench-messages-'));
  // Removed after the children have stopped, however the run ends (an error, Ctrl-C).
  if (!KEEP) onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  log(`data in ${dir}`);
  const notes = [];
  noteMachineLoad(notes);
  const project = await load(dir);
  const sinkPort = await freePort();
  const sinkChild = startChild('sink', [SINK, String(sinkPort)], process.env);
  await waitForLine(sinkChild, 'ready');
  const sinkOrigin = `http://127.0.0.1:${sinkPort}`;

  const port = await freePort();
  const env = { ...process.env, DATABASE_URL: '', COHORTCAST_ALLOW_HTTP: 'true', COHORTCAST_ALLOWED_NETWORKS: '127.0.0.0/8', COHORTCAST_LOG_LEVEL: 'warn' };
  if (CPU_PROF) fs.mkdirSync(CPU_PROF, { recursive: true });
  const serve = startChild('serve', [...(CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF] : []), CLI, 'serve', '--port', String(port), '--data-dir', dir], env);
  const base = `http://127.0.0.1:${port}`;
  await waitReady(serve, `${base}/healthz`);
  const call = (p, method, body) => api(base, project.secret, p, method, body);
  // The connection's defaults, as a user would leave them; its max_concurrency caps the run's requests in flight.
  const connection = await call('/api/v1/connections', 'POST', { name: 'sink', url: `${sinkOrigin}/hook` });
  const inFlight = Math.min(connection.max_concurrency, BATCHES_IN_FLIGHT, MAX_IN_FLIGHT);

  // Scheduled: every profile, at the next minute boundary.
  const everyone = await call('/api/v1/cohorts', 'POST', { name: 'Everyone', definition: { property: 'plan', op: 'equals', value: 'free' } });
  const scheduled = await call('/api/v1/messages', 'POST', { name: 'Everyone', cohort_id: everyone.id, connection_id: connection.id, schedule: { type: 'scheduled', cron: '* * * * *', timezone: 'UTC' } });
  const boundary = Math.ceil((Date.now() + 1) / 60_000) * 60_000;
  log(`waiting ${Math.ceil((boundary - Date.now()) / 1000)} s for the scheduled run (the next minute boundary), then ${Math.ceil(PROFILES / BATCH_SIZE).toLocaleString('en-US')} requests, ${inFlight} in flight`);
  await sleep(boundary - Date.now());
  const cpuAtStart = { serve: cpuSeconds(serve.child.pid), sink: cpuSeconds(sinkChild.child.pid) };
  const run = await until('the scheduled run to finish', async () => {
    const { results } = await call(`/api/v1/messages/${scheduled.id}/runs`);
    const first = results.at(-1); // newest first: the first run is the last
    if (first?.finished_at && first.sent !== first.users) throw new Error(`the run finished with ${first.sent} of ${first.users} users sent (failed ${first.failed}, dropped ${first.dropped})`);
    return first?.finished_at && first.sent === first.users ? first : undefined;
    // Its times are the service's own record: asked for seldom, so the asking costs the service little.
  }, 900_000, 250);
  const runCpuS = { serve: cpuSeconds(serve.child.pid) - cpuAtStart.serve, sink: cpuSeconds(sinkChild.child.pid) - cpuAtStart.sink };
  // Later runs find everyone sent: nothing more goes out, but they would be counted; stop them.
  await call(`/api/v1/messages/${scheduled.id}`, 'PATCH', { enabled: false });
  if (run.sent !== PROFILES) throw new Error(`the run sent ${run.sent} of ${PROFILES} users (failed ${run.failed}, dropped ${run.dropped})`);
  const arrived = await sink(sinkOrigin, '/count');
  const runMs = Date.parse(run.finished_at) - Date.parse(run.started_at);
  const firstArrivalMs = Math.round(arrived.first_ms - Date.parse(run.started_at));
  log(`scheduled run: ${PROFILES.toLocaleString('en-US')} users, ${arrived.count.toLocaleString('en-US')} requests in ${runMs} ms (first request ${firstArrivalMs} ms after the start); CPU: serve ${runCpuS.serve.toFixed(1)} s, sink ${runCpuS.sink.toFixed(1)} s`);

  // ASAP latency: one new user matching every 50 ms.
  const vip = await call('/api/v1/cohorts', 'POST', { name: 'VIP', definition: { property: 'vip', op: 'equals', value: true } });
  const asapConnection = await call('/api/v1/connections', 'POST', { name: 'asap', url: `${sinkOrigin}/asap` });
  const asap = await call('/api/v1/messages', 'POST', { name: 'VIP welcome', cohort_id: vip.id, connection_id: asapConnection.id, schedule: { type: 'asap' } });
  await until('the ASAP message to start', async () => ((await call(`/api/v1/messages/${asap.id}/runs`)).results.length === 1 ? true : undefined));
  // Its cohort's members are recorded before it sends: a probe proves it is live.
  await sink(sinkOrigin, '/_sink/reset', 'POST');
  const engagePool = new Pool(base, { connections: 2 });
  const engage = async (records) => {
    const res = await engagePool.request({ method: 'POST', path: '/engage', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form(records) });
    if ((await res.body.text()) !== '1') throw new Error('engage refused a probe');
  };
  await engage([{ $token: project.token, $distinct_id: 'probe-warmup', $set: { vip: true } }]);
  await until('the warm-up probe', async () => ((await sink(sinkOrigin, '/count')).count >= 1 ? true : undefined), 60_000);
  await sink(sinkOrigin, '/_sink/reset?record=1', 'POST');
  let probes = 0;
  const start = performance.now();
  const end = start + LATENCY_SECONDS * 1000;
  while (performance.now() < end) {
    const i = probes++;
    const sentAt = performance.timeOrigin + performance.now();
    await engage([{ $token: project.token, $distinct_id: `probe-${i}`, $set: { vip: true, t: sentAt, i } }]);
    // On a 50 ms beat, however long the request took.
    const wait = start + probes * 50 - performance.now();
    if (wait > 0) await sleep(wait);
  }
  await engagePool.close();
  const samples = await until('every probe to arrive', async () => {
    const got = await sink(sinkOrigin, '/_sink/latencies');
    return got.samples.length >= probes ? got.samples : undefined;
  }, 60_000);
  const latencies = samples.map(([, ms]) => ms).sort((a, b) => a - b);
  const latency = { p50: Math.round(percentile(latencies, 50)), p99: Math.round(percentile(latencies, 99)), max: Math.round(latencies[latencies.length - 1]) };
  log(`ASAP latency over ${probes} users: p50 ${latency.p50} ms, p99 ${latency.p99} ms`);
  const rss = peakRssMb(serve.child.pid);
  await stopChild(serve);

  // The sink stops reading bodies for latencies (as during the scheduled run): it only counts them.
  await sink(sinkOrigin, '/_sink/reset', 'POST');
  const bare = await bareLoop(sinkOrigin, sinkChild.child.pid, inFlight);
  const bareArrived = (await sink(sinkOrigin, '/count')).count;
  if (bareArrived !== bare.requests) throw new Error(`the sink counted ${bareArrived} of the bare loop's ${bare.requests} requests`);
  log(`bare loop: ${bare.requests.toLocaleString('en-US')} requests (${(bare.bytes / 1e6).toFixed(0)} MB) in ${Math.round(bare.ms)} ms; CPU: loop ${bare.cpuS.self.toFixed(1)} s, sink ${bare.cpuS.sink.toFixed(1)} s`);
  await stopChild(sinkChild);

  const ratio = Number((runMs / bare.ms).toFixed(2));
  const met = { ratio: ratio <= TARGETS.ratio, asap: latency.p99 < TARGETS.asap_p99_ms, rss: rss < TARGETS.peak_rss_mb };
  const figures = {
    profiles: PROFILES,
    requests: arrived.count,
    in_flight: inFlight,
    scheduled_ms: runMs,
    first_request_after_ms: firstArrivalMs,
    bare_ms: Math.round(bare.ms),
    ratio_to_bare: ratio,
    users_per_s: Math.round(PROFILES / (runMs / 1000)),
    bare_users_per_s: Math.round(PROFILES / (bare.ms / 1000)),
    serve_cpu_s: Number(runCpuS.serve.toFixed(2)),
    sink_cpu_s: Number(runCpuS.sink.toFixed(2)),
    bare_cpu_s: Number(bare.cpuS.self.toFixed(2)),
    bare_sink_cpu_s: Number(bare.cpuS.sink.toFixed(2)),
    asap_probes: probes,
    asap_p50_ms: latency.p50,
    asap_p99_ms: latency.p99,
    asap_max_ms: latency.max,
    peak_rss_mb: rss,
    ratio_target_met: met.ratio,
    asap_target_met: met.asap,
    rss_target_met: met.rss,
    notes,
  };
  console.log(`\n${PROFILES.toLocaleString('en-US')} users, ${arrived.count.toLocaleString('en-US')} requests of up to ${BATCH_SIZE} (SQLite)`);
  console.log(`${'figure'.padEnd(76)}${'value'.padStart(12)}`);
  const row = (name, value) => console.log(`${name.padEnd(76)}${String(value).padStart(12)}`);
  row('scheduled message, run start to last 200, ms', runMs);
  row('  of which before its first request (targeting), ms', firstArrivalMs);
  row(`bare undici loop, same bodies, ${inFlight} in flight, ms`, Math.round(bare.ms));
  row(`ratio to the bare loop (target within ${TARGETS.ratio}: ${met.ratio ? 'met' : 'NOT met'})`, ratio);
  row('users posted per second, cohortcast', figures.users_per_s);
  row('users posted per second, bare loop', figures.bare_users_per_s);
  row('CPU during the run: serve process (all threads), s', figures.serve_cpu_s);
  row('CPU during the run: sink, s', figures.sink_cpu_s);
  row('CPU during the bare loop: the loop, s', figures.bare_cpu_s);
  row('CPU during the bare loop: sink, s', figures.bare_sink_cpu_s);
  row('ASAP /engage → request at the sink, p50 ms', latency.p50);
  row(`ASAP /engage → request at the sink, p99 ms (target under 1000: ${met.asap ? 'met' : 'NOT met'})`, latency.p99);
  row(`peak RSS of the serve process, MB (target under 500: ${met.rss ? 'met' : 'NOT met'})`, rss);
  for (const note of notes) console.log(`note: ${note}`);
  console.log(JSON.stringify(figures));
});
