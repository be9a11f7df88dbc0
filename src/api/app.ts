import crypto from 'node:crypto';
import fs from 'node:fs';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { ConnectionAdmin } from '../delivery/connection-admin.js';
import type { DeliveryEngine } from '../delivery/engine.js';
import type { Ingestor } from '../ingest/ingestor.js';
import type { Metrics } from '../observability/metrics.js';
import type { ProjectDirectory } from '../projects/projects.js';
import { pingStore, type Store } from '../store/database.js';
import { requireProjectSecret } from './auth.js';
import { ApiError, installApiErrorHandler } from './errors.js';
import { ingestRoutes } from './ingest-routes.js';
import { strictValidator } from './validation.js';
import { CohortAdmin } from '../cohorts/cohort-admin.js';
import type { SyncAdmin } from '../cohort-sync/admin.js';
import { cohortSyncRoutes } from './management/cohort-syncs.js';
import { subscriptionRoutes } from './management/subscriptions.js';
import type { SubscriptionAdmin } from '../subscriptions/admin.js';
import type { MessageAdmin } from '../messages/admin.js';
import { messageRoutes } from './management/messages.js';
import { reportRoutes } from './management/reports.js';
import { alertRoutes } from './management/alerts.js';
import { overviewRoutes } from './management/overview.js';
import { storageRoutes } from './management/storage.js';
import { dashboardRoutes } from './dashboard-routes.js';
import type { RetentionSurface } from '../retention/surface.js';
import type { AlertAdmin } from '../alerts/admin.js';
import { ReportAdmin } from '../reports/admin.js';
import { cohortRoutes } from './management/cohorts.js';
import { connectionRoutes } from './management/connections.js';
import { deliveryRoutes } from './management/deliveries.js';
import { eventRoutes } from './management/events.js';
import { profileRoutes } from './management/profiles.js';

/** PostgreSQL cannot compare text holding NUL; no id or filter of ours can contain one. */
async function refuseNulParameters(request: FastifyRequest) {
  for (const source of [request.query, request.params]) {
    for (const [name, value] of Object.entries((source ?? {}) as Record<string, unknown>)) {
      if ([name, ...[value].flat()].some((v) => typeof v === 'string' && v.includes('\0'))) {
        throw new ApiError(400, 'invalid_request', `parameter "${name.replace(/\0/g, '\\0')}" contains a NUL character`);
      }
    }
  }
}

export interface AppContext {
  config: Config;
  store: Store;
  projects: ProjectDirectory;
  ingestor: Ingestor;
  metrics: Metrics;
  delivery: DeliveryEngine;
  syncs: SyncAdmin;
  subscriptions: SubscriptionAdmin;
  messages: MessageAdmin;
  alerts: AlertAdmin;
  retention: RetentionSurface;
}

const VERSION = '0.1.0';

export async function buildApp(ctx: AppContext): Promise<FastifyInstance> {
  const { config, metrics } = ctx;
  const app = Fastify({
    logger: { level: config.logLevel },
    // Per-request log lines would dominate the ingestion hot path; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { ignoreTrailingSlash: true },
    trustProxy: config.trustProxy,
    requestTimeout: config.http.requestTimeoutMs,
    keepAliveTimeout: config.http.keepAliveTimeoutMs,
    ...(config.tls
      ? { https: { cert: fs.readFileSync(config.tls.certFile), key: fs.readFileSync(config.tls.keyFile) } }
      : {}),
  });

  app.addHook('onResponse', async (request, reply) => {
    metrics.requestDuration.observe(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'cohortcast',
        version: VERSION,
        description:
          'Mixpanel-compatible ingestion at the root (/track, /engage, /groups, /import) and the management API under /api/v1. ' +
          'The management API takes the project secret: `Authorization: Bearer SECRET` or Basic auth with the secret as username.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'The project secret' },
          basic: { type: 'http', scheme: 'basic', description: 'The project secret as username, empty password' },
        },
      },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/api/docs' });

  await app.register(ingestRoutes, { ingestor: ctx.ingestor, projects: ctx.projects, limits: config.ingest, metrics });

  await app.register(
    async (api) => {
      installApiErrorHandler(api);
      api.setValidatorCompiler(strictValidator);
      api.addHook('onRoute', (route) => {
        route.schema = { ...route.schema, security: [{ bearer: [] }, { basic: [] }] };
      });
      api.addHook('preValidation', refuseNulParameters);
      // Action endpoints (POST …/test, …/retry) are often called with a JSON content type and no body.
      api.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
        if ((body as string).trim() === '') return done(null, null);
        try {
          done(null, JSON.parse(body as string));
        } catch (err) {
          done(new ApiError(400, 'invalid_json', `the body is not valid JSON: ${(err as Error).message}`), undefined);
        }
      });
      api.addHook('preHandler', requireProjectSecret(ctx.projects));
      const paging = { store: ctx.store, ...config.api };
      await api.register(profileRoutes, paging);
      await api.register(eventRoutes, paging);
      await api.register(connectionRoutes, { ...config.api, admin: new ConnectionAdmin(ctx.store, ctx.delivery, config.delivery) });
      await api.register(deliveryRoutes, { ...paging, dispatcher: ctx.delivery.dispatcher });
      await api.register(cohortRoutes, { ...config.api, admin: new CohortAdmin(ctx.store) });
      await api.register(cohortSyncRoutes, { ...config.api, syncs: ctx.syncs });
      await api.register(subscriptionRoutes, { ...config.api, admin: ctx.subscriptions });
      await api.register(messageRoutes, { ...config.api, admin: ctx.messages, store: ctx.store });
      await api.register(reportRoutes, { ...config.api, admin: new ReportAdmin({ store: ctx.store }) });
      await api.register(alertRoutes, { ...config.api, admin: ctx.alerts });
      await api.register(storageRoutes, { retention: ctx.retention });
      await api.register(overviewRoutes, { store: ctx.store });
    },
    { prefix: '/api/v1' },
  );

  await app.register(dashboardRoutes);

  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.get('/healthz', { schema: { tags: ['Operations'], summary: 'Liveness and database reachability' } }, async (_request, reply) => {
    try {
      await pingStore(ctx.store);
      return { status: 'ok', database: ctx.store.dialect };
    } catch (err) {
      return reply.code(503).send({ status: 'unavailable', database: ctx.store.dialect, error: (err as Error).message });
    }
  });

  const metricsToken = config.metricsToken === undefined ? undefined : crypto.createHash('sha256').update(config.metricsToken).digest();
  app.get('/metrics', { schema: { tags: ['Operations'], summary: 'Prometheus metrics (Bearer COHORTCAST_METRICS_TOKEN when it is set)' } }, async (request, reply) => {
    if (metricsToken) {
      const given = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1];
      // Compared as digests, in constant time: the token's length is not given away either.
      if (given === undefined || !crypto.timingSafeEqual(crypto.createHash('sha256').update(given).digest(), metricsToken)) {
        return reply.code(401).header('www-authenticate', 'Bearer').send({ error: { code: 'unauthorized', message: 'send the metrics token as "Authorization: Bearer TOKEN" (COHORTCAST_METRICS_TOKEN)' } });
      }
    }
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  return app;
}
