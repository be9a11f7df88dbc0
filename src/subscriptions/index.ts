import type { Definition, PropertyFilter } from '../cohorts/definition.js';
import { propertyMatches } from '../cohorts/property-match.js';
import { cohortDefinitions } from '../store/cohorts-repo.js';
import { projectsWithWatches, watchesOf } from '../store/membership-repo.js';
import type { Store } from '../store/database.js';
import { readJson } from '../store/schema.js';
import { enabledSubscriptions, projectsWithSubscriptions, type SubscriptionRow } from '../store/subscriptions-repo.js';
import { CompiledChannel, type ChannelSpec } from './channel-specs.js';
import { MEMBER_EVENTS } from './event-types.js';

/** Which tracked events an event.ingested subscription wants: names (none: all) and property filters. */
export interface EventFilter {
  events?: string[];
  where?: PropertyFilter[];
}

/** A subscription ready to match events and render its channels. */
export class CompiledSubscription {
  readonly types: Set<string>;
  readonly cohorts: Set<number>;
  readonly filter: EventFilter | null;
  readonly channels: CompiledChannel[];

  constructor(readonly row: SubscriptionRow) {
    this.types = new Set(readJson<string[]>(row.event_types));
    this.cohorts = new Set(readJson<number[]>(row.cohort_ids));
    this.filter = row.event_filter === null ? null : readJson<EventFilter>(row.event_filter);
    this.channels = readJson<ChannelSpec[]>(row.channels).map((c) => new CompiledChannel(c));
  }

  /** Whether an event of this type with this data is one it wants. */
  wants(type: string, data: Record<string, unknown>, now: number): boolean {
    if (!this.types.has(type)) return false;
    if (MEMBER_EVENTS.includes(type)) return this.cohorts.has((data.cohort as { id: number }).id);
    if (type === 'event.ingested' && this.filter) {
      if (this.filter.events && !this.filter.events.includes(data.event as string)) return false;
      return (this.filter.where ?? []).every((w) => propertyMatches(w, (data.properties ?? {}) as Record<string, unknown>, now));
    }
    return true;
  }
}

/** What a project's producers and fan-out need to know of its subscriptions, cached. */
export interface ProjectIndex {
  subscriptions: CompiledSubscription[];
  /** Event types some enabled subscription wants: producing any other costs nothing. */
  types: Set<string>;
  /** Tracked event names that event.ingested subscriptions want; undefined when one wants every event. */
  forwarded: Set<string> | undefined;
  /** Cohorts kept live (named by an enabled subscription to their member events, or followed by a live webhook message). */
  watched: Set<number>;
  /** Event names the watched cohorts count, directly or through cohorts they name: tracking one marks the user. */
  watchedEvents: Set<string>;
}

const EMPTY: ProjectIndex = { subscriptions: [], types: new Set(), forwarded: new Set(), watched: new Set(), watchedEvents: new Set() };

function eventNames(d: Definition, all: ReadonlyMap<number, Definition>, out: Set<string>, seen: Set<number>): void {
  if ('and' in d) for (const x of d.and) eventNames(x, all, out, seen);
  else if ('or' in d) for (const x of d.or) eventNames(x, all, out, seen);
  else if ('not' in d) eventNames(d.not, all, out, seen);
  else if ('cohort' in d) {
    if (seen.has(d.cohort)) return;
    seen.add(d.cohort);
    const other = all.get(d.cohort);
    if (other) eventNames(other, all, out, seen);
  } else if ('event' in d) out.add(d.event);
}

/**
 * Every project's enabled subscriptions and watched cohorts, compiled and kept in memory: loaded whole at start and
 * again every `ttlMs` (a change made in this process applies at once; one made in another process
 * within the TTL). The ingestion hot path asks `peek`, which never waits: a project it has no
 * entry for has no enabled subscription.
 */
export class SubscriptionIndex {
  readonly #cache = new Map<number, ProjectIndex>();
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(
    private readonly store: Store,
    private readonly ttlMs: number,
  ) {}

  async start(): Promise<void> {
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh().catch(() => undefined), Math.max(1, this.ttlMs));
    this.#timer.unref();
  }

  stop(): Promise<void> | undefined {
    clearInterval(this.#timer);
    return this.#refreshing;
  }

  /** Loads every project with an enabled subscription again, and forgets the others. */
  refresh(): Promise<void> {
    this.#refreshing ??= (async () => {
      const projects = new Set([...(await projectsWithSubscriptions(this.store.db)), ...(await projectsWithWatches(this.store.db))]);
      for (const p of projects) this.#cache.set(p, await this.#load(p));
      for (const p of this.#cache.keys()) if (!projects.has(p)) this.#cache.delete(p);
    })().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  peek(projectId: number): ProjectIndex {
    return this.#cache.get(projectId) ?? EMPTY;
  }

  /**
   * The project's entry loaded again from the database (and cached): after a change in this
   * process, and wherever the answer must be as stored now rather than as last refreshed.
   */
  async reload(projectId: number): Promise<ProjectIndex> {
    const value = await this.#load(projectId);
    if (value.subscriptions.length === 0 && value.watched.size === 0) this.#cache.delete(projectId);
    else this.#cache.set(projectId, value);
    return value;
  }

  async #load(projectId: number): Promise<ProjectIndex> {
    const rows = await enabledSubscriptions(this.store.db, projectId);
    // The watched cohorts as stored: those of subscriptions and of live webhook messages alike.
    const watched = new Set((await watchesOf(this.store.db, projectId)).map((w) => w.cohort_id));
    if (rows.length === 0 && watched.size === 0) return EMPTY;
    const subscriptions = rows.map((r) => new CompiledSubscription(r));
    const types = new Set(subscriptions.flatMap((s) => [...s.types]));
    const ingested = subscriptions.filter((s) => s.types.has('event.ingested'));
    const forwarded = ingested.some((s) => !s.filter?.events) ? undefined : new Set(ingested.flatMap((s) => s.filter?.events ?? []));
    const watchedEvents = new Set<string>();
    if (watched.size > 0) {
      const all = await cohortDefinitions(this.store.db, projectId);
      for (const id of watched) {
        const d = all.get(id);
        if (d) eventNames(d, all, watchedEvents, new Set([id]));
      }
    }
    return { subscriptions, types, forwarded, watched, watchedEvents };
  }
}
