import { parentPort, workerData } from 'node:worker_threads';
import { HttpSender, type DestinationLoad, type OutboundRequest, type SendOutcome } from './http-sender.js';
import { NetworkGuard, type NetworkPolicy } from './network-guard.js';

/**
 * The sender thread's entry (see threaded-sender.ts): the same HttpSender, fed with batches of
 * requests and answering with batches of results, so the wire's CPU is spent beside the
 * dispatcher's database work instead of after it.
 */
export interface SenderThreadData {
  policy: NetworkPolicy;
  limits: { maxResponseBytes: number };
}
export type ToSenderThread =
  | { type: 'send'; requests: [number, OutboundRequest][] }
  | { type: 'withdraw'; destinationId: number }
  | { type: 'load'; id: number; destinationId: number }
  | { type: 'close' };
export type FromSenderThread = { type: 'results'; results: [number, SendOutcome][] } | { type: 'load'; id: number; load: DestinationLoad } | { type: 'closed' };

const port = parentPort;
if (!port) throw new Error('sender-thread.js runs as a worker thread (threaded-sender.ts starts it)');
const data = workerData as SenderThreadData;
const sender = new HttpSender(new NetworkGuard(data.policy), data.limits);

let results: [number, SendOutcome][] = [];
let posting = false;
// Answers that arrive in the same turn go back in one message.
function answer(id: number, result: SendOutcome): void {
  results.push([id, result]);
  if (posting) return;
  posting = true;
  setImmediate(() => {
    posting = false;
    const batch = results;
    results = [];
    port!.postMessage({ type: 'results', results: batch } satisfies FromSenderThread);
  });
}

port.on('message', (msg: ToSenderThread) => {
  if (msg.type === 'send') {
    for (const [id, req] of msg.requests) void sender.send(req).then((result) => answer(id, result));
  } else if (msg.type === 'withdraw') {
    sender.withdraw(msg.destinationId);
  } else if (msg.type === 'load') {
    void sender.load(msg.destinationId).then((load) => port.postMessage({ type: 'load', id: msg.id, load } satisfies FromSenderThread));
  } else {
    void sender.close().finally(() => port.postMessage({ type: 'closed' } satisfies FromSenderThread));
  }
});
