// @ts-check
/**
 * A one-shot read on a connection of its own (WAL: it reads a consistent snapshot while the service
 * keeps writing). For reads that scan whole tables (the storage report): on the service's one
 * connection they would hold up ingestion and delivery for as long as they take.
 * workerData: { file, queries: [{ sql, parameters }] }; posts { rows: [...] per query } or { error }.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const port = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);
const { file, queries } = workerData;
let db;
try {
  db = new Database(file, { readonly: true, fileMustExist: true });
  const results = [];
  for (const q of queries) results.push(db.prepare(q.sql).all(...q.parameters));
  port.postMessage({ rows: results });
} catch (err) {
  port.postMessage({ error: err instanceof Error ? err.message : String(err) });
} finally {
  db?.close();
}
