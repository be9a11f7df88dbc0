import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

export const repoRoot = path.resolve(import.meta.dirname, '../..');
/** The built command line, as `npx cohortcast` runs it (npm test builds it first). */
export const cliPath = path.join(repoRoot, 'dist/cli/main.js');

export interface CliExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Every `cohortcast` process this module started that has not exited yet. */
const liveChildren = new Set<ChildProcess>();

/** SIGKILLs every `cohortcast` process started through this module that is still running (for `afterAll`). */
export function killAllCliChildren(): void {
  for (const child of liveChildren) child.kill('SIGKILL');
}

/** Spawns `node dist/cli/main.js ARGS`, tracked until it exits; `exited` settles with its exit code and signal. */
function spawnCli(args: string[], env: Record<string, string>): { child: ChildProcess; exited: Promise<CliExit> } {
  if (!fs.existsSync(cliPath)) throw new Error(`${cliPath} is missing: run \`npm run build\` first`);
  const child = spawn(process.execPath, [cliPath, ...args], {
    env: { ...process.env, ...env },
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  const exited = new Promise<CliExit>((resolve) =>
    child.once('exit', (code, signal) => {
      liveChildren.delete(child);
      resolve({ code, signal });
    }),
  );
  return { child, exited };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `cohortcast ARGS` to completion (SIGKILLed after `timeoutMs`, which leaves `code` null). */
export async function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<CliResult> {
  const { child, exited } = spawnCli(args, env);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const failed = new Promise<never>((_, reject) => child.once('error', reject));
  // 'close' (not 'exit') so that all of stdout and stderr has been read.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  try {
    const { code } = await Promise.race([exited, failed]);
    await Promise.race([closed, failed]);
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `cohortcast ARGS` and returns its stdout; rejects unless it exits with 0. */
export async function runCliOk(args: string[], env: Record<string, string> = {}): Promise<string> {
  const res = await runCli(args, env);
  if (res.code !== 0) throw new Error(`cohortcast ${args.join(' ')} exited with ${res.code}: ${res.stderr}`);
  return res.stdout;
}

export interface CliProject {
  id: number;
  name: string;
  token: string;
  secret: string;
}

/** `cohortcast project create --name NAME --json ARGS`: the project it printed. */
export async function createProjectWithCli(name: string, args: string[] = [], env: Record<string, string> = {}): Promise<CliProject> {
  return JSON.parse(await runCliOk(['project', 'create', '--name', name, '--json', ...args], env)) as CliProject;
}

export interface CliServer {
  child: ChildProcess;
  url: string;
  /** What it has written to stderr so far. */
  stderr(): string;
  /** Settles when the process exits. */
  exited: Promise<CliExit>;
  /** Sends `signal` (default SIGTERM) if it is still running; does not wait. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM and wait for exit. */
  stop(): Promise<void>;
}

interface LongRunning {
  child: ChildProcess;
  exited: Promise<CliExit>;
  stderr(): string;
  /** Its log lines of level warn and above so far (for failure messages). */
  warnings(): string[];
  kill(signal?: NodeJS.Signals): void;
}

type LogEntry = { level?: number; msg?: string; url?: string; worker?: string };

/**
 * Starts a long-running `cohortcast` command at info level and resolves once one of its JSON log
 * lines makes `ready` return a value. Rejects, after SIGKILLing it, if that does not happen within
 * `timeoutMs`, and rejects if it exits first.
 */
function startLongRunning<T>(args: string[], env: Record<string, string>, timeoutMs: number, ready: (entry: LogEntry) => T | undefined) {
  const { child, exited } = spawnCli(args, { ...env, COHORTCAST_LOG_LEVEL: 'info' });
  const what = `cohortcast ${args[0]}`;
  let stderr = '';
  const warnings: string[] = [];
  child.stderr!.on('data', (d) => (stderr += d));
  const running = () => child.exitCode === null && child.signalCode === null;
  const proc: LongRunning = {
    child,
    exited,
    stderr: () => stderr,
    warnings: () => warnings,
    kill: (signal: NodeJS.Signals = 'SIGTERM') => {
      if (running()) child.kill(signal);
    },
  };
  return new Promise<{ proc: LongRunning; value: T }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} did not start within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    const early = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited early with ${code ?? signal}: ${stderr}`));
    };
    child.once('exit', early);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // Keep reading stdout after the ready line too, so the pipe never fills up.
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      let entry: LogEntry;
      try {
        entry = JSON.parse(line) as LogEntry;
      } catch {
        return; // not a log line
      }
      if ((entry.level ?? 0) >= 40) warnings.push(line);
      const value = ready(entry);
      if (value !== undefined) {
        clearTimeout(timer);
        child.off('exit', early);
        resolve({ proc, value });
      }
    });
  });
}

/**
 * Starts `cohortcast serve --port 0 ARGS` and resolves with its URL once it logs that it is serving
 * (the port is chosen by the OS, so there is no race for a free port).
 */
export async function startCliServer(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<CliServer> {
  const { proc, value: url } = await startLongRunning(['serve', '--port', '0', ...args], env, timeoutMs, (e) =>
    e.msg === 'cohortcast is serving' ? e.url : undefined,
  );
  return {
    child: proc.child,
    url,
    stderr: proc.stderr,
    exited: proc.exited,
    kill: proc.kill,
    async stop() {
      proc.kill('SIGTERM');
      await proc.exited;
    },
  };
}

export interface CliWorker extends LongRunning {
  /** The name its dispatcher leases under and records in delivery_attempts.worker. */
  name: string;
  /** SIGTERM and wait for exit. */
  stop(): Promise<CliExit>;
}

/** Starts `cohortcast worker ARGS` and resolves once its dispatcher runs, with the name it leases under. */
export async function startCliWorker(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<CliWorker> {
  const { proc, value: name } = await startLongRunning(['worker', ...args], env, timeoutMs, (e) =>
    e.msg === 'cohortcast worker is running' ? e.worker : undefined,
  );
  return {
    ...proc,
    name,
    stop() {
      proc.kill('SIGTERM');
      return proc.exited;
    },
  };
}

/** A management API call to a spawned server with the project's secret; answers the status and the parsed body. */
export async function cliApi(base: string, secret: string, path: string, method = 'GET', body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${secret}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
