import type { FastifyInstance } from 'fastify';
import { iso } from '../../iso-time.js';
import type { RetentionSurface, StorageStatus } from '../../retention/surface.js';
import { errorSchema } from '../errors.js';

const counts = { type: 'object', additionalProperties: { type: 'integer' } } as const;
const storageSchema = {
  type: 'object',
  properties: {
    dialect: { type: 'string' },
    database: {
      type: 'object',
      properties: {
        bytes: { type: 'integer' },
        free_bytes: { type: ['integer', 'null'], description: 'SQLite: pages freed by deletes, reused by later writes' },
        wal_bytes: { type: ['integer', 'null'] },
      },
    },
    kinds: { type: 'array', items: { type: 'object', properties: { kind: { type: 'string' }, rows: { type: 'integer' }, bytes: { type: 'integer' } } } },
    tables: { type: 'array', items: { type: 'object', properties: { table: { type: 'string' }, kind: { type: 'string' }, rows: { type: 'integer' }, bytes: { type: 'integer' } } } },
    retention_ms: { ...counts, description: 'How long each kind is kept; 0: for ever' },
    next_pruning: {
      type: 'object',
      properties: { at: { type: ['string', 'null'] }, removes: { ...counts, description: 'Rows it would remove if it ran now (delivery_bodies: bodies emptied; sync_snapshots: superseded snapshot rows the sweep drops)' } },
    },
    last_pruning: {
      type: ['object', 'null'],
      properties: { started_at: { type: 'string' }, finished_at: { type: 'string' }, removed: counts, slices: { type: 'integer' }, longest_slice_ms: { type: 'number' } },
    },
  },
} as const;

export function presentStorage(s: StorageStatus) {
  const kinds = new Map<string, { kind: string; rows: number; bytes: number }>();
  for (const t of s.tables) {
    const k = kinds.get(t.kind) ?? { kind: t.kind, rows: 0, bytes: 0 };
    k.rows += t.rows;
    k.bytes += t.bytes;
    kinds.set(t.kind, k);
  }
  return {
    dialect: s.dialect,
    database: { bytes: s.database.bytes, free_bytes: s.database.freeBytes, wal_bytes: s.database.walBytes },
    kinds: [...kinds.values()].sort((a, b) => b.bytes - a.bytes),
    tables: [...s.tables].sort((a, b) => b.bytes - a.bytes),
    retention_ms: s.retention,
    next_pruning: { at: iso(s.nextPruningAt), removes: s.prunable },
    last_pruning: s.lastPruning && {
      started_at: iso(s.lastPruning.startedAt),
      finished_at: iso(s.lastPruning.finishedAt),
      removed: s.lastPruning.removed,
      slices: s.lastPruning.slices,
      longest_slice_ms: Math.round(s.lastPruning.longestSliceMs * 100) / 100,
    },
  };
}

/** The service's storage: every project's secret sees it (it holds sizes and counts, no project's data). */
export async function storageRoutes(app: FastifyInstance, opts: { retention: RetentionSurface }) {
  app.get(
    '/storage',
    {
      schema: {
        tags: ['Operations'],
        summary: 'Rows and bytes per table and kind, retention settings, and what the next pruning will remove',
        description: 'Counts every table: on SQLite it reads on a connection of its own, so ingestion and delivery go on meanwhile, but on a large database it takes seconds.',
        response: { 200: storageSchema, 401: errorSchema },
      },
    },
    async () => presentStorage(await opts.retention.status(Date.now())),
  );
}
