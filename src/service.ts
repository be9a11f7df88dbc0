import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { buildApp } from './api/app.js';
import type { Config } from './config.js';
import { cohortSyncSurface } from './cohort-sync/surface.js';
import type { SyncAdmin } from './cohort-sync/admin.js';
import { syncMemberHead } from './cohort-sync/wire.js';
import { createDeliveryEngine, type DeliveryEngine } from './delivery/engine.js';
import { subscriptionSurface, type SubscriptionSurface } from './subscriptions/surface.js';
import { messageSurface, type MessageSurface } from './messages/surface.js';
import { alertSurface } from './alerts/surface.js';
import { retentionSurface, type RetentionSurface } from './retention/surface.js';
import { Ingestor } from './ingest/ingestor.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { ProjectDirectory } from './projects/projects.js';
import { Scheduler } from './scheduling/scheduler.js';
import { openStore, type Store } from './store/database.js';
import { migrateToLatest } from './store/migrate.js';
import { newWorkerName } from './worker-name.js';

/** What runs in the background of `serve` and `worker` alike: the dispatcher, the scheduler and the surfaces on them. */
export interface Engine {
  store: Store;
  log: Logger;
  metrics: Metrics;
  delivery: DeliveryEngine;
  scheduler: Scheduler;
  syncs: SyncAdmin;
  subscriptions: SubscriptionSurface;
  messages: MessageSurface;
  alerts: ReturnType<typeof alertSurface>;
  retention: RetentionSurface;
  /** Starts sending and running schedules. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** Opens (and migrates) the database and plugs every surface into the delivery engine and the scheduler. */
/** What tests inject: the clock that schedules (and the calendars of messages) go by. */
export interface EngineOptions {
  now?: () => number;
}

async function openEngine(config: Config, opts: EngineOptions = {}): Promise<Engine> {
  const store = openStore(config);
  let delivery: DeliveryEngine | undefined;
  try {
    await migrateToLatest(store);
    const log = pino({ level: config.logLevel });
    const metrics = createMetrics();
    const worker = newWorkerName();
    delivery = await createDeliveryEngine(config, store, metrics, log, worker);
    const scheduler = new Scheduler({ store, config: config.scheduler, log, worker, ...(opts.now ? { now: opts.now } : {}) });
    const subscriptions = subscriptionSurface({ store, engine: delivery, scheduler, config, log, metrics });
    const messages = messageSurface({ store, engine: delivery, scheduler, evaluator: subscriptions.evaluator, config, log, metrics, ...(opts.now ? { now: opts.now } : {}), watchesChanged: (projectId) => subscriptions.watchesChanged(projectId) });
    const alerts = alertSurface({ store, engine: delivery, scheduler, emitter: subscriptions.emitter, config, log, ...(opts.now ? { now: opts.now } : {}) });
    const { admin: syncs } = cohortSyncSurface({ store, engine: delivery, scheduler, config, log, metrics, events: subscriptions.emitter });
    const retention = retentionSurface({ store, scheduler, config, metrics, log });
    const engine = delivery;
    return {
      store,
      log,
      metrics,
      delivery: engine,
      scheduler,
      syncs,
      subscriptions,
      messages,
      alerts,
      retention,
      async start() {
        engine.dispatcher.start();
        await subscriptions.index.start();
        await scheduler.start();
        for (const loop of [...subscriptions.loops, messages.loop]) loop.start();
      },
      async close() {
        for (const loop of [...subscriptions.loops, messages.loop]) await loop.stop();
        await subscriptions.index.stop();
        await scheduler.stop();
        await engine.close();
        await store.close();
      },
    };
  } catch (err) {
    await delivery?.close();
    await store.close();
    throw err;
  }
}

export interface Service extends Engine {
  app: FastifyInstance;
  /** The base URL it listens on, e.g. http://127.0.0.1:8080. */
  url: string;
}

/** Opens (and migrates) the database, then serves the API. Used by `cohortcast serve` and by tests. */
export async function startService(config: Config, opts: EngineOptions = {}): Promise<Service> {
  const engine = await openEngine(config, opts);
  let app: FastifyInstance | undefined;
  try {
    const { store, metrics } = engine;
    const projects = new ProjectDirectory(store, config.projectCacheTtlMs);
    const ingestor = new Ingestor(store, projects, config.ingest, metrics, { syncMember: syncMemberHead, changed: engine.subscriptions.profileChanges }, engine.subscriptions.tap);
    app = await buildApp({ config, store, projects, ingestor, metrics, delivery: engine.delivery, syncs: engine.syncs, subscriptions: engine.subscriptions.admin, messages: engine.messages.admin, alerts: engine.alerts.admin, retention: engine.retention });
    // Started before it listens: the subscriptions are loaded before the first request is taken.
    await engine.start();
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    const url = `${config.tls ? 'https' : 'http'}://${host}:${port}`;
    app.log.info({ url, database: store.location }, 'cohortcast is serving');
    const server = app;
    return {
      ...engine,
      app: server,
      url,
      async close() {
        await server.close();
        await engine.close();
      },
    };
  } catch (err) {
    await app?.close();
    await engine.close();
    throw err;
  }
}

/** `cohortcast worker`: the dispatcher, the scheduler and the surfaces, without the HTTP API. */
export async function startWorker(config: Config, opts: EngineOptions = {}): Promise<Engine> {
  const engine = await openEngine(config, opts);
  try {
    await engine.start();
  } catch (err) {
    await engine.close();
    throw err;
  }
  engine.log.info({ database: engine.store.location, worker: engine.delivery.dispatcher.worker }, 'cohortcast worker is running');
  return engine;
}
