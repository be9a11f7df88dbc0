// graphile-worker 0.17 doing what cohortcast's worker does in `npm run bench:delivery`: every job of
// the task "post" is one POST of its payload's `body` (sent byte for byte) to the sink, on
// keep-alive connections; a non-2xx answer fails the job, so graphile-worker retries it.
// The jobs are added by bench/delivery.js before this starts (and while it runs, for latency).
//
// Usage: node bench/graphile-worker-child.js   with, in the environment:
//   BENCH_GW_DATABASE_URL   the database holding the graphile_worker schema (migrated already)
//   BENCH_GW_SINK_URL       where to POST, e.g. http://127.0.0.1:PORT/hook
//   BENCH_GW_CONCURRENCY    concurrentJobs (default 64)
//   BENCH_GW_POOL_SIZE      maxPoolSize (default concurrentJobs + 2, as graphile-worker's docs advise)
//   BENCH_GW_LOCAL_QUEUE    localQueue.size; -1 turns the local queue off (default 500)
//   BENCH_GW_COMPLETE_BATCH_DELAY_MS  completeJobBatchDelay; -1 turns batching off (default 0)
//   BENCH_GW_POLL_INTERVAL_MS         pollInterval (default 2000, graphile-worker's own; new jobs arrive by LISTEN/NOTIFY)
// Prints "ready" once the worker pool has started. SIGTERM stops it gracefully.
import { Logger, run } from 'graphile-worker';
import { Pool } from 'undici';

const int = (name, fallback) => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw new Error(`${name} must be an integer, got "${raw}"`);
  return n;
};

const connectionString = process.env.BENCH_GW_DATABASE_URL;
const sinkUrl = new URL(process.env.BENCH_GW_SINK_URL ?? '');
const concurrency = int('BENCH_GW_CONCURRENCY', 64);
const poolSize = int('BENCH_GW_POOL_SIZE', concurrency + 2);
const localQueueSize = int('BENCH_GW_LOCAL_QUEUE', 500);
const completeJobBatchDelay = int('BENCH_GW_COMPLETE_BATCH_DELAY_MS', 0);
const pollInterval = int('BENCH_GW_POLL_INTERVAL_MS', 2000);
if (!connectionString) throw new Error('BENCH_GW_DATABASE_URL is required');

const http = new Pool(sinkUrl.origin, { connections: concurrency, pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000 });
const headers = { 'content-type': 'application/json' };
const path = sinkUrl.pathname + sinkUrl.search;

// Warnings and errors only: its default logger writes a line per job.
const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') console.error(`[graphile-worker ${level}] ${message}`);
});

const runner = await run({
  logger,
  noHandleSignals: true,
  preset: {
    worker: {
      connectionString,
      concurrentJobs: concurrency,
      maxPoolSize: poolSize,
      pollInterval,
      ...(localQueueSize > 1 ? { localQueue: { size: localQueueSize } } : {}),
      completeJobBatchDelay,
    },
  },
  taskList: {
    post: async (payload) => {
      const res = await http.request({ method: 'POST', path, headers, body: payload.body, headersTimeout: 10_000, bodyTimeout: 10_000 });
      await res.body.text();
      if (res.statusCode < 200 || res.statusCode > 299) throw new Error(`HTTP ${res.statusCode}`);
    },
  },
});
console.log('ready');

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  try {
    await runner.stop();
    await http.close();
  } finally {
    process.exit(0);
  }
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
