import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApp } from './api/app.js';
import type { Config } from './config.js';
import { Mailer } from './channels/mailer.js';
import { CohortSyncs } from './cohorts/cohort-syncs.js';
import { createDeliveryEngine, type DeliveryEngine } from './delivery/engine.js';
import { Ingestor } from './ingest/ingestor.js';
import { createMetrics } from './observability/metrics.js';
import { ProjectDirectory } from './projects/projects.js';
import { openStore, type Store } from './store/database.js';
import { migrateToLatest } from './store/migrate.js';

export interface Service {
  app: FastifyInstance;
  store: Store;
  delivery: DeliveryEngine;
  syncs: CohortSyncs;
  /** The base URL it listens on, e.g. http://127.0.0.1:8080. */
  url: string;
  close(): Promise<void>;
}

/** Opens (and migrates) the database, then serves the API. Used by `cohortcast serve` and by tests. */
export async function startService(config: Config): Promise<Service> {
  const store = openStore(config);
  let app: FastifyInstance | undefined;
  let delivery: DeliveryEngine | undefined;
  try {
    await migrateToLatest(store);
    const metrics = createMetrics();
    const projects = new ProjectDirectory(store, config.projectCacheTtlMs);
    const ingestor = new Ingestor(store, projects, config.ingest, metrics);
    const log = pino({ level: config.logLevel });
    delivery = await createDeliveryEngine(config, store, metrics, log);
    const syncs = new CohortSyncs({ store, owners: delivery.owners, dispatcher: delivery.dispatcher, config: config.sync, log });
    const mailer = new Mailer({ store, config: config.mail, log });
    app = await buildApp({ config, store, projects, ingestor, metrics, delivery, syncs });
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    const url = `${config.tls ? 'https' : 'http'}://${host}:${port}`;
    delivery.dispatcher.start();
    syncs.start();
    mailer.start();
    app.log.info({ url, database: store.location }, 'cohortcast is serving');
    const server = app;
    const engine = delivery;
    return {
      app: server,
      store,
      delivery: engine,
      syncs,
      url,
      async close() {
        await server.close();
        await syncs.stop();
        await mailer.stop();
        await engine.close();
        await store.close();
      },
    };
  } catch (err) {
    await app?.close();
    await delivery?.close();
    await store.close();
    throw err;
  }
}

export interface Worker {
  store: Store;
  delivery: DeliveryEngine;
  close(): Promise<void>;
}

/** `cohortcast worker`: the cohort sync scheduler and the delivery dispatcher, without the HTTP API. */
export async function startWorker(config: Config): Promise<Worker> {
  const store = openStore(config);
  try {
    await migrateToLatest(store);
    const log = pino({ level: config.logLevel });
    const delivery = await createDeliveryEngine(config, store, createMetrics(), log);
    const syncs = new CohortSyncs({ store, owners: delivery.owners, dispatcher: delivery.dispatcher, config: config.sync, log });
    const mailer = new Mailer({ store, config: config.mail, log });
    delivery.dispatcher.start();
    syncs.start();
    mailer.start();
    log.info({ database: store.location, worker: delivery.dispatcher.worker }, 'cohortcast worker is running');
    return {
      store,
      delivery,
      async close() {
        await syncs.stop();
        await mailer.stop();
        await delivery.close();
        await store.close();
      },
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}
