import { parseDefinition, DefinitionError, type PropertyFilter } from '../cohorts/definition.js';
import type { DeliveryEngine } from '../delivery/engine.js';
import { ActionableError } from '../errors.js';
import { iso } from '../iso-time.js';
import { cohortDefinitions } from '../store/cohorts-repo.js';
import type { Store } from '../store/database.js';
import { refreshWatches } from '../membership/watches.js';
import { readJson } from '../store/schema.js';
import {
  deleteSubscription,
  findSubscription,
  insertSubscription,
  listSubscriptions,
  updateSubscription,
  type SubscriptionFields,
  type SubscriptionRow,
} from '../store/subscriptions-repo.js';
import { CompiledChannel, isObject, type ChannelSpec, type Envelope } from './channel-specs.js';
import { checkChannels } from './channel-check.js';
import { newEventId } from './emitter.js';
import { EVENT_TYPES, EVENT_TYPE_NAMES, MEMBER_EVENTS } from './event-types.js';
import type { EventFilter, SubscriptionIndex } from './index.js';

export interface SubscriptionInput {
  name?: string;
  event_types?: string[];
  cohort_ids?: number[];
  event_filter?: EventFilter | null;
  channels?: unknown[];
  enabled?: boolean;
}

const invalid = (message: string) => new ActionableError(400, 'invalid_subscription', message);
const TEST_OWNER = 'subscription-test';

/**
 * Subscriptions: which event types a project wants, on which channels. Everything is checked when
 * saved (types, cohorts, connections, phone numbers, templates compiled), so what is accepted can
 * be sent. Saving also sets which cohorts are watched live: those named by an enabled subscription
 * to their member events.
 */
export class SubscriptionAdmin {
  constructor(private readonly deps: { store: Store; index: SubscriptionIndex; engine: DeliveryEngine; watchesChanged: () => void }) {}

  async create(projectId: number, input: SubscriptionInput): Promise<SubscriptionRow> {
    if (input.name === undefined) throw invalid('name: required');
    if (input.event_types === undefined) throw invalid(`event_types: required; one or more of ${EVENT_TYPE_NAMES.join(', ')}`);
    if (input.channels === undefined) throw invalid('channels: required: at least one channel');
    const fields = await this.#check(projectId, { name: input.name, event_types: input.event_types, cohort_ids: input.cohort_ids ?? [], event_filter: input.event_filter ?? null, channels: input.channels, enabled: input.enabled ?? true });
    return this.#save(projectId, (db, now) => insertSubscription(db, projectId, fields, now));
  }

  async update(projectId: number, id: number, input: SubscriptionInput): Promise<SubscriptionRow> {
    const current = await this.get(projectId, id);
    const merged = {
      name: input.name ?? current.name,
      event_types: input.event_types ?? readJson<string[]>(current.event_types),
      cohort_ids: input.cohort_ids ?? readJson<number[]>(current.cohort_ids),
      event_filter: input.event_filter !== undefined ? input.event_filter : current.event_filter === null ? null : readJson<EventFilter>(current.event_filter),
      channels: input.channels ?? readJson<unknown[]>(current.channels),
      enabled: input.enabled ?? current.enabled === 1,
    };
    const fields = await this.#check(projectId, merged);
    const row = await this.#save(projectId, (db, now) => updateSubscription(db, projectId, id, fields, now));
    if (!row) throw notFound(id);
    return row;
  }

  async get(projectId: number, id: number): Promise<SubscriptionRow> {
    const row = await findSubscription(this.deps.store.db, projectId, id);
    if (!row) throw notFound(id);
    return row;
  }

  list(projectId: number, after: number | undefined, limit: number): Promise<SubscriptionRow[]> {
    return listSubscriptions(this.deps.store.db, projectId, after, limit);
  }

  async remove(projectId: number, id: number): Promise<void> {
    const gone = await this.#save(projectId, (db) => deleteSubscription(db, projectId, id));
    if (!gone) throw notFound(id);
  }

  /**
   * Sends a sample event of each subscribed type to every channel now, marked as a test
   * (`"test": true`, a fresh event_id), and answers what each channel replied. Tried once, as a
   * connection test is (the caller sees the answer); logged like any other (owner subscription-test).
   */
  async test(projectId: number, id: number) {
    const row = await this.get(projectId, id);
    const { engine, store } = this.deps;
    const channels = readJson<ChannelSpec[]>(row.channels).map((c) => new CompiledChannel(c));
    const results: unknown[] = [];
    for (const type of readJson<string[]>(row.event_types)) {
      const sample = EVENT_TYPES.find((t) => t.type === type)!;
      const now = Date.now();
      const envelope: Envelope = { event_id: newEventId(now), event_type: type, created_at: iso(now)!, project_id: projectId, data: sample.sample, test: true };
      for (const [i, channel] of channels.entries()) {
        // Not due for the claim loop: sent here, at once (should this process die first, it goes out later).
        const made = await engine.outbox.enqueue(store.db, channel.deliveries(envelope, { kind: TEST_OWNER, id: `${row.id}/${i}/${type}` }).map((d) => ({ ...d, policy: 'once', notBefore: now + 60_000 })));
        for (const d of made) {
          const done = await engine.dispatcher.sendNow(d.id);
          results.push({
            event_type: type,
            channel: i,
            type: channel.spec.type,
            delivery_id: d.id,
            ok: done?.verdict.kind === 'success',
            status: done?.result.status ?? null,
            error: done ? (done.verdict.kind === 'success' ? null : done.verdict.reason) : 'the channel could not be sent to now (connection disabled or throttled, or no SMTP server set)',
            response_body: done?.result.body.slice(0, 1024) ?? null,
          });
        }
      }
    }
    return { subscription_id: row.id, results };
  }

  /** Saves in one transaction with the project's watched cohorts; the caches of this process see it at once. */
  async #save<T>(projectId: number, write: (db: Parameters<typeof refreshWatches>[0], now: number) => Promise<T>): Promise<T> {
    const now = Date.now();
    const result = await this.deps.store.db.transaction().execute(async (trx) => {
      const out = await write(trx, now);
      await refreshWatches(trx, projectId, now);
      return out;
    });
    await this.deps.index.reload(projectId);
    this.deps.watchesChanged();
    return result;
  }

  async #check(projectId: number, f: SubscriptionFields): Promise<SubscriptionFields> {
    if (typeof f.name !== 'string' || f.name.trim() === '' || f.name.length > 200) throw invalid('name: expected 1-200 characters');
    if (f.event_types.length === 0) throw invalid(`event_types: expected one or more of ${EVENT_TYPE_NAMES.join(', ')}`);
    const unknown = f.event_types.find((t) => !EVENT_TYPE_NAMES.includes(t));
    if (unknown !== undefined) throw invalid(`event_types: unknown event type ${JSON.stringify(unknown)}; the types are ${EVENT_TYPE_NAMES.join(', ')}`);
    const types = [...new Set(f.event_types)];
    const cohorts = [...new Set(f.cohort_ids)];
    const wantsMembers = types.some((t) => MEMBER_EVENTS.includes(t));
    if (wantsMembers && cohorts.length === 0) throw invalid('cohort_ids: cohort.member_entered and cohort.member_exited need the cohorts to watch');
    if (!wantsMembers && cohorts.length > 0) throw invalid('cohort_ids: only cohort.member_entered and cohort.member_exited use cohort_ids');
    if (cohorts.length > 0) {
      const all = await cohortDefinitions(this.deps.store.db, projectId);
      const missing = cohorts.find((c) => !all.has(c));
      if (missing !== undefined) throw invalid(`cohort_ids: no cohort ${missing} in this project`);
    }
    const filter = f.event_filter === null ? null : this.#filter(f.event_filter, types);
    if (f.channels.length === 0 || f.channels.length > 10) throw invalid('channels: expected 1 to 10 channels');
    const channels = await checkChannels(this.deps.store, projectId, f.channels, 'invalid_subscription');
    return { name: f.name, event_types: types, cohort_ids: cohorts, event_filter: filter, channels, enabled: f.enabled };
  }

  #filter(v: unknown, types: string[]): EventFilter {
    if (!types.includes('event.ingested')) throw invalid('event_filter: only event.ingested uses an event_filter');
    if (!isObject(v)) throw invalid('event_filter: expected {"events": [names], "where": [property filters]}');
    const extra = Object.keys(v).find((k) => k !== 'events' && k !== 'where');
    if (extra) throw invalid(`event_filter.${extra}: unknown field; allowed: events, where`);
    const out: EventFilter = {};
    if (v.events !== undefined) {
      if (!Array.isArray(v.events) || v.events.length === 0 || v.events.length > 100 || v.events.some((e) => typeof e !== 'string' || e === '' || e.length > 255)) {
        throw invalid('event_filter.events: expected a list of 1 to 100 event names');
      }
      out.events = [...new Set(v.events as string[])];
    }
    if (v.where !== undefined) {
      if (!Array.isArray(v.where) || v.where.length > 50) throw invalid('event_filter.where: expected a list of at most 50 property filters');
      out.where = v.where.map((w, i) => {
        try {
          const parsed = parseDefinition(w, `event_filter.where[${i}]`);
          if (!('property' in parsed)) throw new DefinitionError(`event_filter.where[${i}]`, 'expected a property filter {"property", "op", "value"}');
          return parsed as PropertyFilter;
        } catch (err) {
          if (err instanceof DefinitionError) throw invalid(err.message);
          throw err;
        }
      });
    }
    return out;
  }
}

const notFound = (id: number) => new ActionableError(404, 'not_found', `no subscription ${id} in this project`);

/** A subscription as the API shows it. */
export function presentSubscription(r: SubscriptionRow) {
  return {
    id: r.id,
    name: r.name,
    event_types: readJson<string[]>(r.event_types),
    cohort_ids: readJson<number[]>(r.cohort_ids),
    event_filter: r.event_filter === null ? null : readJson<EventFilter>(r.event_filter),
    channels: readJson<ChannelSpec[]>(r.channels),
    enabled: r.enabled === 1,
    created_at: iso(r.created_at),
    updated_at: iso(r.updated_at),
  };
}
