import { sql } from 'kysely';
import { pino } from 'pino';
import { request } from 'undici';
import type { Config } from '../../src/config.js';
import { createDeliveryEngine } from '../../src/delivery/engine.js';
import { createMetrics } from '../../src/observability/metrics.js';
import type { Store } from '../../src/store/database.js';
import { startCliServer } from './cli.js';
import type { TestDatabase } from './database.js';

/** Lets spawned processes send to plain-HTTP receivers on 127.0.0.1 (tests only). */
export const localDeliveryEnv = { COHORTCAST_ALLOW_HTTP: 'true', COHORTCAST_ALLOWED_NETWORKS: '127.0.0.0/8' };

export interface CreatedConnection {
  id: number;
  signing_secret: string;
  max_concurrency: number;
  timeout_ms: number;
}

/**
 * Creates a destination the way an operator does: `cohortcast serve` on the test database,
 * POST /api/v1/connections with the project secret, then the server is stopped (so its own
 * dispatcher sends nothing the test enqueues afterwards).
 */
export async function createConnectionWithCli(
  db: TestDatabase,
  projectSecret: string,
  body: Record<string, unknown>,
  env: Record<string, string> = {},
): Promise<CreatedConnection> {
  const server = await startCliServer(db.args, { ...db.env, ...localDeliveryEnv, ...env });
  try {
    const res = await request(`${server.url}/api/v1/connections`, {
      method: 'POST',
      headers: { authorization: `Bearer ${projectSecret}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.body.text();
    if (res.statusCode !== 201) throw new Error(`POST /api/v1/connections answered ${res.statusCode}: ${text}`);
    return JSON.parse(text) as CreatedConnection;
  } finally {
    await server.stop();
  }
}

/**
 * Enqueues `count` standard-policy deliveries to one destination in one transaction, through the
 * outbox of an engine that is never started (this process only produces); their webhook-ids.
 */
export async function enqueueDeliveries(store: Store, config: Config, projectId: number, connectionId: number, count: number, tag = 'test'): Promise<string[]> {
  const ids: string[] = [];
  const engine = await createDeliveryEngine(config, store, createMetrics(), pino({ level: 'silent' }));
  const { outbox } = engine;
  await store.db.transaction().execute(async (trx) => {
    // Chunks keep each INSERT under SQLite's and PostgreSQL's bound-parameter limits.
    for (let start = 0; start < count; start += 500) {
      const items = Array.from({ length: Math.min(500, count - start) }, (_, k) => ({
        projectId,
        connectionId,
        ownerKind: tag,
        ownerId: start + k,
        policy: 'standard' as const,
        contentType: 'application/json',
        body: JSON.stringify({ tag, n: start + k }),
      }));
      for (const row of await outbox.enqueue(trx, items)) ids.push(row.webhook_id);
    }
  });
  await engine.close();
  return ids;
}

/** Deliveries of one destination per state. */
export async function deliveryStates(store: Store, connectionId: number): Promise<Record<string, number>> {
  const rows = await store.db
    .selectFrom('deliveries')
    .select(['state', sql<number>`count(*)`.as('n')])
    .where('connection_id', '=', connectionId)
    .groupBy('state')
    .execute();
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

/**
 * Polls `check` every `intervalMs` until it returns true; throws after `timeoutMs` with what
 * `describe` says about the state at that point.
 */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  { timeoutMs, intervalMs = 25, describe }: { timeoutMs: number; intervalMs?: number; describe: () => string | Promise<string> },
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${await describe()}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The worker that delivered the delivery with this webhook-id, once it has succeeded (within 15 s). */
export async function deliveredBy(store: Store, webhookId: string): Promise<string> {
  let worker: string | undefined;
  await waitUntil(
    async () => {
      const row = await store.db
        .selectFrom('deliveries as d')
        .innerJoin('delivery_attempts as a', 'a.delivery_id', 'd.id')
        .select('a.worker')
        .where('d.webhook_id', '=', webhookId)
        .where('d.state', '=', 'succeeded')
        .where('a.outcome', '=', 'success')
        .executeTakeFirst();
      worker = row?.worker;
      return worker !== undefined;
    },
    { timeoutMs: 15_000, describe: () => `delivery ${webhookId} never succeeded` },
  );
  return worker!;
}

/**
 * The most attempts open at once, from the engine's own attempt log: each attempt is the interval
 * [started_at, started_at + duration_ms). Both are whole milliseconds read from two clocks, so
 * each interval's end is taken 2 ms early: an attempt that starts the moment another ends (its
 * slot passed on) is not counted as overlapping it.
 */
export function mostOpenAtOnce(attempts: { started_at: string | number; duration_ms: number }[]): number {
  const edges = attempts.flatMap((a) => {
    const start = typeof a.started_at === 'number' ? a.started_at : Date.parse(a.started_at);
    return [
      [start, 1],
      [start + Math.max(0, a.duration_ms - 2), -1],
    ] as [number, number][];
  });
  edges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let open = 0;
  let most = 0;
  for (const [, step] of edges) most = Math.max(most, (open += step));
  return most;
}
