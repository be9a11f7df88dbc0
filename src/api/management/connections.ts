import type { FastifyInstance } from 'fastify';
import { ConnectionAdmin } from '../../delivery/connection-admin.js';
import { listConnections, requeueFailed } from '../../store/connections-repo.js';
import { decodeCursor, encodeCursor, pageSchema } from '../cursor.js';
import { errorSchema } from '../errors.js';
import { idParams, isIdCursor, pageLimit } from './paging.js';
import { timeParam } from './time-param.js';
import { connectionHealthRoute } from './connection-health.js';

const headerName = { type: 'string', minLength: 1, maxLength: 256 } as const;
const connectionFields = {
  name: { type: 'string', minLength: 1, maxLength: 200 },
  url: { type: 'string', minLength: 1, maxLength: 2048, description: 'https:// (http:// only with COHORTCAST_ALLOW_HTTP=true)' },
  basic_auth: {
    type: ['object', 'null'],
    properties: { username: { type: 'string', maxLength: 512 }, password: { type: 'string', maxLength: 512 } },
    required: ['username', 'password'],
    additionalProperties: false,
  },
  headers: { type: 'object', additionalProperties: { type: 'string', maxLength: 8192 }, propertyNames: headerName, maxProperties: 50 },
  secret_header: {
    type: ['object', 'null'],
    description: 'A header carrying a shared secret, e.g. {"name": "X-Webhook-Secret", "value": "..."}; sealed at rest.',
    properties: { name: headerName, value: { type: 'string', minLength: 1, maxLength: 8192 } },
    required: ['name', 'value'],
    additionalProperties: false,
  },
  ed25519_signing: { type: 'boolean', description: 'Also sign with ed25519 (v1a); the public key is shown as ed25519_public_key.' },
  timeout_ms: { type: 'integer', minimum: 1 },
  max_concurrency: { type: 'integer', minimum: 1, maximum: 1000 },
  rate_limit_per_s: { type: ['integer', 'null'], minimum: 1 },
} as const;

const connectionSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    url: { type: 'string' },
    basic_auth: { type: ['object', 'null'], properties: { username: { type: 'string' } } },
    headers: { type: 'object', additionalProperties: { type: 'string' } },
    secret_header: { type: ['object', 'null'], properties: { name: { type: 'string' } } },
    ed25519_public_key: { type: ['string', 'null'] },
    timeout_ms: { type: 'integer' },
    max_concurrency: { type: 'integer' },
    rate_limit_per_s: { type: ['integer', 'null'] },
    state: { type: 'string', enum: ['active', 'throttled', 'disabled'] },
    disabled_at: { type: ['string', 'null'] },
    disabled_reason: { type: ['string', 'null'] },
    throttled_until: { type: ['string', 'null'] },
    previous_secret_valid_until: { type: ['string', 'null'] },
    created_at: { type: 'string' },
    updated_at: { type: 'string' },
    signing_secret: { type: 'string', description: 'Only in the answers to create and rotate-secret.' },
  },
} as const;

const errors = { 400: errorSchema, 401: errorSchema, 404: errorSchema, 409: errorSchema } as const;
const tags = ['Connections'];

export async function connectionRoutes(app: FastifyInstance, opts: { admin: ConnectionAdmin; defaultPageSize: number; maxPageSize: number }) {
  const { admin } = opts;
  const store = admin.store;

  app.post(
    '/connections',
    {
      schema: {
        tags,
        summary: 'Create a destination; the answer holds its signing secret, this once',
        body: { type: 'object', properties: connectionFields, required: ['name', 'url'], additionalProperties: false },
        response: { 201: connectionSchema, ...errors },
      },
    },
    async (request, reply) => {
      const body = request.body as Parameters<ConnectionAdmin['create']>[1];
      return reply.code(201).send(await admin.create(request.project.id, body));
    },
  );

  app.get(
    '/connections',
    {
      schema: {
        tags,
        summary: 'List destinations',
        querystring: { type: 'object', properties: pageSchema, additionalProperties: false },
        response: { 200: { type: 'object', properties: { results: { type: 'array', items: connectionSchema }, next_cursor: { type: ['string', 'null'] } } }, ...errors },
      },
    },
    async (request) => {
      const q = request.query as { limit?: number; cursor?: string };
      const limit = pageLimit(q.limit, opts);
      const after = q.cursor === undefined ? 0 : decodeCursor(q.cursor, isIdCursor);
      const rows = await listConnections(store, request.project.id, after, limit + 1);
      const page = rows.slice(0, limit);
      return {
        results: page.map((r) => admin.present(r)),
        next_cursor: rows.length > limit ? encodeCursor(page.at(-1)!.id) : null,
      };
    },
  );

  app.get(
    '/connections/:id',
    { schema: { tags, summary: 'One destination', params: idParams, response: { 200: connectionSchema, ...errors } } },
    async (request) => {
      const { id } = request.params as { id: number };
      return admin.present(await admin.get(request.project.id, id));
    },
  );

  app.patch(
    '/connections/:id',
    {
      schema: {
        tags,
        summary: 'Change a destination; {"enabled": true} re-enables one disabled after 410 Gone',
        params: idParams,
        body: { type: 'object', properties: { ...connectionFields, enabled: { type: 'boolean', enum: [true] } }, additionalProperties: false },
        response: { 200: connectionSchema, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params as { id: number };
      return admin.update(request.project.id, id, request.body as Parameters<ConnectionAdmin['update']>[2]);
    },
  );

  app.delete(
    '/connections/:id',
    { schema: { tags, summary: 'Delete a destination; deliveries still waiting for it are cancelled', params: idParams, response: { 204: { type: 'null' }, ...errors } } },
    async (request, reply) => {
      const { id } = request.params as { id: number };
      await admin.remove(request.project.id, id);
      return reply.code(204).send();
    },
  );

  app.post(
    '/connections/:id/rotate-secret',
    {
      schema: {
        tags,
        summary: 'Issue a new signing secret; the old one keeps signing during the grace period',
        params: idParams,
        body: { type: ['object', 'null'], properties: { grace_ms: { type: 'integer', minimum: 0, maximum: 7 * 24 * 3600 * 1000 } }, additionalProperties: false },
        response: { 200: connectionSchema, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params as { id: number };
      const body = (request.body ?? {}) as { grace_ms?: number };
      return admin.rotateSecret(request.project.id, id, body.grace_ms);
    },
  );

  app.post(
    '/connections/:id/test',
    {
      schema: {
        tags,
        summary: "Send a signed ping now and report the receiver's answer",
        params: idParams,
        response: {
          200: {
            type: 'object',
            properties: {
              delivery_id: { type: 'integer' },
              webhook_id: { type: 'string' },
              ok: { type: 'boolean' },
              status: { type: ['integer', 'null'] },
              duration_ms: { type: 'integer' },
              error: { type: ['string', 'null'] },
              response_body: { type: 'string' },
            },
          },
          ...errors,
        },
      },
    },
    async (request) => {
      const { id } = request.params as { id: number };
      return admin.test(request.project.id, id);
    },
  );

  app.post(
    '/connections/:id/recover',
    {
      schema: {
        tags,
        summary: 'Send again the deliveries to this destination that failed in a time window',
        params: idParams,
        body: {
          type: 'object',
          properties: { since: { type: 'string', description: 'Inclusive; epoch s, epoch ms or ISO 8601' }, until: { type: 'string', description: 'Exclusive; default now' } },
          required: ['since'],
          additionalProperties: false,
        },
        response: { 200: { type: 'object', properties: { requeued: { type: 'integer' } } }, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params as { id: number };
      const body = request.body as { since: string; until?: string };
      await admin.get(request.project.id, id);
      const now = Date.now();
      const requeued = await requeueFailed(store, id, timeParam('since', body.since)!, timeParam('until', body.until) ?? now, now);
      admin.wake();
      return { requeued };
    },
  );

  connectionHealthRoute(app, admin);
}
