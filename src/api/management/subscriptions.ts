import type { FastifyInstance } from 'fastify';
import { presentSubscription, type SubscriptionAdmin, type SubscriptionInput } from '../../subscriptions/admin.js';
import { EVENT_TYPES } from '../../subscriptions/event-types.js';
import { decodeCursor, encodeCursor, pageSchema } from '../cursor.js';
import { errorSchema } from '../errors.js';
import { idParams, isIdCursor, pageLimit } from './paging.js';

const free = { type: 'object', additionalProperties: true } as const;
const subscriptionSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    event_types: { type: 'array', items: { type: 'string' } },
    cohort_ids: { type: 'array', items: { type: 'integer' } },
    event_filter: { type: ['object', 'null'], additionalProperties: true },
    channels: { type: 'array', items: free },
    enabled: { type: 'boolean' },
    created_at: { type: 'string' },
    updated_at: { type: 'string' },
  },
} as const;

const fields = {
  name: { type: 'string', minLength: 1, maxLength: 200 },
  event_types: { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 50, description: 'GET /api/v1/event-types lists them' },
  cohort_ids: { type: 'array', items: { type: 'integer', minimum: 1 }, maxItems: 100, description: 'The cohorts whose member events it wants (watched live)' },
  event_filter: { type: ['object', 'null'], description: 'For event.ingested: {"events": [names], "where": [property filters]}' },
  channels: {
    type: 'array',
    minItems: 1,
    maxItems: 10,
    items: { type: 'object', description: 'webhook {connection_id, payload_template?}, slack {connection_id, text_template?}, email {to, subject_template?, body_template?}, sms {connection_id, from, to, body_template?}' },
  },
  enabled: { type: 'boolean' },
} as const;

const errors = { 400: errorSchema, 401: errorSchema, 404: errorSchema, 409: errorSchema } as const;
const tags = ['Subscriptions'];

export async function subscriptionRoutes(app: FastifyInstance, opts: { admin: SubscriptionAdmin; defaultPageSize: number; maxPageSize: number }) {
  const { admin } = opts;

  app.get(
    '/event-types',
    { schema: { tags, summary: 'The event types a subscription may name, each with a sample of its data', response: { 200: { type: 'object', properties: { results: { type: 'array', items: free } } }, 401: errorSchema } } },
    async () => ({ results: EVENT_TYPES.map((t) => ({ type: t.type, description: t.description, sample: { event_id: 'evt_…', event_type: t.type, created_at: '2026-12-01T10:00:00.000Z', project_id: 1, data: t.sample } })) }),
  );

  app.post(
    '/subscriptions',
    { schema: { tags, summary: 'Subscribe channels to event types', body: { type: 'object', properties: fields, required: ['name', 'event_types', 'channels'], additionalProperties: false }, response: { 201: subscriptionSchema, ...errors } } },
    async (request, reply) => reply.code(201).send(presentSubscription(await admin.create(request.project.id, request.body as SubscriptionInput))),
  );

  app.get(
    '/subscriptions',
    { schema: { tags, summary: 'List subscriptions', querystring: { type: 'object', properties: pageSchema, additionalProperties: false }, response: { 200: { type: 'object', properties: { results: { type: 'array', items: subscriptionSchema }, next_cursor: { type: ['string', 'null'] } } }, ...errors } } },
    async (request) => {
      const q = request.query as { limit?: number; cursor?: string };
      const limit = pageLimit(q.limit, opts);
      const rows = await admin.list(request.project.id, q.cursor === undefined ? undefined : decodeCursor(q.cursor, isIdCursor), limit + 1);
      const page = rows.slice(0, limit);
      return { results: page.map(presentSubscription), next_cursor: rows.length > limit ? encodeCursor(page.at(-1)!.id) : null };
    },
  );

  app.get('/subscriptions/:id', { schema: { tags, summary: 'One subscription', params: idParams, response: { 200: subscriptionSchema, ...errors } } }, async (request) => {
    const { id } = request.params as { id: number };
    return presentSubscription(await admin.get(request.project.id, id));
  });

  app.patch(
    '/subscriptions/:id',
    { schema: { tags, summary: 'Change a subscription (checked again whole)', params: idParams, body: { type: 'object', properties: fields, additionalProperties: false }, response: { 200: subscriptionSchema, ...errors } } },
    async (request) => {
      const { id } = request.params as { id: number };
      return presentSubscription(await admin.update(request.project.id, id, request.body as SubscriptionInput));
    },
  );

  app.delete('/subscriptions/:id', { schema: { tags, summary: 'Delete a subscription', params: idParams, response: { 204: { type: 'null' }, ...errors } } }, async (request, reply) => {
    const { id } = request.params as { id: number };
    await admin.remove(request.project.id, id);
    return reply.code(204).send();
  });

  app.post(
    '/subscriptions/:id/test',
    {
      schema: {
        tags,
        summary: 'Send a sample event of each subscribed type to every channel now, marked as a test, and answer what each replied',
        params: idParams,
        response: { 200: { type: 'object', properties: { subscription_id: { type: 'integer' }, results: { type: 'array', items: free } } }, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params as { id: number };
      return admin.test(request.project.id, id);
    },
  );
}
