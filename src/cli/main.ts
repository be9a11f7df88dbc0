#!/usr/bin/env node
import { Command, InvalidArgumentError } from 'commander';
import { loadConfig, type ConfigOverrides } from '../config.js';
import { createProject, listProjects } from '../projects/projects.js';
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

withStorage(program.command('worker').description('run the delivery dispatcher without the HTTP API')).action(
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

program.parseAsync().catch((err: unknown) => {
  console.error(`cohortcast: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
