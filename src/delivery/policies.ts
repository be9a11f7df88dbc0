import type { DeliveryConfig } from '../config.js';

/**
 * Retry policies are data: a schedule of delays plus how to read an answer. A delivery names its
 * policy; the dispatcher never special-cases a surface.
 */
export type PolicyName = 'standard' | 'mixpanel-cohort-sync' | 'mixpanel-message' | 'once';

export interface RetryPolicy {
  name: PolicyName;
  /** Delay before each attempt, the first included: its length is the number of attempts. */
  schedule: number[];
  /** ± this fraction of random jitter on each delay. */
  jitter: number;
  /** What counts as delivered. */
  success: '2xx' | 'exactly-200';
  /** Statuses that end the delivery at once, without retry. */
  permanent: readonly number[];
  /** Statuses that also disable the destination (Standard Webhooks: 410 Gone). */
  disableOn: readonly number[];
  /** Failures other than those above are retried (false: one try, the owner decides what next). */
  retry: boolean;
  /** Read Mixpanel's cohort-sync reply body: {"status":"failure","error":{"code","message"}}. */
  readsCohortSyncReply: boolean;
}

export function policies(config: DeliveryConfig): Record<PolicyName, RetryPolicy> {
  const base = { jitter: 0, permanent: [], disableOn: [], retry: true, readsCohortSyncReply: false } as const;
  return {
    standard: { ...base, name: 'standard', schedule: config.standardSchedule, jitter: config.jitter, success: '2xx', disableOn: [410], permanent: [410] },
    'mixpanel-cohort-sync': {
      ...base,
      name: 'mixpanel-cohort-sync',
      schedule: config.cohortSyncSchedule,
      success: '2xx',
      permanent: [400, 401, 403, 404],
      readsCohortSyncReply: true,
    },
    // Mixpanel marks a message's users sent only on exactly 200; others wait for the next run.
    'mixpanel-message': { ...base, name: 'mixpanel-message', schedule: [0], success: 'exactly-200', retry: false },
    // Connection tests: one try, the answer is reported to whoever asked.
    once: { ...base, name: 'once', schedule: [0], success: '2xx', retry: false },
  };
}

export const isPolicyName = (name: string): name is PolicyName =>
  name === 'standard' || name === 'mixpanel-cohort-sync' || name === 'mixpanel-message' || name === 'once';
