import type { RetryPolicy } from './policies.js';

/** What one attempt produced, as the channel saw it. */
export interface AttemptResult {
  /** The destination's answer: an HTTP status, or SMTP's reply code. Absent when none came (timeout, refused address, network error). */
  status?: number;
  headers?: Record<string, string>;
  /** The first bytes of the reply, as text (at most the configured read cap). */
  body: string;
  /** The reply was longer than the read cap and was cut off. */
  truncated: boolean;
  error?: { kind: 'timeout' | 'network' | 'refused'; message: string };
  /** When the request went on the wire (ms since the epoch); absent when it was never sent. */
  startedAt?: number;
  durationMs: number;
  /** Recipients the destination refused while taking the others (e-mail). */
  refused?: string[];
  /** What the next attempt carries, where the channel narrowed it (e-mail: the refused recipients only). */
  next?: { headers: Record<string, string> };
}

export type Verdict =
  | { kind: 'success' }
  /** Try again if the schedule allows; retryAfterMs from the receiver, throttleMs slows the whole destination. */
  | { kind: 'retry'; reason: string; retryAfterMs?: number; throttleMs?: number }
  /** Done, not delivered. permanent: the receiver refused it for good (the owner may pause). */
  | { kind: 'fail'; reason: string; permanent: boolean; disableDestination: boolean };

/** Retry-After in seconds or as an HTTP date, in ms from now; undefined when absent or unreadable. */
export function retryAfterMs(value: string | undefined, now: number): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function failure(policy: RetryPolicy, reason: string, status?: number, extra: { retryAfterMs?: number; throttleMs?: number } = {}): Verdict {
  const permanent = status !== undefined && policy.permanent.includes(status);
  if (permanent || !policy.retry) {
    return { kind: 'fail', reason, permanent, disableDestination: status !== undefined && policy.disableOn.includes(status) };
  }
  return { kind: 'retry', reason, ...extra };
}

/** Reads one HTTP attempt by its delivery's policy. */
export function classify(policy: RetryPolicy, result: AttemptResult, now: number, defaultThrottleMs: number): Verdict {
  const { status } = result;
  if (status === undefined) {
    const error = result.error ?? { kind: 'network', message: 'no answer' };
    return failure(policy, `${error.kind}: ${error.message}`);
  }
  const ok = policy.success === 'exactly-200' ? status === 200 : status >= 200 && status < 300;
  if (ok) {
    // A reply may say "failed" inside a 2xx (Mixpanel's cohort sync): its code then decides as a status would.
    const refused = policy.readReply?.(result.body);
    if (refused) return failure(policy, refused.message, refused.code);
    return { kind: 'success' };
  }
  const reason = `HTTP ${status}${result.body ? `: ${result.body.slice(0, 200)}` : ''}`;
  const after = retryAfterMs(result.headers?.['retry-after'], now);
  // 429 and 503 say the receiver as a whole is overloaded: slow every request to it, not just this one.
  const throttleMs = status === 429 || status === 503 ? (after ?? defaultThrottleMs) : undefined;
  return failure(policy, reason, status, { retryAfterMs: after, throttleMs });
}

/** Delay before attempt number `attempt` (0-based), jittered; undefined when the schedule is used up. */
export function scheduledDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number | undefined {
  const base = policy.schedule[attempt];
  if (base === undefined) return undefined;
  if (policy.jitter === 0 || base === 0) return base;
  return Math.round(base * (1 + policy.jitter * (2 * random() - 1)));
}
