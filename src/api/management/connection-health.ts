import type { FastifyInstance } from 'fastify';
import type { ConnectionAdmin } from '../../delivery/connection-admin.js';
import { parseDuration } from '../../duration.js';
import { iso } from '../../iso-time.js';
import { recentAttempts, type HealthAttempt } from '../../store/deliveries-repo.js';
import { ApiError, errorSchema } from '../errors.js';
import { idParams } from './paging.js';

/** Deliveries a health report reads at most (their attempts follow): see recentAttempts. */
const SAMPLE = 1000;
const LAST_ERRORS = 10;
const MAX_WINDOW_MS = parseDuration('30d')!;

/** The value below which `fraction` of the sorted values lie (nearest rank). */
const percentile = (sorted: number[], fraction: number) => sorted[Math.max(0, Math.ceil(fraction * sorted.length) - 1)]!;

function summarize(attempts: HealthAttempt[]) {
  const succeeded = attempts.filter((a) => a.outcome === 'success').length;
  const latencies = attempts.map((a) => a.duration_ms).sort((a, b) => a - b);
  const errors = attempts.filter((a) => a.outcome !== 'success').sort((a, b) => b.started_at - a.started_at || b.delivery_id - a.delivery_id);
  return {
    attempts: attempts.length,
    succeeded,
    failed: attempts.length - succeeded,
    success_rate: attempts.length === 0 ? null : succeeded / attempts.length,
    latency_ms: latencies.length === 0 ? null : { p50: percentile(latencies, 0.5), p95: percentile(latencies, 0.95) },
    last_errors: errors.slice(0, LAST_ERRORS).map((a) => ({
      delivery_id: a.delivery_id,
      attempt: a.attempt,
      started_at: iso(a.started_at)!,
      status: a.status,
      outcome: a.outcome,
      reason: a.reason,
      error: a.error,
    })),
  };
}

const healthSchema = {
  type: 'object',
  properties: {
    window: { type: 'string' },
    since: { type: 'string' },
    attempts: { type: 'integer' },
    succeeded: { type: 'integer' },
    failed: { type: 'integer' },
    success_rate: { type: ['number', 'null'], description: 'Succeeded attempts over all attempts, 0 to 1; null without attempts' },
    latency_ms: { type: ['object', 'null'], properties: { p50: { type: 'integer' }, p95: { type: 'integer' } } },
    last_errors: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          delivery_id: { type: 'integer' },
          attempt: { type: 'integer' },
          started_at: { type: 'string' },
          status: { type: ['integer', 'null'] },
          outcome: { type: 'string' },
          reason: { type: ['string', 'null'] },
          error: { type: ['string', 'null'] },
        },
      },
    },
    deliveries_read: { type: 'integer', description: `The connection's latest deliveries read (at most ${SAMPLE})` },
    sampled: { type: 'boolean', description: 'true when the window holds older deliveries than those read: the figures are of the latest ones' },
  },
} as const;

export function connectionHealthRoute(app: FastifyInstance, admin: ConnectionAdmin) {
  app.get(
    '/connections/:id/health',
    {
      schema: {
        tags: ['Connections'],
        summary: `How a destination answered lately: success rate, latency and the last errors of the attempts in a window, over its latest ${SAMPLE} deliveries`,
        params: idParams,
        querystring: {
          type: 'object',
          properties: { window: { type: 'string', pattern: '^[1-9][0-9]{0,4}[mhd]$', default: '24h', description: 'Minutes, hours or days up to 30d: 90m, 24h, 7d' } },
          additionalProperties: false,
        },
        response: { 200: healthSchema, 400: errorSchema, 401: errorSchema, 404: errorSchema },
      },
    },
    async (request) => {
      const { id } = request.params as { id: number };
      const { window } = request.query as { window: string };
      // The schema's pattern admits minutes, hours and days only.
      const windowMs = parseDuration(window)!;
      if (windowMs > MAX_WINDOW_MS) throw new ApiError(400, 'invalid_window', 'window must be at most 30d');
      await admin.get(request.project.id, id);
      const since = Date.now() - windowMs;
      const read = await recentAttempts(admin.store, id, since, SAMPLE);
      return {
        window,
        since: iso(since)!,
        ...summarize(read.attempts),
        deliveries_read: read.deliveries,
        sampled: read.deliveries === SAMPLE && read.oldestMadeAt !== null && read.oldestMadeAt > since,
      };
    },
  );
}
