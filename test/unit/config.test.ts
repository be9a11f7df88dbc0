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
