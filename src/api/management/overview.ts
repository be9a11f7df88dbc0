import type { FastifyInstance } from 'fastify';
import { iso } from '../../iso-time.js';
import type { Store } from '../../store/database.js';
import { readOverview } from '../../store/overview-repo.js';
import { ApiError, errorSchema } from '../errors.js';

const minuteSchema = {
  type: 'object',
  properties: { at: { type: 'string' }, events: { type: 'integer' }, succeeded: { type: 'integer' }, failed: { type: 'integer' }, cancelled: { type: 'integer' } },
} as const;

const overviewSchema = {
  type: 'object',
  properties: {
    now: { type: 'string' },
    queue: {
      type: 'object',
      properties: {
        pending: { type: 'integer', description: 'Deliveries waiting (counted up to a cap)' },
        pending_capped: { type: 'boolean', description: 'True when there are more than `pending`' },
        oldest_due_at: { type: ['string', 'null'], description: 'The earliest due time among waiting deliveries' },
      },
    },
    minutes: { type: 'array', items: minuteSchema, description: 'Per minute, oldest first: events by their time, deliveries finished by outcome' },
    events_capped: { type: 'boolean', description: 'The events series read only the newest 100,000 events of the window' },
    deliveries_capped: { type: 'boolean', description: 'The deliveries series read only the newest 20,000 deliveries' },
    failing_connections: {
      type: 'array',
      items: { type: 'object', properties: { id: { type: 'integer' }, name: { type: 'string' }, state: { type: 'string' }, reason: { type: ['string', 'null'] }, since: { type: ['string', 'null'] }, until: { type: ['string', 'null'] } } },
    },
    paused_syncs: {
      type: 'array',
      items: { type: 'object', properties: { id: { type: 'integer' }, cohort_id: { type: 'integer' }, connection_id: { type: 'integer' }, reason: { type: ['string', 'null'] } } },
    },
    paused_syncs_count: { type: 'integer' },
  },
} as const;

const MAX_MINUTES = 24 * 60;

/** What is happening now, for the dashboard's overview: bounded queries, so it stays quick on any size of data. */
export async function overviewRoutes(app: FastifyInstance, opts: { store: Store }) {
  app.get(
    '/overview',
    {
      schema: {
        tags: ['Operations'],
        summary: "The project's activity at a glance: queue, per-minute events and delivery outcomes, failing connections, paused syncs",
        querystring: {
          type: 'object',
          properties: { minutes: { type: 'integer', minimum: 1, description: `How many minutes of series, up to ${MAX_MINUTES} (default 60)` } },
          additionalProperties: false,
        },
        response: { 200: overviewSchema, 400: errorSchema, 401: errorSchema },
      },
    },
    async (request) => {
      const { minutes = 60 } = request.query as { minutes?: number };
      if (minutes > MAX_MINUTES) throw new ApiError(400, 'invalid_window', `minutes can be at most ${MAX_MINUTES} (24 hours); ${minutes} was asked`);
      const now = Date.now();
      const o = await readOverview(opts.store, request.project.id, now - (minutes - 1) * 60_000, now);
      return {
        now: iso(now),
        queue: { pending: o.pending.count, pending_capped: o.pending.capped, oldest_due_at: iso(o.pending.oldestDueAt) },
        minutes: o.minutes.map((m) => ({ ...m, at: iso(m.at) })),
        events_capped: o.eventsCapped,
        deliveries_capped: o.deliveriesCapped,
        failing_connections: o.connections.map((c) => ({ ...c, since: iso(c.since), until: iso(c.until) })),
        paused_syncs: o.pausedSyncs.map((s) => ({ id: s.id, cohort_id: s.cohortId, connection_id: s.connectionId, reason: s.reason })),
        paused_syncs_count: o.pausedSyncsCount,
      };
    },
  );
}
