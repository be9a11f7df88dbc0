import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';

describe('delivery configuration', () => {
  it('sends on a thread of its own unless told not to', () => {
    expect(loadConfig({}, {}).delivery.senderThread).toBe(true);
    expect(loadConfig({}, { COHORTCAST_DELIVERY_SENDER_THREAD: 'false' }).delivery.senderThread).toBe(false);
    expect(loadConfig({}, { COHORTCAST_DELIVERY_SENDER_THREAD: 'true' }).delivery.senderThread).toBe(true);
  });

  it('names the setting and the accepted values when a switch is neither true nor false', () => {
    expect(() => loadConfig({}, { COHORTCAST_DELIVERY_SENDER_THREAD: 'yes' })).toThrow('COHORTCAST_DELIVERY_SENDER_THREAD must be true or false, got "yes"');
  });

  it('refuses a largest timeout that would outlast most of the lease', () => {
    expect(() => loadConfig({}, { COHORTCAST_DELIVERY_LEASE_MS: '1000', COHORTCAST_DELIVERY_MAX_TIMEOUT_MS: '900' })).toThrow(
      'COHORTCAST_DELIVERY_MAX_TIMEOUT_MS (900) must be at most 80% of COHORTCAST_DELIVERY_LEASE_MS (1000)',
    );
  });
});

describe('retention configuration', () => {
  const DAY = 86_400_000;

  it('keeps what a careful operator would by default: deliveries 30 days, their bodies 7, events for ever', () => {
    const r = loadConfig({}, {}).retention;
    expect(r).toMatchObject({ deliveriesMs: 30 * DAY, bodiesMs: 7 * DAY, subscriptionEventsMs: 7 * DAY, syncRunsMs: 30 * DAY, alertChecksMs: 90 * DAY, eventsMs: 0 });
  });

  it('reads durations with a unit, or bare milliseconds', () => {
    const r = loadConfig({}, { COHORTCAST_RETAIN_DELIVERIES: '14d', COHORTCAST_RETAIN_DELIVERY_BODIES: '36h', COHORTCAST_RETAIN_EVENTS: '400d', COHORTCAST_RETENTION_INTERVAL: '90s', COHORTCAST_RETAIN_ALERT_CHECKS: '1500' }).retention;
    expect(r).toMatchObject({ deliveriesMs: 14 * DAY, bodiesMs: 36 * 3_600_000, eventsMs: 400 * DAY, intervalMs: 90_000, alertChecksMs: 1500 });
  });

  it('names the setting and shows the accepted form when a duration is unreadable', () => {
    expect(() => loadConfig({}, { COHORTCAST_RETAIN_EVENTS: '2 weeks' })).toThrow('COHORTCAST_RETAIN_EVENTS must be a duration such as 30d, 12h, 90m, 45s or 500ms (a bare number is milliseconds; 0 keeps for ever), got "2 weeks"');
    expect(() => loadConfig({}, { COHORTCAST_RETENTION_SLICE_ROWS: '9000' })).toThrow('COHORTCAST_RETENTION_SLICE_ROWS (9000) must be at most COHORTCAST_RETENTION_MAX_SLICE_ROWS (5000)');
  });
});
