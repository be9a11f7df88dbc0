import pg from 'pg';
import type { PostgresStore } from './database.js';
import { DELIVERY_CHANNEL } from './outbox-repo.js';

/**
 * PostgreSQL: one connection of its own per process LISTENing for the lanes that work was enqueued
 * on (outbox-repo.ts notifies at commit), so a delivery made by another process starts at once
 * instead of at the next poll. A connection that drops is made again after `retryMs`; meanwhile
 * (and always) the dispatcher's poll finds the work. Not from the pool: a LISTEN holds its
 * connection for the life of the process.
 */
export interface LaneNotices {
  close(): Promise<void>;
}

export interface LaneNoticeHandlers {
  /** A lane as the dispatcher keys it: a connection's id, or `channel:NAME`. */
  lane(lane: string): void;
  /** Listening (again): notifications sent while nobody listened are lost, so look for work now. */
  listening(): void;
  /** The connection failed or dropped; tried again after retryMs. */
  lost(err: unknown): void;
}

export function listenForLanes(store: PostgresStore, retryMs: number, on: LaneNoticeHandlers): LaneNotices {
  let closed = false;
  let current: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;

  const connect = async () => {
    if (closed) return;
    const client = new pg.Client(store.pool.options as pg.ClientConfig);
    let dropped = false;
    const drop = (err: unknown) => {
      if (dropped) return;
      dropped = true;
      if (current === client) current = undefined;
      client.removeAllListeners('notification');
      client.end().catch(() => {});
      if (closed) return;
      on.lost(err);
      retry = setTimeout(() => {
        retry = undefined;
        void connect();
      }, retryMs);
      retry.unref();
    };
    client.on('error', drop);
    client.on('end', () => drop(new Error('the connection ended')));
    client.on('notification', (n) => {
      if (n.payload) on.lane(n.payload);
    });
    try {
      await client.connect();
      await client.query(`listen ${DELIVERY_CHANNEL}`);
    } catch (err) {
      drop(err);
      return;
    }
    if (closed) {
      await client.end().catch(() => {});
      return;
    }
    current = client;
    on.listening();
  };
  void connect();

  return {
    async close() {
      closed = true;
      clearTimeout(retry);
      const client = current;
      current = undefined;
      if (client) {
        client.removeAllListeners('end');
        await client.end().catch(() => {});
      }
    },
  };
}
