import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../store/database.js';
import { queueStats } from '../store/outbox-repo.js';
import { ConnectionDirectory } from './connections.js';
import { Dispatcher } from './dispatcher.js';
import { HttpSender, type Sender } from './http-sender.js';
import { NetworkGuard } from './network-guard.js';
import { OwnerRegistry } from './owners.js';
import type { SecretBox } from './secret-box.js';
import { ThreadedSender } from './threaded-sender.js';
import { openSecretBox } from './secret-key.js';

/** Everything that sends: shared by `serve` (with the API) and `worker` (without). */
export interface DeliveryEngine {
  guard: NetworkGuard;
  box: SecretBox;
  connections: ConnectionDirectory;
  owners: OwnerRegistry;
  dispatcher: Dispatcher;
  close(): Promise<void>;
}

export async function createDeliveryEngine(config: Config, store: Store, metrics: Metrics, log: Logger): Promise<DeliveryEngine> {
  const policy = { allowHttp: config.delivery.allowHttp, allowedNetworks: config.delivery.allowedNetworks };
  const guard = new NetworkGuard(policy);
  const box = await openSecretBox(config, store);
  const connections = new ConnectionDirectory(store, box, Math.min(1000, config.delivery.pollIntervalMs));
  const owners = new OwnerRegistry();
  const limits = { maxResponseBytes: config.delivery.maxResponseBytes };
  const sender: Sender = config.delivery.senderThread ? new ThreadedSender({ policy, limits }, log) : new HttpSender(guard, limits);
  // PostgreSQL commits wait on the disk: record several batches at once, leaving the pool room.
  const recorders = store.dialect === 'postgres' ? Math.max(1, Math.floor(config.postgres.poolSize / 2)) : 1;
  const dispatcher = new Dispatcher({ store, sender, connections, owners, config: config.delivery, metrics, log, recorders });
  metrics.queueSource.read = () => queueStats(store, Date.now());
  return {
    guard,
    box,
    connections,
    owners,
    dispatcher,
    async close() {
      await dispatcher.stop();
      await sender.close();
    },
  };
}
