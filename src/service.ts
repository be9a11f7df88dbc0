import type { FastifyInstance } from 'fastify';
import { buildApp } from './api/app.js';
import type { Config } from './config.js';
import { Ingestor } from './ingest/ingestor.js';
import { createMetrics } from './observability/metrics.js';
import { ProjectDirectory } from './projects/projects.js';
import { openStore, type Store } from './store/database.js';
import { migrateToLatest } from './store/migrate.js';

export interface Service {
  app: FastifyInstance;
  store: Store;
  /** The base URL it listens on, e.g. http://127.0.0.1:8080. */
  url: string;
  close(): Promise<void>;
}

/** Opens (and migrates) the database, then serves the API. Used by `cohortcast serve` and by tests. */
export async function startService(config: Config): Promise<Service> {
  const store = openStore(config);
  let app: FastifyInstance | undefined;
  try {
    await migrateToLatest(store);
    const metrics = createMetrics();
    const projects = new ProjectDirectory(store, config.projectCacheTtlMs);
    const ingestor = new Ingestor(store, projects, config.ingest, metrics);
    app = await buildApp({ config, store, projects, ingestor, metrics });
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    const url = `${config.tls ? 'https' : 'http'}://${host}:${port}`;
    app.log.info({ url, database: store.location }, 'cohortcast is serving');
    const server = app;
    return {
      app: server,
      store,
      url,
      async close() {
        await server.close();
        await store.close();
      },
    };
  } catch (err) {
    await app?.close();
    await store.close();
    throw err;
  }
}
