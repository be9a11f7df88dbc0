import type { FastifyInstance } from 'fastify';
import { presentReport, presentResult, type ReportAdmin, type ReportInput } from '../../reports/admin.js';
import { decodeCursor, encodeCursor, pageSchema } from '../cursor.js';
import { errorSchema } from '../errors.js';
import { idParams, isIdCursor, pageLimit } from './paging.js';
import { timeParam } from './time-param.js';

const free = { type: 'object', additionalProperties: true } as const;
const reportSchema = {
  type: 'object',
  properties: { id: { type: 'integer' }, name: { type: 'string' }, type: { type: 'string' }, query: free, created_at: { type: 'string' }, updated_at: { type: 'string' } },
} as const;
const fields = {
  name: { type: 'string', minLength: 1, maxLength: 200 },
  type: { type: 'string', enum: ['insights', 'funnels'] },
  query: {
    type: 'object',
    description:
      'insights: {"event"?, "measure": {"type": "total"|"unique"|"sum"|"average"|"min"|"max", "property"?}, "where"?, "profile_where"?, "cohort_id"?, "breakdown"?: {"property", "on": "event"|"profile", "limit"?}, "interval": "hour"|"day"|"week", "timezone"?}; ' +
      'funnels: {"steps": [{"event", "where"?}], "window_days"? | "window_hours"?, "measure": "conversion"|"completed", "profile_where"?, "cohort_id"?, "breakdown"?, "interval", "timezone"?}',
  },
} as const;
const errors = { 400: errorSchema, 401: errorSchema, 404: errorSchema, 409: errorSchema, 422: errorSchema } as const;
const tags = ['Reports'];

export async function reportRoutes(app: FastifyInstance, opts: { admin: ReportAdmin; defaultPageSize: number; maxPageSize: number }) {
  const { admin } = opts;

  app.post(
    '/reports',
    { schema: { tags, summary: 'Save a report (the metric an alert watches)', body: { type: 'object', properties: fields, required: ['name', 'type', 'query'], additionalProperties: false }, response: { 201: reportSchema, ...errors } } },
    async (request, reply) => reply.code(201).send(presentReport(await admin.create(request.project.id, request.body as ReportInput))),
  );

  app.get(
    '/reports',
    { schema: { tags, summary: 'List reports', querystring: { type: 'object', properties: pageSchema, additionalProperties: false }, response: { 200: { type: 'object', properties: { results: { type: 'array', items: reportSchema }, next_cursor: { type: ['string', 'null'] } } }, ...errors } } },
    async (request) => {
      const q = request.query as { limit?: number; cursor?: string };
      const limit = pageLimit(q.limit, opts);
      const rows = await admin.list(request.project.id, q.cursor === undefined ? undefined : decodeCursor(q.cursor, isIdCursor), limit + 1);
      const page = rows.slice(0, limit);
      return { results: page.map(presentReport), next_cursor: rows.length > limit ? encodeCursor(page.at(-1)!.id) : null };
    },
  );

  app.get('/reports/:id', { schema: { tags, summary: 'One report', params: idParams, response: { 200: reportSchema, ...errors } } }, async (request) => {
    const { id } = request.params as { id: number };
    return presentReport(await admin.get(request.project.id, id));
  });

  app.patch(
    '/reports/:id',
    { schema: { tags, summary: 'Change a report (checked again whole)', params: idParams, body: { type: 'object', properties: fields, additionalProperties: false }, response: { 200: reportSchema, ...errors } } },
    async (request) => {
      const { id } = request.params as { id: number };
      return presentReport(await admin.update(request.project.id, id, request.body as ReportInput));
    },
  );

  app.delete('/reports/:id', { schema: { tags, summary: 'Delete a report (409 while an alert watches it)', params: idParams, response: { 204: { type: 'null' }, ...errors } } }, async (request, reply) => {
    const { id } = request.params as { id: number };
    await admin.remove(request.project.id, id);
    return reply.code(204).send();
  });

  app.get(
    '/reports/:id/result',
    {
      schema: {
        tags,
        summary: "The report's series per segment over the buckets covering [from, to) (default: the last 30 days, 48 hours or 12 weeks)",
        params: idParams,
        querystring: { type: 'object', properties: { from: { type: 'string', description: 'ISO 8601 or epoch seconds/ms' }, to: { type: 'string' } }, additionalProperties: false },
        response: {
          200: {
            type: 'object',
            properties: {
              report_id: { type: 'integer' },
              interval: { type: 'string' },
              timezone: { type: 'string' },
              source: { type: 'string', description: 'daily_counts or events: which table answered' },
              buckets: { type: 'array', items: { type: 'object', properties: { from: { type: 'string' }, to: { type: 'string' } } } },
              series: { type: 'array', items: { type: 'object', properties: { segment: { type: 'string' }, values: { type: 'array', items: { type: ['number', 'null'] } } } } },
            },
          },
          ...errors,
        },
      },
    },
    async (request) => {
      const { id } = request.params as { id: number };
      const q = request.query as { from?: string; to?: string };
      const from = timeParam('from', q.from);
      const to = timeParam('to', q.to);
      return presentResult(id, await admin.result(request.project.id, id, { ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) }));
    },
  );
}
