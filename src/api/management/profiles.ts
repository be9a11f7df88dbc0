import type { FastifyInstance } from 'fastify';
import type { Store } from '../../store/database.js';
import { getProfile, listProfiles, type ProfileRecord } from '../../store/profiles-repo.js';
import { decodeCursor, encodeCursor, pageSchema } from '../cursor.js';
import { ApiError, errorSchema } from '../errors.js';
import { pageLimit } from './paging.js';
import { propertyFilters } from './property-filters.js';

const profileSchema = {
  type: 'object',
  description: "A user profile in Mixpanel's shape.",
  properties: {
    $distinct_id: { type: 'string' },
    $properties: { type: 'object', additionalProperties: true },
  },
} as const;

/** Mixpanel's profile shape, as its engage query API and webhook messages use. */
const present = (p: ProfileRecord) => ({ $distinct_id: p.distinctId, $properties: p.properties });

export async function profileRoutes(app: FastifyInstance, opts: { store: Store; defaultPageSize: number; maxPageSize: number }) {
  const { store } = opts;

  app.get(
    '/profiles',
    {
      schema: {
        tags: ['Profiles'],
        summary: 'List user profiles in distinct_id order',
        description:
          'Filters: `distinct_id` (comma-separated list) and any number of `property.NAME=VALUE` equality filters ' +
          '(VALUE matches a string, or the number / boolean / null it spells).',
        querystring: {
          type: 'object',
          properties: { ...pageSchema, distinct_id: { type: 'string' } },
          patternProperties: { '^property\\.': { type: 'string' } },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: { results: { type: 'array', items: profileSchema }, next_cursor: { type: ['string', 'null'] } },
          },
          400: errorSchema,
          401: errorSchema,
        },
      },
    },
    async (request) => {
      const query = request.query as Record<string, unknown> & { limit?: number; cursor?: string; distinct_id?: string };
      const limit = pageLimit(query.limit, opts);
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, (v): v is string => typeof v === 'string');
      const distinctIds = query.distinct_id?.split(',').filter((s) => s !== '');
      const rows = await listProfiles(store, request.project.id, { distinctIds, equals: propertyFilters(query), after, limit: limit + 1 });
      const page = rows.slice(0, limit);
      return { results: page.map(present), next_cursor: rows.length > limit ? encodeCursor(page.at(-1)!.distinctId) : null };
    },
  );

  app.get(
    '/profiles/:distinct_id',
    {
      schema: {
        tags: ['Profiles'],
        summary: 'One user profile; 404 when it does not exist or was deleted',
        params: { type: 'object', properties: { distinct_id: { type: 'string' } }, required: ['distinct_id'] },
        response: { 200: profileSchema, 401: errorSchema, 404: errorSchema },
      },
    },
    async (request) => {
      const { distinct_id } = request.params as { distinct_id: string };
      const profile = await getProfile(store, request.project.id, distinct_id);
      if (!profile) throw new ApiError(404, 'not_found', `no profile with distinct_id "${distinct_id}"`);
      return present(profile);
    },
  );
}
