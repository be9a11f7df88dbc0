import type { FastifyInstance } from 'fastify';
import type { Store } from '../../store/database.js';
import { listEvents } from '../../store/events-repo.js';
import { decodeCursor, encodeCursor, pageSchema } from '../cursor.js';
import { ApiError, errorSchema } from '../errors.js';
import { pageLimit } from './paging.js';
import { propertyFilters } from './property-filters.js';
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

/** A cursor: the last event's (time, id), and 1 when the list runs newest first. */
const isPosition = (v: unknown): v is [number, number] | [number, number, 1] =>
  Array.isArray(v) && (v.length === 2 || (v.length === 3 && v[2] === 1)) && v.every((n) => Number.isSafeInteger(n));

export async function eventRoutes(app: FastifyInstance, opts: { store: Store; defaultPageSize: number; maxPageSize: number }) {
  app.get(
    '/events',
    {
      schema: {
        tags: ['Events'],
        summary: 'List events in time order (or newest first)',
        description:
          'Filters: `event`, `distinct_id`, `from`/`to`, and any number of `property.NAME=VALUE` equality filters ' +
          '(VALUE matches a string, or the number / boolean / null it spells). Property filters read each event of the ' +
          'range in turn (events have no index by property): bound them with from/to on a large project.',
        querystring: {
          type: 'object',
          properties: {
            ...pageSchema,
            event: { type: 'string' },
            distinct_id: { type: 'string' },
            from: { type: 'string', description: 'Inclusive; epoch s, epoch ms or ISO 8601' },
            to: { type: 'string', description: 'Exclusive; epoch s, epoch ms or ISO 8601' },
            order: { type: 'string', enum: ['asc', 'desc'], description: 'asc (default): oldest first; desc: newest first. A cursor continues in the order it was made in.' },
          },
          patternProperties: { '^property\\.': { type: 'string' } },
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
      const q = request.query as Record<string, unknown> & { limit?: number; cursor?: string; event?: string; distinct_id?: string; from?: string; to?: string; order?: 'asc' | 'desc' };
      const limit = pageLimit(q.limit, opts);
      const position = q.cursor === undefined ? undefined : decodeCursor(q.cursor, isPosition);
      const desc = q.order === 'desc';
      if (position && (position.length === 3) !== desc) {
        throw new ApiError(400, 'invalid_cursor', `this cursor continues a list ${desc ? 'oldest' : 'newest'} first; ask with order=${desc ? 'asc' : 'desc'} or start again without it`);
      }
      const rows = await listEvents(opts.store, request.project.id, {
        event: q.event,
        distinctId: q.distinct_id,
        from: timeParam('from', q.from),
        to: timeParam('to', q.to),
        equals: propertyFilters(q),
        order: q.order,
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
        next_cursor: rows.length > limit && last ? encodeCursor(desc ? [last.time, last.id, 1] : [last.time, last.id]) : null,
      };
    },
  );
}
