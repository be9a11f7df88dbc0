#!/usr/bin/env node
import fs from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { CohortAdmin } from '../cohorts/cohort-admin.js';
import { MessageAdmin, presentMessage, type MessageInput } from '../messages/admin.js';
import { describeSchedule } from '../messages/schedule.js';
import { importCommands } from './import-command.js';
import { loadConfig, type ConfigOverrides } from '../config.js';
import { createProject, listProjects, type Project } from '../projects/projects.js';
import { startService, startWorker } from '../service.js';
import { openStore, type Store } from '../store/database.js';
import { migrateToLatest } from '../store/migrate.js';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port is a whole number from 0 to 65535');
  return n;
}

interface StorageFlags {
  dataDir?: string;
}

const withStorage = (cmd: Command) =>
  cmd.option('--data-dir <dir>', 'folder of the embedded SQLite database (default ./.cohortcast; DATABASE_URL selects PostgreSQL)');

/** Opens and migrates the database for a one-off command, then closes it. */
async function withStore<T>(flags: StorageFlags, run: (store: Store) => Promise<T>): Promise<T> {
  const store = openStore(loadConfig({ dataDir: flags.dataDir }));
  try {
    await migrateToLatest(store);
    return await run(store);
  } finally {
    await store.close();
  }
}

const program = new Command()
  .name('cohortcast')
  .description('Self-hosted engine for Mixpanel-compatible product-data webhooks')
  .showHelpAfterError();

withStorage(
  program
    .command('serve')
    .description('serve ingestion and the management API')
    .option('--port <port>', 'port to listen on (default 8080)', port)
    .option('--host <host>', 'address to listen on (default 127.0.0.1)')
    .option('--tls-cert <file>', 'PEM certificate: serve HTTPS')
    .option('--tls-key <file>', 'PEM private key for --tls-cert'),
).action(async (flags: ConfigOverrides & StorageFlags) => {
  const service = await startService(loadConfig(flags));
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    service.app.log.info({ signal }, 'shutting down');
    await service.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
});

withStorage(program.command('worker').description('run the delivery dispatcher, the cohort sync scheduler and the e-mail sender, without the HTTP API')).action(
  async (flags: StorageFlags) => {
    const worker = await startWorker(loadConfig(flags));
    // The dispatcher's timers do not hold the process open (tests embed it); a worker must stay up.
    const keepAlive = setInterval(() => {}, 2 ** 31 - 1);
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      clearInterval(keepAlive);
      // Attempts in flight finish and are recorded; leases still held are given back.
      await worker.close();
      process.exit(0);
    };
    process.on('SIGINT', () => void stop());
    process.on('SIGTERM', () => void stop());
  },
);

withStorage(program.command('migrate').description('create or upgrade the database schema, then exit')).action(
  async (flags: StorageFlags) => {
    const result = await withStore(flags, async (store) => ({ ...(await migrateToLatest(store)), location: store.location }));
    console.log(`database ${result.location} is up to date`);
  },
);

const project = program.command('project').description('manage projects');
withStorage(
  project
    .command('create')
    .description('create a project; prints its token (for ingestion) and secret (for /import and the API)')
    .requiredOption('--name <name>', 'project name')
    .option('--json', 'print {"id","name","token","secret"} as JSON'),
).action(async (flags: StorageFlags & { name: string; json?: boolean }) => {
  const created = await withStore(flags, (store) => createProject(store, flags.name));
  if (flags.json) {
    console.log(JSON.stringify({ id: created.id, name: created.name, token: created.token, secret: created.secret }));
  } else {
    console.log(`project ${created.id} "${created.name}"\ntoken:  ${created.token}\nsecret: ${created.secret}  (shown only now)`);
  }
});
withStorage(project.command('list').description('list projects').option('--json', 'print JSON')).action(
  async (flags: StorageFlags & { json?: boolean }) => {
    const projects = await withStore(flags, (store) => listProjects(store));
    if (flags.json) console.log(JSON.stringify(projects));
    else for (const p of projects) console.log(`${p.id}\t${p.name}\t${p.token}`);
  },
);

function projectId(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('a project id is a positive whole number');
  return n;
}

/** The project named by --project, or the only one there is. */
async function pickProject(store: Store, id: number | undefined): Promise<Project> {
  const projects = await listProjects(store);
  if (id !== undefined) {
    const named = projects.find((p) => p.id === id);
    if (!named) throw new Error(`no project ${id}; \`cohortcast project list\` shows them`);
    return named;
  }
  if (projects.length === 1) return projects[0]!;
  throw new Error(projects.length === 0 ? 'no project yet: `cohortcast project create --name NAME` makes one' : `${projects.length} projects: say which with --project ID`);
}

const cohort = program.command('cohort').description('manage cohorts');
withStorage(
  cohort
    .command('create')
    .description('create a cohort from a JSON file: {"name","description","definition"}, or a bare definition with --name')
    .requiredOption('--file <file>', 'JSON file ("-" reads standard input)')
    .option('--name <name>', 'cohort name (overrides the file)')
    .option('--description <text>', 'cohort description (overrides the file)')
    .option('--project <id>', 'project id (may be left out when there is only one)', projectId)
    .option('--json', 'print the cohort as JSON'),
).action(async (flags: StorageFlags & { file: string; name?: string; description?: string; project?: number; json?: boolean }) => {
  const parsed = readJsonFile(flags.file);
  const whole = typeof parsed === 'object' && parsed !== null && 'definition' in parsed;
  const input = whole ? (parsed as Record<string, unknown>) : { definition: parsed };
  const created = await withStore(flags, async (store) =>
    new CohortAdmin(store).create((await pickProject(store, flags.project)).id, {
      ...input,
      ...(flags.name !== undefined ? { name: flags.name } : {}),
      ...(flags.description !== undefined ? { description: flags.description } : {}),
    }),
  );
  if (flags.json) console.log(JSON.stringify({ id: created.id, name: created.name, description: created.description, definition: created.definition }));
  else console.log(`cohort ${created.id} "${created.name}" created in project ${created.projectId}`);
});
withStorage(
  cohort
    .command('list')
    .description('list the cohorts of a project')
    .option('--project <id>', 'project id (may be left out when there is only one)', projectId)
    .option('--json', 'print JSON'),
).action(async (flags: StorageFlags & { project?: number; json?: boolean }) => {
  const cohorts = await withStore(flags, async (store) => new CohortAdmin(store).list((await pickProject(store, flags.project)).id, undefined, 10_000));
  if (flags.json) console.log(JSON.stringify(cohorts.map((c) => ({ id: c.id, name: c.name, description: c.description, definition: c.definition }))));
  else for (const c of cohorts) console.log(`${c.id}\t${c.name}`);
});

const message = program.command('message').description('manage webhook messages');
withStorage(
  message
    .command('create')
    .description('create a webhook message from a JSON file: {"name","cohort_id"|"definition","connection_id","schedule","properties"?,"enabled"?}')
    .requiredOption('--file <file>', 'JSON file ("-" reads standard input)')
    .option('--project <id>', 'project id (may be left out when there is only one)', projectId)
    .option('--json', 'print the message as JSON'),
).action(async (flags: StorageFlags & { file: string; project?: number; json?: boolean }) => {
  const input = readJsonFile(flags.file);
  const created = await withStore(flags, async (store) => presentMessage(store, await new MessageAdmin({ store }).create((await pickProject(store, flags.project)).id, input as MessageInput)));
  if (flags.json) console.log(JSON.stringify(created));
  else console.log(`message ${created.id} "${created.name}" created (${describeSchedule(created.schedule)}); a running service picks it up within a second`);
});
withStorage(
  message
    .command('list')
    .description('list the webhook messages of a project')
    .option('--project <id>', 'project id (may be left out when there is only one)', projectId)
    .option('--json', 'print JSON'),
).action(async (flags: StorageFlags & { project?: number; json?: boolean }) => {
  const messages = await withStore(flags, async (store) => Promise.all((await new MessageAdmin({ store }).list((await pickProject(store, flags.project)).id, undefined, 10_000)).map((m) => presentMessage(store, m))));
  if (flags.json) console.log(JSON.stringify(messages));
  else for (const m of messages) console.log(`${m.id}\t${m.name}\tcohort ${m.cohort_id}\tconnection ${m.connection_id}\t${describeSchedule(m.schedule)}${m.enabled ? '' : '\t(disabled)'}`);
});

importCommands(program, withStorage, withStore, pickProject, projectId);

function readJsonFile(file: string): unknown {
  const text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not valid JSON: ${(err as Error).message}`);
  }
}

program.parseAsync().catch((err: unknown) => {
  console.error(`cohortcast: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
