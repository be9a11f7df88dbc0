import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';

export const repoRoot = path.resolve(import.meta.dirname, '../..');
/** The built command line, as `npx cohortcast` runs it (npm test builds it first). */
export const cliPath = path.join(repoRoot, 'dist/cli/main.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `cohortcast ARGS` to completion. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { env: { ...process.env, ...env }, cwd: repoRoot });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export interface CliServer {
  child: ChildProcess;
  url: string;
  /** SIGTERM and wait for exit. */
  stop(): Promise<void>;
}

/** Starts `cohortcast serve ARGS` and resolves with its URL once it logs that it is serving. */
export function startCliServer(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<CliServer> {
  const child = spawn(process.execPath, [cliPath, 'serve', '--port', '0', ...args], {
    // At info level the service logs the URL it serves on, which is how we learn the port.
    env: { ...process.env, ...env, COHORTCAST_LOG_LEVEL: 'info' },
    cwd: repoRoot,
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`cohortcast serve did not start within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    const early = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`cohortcast serve exited with ${code}: ${stderr}`));
    };
    child.once('exit', early);
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'cohortcast is serving' && entry.url) {
          clearTimeout(timer);
          child.off('exit', early);
          resolve({ child, url: entry.url, stop });
        }
      } catch {
        // not a log line
      }
    });
  });
}
