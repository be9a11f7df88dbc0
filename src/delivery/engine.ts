import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { emailChannel } from '../channels/email.js';
import { slackChannel, slackPolicy } from '../channels/slack.js';
import { smsChannel, smsPolicy } from '../channels/sms.js';
import { webhookChannel } from '../channels/webhook.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../store/database.js';
import { queueStats } from '../store/outbox-repo.js';
import { newWorkerName } from '../worker-name.js';
import { ChannelRegistry } from './channels.js';
import { ConnectionDirectory } from './connections.js';
import { Dispatcher } from './dispatcher.js';
import { HttpSender, type Sender } from './http-sender.js';
import { NetworkGuard } from './network-guard.js';
import { Outbox } from './outbox.js';
import { OwnerRegistry } from './owners.js';
import { policyRegistry, type PolicyRegistry } from './policies.js';
import type { SecretBox } from './secret-box.js';
import { ThreadedSender } from './threaded-sender.js';
import { openSecretBox } from './secret-key.js';

/**
 * Everything that sends: shared by `serve` (with the API) and `worker` (without). Surfaces plug in
 * through its registries: a channel for a new way of sending, a policy for a new reading of
 * answers, an owner to hear how their deliveries end.
 */
export interface DeliveryEngine {
  guard: NetworkGuard;
  box: SecretBox;
  connections: ConnectionDirectory;
  channels: ChannelRegistry;
  policies: PolicyRegistry;
  owners: OwnerRegistry;
  outbox: Outbox;
  dispatcher: Dispatcher;
  close(): Promise<void>;
}

export async function createDeliveryEngine(config: Config, store: Store, metrics: Metrics, log: Logger, worker = newWorkerName()): Promise<DeliveryEngine> {
  const policy = { allowHttp: config.delivery.allowHttp, allowedNetworks: config.delivery.allowedNetworks };
  const guard = new NetworkGuard(policy);
  const box = await openSecretBox(config, store);
  const connections = new ConnectionDirectory(store, box, Math.min(1000, config.delivery.pollIntervalMs));
  const owners = new OwnerRegistry();
  const limits = { maxResponseBytes: config.delivery.maxResponseBytes };
  const sender: Sender = config.delivery.senderThread ? new ThreadedSender({ policy, limits }, log) : new HttpSender(guard, limits);
  const channels = new ChannelRegistry();
  channels.register(webhookChannel(sender, config.delivery.throttleMs));
  channels.register(emailChannel(config.mail));
  channels.register(slackChannel(sender, config.delivery.throttleMs));
  channels.register(smsChannel(sender, config.delivery.throttleMs));
  const policies = policyRegistry(config.delivery, config.mail);
  policies.register(slackPolicy(config.delivery.standardSchedule, config.delivery.jitter));
  policies.register(smsPolicy(config.delivery.standardSchedule, config.delivery.jitter));
  const outbox = new Outbox({ channels, policies });
  // PostgreSQL commits wait on the disk: record several batches at once, leaving the pool room.
  const recorders = store.dialect === 'postgres' ? Math.max(1, Math.floor(config.postgres.poolSize / 2)) : 1;
  const dispatcher = new Dispatcher({ store, channels, policies, connections, owners, config: config.delivery, metrics, log, worker, recorders });
  metrics.queueSource.read = () => queueStats(store, Date.now());
  return {
    guard,
    box,
    connections,
    channels,
    policies,
    owners,
    outbox,
    dispatcher,
    async close() {
      await dispatcher.stop();
      await channels.close();
      await sender.close();
    },
  };
}
