import type { Transaction } from 'kysely';
import type { Database } from '../store/schema.js';
import type { ClaimedDelivery } from '../store/leases.js';

/** How a delivery ended, told to the surface that made it. */
export interface DeliveryOutcome {
  delivery: ClaimedDelivery;
  state: 'succeeded' | 'failed';
  /** delivered; rejected (a permanent refusal: the owner may pause); failed (no retry by policy); exhausted (retries used up). */
  outcome: 'delivered' | 'rejected' | 'failed' | 'exhausted';
  status: number | null;
  /** Why it failed, as a person reads it (the receiver's own error message where it sent one). */
  reason: string | null;
}

/** A surface (cohort sync, messages, alerts, …) that wants to hear how its deliveries end. */
export interface DeliveryOwner {
  /** Runs inside the transaction that records the ending, so the owner's state moves with it. */
  finished(trx: Transaction<Database>, outcome: DeliveryOutcome): Promise<void>;
}

/**
 * Hears of every delivery that ended unsent or refused, and every connection switched off, in the
 * transaction that records it (subscriptions emit events from these). Successes are not told: a
 * batch of them is recorded in one statement, with no transaction around it, on PostgreSQL.
 */
export interface DeliveryObserver {
  failed?(trx: Transaction<Database>, outcome: DeliveryOutcome): Promise<void>;
  connectionDisabled?(trx: Transaction<Database>, projectId: number, connectionId: number, reason: string): Promise<void>;
}

/** Owners by the owner_kind their deliveries carry. Kinds with no owner (connection tests) are fine. */
export class OwnerRegistry {
  readonly #owners = new Map<string, DeliveryOwner>();
  readonly observers: DeliveryObserver[] = [];

  observe(observer: DeliveryObserver): void {
    this.observers.push(observer);
  }

  register(kind: string, owner: DeliveryOwner): void {
    if (this.#owners.has(kind)) throw new Error(`an owner for "${kind}" deliveries is already registered`);
    this.#owners.set(kind, owner);
  }

  get(kind: string): DeliveryOwner | undefined {
    return this.#owners.get(kind);
  }
}
