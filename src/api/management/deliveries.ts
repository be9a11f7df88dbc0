import type { FastifyInstance } from 'fastify';
import type { Dispatcher } from '../../delivery/dispatcher.js';
import type { Store } from '../../store/database.js';
import { findDelivery, listAttempts, listDeliveries, retryDelivery, type DeliveryRow } from '../../store/deliveries-repo.js';
import { readJson } from '../../store/schema.js';
import { decodeCursor, encodeCursor, pageSchema } from '../cursor.js';
import { ApiError, errorSchema } from '../errors.js';
import { idParams, isIdCursor, pageLimit } from './paging.js';
import { iso } from '../../iso-time.js';
import { timeParam } from './time-param.js';


const deliveryFields = {
  id: { type: 'integer' },
  channel: { type: 'string', description: 'How it is sent: webhook, slack, sms (HTTP) or email (SMTP)' },
  connection_id: { type: ['integer', 'null'], description: 'null for a channel with a destination of its own (e-mail)' },
  webhook_id: { type: 'string' },
  owner: { type: 'object', properties: { kind: { type: 'string' }, id: { type: 'string' } } },
  event_id: { type: ['string', 'null'], description: 'The event a subscription delivery tells of' },
  policy: { type: 'string' },
  state: { type: 'string', enum: ['pending', 'succeeded', 'failed', 'cancelled'] },
  outcome: { type: ['string', 'null'] },
  attempts: { type: 'integer' },
  next_attempt_at: { type: ['string', 'null'] },
  last_status: { type: ['integer', 'null'] },
  last_error: { type: ['string', 'null'] },
  created_at: { type: 'string' },
  completed_at: { type: ['string', 'null'] },
  body_pruned_at: { type: ['string', 'null'], description: 'When retention removed the body of this finished delivery: it can no longer be sent again' },
} as const;

const attemptSchema = {
  type: 'object',
  properties: {
    attempt: { type: 'integer' },
    started_at: { type: 'string' },
    duration_ms: { type: 'integer' },
    status: { type: ['integer', 'null'] },
    outcome: { type: 'string' },
    reason: { type: ['string', 'null'], description: 'Why it was judged so: the receiver’s own message where it gave one' },
    error: { type: ['string', 'null'] },
    response_headers: { type: ['object', 'null'], additionalProperties: { type: 'string' } },
    response_body: { type: ['string', 'null'] },
    worker: { type: 'string' },
  },
} as const;

function present(d: DeliveryRow) {
  return {
    id: d.id,
    channel: d.channel,
    connection_id: d.connection_id,
    webhook_id: d.webhook_id,
    owner: { kind: d.owner_kind, id: d.owner_id },
    event_id: d.event_id,
    policy: d.policy,
    state: d.state,
    outcome: d.outcome,
    attempts: d.attempts,
    next_attempt_at: d.state === 'pending' ? iso(d.next_attempt_at) : null,
    last_status: d.last_status,
    last_error: d.last_error,
    created_at: iso(d.created_at)!,
    completed_at: iso(d.completed_at),
    body_pruned_at: iso(d.body_pruned_at),
  };
}

const tags = ['Deliveries'];

export async function deliveryRoutes(app: FastifyInstance, opts: { store: Store; dispatcher: Dispatcher; defaultPageSize: number; maxPageSize: number }) {
  const { store } = opts;

  app.get(
    '/deliveries',
    {
      schema: {
        tags,
        summary: 'List deliveries, newest first',
        querystring: {
          type: 'object',
          properties: {
            ...pageSchema,
            connection_id: { type: 'integer', minimum: 1 },
            channel: { type: 'string', maxLength: 64 },
            state: { type: 'string', enum: ['pending', 'succeeded', 'failed', 'cancelled'] },
            owner_kind: { type: 'string' },
            owner_id: { type: 'string', description: 'With owner_kind: one owner, or, ending in "/" or ":", every owner under it: a subscription\'s deliveries are owner_kind=subscription (its tests subscription-test) and owner_id={id}/, an alert\'s alert and {id}/, a sync run\'s pages cohort-sync and {run}:' },
            event_id: { type: 'string', maxLength: 64 },
            since: { type: 'string', description: 'Made at or after; epoch s, epoch ms or ISO 8601' },
            until: { type: 'string', description: 'Made before; epoch s, epoch ms or ISO 8601' },
          },
          additionalProperties: false,
        },
        response: {
          200: { type: 'object', properties: { results: { type: 'array', items: { type: 'object', properties: deliveryFields } }, next_cursor: { type: ['string', 'null'] } } },
          400: errorSchema,
          401: errorSchema,
        },
      },
    },
    async (request) => {
      const q = request.query as { limit?: number; cursor?: string; connection_id?: number; channel?: string; state?: DeliveryRow['state']; owner_kind?: string; owner_id?: string; event_id?: string; since?: string; until?: string };
      if (q.owner_id !== undefined && q.owner_kind === undefined) throw new ApiError(400, 'invalid_filter', 'owner_id needs owner_kind');
      const limit = pageLimit(q.limit, opts);
      const before = q.cursor === undefined ? undefined : decodeCursor(q.cursor, isIdCursor);
      const rows = await listDeliveries(store, request.project.id, {
        connectionId: q.connection_id,
        channel: q.channel,
        state: q.state,
        ownerKind: q.owner_kind,
        ownerId: q.owner_id,
        eventId: q.event_id,
        since: timeParam('since', q.since),
        until: timeParam('until', q.until),
        before,
        limit: limit + 1,
      });
      const page = rows.slice(0, limit);
      return { results: page.map(present), next_cursor: rows.length > limit ? encodeCursor(page.at(-1)!.id) : null };
    },
  );

  app.get(
    '/deliveries/:id',
    {
      schema: {
        tags,
        summary: 'One delivery with its request body and every attempt',
        params: idParams,
        response: {
          200: {
            type: 'object',
            properties: {
              ...deliveryFields,
              content_type: { type: 'string' },
              headers: { type: 'object', additionalProperties: { type: 'string' }, description: 'The delivery’s own headers (an e-mail’s to and subject)' },
              body: { type: ['string', 'null'], description: 'null once retention removed it (body_pruned_at)' },
              attempts_log: { type: 'array', items: attemptSchema },
            },
          },
          401: errorSchema,
          404: errorSchema,
        },
      },
    },
    async (request) => {
      const { id } = request.params as { id: number };
      const d = await findDelivery(store, request.project.id, id);
      if (!d) throw new ApiError(404, 'not_found', `no delivery ${id} in this project`);
      const attempts = await listAttempts(store, id);
      return {
        ...present(d),
        content_type: d.content_type,
        headers: readJson<Record<string, string>>(d.headers),
        body: d.body_pruned_at === null ? d.body : null,
        attempts_log: attempts.map((a) => ({
          attempt: a.attempt,
          started_at: iso(a.started_at)!,
          duration_ms: a.duration_ms,
          status: a.status,
          outcome: a.outcome,
          reason: a.reason,
          error: a.error,
          response_headers: a.response_headers === null ? null : readJson<Record<string, string>>(a.response_headers),
          response_body: a.response_body,
          worker: a.worker,
        })),
      };
    },
  );

  app.post(
    '/deliveries/:id/retry',
    {
      schema: {
        tags,
        summary: 'Send a delivery again now, from the start of its retry schedule (same webhook-id)',
        params: idParams,
        response: { 200: { type: 'object', properties: deliveryFields }, 401: errorSchema, 404: errorSchema, 409: errorSchema },
      },
    },
    async (request) => {
      const { id } = request.params as { id: number };
      const result = await retryDelivery(store, request.project.id, id, Date.now());
      if (result === 'not_found') throw new ApiError(404, 'not_found', `no delivery ${id} in this project`);
      if (result === 'body_pruned') {
        throw new ApiError(409, 'body_pruned', `delivery ${id} cannot be sent again: retention removed its body (COHORTCAST_RETAIN_DELIVERY_BODIES); its attempt log is kept`);
      }
      if (result === 'in_flight') throw new ApiError(409, 'in_flight', `delivery ${id} is being sent right now; look again when the attempt ends`);
      opts.dispatcher.wake(true);
      return present(result);
    },
  );
}
