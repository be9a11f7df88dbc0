import crypto from 'node:crypto';
import os from 'node:os';

/** Names this process in leases and the attempt log: host, pid and a random part (pids repeat across restarts). */
export const newWorkerName = (): string => `${os.hostname()}:${process.pid}:${crypto.randomBytes(4).toString('hex')}`;
