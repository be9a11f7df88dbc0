import type { FastifyInstance } from 'fastify';
import type { Store } from '../../store/database.js';
import { listEvents } from '../../store/events-repo.js';
import { decodeCursor, encodeCursor, pageSchema } from '../cursor.js';
import { errorSchema } from '../errors.js';
import { pageLimit } from './paging.js';
import { timeParam } from './time-param.js';

const eventSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    event: { type: 'string' },
    distinct_id: { type: 'string' },
    time: { type: 'string', description: 'ISO 8601, UTC, milliseconds' },
    time_ms: { type: 'integer' },
    insert_id: { type: ['string', 'null'] },
    properties: { type: 'object', additionalProperties: true },
  },
} as const;

const isPosition = (v: unknown): v is [number, number] =>
  Array.isArray(v) && v.length === 2 && v.every((n) => Number.isSafeInteger(n));

export async function eventRoutes(app: FastifyInstance, opts: { store: Store; defaultPageSize: number; maxPageSize: number }) {
  app.get(
    '/events',
    {
      schema: {
        tags: ['Events'],
        summary: 'List events in time order',
        querystring: {
          type: 'object',
          properties: {
            ...pageSchema,
            event: { type: 'string' },
            distinct_id: { type: 'string' },
            from: { type: 'string', description: 'Inclusive; epoch s, epoch ms or ISO 8601' },
            to: { type: 'string', description: 'Exclusive; epoch s, epoch ms or ISO 8601' },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: { results: { type: 'array', items: eventSchema }, next_cursor: { type: ['string', 'null'] } },
          },
          400: errorSchema,
          401: errorSchema,
        },
      },
    },
    async (request) => {
      const q = request.query as { limit?: number; cursor?: string; event?: string; distinct_id?: string; from?: string; to?: string };
      const limit = pageLimit(q.limit, opts);
      const position = q.cursor === undefined ? undefined : decodeCursor(q.cursor, isPosition);
      const rows = await listEvents(opts.store, request.project.id, {
        event: q.event,
        distinctId: q.distinct_id,
        from: timeParam('from', q.from),
        to: timeParam('to', q.to),
        after: position && { time: position[0], id: position[1] },
        limit: limit + 1,
      });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        results: page.map((e) => ({
          id: e.id,
          event: e.event,
          distinct_id: e.distinctId,
          time: new Date(e.time).toISOString(),
          time_ms: e.time,
          insert_id: e.insertId,
          properties: e.properties,
        })),
        next_cursor: rows.length > limit && last ? encodeCursor([last.time, last.id]) : null,
      };
    },
  );
}
