import type { DeliveryConfig, MailConfig } from '../config.js';

/**
 * Retry policies are data: a schedule of delays plus how to read an answer. A delivery names its
 * policy; the dispatcher never special-cases a surface. Surfaces register the policies their wire
 * format needs (cohort sync registers Mixpanel's); an unknown name is an error, never a default.
 */
export interface RetryPolicy {
  name: string;
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
  /**
   * Reads a reply that answers "failed" inside a success status (Mixpanel's cohort-sync reply):
   * the code then decides as a status would; undefined when the reply says nothing of the kind.
   */
  readReply?: (body: string) => { code: number | undefined; message: string } | undefined;
}

export class UnknownPolicyError extends Error {}

/** Policies by name. */
export class PolicyRegistry {
  readonly #policies = new Map<string, RetryPolicy>();

  register(policy: RetryPolicy): void {
    if (this.#policies.has(policy.name)) throw new Error(`a retry policy named "${policy.name}" is already registered`);
    if (policy.schedule.length === 0) throw new Error(`retry policy "${policy.name}" needs at least one delay (the first attempt's)`);
    this.#policies.set(policy.name, policy);
  }

  has(name: string): boolean {
    return this.#policies.has(name);
  }

  get(name: string): RetryPolicy {
    const policy = this.#policies.get(name);
    if (!policy) throw new UnknownPolicyError(`unknown retry policy "${name}"; registered: ${[...this.#policies.keys()].join(', ')}`);
    return policy;
  }
}

const base = { jitter: 0, permanent: [], disableOn: [], retry: true } as const;

/** The policies every process has, whatever surfaces it runs. */
export function corePolicies(config: DeliveryConfig, mail: Pick<MailConfig, 'retryScheduleMs'>): RetryPolicy[] {
  return [
    // Standard Webhooks' schedule; 410 Gone switches the destination off.
    { ...base, name: 'standard', schedule: config.standardSchedule, jitter: config.jitter, success: '2xx', disableOn: [410], permanent: [410] },
    // Connection tests: one try, the answer is reported to whoever asked.
    { ...base, name: 'once', schedule: [0], success: '2xx', retry: false },
    // E-mails to people: the mail retry schedule after the first try (the e-mail channel reads SMTP's answers).
    { ...base, name: 'email', schedule: [0, ...mail.retryScheduleMs], success: '2xx' },
    // Mixpanel marks a webhook message's users sent only on exactly 200; others wait for the next run.
    // (The webhook-message surface will own it; it is here so the fault matrix can check the rule.)
    { ...base, name: 'mixpanel-message', schedule: [0], success: 'exactly-200', retry: false },
  ];
}

export function policyRegistry(config: DeliveryConfig, mail: Pick<MailConfig, 'retryScheduleMs'>): PolicyRegistry {
  const registry = new PolicyRegistry();
  for (const p of corePolicies(config, mail)) registry.register(p);
  return registry;
}
