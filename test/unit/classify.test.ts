import { describe, expect, it } from 'vitest';
import { classify, retryAfterMs, scheduledDelay, type AttemptResult } from '../../src/delivery/classify.js';
import { corePolicies, type RetryPolicy } from '../../src/delivery/policies.js';
import { cohortSyncPolicy } from '../../src/cohort-sync/wire.js';
import { loadConfig } from '../../src/config.js';

const config = { ...loadConfig({}, {}).delivery, standardSchedule: [0, 1000, 5000], cohortSyncSchedule: [0, 100, 200], jitter: 0.2 };
const P: Record<string, RetryPolicy> = Object.fromEntries([...corePolicies(config, { retryScheduleMs: [100] }), cohortSyncPolicy(config)].map((p) => [p.name, p]));
const NOW = Date.UTC(2024, 0, 1, 0, 0, 0);
const THROTTLE = 5000;

const answered = (status: number, body = '', headers: Record<string, string> = {}): AttemptResult => ({ status, headers, body, truncated: false, durationMs: 5 });
const unanswered = (error?: AttemptResult['error']): AttemptResult => ({ body: '', truncated: false, durationMs: 5, ...(error ? { error } : {}) });

describe('retryAfterMs', () => {
  it('reads delay-seconds', () => {
    expect(retryAfterMs('0', NOW)).toBe(0);
    expect(retryAfterMs('1', NOW)).toBe(1000);
    expect(retryAfterMs(' 120 ', NOW)).toBe(120_000);
  });

  it('reads an HTTP-date, as ms from now, never negative', () => {
    expect(retryAfterMs('Mon, 01 Jan 2024 00:00:30 GMT', NOW)).toBe(30_000);
    expect(retryAfterMs(new Date(NOW + 90_000).toUTCString(), NOW)).toBe(90_000);
    expect(retryAfterMs('Sun, 31 Dec 2023 23:59:00 GMT', NOW)).toBe(0);
  });

  it('is undefined when absent or unreadable', () => {
    expect(retryAfterMs(undefined, NOW)).toBeUndefined();
    expect(retryAfterMs('', NOW)).toBeUndefined();
    expect(retryAfterMs('   ', NOW)).toBeUndefined();
    expect(retryAfterMs('soon', NOW)).toBeUndefined();
  });
});

describe("classify, policy 'standard'", () => {
  const policy = P.standard!;

  it.each([200, 201, 202, 204, 299])('%i is a success', (status) => {
    expect(classify(policy, answered(status), NOW, THROTTLE)).toEqual({ kind: 'success' });
  });

  it.each([301, 302, 400, 401, 403, 404, 409, 500, 502])('%i is retried, with the status and body as the reason, without throttling', (status) => {
    const verdict = classify(policy, answered(status, 'nope'), NOW, THROTTLE);
    expect(verdict).toEqual({ kind: 'retry', reason: `HTTP ${status}: nope`, retryAfterMs: undefined, throttleMs: undefined });
  });

  it('keeps only the first 200 characters of the body in the reason', () => {
    const verdict = classify(policy, answered(500, 'x'.repeat(5000)), NOW, THROTTLE);
    expect(verdict.kind === 'retry' && verdict.reason).toBe(`HTTP 500: ${'x'.repeat(200)}`);
  });

  it('410 ends the delivery for good and disables the destination', () => {
    expect(classify(policy, answered(410), NOW, THROTTLE)).toEqual({ kind: 'fail', reason: 'HTTP 410', permanent: true, disableDestination: true });
  });

  it('429 and 503 throttle the destination: for Retry-After when given, else for the default', () => {
    expect(classify(policy, answered(429, '', { 'retry-after': '3' }), NOW, THROTTLE)).toMatchObject({ kind: 'retry', retryAfterMs: 3000, throttleMs: 3000 });
    expect(classify(policy, answered(503, '', { 'retry-after': 'Mon, 01 Jan 2024 00:00:10 GMT' }), NOW, THROTTLE)).toMatchObject({
      kind: 'retry',
      retryAfterMs: 10_000,
      throttleMs: 10_000,
    });
    expect(classify(policy, answered(429), NOW, THROTTLE)).toMatchObject({ kind: 'retry', retryAfterMs: undefined, throttleMs: THROTTLE });
    expect(classify(policy, answered(503), NOW, THROTTLE)).toMatchObject({ kind: 'retry', retryAfterMs: undefined, throttleMs: THROTTLE });
  });

  it('Retry-After on other statuses is honoured for this delivery but does not throttle the destination', () => {
    expect(classify(policy, answered(500, '', { 'retry-after': '2' }), NOW, THROTTLE)).toMatchObject({ kind: 'retry', retryAfterMs: 2000, throttleMs: undefined });
  });

  it('no answer (timeout, network error) is retried, the error named in the reason', () => {
    expect(classify(policy, unanswered({ kind: 'timeout', message: 'no complete answer within 300 ms' }), NOW, THROTTLE)).toEqual({
      kind: 'retry',
      reason: 'timeout: no complete answer within 300 ms',
    });
    expect(classify(policy, unanswered({ kind: 'network', message: 'ECONNRESET' }), NOW, THROTTLE)).toEqual({ kind: 'retry', reason: 'network: ECONNRESET' });
    expect(classify(policy, unanswered(), NOW, THROTTLE)).toEqual({ kind: 'retry', reason: 'network: no answer' });
  });

  it('does not read the body of a 2xx', () => {
    expect(classify(policy, answered(200, '{"status":"failure","error":{"code":400}}'), NOW, THROTTLE)).toEqual({ kind: 'success' });
  });
});

describe("classify, policy 'mixpanel-cohort-sync'", () => {
  const policy = P['mixpanel-cohort-sync']!;
  const reply = (body: unknown) => answered(200, JSON.stringify(body));

  it('2xx with status "success" (or a body that is not a failure reply) is a success', () => {
    expect(classify(policy, reply({ action: 'members', status: 'success' }), NOW, THROTTLE)).toEqual({ kind: 'success' });
    expect(classify(policy, answered(200, 'not json'), NOW, THROTTLE)).toEqual({ kind: 'success' });
    expect(classify(policy, answered(204), NOW, THROTTLE)).toEqual({ kind: 'success' });
  });

  it.each([400, 401, 403, 404])('status "failure" with code %i is permanent, with the receiver\'s message, without disabling', (code) => {
    expect(classify(policy, reply({ action: 'members', status: 'failure', error: { message: 'bad list', code } }), NOW, THROTTLE)).toEqual({
      kind: 'fail',
      reason: 'bad list',
      permanent: true,
      disableDestination: false,
    });
  });

  it('status "failure" with another code, or none, is retried', () => {
    expect(classify(policy, reply({ status: 'failure', error: { message: 'try later', code: 500 } }), NOW, THROTTLE)).toEqual({ kind: 'retry', reason: 'try later' });
    expect(classify(policy, reply({ status: 'failure' }), NOW, THROTTLE)).toEqual({ kind: 'retry', reason: 'the receiver answered status "failure"' });
  });

  it.each([400, 401, 403, 404])('HTTP %i is permanent', (status) => {
    expect(classify(policy, answered(status), NOW, THROTTLE)).toEqual({ kind: 'fail', reason: `HTTP ${status}`, permanent: true, disableDestination: false });
  });

  it('5xx and 429 are retried; 503 and 429 throttle', () => {
    expect(classify(policy, answered(500), NOW, THROTTLE)).toMatchObject({ kind: 'retry', throttleMs: undefined });
    expect(classify(policy, answered(503), NOW, THROTTLE)).toMatchObject({ kind: 'retry', throttleMs: THROTTLE });
    expect(classify(policy, answered(429, '', { 'retry-after': '7' }), NOW, THROTTLE)).toMatchObject({ kind: 'retry', retryAfterMs: 7000, throttleMs: 7000 });
  });

  it('no answer is retried', () => {
    expect(classify(policy, unanswered({ kind: 'timeout', message: 'x' }), NOW, THROTTLE)).toMatchObject({ kind: 'retry' });
  });
});

describe("classify, policy 'mixpanel-message'", () => {
  const policy = P['mixpanel-message']!;

  it('only exactly 200 is a success', () => {
    expect(classify(policy, answered(200), NOW, THROTTLE)).toEqual({ kind: 'success' });
  });

  it.each([201, 204, 400, 410, 429, 500])('%i fails at once, not permanently, without disabling', (status) => {
    expect(classify(policy, answered(status), NOW, THROTTLE)).toEqual({ kind: 'fail', reason: `HTTP ${status}`, permanent: false, disableDestination: false });
  });

  it('no answer fails at once', () => {
    expect(classify(policy, unanswered({ kind: 'timeout', message: 'x' }), NOW, THROTTLE)).toEqual({ kind: 'fail', reason: 'timeout: x', permanent: false, disableDestination: false });
  });
});

describe("classify, policy 'once'", () => {
  it('2xx succeeds; anything else fails once, without retry', () => {
    expect(classify(P.once!, answered(204), NOW, THROTTLE)).toEqual({ kind: 'success' });
    expect(classify(P.once!, answered(500), NOW, THROTTLE)).toEqual({ kind: 'fail', reason: 'HTTP 500', permanent: false, disableDestination: false });
  });
});

describe('scheduledDelay', () => {
  it('without jitter: the schedule as is, then undefined', () => {
    const policy = { ...P.standard!, jitter: 0 };
    expect([0, 1, 2, 3].map((i) => scheduledDelay(policy, i, () => 0))).toEqual([0, 1000, 5000, undefined]);
    // The cohort-sync schedule never jitters.
    expect([0, 1, 2, 3].map((i) => scheduledDelay(P['mixpanel-cohort-sync']!, i, () => 0))).toEqual([0, 100, 200, undefined]);
  });

  it('with jitter: ± the fraction, from the injected random', () => {
    const policy = P.standard!; // jitter 0.2
    expect(scheduledDelay(policy, 1, () => 0)).toBe(800);
    expect(scheduledDelay(policy, 1, () => 0.5)).toBe(1000);
    expect(scheduledDelay(policy, 1, () => 0.999999)).toBe(1200);
    expect(scheduledDelay(policy, 2, () => 0.75)).toBe(5500);
    expect(scheduledDelay(policy, 3, () => 0.5)).toBeUndefined();
  });

  it('a zero delay stays zero', () => {
    expect(scheduledDelay(P.standard!, 0, () => 0)).toBe(0);
    expect(scheduledDelay(P.standard!, 0, () => 1)).toBe(0);
  });
});
