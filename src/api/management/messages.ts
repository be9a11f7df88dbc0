import type { FastifyInstance } from 'fastify';
import { presentMessage, presentRecipient, presentRun, type MessageAdmin, type MessageInput } from '../../messages/admin.js';
import type { Store } from '../../store/database.js';
import type { MessageRecipientsTable } from '../../store/schema.js';
import { decodeCursor, encodeCursor, pageSchema } from '../cursor.js';
import { errorSchema } from '../errors.js';
import { idParams, isIdCursor, pageLimit } from './paging.js';

const free = { type: 'object', additionalProperties: true } as const;
const messageSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    cohort_id: { type: 'integer' },
    definition: free,
    connection_id: { type: 'integer' },
    schedule: free,
    properties: { type: ['array', 'null'], items: { type: 'string' } },
    enabled: { type: 'boolean' },
    created_at: { type: 'string' },
    updated_at: { type: 'string' },
  },
} as const;

const runSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    kind: { type: 'string', description: 'live (an ASAP or as-met message: one run, growing), scheduled or recurring' },
    planned_at: { type: 'string' },
    started_at: { type: 'string' },
    finished_at: { type: ['string', 'null'] },
    users: { type: 'integer', description: 'Users it targeted' },
    sent: { type: 'integer', description: 'Users acknowledged with a 200' },
    failed: { type: 'integer', description: 'User sends not acknowledged (sent again: live messages on a backoff, others at the next run)' },
    dropped: { type: 'integer', description: 'Users not sent: their profile was deleted, or they no longer matched (live messages)' },
    outstanding: { type: 'integer', description: 'Users waiting or in a batch on the wire' },
  },
} as const;

const recipientSchema = {
  type: 'object',
  properties: {
    distinct_id: { type: 'string' },
    state: { type: 'string', description: 'waiting, queued (in a batch on the wire), sent, failed or dropped' },
    run_id: { type: 'integer' },
    batch_id: { type: ['integer', 'null'] },
    delivery_id: { type: ['integer', 'null'], description: 'The delivery of its last batch: GET /api/v1/deliveries/{id} shows the body and every attempt' },
    sends: { type: 'integer' },
    first_sent_at: { type: ['string', 'null'] },
    last_sent_at: { type: ['string', 'null'] },
    next_attempt_at: { type: ['string', 'null'] },
    attempts: { type: 'integer', description: 'Sends not acknowledged in a row' },
    reason: { type: ['string', 'null'] },
    updated_at: { type: 'string' },
  },
} as const;

const fields = {
  name: { type: 'string', minLength: 1, maxLength: 200 },
  cohort_id: { type: 'integer', minimum: 1, description: 'The cohort to target (or an inline definition)' },
  definition: { type: 'object', description: 'An inline cohort definition (property filters; events that did or did not occur within N days)' },
  connection_id: { type: 'integer', minimum: 1 },
  schedule: {
    type: 'object',
    description:
      '{"type":"asap"} | {"type":"scheduled","at":"09:00","days_of_week":["wed"],"every_weeks":1,"timezone":"America/Los_Angeles"} | {"type":"scheduled","cron","timezone"} | ' +
      '{"type":"recurring","every":"daily"|"weekly"|"monthly"|"as_met","at"?,"day_of_week"?,"day_of_month"?,"timezone"?,"limit"?:{"max","per":"day"|"week"|"month"}}',
  },
  properties: { type: ['array', 'null'], items: { type: 'string' }, description: 'The profile properties sent as $properties (null or left out: all of them)' },
  enabled: { type: 'boolean' },
} as const;

const errors = { 400: errorSchema, 401: errorSchema, 404: errorSchema, 409: errorSchema } as const;
const tags = ['Messages'];
const STATES: MessageRecipientsTable['state'][] = ['waiting', 'queued', 'sent', 'failed', 'dropped'];
const isNameCursor = (v: unknown): v is string => typeof v === 'string';

export async function messageRoutes(app: FastifyInstance, opts: { admin: MessageAdmin; store: Store; defaultPageSize: number; maxPageSize: number }) {
  const { admin, store } = opts;

  app.post(
    '/messages',
    { schema: { tags, summary: "Create a webhook message (Mixpanel's webhook campaign)", body: { type: 'object', properties: fields, required: ['name', 'connection_id', 'schedule'], additionalProperties: false }, response: { 201: messageSchema, ...errors } } },
    async (request, reply) => reply.code(201).send(await presentMessage(store, await admin.create(request.project.id, request.body as MessageInput))),
  );

  app.get(
    '/messages',
    { schema: { tags, summary: 'List webhook messages', querystring: { type: 'object', properties: pageSchema, additionalProperties: false }, response: { 200: { type: 'object', properties: { results: { type: 'array', items: messageSchema }, next_cursor: { type: ['string', 'null'] } } }, ...errors } } },
    async (request) => {
      const q = request.query as { limit?: number; cursor?: string };
      const limit = pageLimit(q.limit, opts);
      const rows = await admin.list(request.project.id, q.cursor === undefined ? undefined : decodeCursor(q.cursor, isIdCursor), limit + 1);
      const page = rows.slice(0, limit);
      return { results: await Promise.all(page.map((r) => presentMessage(store, r))), next_cursor: rows.length > limit ? encodeCursor(page.at(-1)!.id) : null };
    },
  );

  app.get('/messages/:id', { schema: { tags, summary: 'One webhook message', params: idParams, response: { 200: messageSchema, ...errors } } }, async (request) => {
    const { id } = request.params as { id: number };
    return presentMessage(store, await admin.get(request.project.id, id));
  });

  app.patch(
    '/messages/:id',
    { schema: { tags, summary: 'Change a webhook message (checked again whole)', params: idParams, body: { type: 'object', properties: fields, additionalProperties: false }, response: { 200: messageSchema, ...errors } } },
    async (request) => {
      const { id } = request.params as { id: number };
      return presentMessage(store, await admin.update(request.project.id, id, request.body as MessageInput));
    },
  );

  app.delete('/messages/:id', { schema: { tags, summary: 'Delete a webhook message, its ledger and its own cohort', params: idParams, response: { 204: { type: 'null' }, ...errors } } }, async (request, reply) => {
    const { id } = request.params as { id: number };
    await admin.remove(request.project.id, id);
    return reply.code(204).send();
  });

  app.post(
    '/messages/:id/test',
    {
      schema: {
        tags,
        summary: 'Send five profiles picked at random to the connection now, marked as a test (x-cohortcast-test: true), never recorded as sent',
        params: idParams,
        response: { 200: { type: 'object', properties: { message_id: { type: 'integer' }, delivery_id: { type: 'integer' }, users: { type: 'array', items: { type: 'string' } }, ok: { type: 'boolean' }, status: { type: ['integer', 'null'] }, error: { type: ['string', 'null'] }, response_body: { type: ['string', 'null'] } } }, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params as { id: number };
      return admin.test(request.project.id, id);
    },
  );

  app.get(
    '/messages/:id/runs',
    { schema: { tags, summary: "A message's runs, newest first", params: idParams, querystring: { type: 'object', properties: pageSchema, additionalProperties: false }, response: { 200: { type: 'object', properties: { results: { type: 'array', items: runSchema }, next_cursor: { type: ['string', 'null'] } } }, ...errors } } },
    async (request) => {
      const { id } = request.params as { id: number };
      const q = request.query as { limit?: number; cursor?: string };
      const limit = pageLimit(q.limit, opts);
      const rows = await admin.runs(request.project.id, id, q.cursor === undefined ? undefined : decodeCursor(q.cursor, isIdCursor), limit + 1);
      const page = rows.slice(0, limit);
      return { results: page.map(presentRun), next_cursor: rows.length > limit ? encodeCursor(page.at(-1)!.id) : null };
    },
  );

  app.get(
    '/messages/:id/recipients',
    {
      schema: {
        tags,
        summary: 'The ledger: who was sent this message, when, and the outcome (by distinct id)',
        params: idParams,
        querystring: { type: 'object', properties: { ...pageSchema, state: { type: 'string', enum: STATES }, distinct_id: { type: 'string', maxLength: 255 } }, additionalProperties: false },
        response: { 200: { type: 'object', properties: { results: { type: 'array', items: recipientSchema }, next_cursor: { type: ['string', 'null'] } } }, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params as { id: number };
      const q = request.query as { limit?: number; cursor?: string; state?: MessageRecipientsTable['state']; distinct_id?: string };
      const limit = pageLimit(q.limit, opts);
      const rows = await admin.recipients(request.project.id, id, {
        ...(q.cursor !== undefined ? { after: decodeCursor(q.cursor, isNameCursor) } : {}),
        ...(q.state !== undefined ? { state: q.state } : {}),
        ...(q.distinct_id !== undefined ? { distinctId: q.distinct_id } : {}),
        limit: limit + 1,
      });
      const page = rows.slice(0, limit);
      return { results: page.map(presentRecipient), next_cursor: rows.length > limit ? encodeCursor(page.at(-1)!.distinct_id) : null };
    },
  );
}
