// What bench/ingest.js and bench/delivery.js both need around their child processes: starting and
// stopping them, one cleanup for the end, an error and Ctrl-C, free ports, readiness, CPU seconds;
// for bench/ingest.js and bench/import.js also a cohortcast child's environment and a new project.
// Kept in one place so both benchmarks clean up (and count) the same way.
//
// Importing this module installs the exit, SIGINT and SIGTERM handlers. Each benchmark registers what
// it alone set up (folders, databases, a PostgreSQL server, open connections) with onCleanup(), and
// ends with runMain(main), which runs cleanup() however main ends.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request as undiciRequest } from 'undici';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// Progress goes to stderr: stdout holds the table and, last, the JSON line.
export const log = (msg) => console.error(`[bench] ${msg}`);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A number from the environment (BENCH_*), `fallback` when unset or empty, at least `min`. */
export function envInt(name, fallback, min = 1) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new Error(`${name} must be a number >= ${min}, got "${raw}"`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// Child processes: every one is remembered, and killed at the end, on error and on Ctrl-C.

const children = new Set();

/** Starts `node ...args`; its stdout and stderr are kept (the last 20,000 characters) for error messages. */
export function startChild(name, args, env) {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { text: '' };
  const keep = (chunk) => {
    output.text = (output.text + chunk.toString()).slice(-20_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  if (process.env.BENCH_SHOW_SERVER_STDERR) child.stderr.on('data', (c) => process.stderr.write(c));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const handle = { name, child, output, exited, exitedYet: false };
  exited.then(() => {
    handle.exitedYet = true;
    children.delete(handle);
  });
  children.add(handle);
  return handle;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves with how the child exited. */
export async function stopChild(handle, graceMs = 10_000) {
  if (handle.exitedYet) return handle.exited;
  handle.child.kill('SIGTERM');
  const timer = setTimeout(() => handle.child.kill('SIGKILL'), graceMs);
  const result = await handle.exited;
  clearTimeout(timer);
  return result;
}

export function assertAlive(handle) {
  if (handle.exitedYet) throw new Error(`${handle.name} exited early:\n${handle.output.text}`);
}

function killAllNow() {
  for (const h of children) {
    try {
      h.child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Cleanup: the shared part (the children) here, each benchmark's own part registered by it.

const cleanups = [];
let cleaning;
let interrupted = false;

/** Registers `fn` (may be async) to undo a benchmark's own setup in cleanup(); newest runs first. */
export function onCleanup(fn) {
  cleanups.push(fn);
}

/** Stops every child (servers and workers first, before their databases go), then runs the registered cleanups, newest first. Once. */
export function cleanup() {
  cleaning ??= (async () => {
    await Promise.all([...children].map((h) => stopChild(h, 3000)));
    while (cleanups.length) {
      const fn = cleanups.pop();
      try {
        await fn();
      } catch (err) {
        console.error(`[bench] cleanup: ${err.message}`);
      }
    }
  })();
  return cleaning;
}

process.on('exit', killAllNow);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`[bench] ${signal}: stopping`);
    // What was running fails as its children and databases go away: that is expected now.
    process.on('uncaughtException', () => {});
    cleanup()
      .catch(() => {})
      .finally(() => process.exit(130));
  });
}

/** Runs a benchmark's main(), then cleanup(), and exits: 0, 1 on failure (reported), 130 on Ctrl-C. */
export async function runMain(main) {
  let failed = false;
  try {
    await main();
  } catch (err) {
    failed = true;
    if (!interrupted) console.error(`[bench] FAILED: ${err.stack ?? err.message}`);
  } finally {
    await cleanup();
  }
  process.exit(interrupted ? 130 : failed ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------
// Commands, ports and readiness.

/** Runs a command to completion in ROOT; resolves with its stdout, rejects with its stderr. */
export function run(file, args, { env = process.env, timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: ROOT, env, timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error([`${[path.basename(file), ...args].join(' ')} failed: ${err.message}`, stderr].join('\n')));
      else resolve(stdout);
    });
  });
}

/** A port free on 127.0.0.1 right now (listen on 0, close, reuse the number). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves when `url` answers below 500 (an HTTP server child is listening). */
export async function waitReady(handle, url, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (handle.exitedYet) throw new Error(`${handle.name} exited before it was ready:\n${handle.output.text}`);
    try {
      const res = await undiciRequest(url, { method: 'GET', headersTimeout: 2000, bodyTimeout: 2000 });
      await res.body.text();
      if (res.statusCode < 500) return;
    } catch {
      /* not listening yet */
    }
    await sleep(100);
  }
  throw new Error(`${handle.name} was not ready within ${timeoutMs} ms:\n${handle.output.text}`);
}

/** Resolves when the child has printed `line` on its own line (graphile child, sink). */
export async function waitForLine(handle, line, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (handle.output.text.split('\n').some((l) => l.trim() === line)) return;
    if (handle.exitedYet) throw new Error(`${handle.name} exited before it was ready:\n${handle.output.text}`);
    await sleep(20);
  }
  throw new Error(`${handle.name} was not ready within ${timeoutMs} ms:\n${handle.output.text}`);
}

// ---------------------------------------------------------------------------------------------
// CPU accounting (Linux /proc; NaN elsewhere).

export const CLOCK_TICKS = 100; // USER_HZ, 100 on every common Linux build

/** CPU seconds (user + system, all threads) a process has used so far. */
export function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of the file (utime, stime) are 11 and 12 after the command name.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

// ---------------------------------------------------------------------------------------------
// cohortcast children (bench/ingest.js, bench/import.js).

export const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');

/** The environment of a cohortcast child: quiet logs, SQLite in --data-dir unless `databaseUrl`. */
export function serviceEnv(databaseUrl) {
  const env = { ...process.env, COHORTCAST_LOG_LEVEL: 'warn' };
  delete env.DATABASE_URL;
  delete env.COHORTCAST_DATA_DIR;
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  return env;
}

/** `cohortcast project create --json`: resolves with what it printed ({id, token, secret, …}). */
export async function createProject(env, dataDir, name = 'Bench') {
  const out = await run(process.execPath, [CLI, 'project', 'create', '--name', name, '--json', '--data-dir', dataDir], { env });
  const project = JSON.parse(out.trim().split('\n').pop());
  if (typeof project.token !== 'string' || typeof project.secret !== 'string') throw new Error(`project create printed no token or secret: ${out}`);
  return project;
}

/** Adds a note (and logs a warning) when the machine was already busy before the run: the figures may be low. */
export function noteMachineLoad(notes) {
  const [load1] = os.loadavg();
  if (load1 > 1) {
    notes.push(`the 1-minute load average was ${load1.toFixed(2)} before the run: other processes may be competing for the CPU`);
    log(`warning: ${notes.at(-1)}`);
  }
}

/** A management API call as a user makes it (Bearer secret, JSON); throws on a status of 300 or more. */
export async function api(base, secret, p, method = 'GET', body) {
  const res = await undiciRequest(`${base}${p}`, {
    method,
    headers: { authorization: `Bearer ${secret}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`${method} ${p}: HTTP ${res.statusCode} ${text}`);
  return text ? JSON.parse(text) : undefined;
}
