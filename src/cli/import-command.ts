import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { importRecords, type ImportKind } from '../import/importer.js';
import { progressLine, summaryJson, summaryText, type Reading } from '../import/progress.js';
import { openSource } from '../import/source.js';
import type { Project } from '../projects/projects.js';
import type { Store } from '../store/database.js';

export interface ImportFlags {
  dataDir?: string;
  project?: number;
  setOnce?: boolean;
  strict?: boolean;
  progress?: boolean;
  json?: boolean;
  batch?: number;
}

/** How often the progress line is redrawn on a terminal, and written as a new line to a pipe (--progress). */
const TERMINAL_EVERY_MS = 250;
const PIPE_EVERY_MS = 2000;

/**
 * `cohortcast import events|profiles FILE|-`: the progress line goes to stderr (redrawn in place on
 * a terminal; on a pipe only with --progress, a line at a time), the summary to stdout.
 */
export async function runImport(
  kind: ImportKind,
  file: string,
  flags: ImportFlags,
  withStore: <T>(flags: { dataDir?: string }, run: (store: Store) => Promise<T>) => Promise<T>,
  pickProject: (store: Store, id: number | undefined) => Promise<Project>,
): Promise<number> {
  const config = loadConfig({ dataDir: flags.dataDir });
  const terminal = process.stderr.isTTY === true;
  const showProgress = terminal || flags.progress === true;
  const every = terminal ? TERMINAL_EVERY_MS : PIPE_EVERY_MS;
  const started = performance.now();
  const source = await openSource(file);
  let last = 0;
  let shown = false;
  const reading = (stats: Reading['stats']): Reading => ({ stats, bytesRead: source.bytesRead, totalBytes: source.totalBytes, seconds: (performance.now() - started) / 1000 });
  const draw = (line: string) => {
    shown = true;
    process.stderr.write(terminal ? `\r${line}\x1b[K` : `${line}\n`);
  };
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    source.stream.destroy(new Error('interrupted'));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let stats: Reading['stats'];
  try {
    stats = await withStore(flags, async (store) => {
      const project = await pickProject(store, flags.project);
      return importRecords(store, config.ingest, project, source.stream, {
        kind,
        setOnce: flags.setOnce,
        strict: flags.strict,
        batchSize: flags.batch,
        walRestartBytes: config.sqlite.walRestartBytes,
        onProgress: (s) => {
          const now = performance.now();
          if (!showProgress || now - last < every) return;
          last = now;
          draw(progressLine(kind, reading(s)));
        },
      });
    });
  } catch (err) {
    if (terminal && shown) process.stderr.write('\n');
    if (interrupted) {
      process.stderr.write(`cohortcast: interrupted; what was imported is stored, and the same command run again imports the rest without doubling anything\n`);
      return 130;
    }
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  // Timed after the store is closed: its last checkpoint is part of the import.
  const final = reading(stats);
  if (showProgress) draw(progressLine(kind, final));
  if (terminal && shown) process.stderr.write('\n');
  process.stdout.write(`${flags.json ? JSON.stringify(summaryJson(kind, final)) : summaryText(kind, final)}\n`);
  return final.stats.stoppedAt ? 1 : 0;
}

/** Registers `import events` and `import profiles`. */
export function importCommands(
  program: Command,
  withStorage: (cmd: Command) => Command,
  withStore: <T>(flags: { dataDir?: string }, run: (store: Store) => Promise<T>) => Promise<T>,
  pickProject: (store: Store, id: number | undefined) => Promise<Project>,
  projectId: (value: string) => number,
) {
  const command = program.command('import').description("import Mixpanel's export files (events, profiles) into a project");
  const batch = (value: string) => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 1 || n > 100_000) throw new Error('--batch is a whole number from 1 to 100000');
    return n;
  };
  for (const kind of ['events', 'profiles'] as const) {
    const cmd = withStorage(
      command
        .command(`${kind} <file>`)
        .description(
          kind === 'events'
            ? 'import events: Raw Event Export NDJSON, /import NDJSON or a JSON array (FILE, or - for standard input; gzip is recognised)'
            : 'import profiles: Engage query pages ({"results": [...]}), {"$distinct_id","$properties"} per line or in an array, or /engage updates (FILE or -; gzip is recognised)',
        )
        .option('--project <id>', 'project id (may be left out when there is only one)', projectId)
        .option('--strict', 'stop at the first bad record instead of counting it and going on')
        .option('--progress', 'write progress lines to stderr even when it is not a terminal')
        .option('--json', 'print the summary as JSON')
        .option('--batch <n>', 'records written per transaction (default 2000)', batch),
    );
    if (kind === 'profiles') cmd.option('--set-once', "apply properties with $set_once (keep values a profile already has)");
    cmd.action(async (file: string, flags: ImportFlags) => {
      process.exitCode = await runImport(kind, file, flags, withStore, pickProject);
    });
  }
}
