import type { FastifyInstance } from 'fastify';
import { CohortAdmin } from '../../cohorts/cohort-admin.js';
import type { CohortRecord } from '../../store/cohorts-repo.js';
import { decodeCursor, encodeCursor, pageSchema } from '../cursor.js';
import { errorSchema } from '../errors.js';
import { idParams, isIdCursor, pageLimit } from './paging.js';
import { iso } from '../../iso-time.js';

const definitionSchema = {
  type: 'object',
  additionalProperties: true,
  description:
    'A filter or a combination: {"and": […]}, {"or": […]}, {"not": …}; {"property", "op", "value"}; ' +
    '{"event", "count"?: {"op", "value"}, "within_days", "where"?: […]}; {"cohort": id}. See the README for every operator.',
} as const;

const cohortSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    description: { type: 'string' },
    definition: definitionSchema,
    created_at: { type: 'string' },
    updated_at: { type: 'string' },
  },
} as const;

const memberSchema = {
  type: 'object',
  properties: { $distinct_id: { type: 'string' }, $properties: { type: 'object', additionalProperties: true } },
} as const;

const errors = { 400: errorSchema, 401: errorSchema, 404: errorSchema, 409: errorSchema } as const;
const tags = ['Cohorts'];
// Definitions are checked by cohorts/definition.ts, which names the offending path; the schema only says "an object".
const fields = { name: { type: 'string' }, description: { type: 'string' }, definition: { type: 'object' } } as const;

const present = (c: CohortRecord) => ({
  id: c.id,
  name: c.name,
  description: c.description,
  definition: c.definition,
  created_at: iso(c.createdAt),
  updated_at: iso(c.updatedAt),
});

export async function cohortRoutes(app: FastifyInstance, opts: { admin: CohortAdmin; defaultPageSize: number; maxPageSize: number }) {
  const { admin } = opts;

  app.post(
    '/cohorts',
    {
      schema: {
        tags,
        summary: 'Create a cohort',
        body: { type: 'object', properties: fields, required: ['name', 'definition'], additionalProperties: false },
        response: { 201: cohortSchema, ...errors },
      },
    },
    async (request, reply) => reply.code(201).send(present(await admin.create(request.project.id, request.body as object))),
  );

  app.get(
    '/cohorts',
    {
      schema: {
        tags,
        summary: 'List cohorts',
        querystring: { type: 'object', properties: pageSchema, additionalProperties: false },
        response: { 200: { type: 'object', properties: { results: { type: 'array', items: cohortSchema }, next_cursor: { type: ['string', 'null'] } } }, ...errors },
      },
    },
    async (request) => {
      const q = request.query as { limit?: number; cursor?: string };
      const limit = pageLimit(q.limit, opts);
      const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor, isIdCursor);
      const rows = await admin.list(request.project.id, after, limit + 1);
      const page = rows.slice(0, limit);
      return { results: page.map(present), next_cursor: rows.length > limit ? encodeCursor(page.at(-1)!.id) : null };
    },
  );

  app.get('/cohorts/:id', { schema: { tags, summary: 'One cohort', params: idParams, response: { 200: cohortSchema, ...errors } } }, async (request) => {
    const { id } = request.params as { id: number };
    return present(await admin.get(request.project.id, id));
  });

  app.patch(
    '/cohorts/:id',
    {
      schema: {
        tags,
        summary: 'Change a cohort’s name, description or definition',
        params: idParams,
        body: { type: 'object', properties: fields, additionalProperties: false },
        response: { 200: cohortSchema, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params as { id: number };
      return present(await admin.update(request.project.id, id, request.body as object));
    },
  );

  app.delete(
    '/cohorts/:id',
    { schema: { tags, summary: 'Delete a cohort no other cohort uses', params: idParams, response: { 204: { type: 'null' }, ...errors } } },
    async (request, reply) => {
      const { id } = request.params as { id: number };
      await admin.remove(request.project.id, id);
      return reply.code(204).send();
    },
  );

  app.get(
    '/cohorts/:id/members',
    {
      schema: {
        tags,
        summary: 'The cohort’s members now (user profiles), in distinct_id order',
        params: idParams,
        querystring: { type: 'object', properties: pageSchema, additionalProperties: false },
        response: { 200: { type: 'object', properties: { results: { type: 'array', items: memberSchema }, next_cursor: { type: ['string', 'null'] } } }, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params as { id: number };
      const q = request.query as { limit?: number; cursor?: string };
      const limit = pageLimit(q.limit, opts);
      const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor, (v): v is string => typeof v === 'string');
      const rows = await admin.members(request.project.id, id, after, limit + 1);
      const page = rows.slice(0, limit);
      return {
        results: page.map((m) => ({ $distinct_id: m.distinctId, $properties: m.properties })),
        next_cursor: rows.length > limit ? encodeCursor(page.at(-1)!.distinctId) : null,
      };
    },
  );

  app.get(
    '/cohorts/:id/count',
    { schema: { tags, summary: 'How many members the cohort has now', params: idParams, response: { 200: { type: 'object', properties: { count: { type: 'integer' } } }, ...errors } } },
    async (request) => {
      const { id } = request.params as { id: number };
      return { count: await admin.size(request.project.id, id) };
    },
  );

  app.get(
    '/cohorts/:id/usage',
    {
      schema: {
        tags,
        summary: 'What uses the cohort (and so blocks its deletion): cohorts that name it, cohort syncs, subscriptions, webhook messages',
        params: idParams,
        response: { 200: { type: 'object', properties: Object.fromEntries(['cohorts', 'cohort_syncs', 'subscriptions', 'messages'].map((k) => [k, { type: 'array', items: { type: 'integer' } }])) }, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params as { id: number };
      const usage = await admin.usage(request.project.id, id);
      return { cohorts: usage.cohorts, cohort_syncs: usage.cohortSyncs, subscriptions: usage.subscriptions, messages: usage.messages };
    },
  );
}
