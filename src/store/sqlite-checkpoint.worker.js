// @ts-check
/**
 * The SQLite checkpoint thread: copies the WAL back into the database file on a timer, with a
 * connection of its own. A checkpoint waits on the disk (it fsyncs the database file); here that
 * wait blocks neither the event loop nor the writer thread, as PASSIVE checkpoints take no lock
 * that writers need. {type:'close'} closes the connection and ends the thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const port = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);
const { file, synchronous, busyTimeoutMs, checkpointIntervalMs } = workerData;
const db = new Database(file, { fileMustExist: true, timeout: busyTimeoutMs });
db.pragma(`synchronous = ${synchronous}`);
db.pragma('wal_autocheckpoint = 0');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const timer = setInterval(() => {
  try {
    checkpoint.get();
  } catch {
    // busy: the next tick tries again
  }
}, checkpointIntervalMs);

port.on('message', (msg) => {
  if (msg.type !== 'close') return;
  clearInterval(timer);
  db.close();
  port.close();
});
