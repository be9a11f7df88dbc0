import type { FastifyInstance } from 'fastify';
import type { SyncAdmin, SyncInput } from '../../cohort-sync/admin.js';
import type { RunRow, SyncView } from '../../store/cohort-sync-repo.js';
import { readJson } from '../../store/schema.js';
import { decodeCursor, encodeCursor, pageSchema } from '../cursor.js';
import { errorSchema } from '../errors.js';
import { idParams, isIdCursor, pageLimit } from './paging.js';
import { iso } from '../../iso-time.js';


const syncSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    cohort_id: { type: 'integer' },
    connection_id: { type: 'integer' },
    properties_to_export: { type: 'array', items: { type: 'string' } },
    owner_emails: { type: 'array', items: { type: 'string' } },
    interval_minutes: { type: ['integer', 'null'] },
    one_time: { type: 'boolean' },
    state: { type: 'string', enum: ['active', 'paused', 'done'] },
    state_reason: { type: ['string', 'null'], description: 'Why it is paused: the receiver’s own error message where it sent one.' },
    next_run_at: { type: ['string', 'null'] },
    last_success_at: { type: ['string', 'null'] },
    created_at: { type: 'string' },
  },
} as const;

const runSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    session_id: { type: 'string' },
    kind: { type: 'string', enum: ['full', 'diff'] },
    state: { type: 'string', enum: ['running', 'succeeded', 'failed', 'paused', 'abandoned'] },
    total_pages: { type: 'integer' },
    pages_acked: { type: 'integer' },
    members: { type: 'integer' },
    members_added: { type: 'integer' },
    members_removed: { type: 'integer' },
    error: { type: ['string', 'null'], description: 'The receiver’s error message, or what went wrong' },
    started_at: { type: 'string' },
    finished_at: { type: ['string', 'null'] },
  },
} as const;

const presentSync = (s: SyncView) => ({
  id: s.id,
  cohort_id: s.cohort_id,
  connection_id: s.connection_id,
  properties_to_export: readJson<string[]>(s.properties_to_export),
  owner_emails: readJson<string[]>(s.owner_emails),
  interval_minutes: s.interval_ms === null ? null : s.interval_ms / 60_000,
  one_time: s.interval_ms === null,
  state: s.state,
  state_reason: s.state_reason,
  next_run_at: iso(s.next_run_at),
  last_success_at: iso(s.base_at),
  created_at: iso(s.created_at),
});

const presentRun = (r: RunRow) => ({
  id: r.id,
  session_id: r.session_id,
  kind: r.kind,
  state: r.state,
  total_pages: r.total_pages,
  pages_acked: r.pages_acked,
  members: r.members,
  members_added: r.members_added,
  members_removed: r.members_removed,
  error: r.error,
  started_at: iso(r.started_at),
  finished_at: iso(r.finished_at),
});

const errors = { 400: errorSchema, 401: errorSchema, 404: errorSchema, 409: errorSchema } as const;
const tags = ['Cohort syncs'];
const list = (items: object) => ({ type: 'object', properties: { results: { type: 'array', items }, next_cursor: { type: ['string', 'null'] } } });

export async function cohortSyncRoutes(app: FastifyInstance, opts: { syncs: SyncAdmin; defaultPageSize: number; maxPageSize: number }) {
  const { syncs } = opts;

  app.post(
    '/cohort-syncs',
    {
      schema: {
        tags,
        summary: 'Sync a cohort to a connection: a full export now, then diffs every interval',
        body: {
          type: 'object',
          properties: {
            cohort_id: { type: 'integer', minimum: 1 },
            connection_id: { type: 'integer', minimum: 1 },
            properties_to_export: { type: 'array', items: { type: 'string' }, maxItems: 40 },
            owner_emails: { type: 'array', items: { type: 'string', maxLength: 320 }, maxItems: 20, description: 'Told by e-mail when the sync pauses' },
            interval_minutes: { type: 'integer', minimum: 1, maximum: 10_080 },
            one_time: { type: 'boolean' },
          },
          required: ['cohort_id', 'connection_id'],
          additionalProperties: false,
        },
        response: { 201: syncSchema, ...errors },
      },
    },
    async (request, reply) => reply.code(201).send(presentSync(await syncs.create(request.project.id, request.body as SyncInput))),
  );

  app.get(
    '/cohort-syncs',
    { schema: { tags, summary: 'List cohort syncs', querystring: { type: 'object', properties: pageSchema, additionalProperties: false }, response: { 200: list(syncSchema), ...errors } } },
    async (request) => {
      const q = request.query as { limit?: number; cursor?: string };
      const limit = pageLimit(q.limit, opts);
      const rows = await syncs.list(request.project.id, q.cursor === undefined ? undefined : decodeCursor(q.cursor, isIdCursor), limit + 1);
      const page = rows.slice(0, limit);
      return { results: page.map(presentSync), next_cursor: rows.length > limit ? encodeCursor(page.at(-1)!.id) : null };
    },
  );

  app.get('/cohort-syncs/:id', { schema: { tags, summary: 'One cohort sync: its state, and why when paused', params: idParams, response: { 200: syncSchema, ...errors } } }, async (request) => {
    const { id } = request.params as { id: number };
    return presentSync(await syncs.get(request.project.id, id));
  });

  app.delete('/cohort-syncs/:id', { schema: { tags, summary: 'Stop and delete a cohort sync', params: idParams, response: { 204: { type: 'null' }, ...errors } } }, async (request, reply) => {
    const { id } = request.params as { id: number };
    await syncs.remove(request.project.id, id);
    return reply.code(204).send();
  });

  app.post(
    '/cohort-syncs/:id/run',
    { schema: { tags, summary: 'Run now (409 while a run is going, or while paused)', params: idParams, response: { 202: syncSchema, ...errors } } },
    async (request, reply) => {
      const { id } = request.params as { id: number };
      await syncs.runNow(request.project.id, id);
      return reply.code(202).send(presentSync(await syncs.get(request.project.id, id)));
    },
  );

  app.post(
    '/cohort-syncs/:id/resume',
    { schema: { tags, summary: 'Resume a paused sync: its run goes on from the first unacknowledged page', params: idParams, response: { 202: syncSchema, ...errors } } },
    async (request, reply) => {
      const { id } = request.params as { id: number };
      await syncs.resume(request.project.id, id);
      return reply.code(202).send(presentSync(await syncs.get(request.project.id, id)));
    },
  );

  app.get(
    '/cohort-syncs/:id/runs',
    {
      schema: {
        tags,
        summary: 'The runs of a sync, newest first',
        params: idParams,
        querystring: { type: 'object', properties: pageSchema, additionalProperties: false },
        response: { 200: list(runSchema), ...errors },
      },
    },
    async (request) => {
      const { id } = request.params as { id: number };
      const q = request.query as { limit?: number; cursor?: string };
      const limit = pageLimit(q.limit, opts);
      const rows = await syncs.runs(request.project.id, id, q.cursor === undefined ? undefined : decodeCursor(q.cursor, isIdCursor), limit + 1);
      const page = rows.slice(0, limit);
      return { results: page.map(presentRun), next_cursor: rows.length > limit ? encodeCursor(page.at(-1)!.id) : null };
    },
  );
}
