import type { FastifyInstance } from 'fastify';
import { presentAlert, presentCheck, type AlertAdmin, type AlertInput } from '../../alerts/admin.js';
import { decodeCursor, encodeCursor, pageSchema } from '../cursor.js';
import { errorSchema } from '../errors.js';
import { idParams, isIdCursor, pageLimit } from './paging.js';

const free = { type: 'object', additionalProperties: true } as const;
const alertSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    report_id: { type: 'integer' },
    condition: free,
    segment: { type: ['string', 'null'] },
    frequency: { type: 'string' },
    windows: { type: ['object', 'null'], additionalProperties: true },
    channels: { type: 'array', items: free },
    creator: { type: ['string', 'null'] },
    creator_email: { type: ['string', 'null'] },
    state: { type: 'string', description: 'active, or invalid (its report cannot be computed; see state_reason)' },
    state_reason: { type: ['string', 'null'] },
    last_fired_at: { type: ['string', 'null'] },
    quiet_until: { type: ['string', 'null'], description: 'After it notified: not checked again before this' },
    checked_to: { type: ['string', 'null'], description: 'The end of the last bucket checked' },
    created_at: { type: 'string' },
    updated_at: { type: 'string' },
  },
} as const;
const fields = {
  name: { type: 'string', minLength: 1, maxLength: 200 },
  report_id: { type: 'integer', minimum: 1 },
  condition: { type: 'object', description: '{"type": "above"|"below", "value"} | {"type": "increase"|"decrease", "by", "unit": "amount"|"percent"} | {"type": "anomaly", "sensitivity"?, "weeks"?}' },
  segment: { type: ['string', 'null'], description: 'For a report with a breakdown: one segment value, or "$any"' },
  frequency: { type: 'string', enum: ['hourly', 'daily', 'weekly', 'monthly'] },
  windows: { type: ['object', 'null'], description: '{"days_of_week"?, "from"?: "HH:MM", "to"?: "HH:MM", "timezone"?}: when it may notify' },
  channels: { type: 'array', minItems: 1, maxItems: 10, items: { type: 'object', description: 'webhook {connection_id, payload_template?}, slack {connection_id, text_template?}, email {to, subject_template?, body_template?}' } },
  creator: { type: ['string', 'null'] },
  creator_email: { type: ['string', 'null'] },
} as const;
const errors = { 400: errorSchema, 401: errorSchema, 404: errorSchema, 409: errorSchema } as const;
const tags = ['Alerts'];

export async function alertRoutes(app: FastifyInstance, opts: { admin: AlertAdmin; defaultPageSize: number; maxPageSize: number }) {
  const { admin } = opts;
  const page = { type: 'object', properties: pageSchema, additionalProperties: false } as const;

  app.post(
    '/alerts',
    { schema: { tags, summary: "Create an alert on a report's metric", body: { type: 'object', properties: fields, required: ['name', 'report_id', 'condition', 'channels'], additionalProperties: false }, response: { 201: alertSchema, ...errors } } },
    async (request, reply) => reply.code(201).send(presentAlert(await admin.create(request.project.id, request.body as AlertInput))),
  );

  app.get('/alerts', { schema: { tags, summary: 'List alerts', querystring: page, response: { 200: { type: 'object', properties: { results: { type: 'array', items: alertSchema }, next_cursor: { type: ['string', 'null'] } } }, ...errors } } }, async (request) => {
    const q = request.query as { limit?: number; cursor?: string };
    const limit = pageLimit(q.limit, opts);
    const rows = await admin.list(request.project.id, q.cursor === undefined ? undefined : decodeCursor(q.cursor, isIdCursor), limit + 1);
    const results = rows.slice(0, limit);
    return { results: results.map(presentAlert), next_cursor: rows.length > limit ? encodeCursor(results.at(-1)!.id) : null };
  });

  app.get('/alerts/:id', { schema: { tags, summary: 'One alert', params: idParams, response: { 200: alertSchema, ...errors } } }, async (request) => {
    const { id } = request.params as { id: number };
    return presentAlert(await admin.get(request.project.id, id));
  });

  app.patch(
    '/alerts/:id',
    { schema: { tags, summary: 'Change an alert (checked again whole; active again)', params: idParams, body: { type: 'object', properties: fields, additionalProperties: false }, response: { 200: alertSchema, ...errors } } },
    async (request) => {
      const { id } = request.params as { id: number };
      return presentAlert(await admin.update(request.project.id, id, request.body as AlertInput));
    },
  );

  app.delete('/alerts/:id', { schema: { tags, summary: 'Delete an alert and its history', params: idParams, response: { 204: { type: 'null' }, ...errors } } }, async (request, reply) => {
    const { id } = request.params as { id: number };
    await admin.remove(request.project.id, id);
    return reply.code(204).send();
  });

  app.post(
    '/alerts/:id/test',
    { schema: { tags, summary: 'Send the alert to every channel now, its name prefixed "[TEST] ", and answer what each replied', params: idParams, response: { 200: { type: 'object', properties: { alert_id: { type: 'integer' }, payload: free, results: { type: 'array', items: free } } }, ...errors } } },
    async (request) => {
      const { id } = request.params as { id: number };
      return admin.test(request.project.id, id);
    },
  );

  app.get(
    '/alerts/:id/history',
    { schema: { tags, summary: "The alert's checks, newest first: each bucket's value, what it was compared with, whether it crossed and was notified", params: idParams, querystring: page, response: { 200: { type: 'object', properties: { results: { type: 'array', items: free }, next_cursor: { type: ['string', 'null'] } } }, ...errors } } },
    async (request) => {
      const { id } = request.params as { id: number };
      const q = request.query as { limit?: number; cursor?: string };
      const limit = pageLimit(q.limit, opts);
      const rows = await admin.history(request.project.id, id, q.cursor === undefined ? undefined : decodeCursor(q.cursor, isIdCursor), limit + 1);
      const results = rows.slice(0, limit);
      return { results: results.map(presentCheck), next_cursor: rows.length > limit ? encodeCursor(results.at(-1)!.id) : null };
    },
  );
}
