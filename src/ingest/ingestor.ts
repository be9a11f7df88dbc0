import type { IngestLimits } from '../config.js';
import type { Metrics } from '../observability/metrics.js';
import type { Project, ProjectDirectory } from '../projects/projects.js';
import type { Store } from '../store/database.js';
import { createIngestWriter, type EventBatch, type IngestTap, type IngestWriter } from '../store/ingest-writer.js';
import { updateGroupProfiles, updateUserProfiles, type ProfileForms, type RefusedUpdate } from '../store/profile-writer.js';
import { IngestError, type RecordError } from './errors.js';
import { normalizeEvent, type Normalized, type NormalizedEvent } from './events.js';
import { applyUpdate, parseGroupUpdate, parseUserUpdate, type ProfileUpdate } from './profile-ops.js';

export type Endpoint = 'track' | 'import' | 'engage' | 'groups';

export interface BatchOutcome {
  /** Records stored or applied (for events: new ones plus duplicates already stored). */
  accepted: number;
  /** Events among `accepted` that were already stored (the same $insert_id, event, user and time). */
  duplicates: number;
  errors: RecordError[];
}

const asParsed = (r: Normalized) => (r.ok ? { ok: true as const, update: r.event } : r);

const TOKEN_FIELD = { track: 'properties.token', engage: '$token', groups: '$token' } as const;

/**
 * Mixpanel-compatible ingestion, independent of HTTP: validates records, finds their
 * project, and stores what is valid: a request's events in one transaction, its profile
 * updates in one transaction per project it names. Invalid records are reported back, never
 * half-applied.
 */
export class Ingestor {
  readonly #writer: IngestWriter;

  constructor(
    private readonly store: Store,
    private readonly projects: ProjectDirectory,
    private readonly limits: IngestLimits,
    private readonly metrics: Metrics,
    private readonly forms: ProfileForms,
    tap?: IngestTap,
  ) {
    this.#writer = createIngestWriter(store, tap);
  }

  /** /track: each event names its project by its token. */
  async track(records: unknown[], opts: { ip?: string } = {}): Promise<BatchOutcome> {
    const now = Date.now();
    const errors: RecordError[] = [];
    const ctx = { mode: 'track', now, limits: this.limits, requireInsertId: false, ip: opts.ip } as const;
    const valid = this.#parse(records, (r, i) => asParsed(normalizeEvent(r, i, ctx)), errors);
    const byProject = await this.#groupByToken(valid, 'track', (e) => e.update.token, errors, (e) => e.index);
    return this.#storeEvents('track', byProject, errors, now);
  }

  /** /import: the project comes from the request's credentials; tokens in records are ignored. */
  async importEvents(project: Project, records: unknown[], opts: { strict: boolean; ip?: string }): Promise<BatchOutcome> {
    const now = Date.now();
    const errors: RecordError[] = [];
    const ctx = { mode: 'import', now, limits: this.limits, requireInsertId: opts.strict, ip: opts.ip } as const;
    const valid = this.#parse(records, (r, i) => asParsed(normalizeEvent(r, i, ctx)), errors);
    return this.#storeEvents('import', new Map([[project.id, valid]]), errors, now);
  }

  async engage(records: unknown[]): Promise<BatchOutcome> {
    return this.#updateProfiles('engage', 'user', records, parseUserUpdate, (projectId, updates, now) =>
      updateUserProfiles(
        this.store,
        this.forms,
        projectId,
        updates.map((u) => ({ distinctId: u.distinctId, ignoreAlias: u.ignoreAlias, change: (cur) => applyUpdate(cur, u, this.limits) })),
        now,
      ),
    );
  }

  async groups(records: unknown[]): Promise<BatchOutcome> {
    return this.#updateProfiles('groups', 'group', records, parseGroupUpdate, (projectId, updates, now) =>
      updateGroupProfiles(
        this.store,
        projectId,
        updates.map((u) => ({ groupKey: u.groupKey, groupId: u.groupId, change: (cur) => applyUpdate(cur, u, this.limits) })),
        now,
      ),
    );
  }

  /** Parses every update, splits them by project, and writes each project's updates in one transaction. */
  async #updateProfiles<U extends ProfileUpdate>(
    endpoint: 'engage' | 'groups',
    kind: 'user' | 'group',
    records: unknown[],
    parse: (record: unknown, index: number, now: number, limits: IngestLimits) => { ok: true; update: U } | { ok: false; error: RecordError },
    write: (projectId: number, updates: U[], now: number) => Promise<RefusedUpdate[]>,
  ): Promise<BatchOutcome> {
    const now = Date.now();
    const errors: RecordError[] = [];
    const parsed = this.#parse(records, (r, i) => parse(r, i, now, this.limits), errors);
    const byProject = await this.#groupByToken(parsed, endpoint, (u) => u.update.token, errors, (u) => u.index);
    let applied = 0;
    // One transaction per project, in project order (a fixed lock order across requests).
    for (const [projectId, items] of [...byProject].sort(([a], [b]) => a - b)) {
      const refused = await write(projectId, items.map((i) => i.update), now);
      const refusedAt = new Set(refused.map((r) => r.position));
      for (const r of refused) errors.push({ index: items[r.position]!.index, field: r.field, message: r.message });
      applied += this.#countOps(kind, items.filter((_, position) => !refusedAt.has(position)));
    }
    return this.#finish(endpoint, applied, errors);
  }

  #parse<T>(
    records: unknown[],
    parse: (r: unknown, i: number) => { ok: true; update: T } | { ok: false; error: RecordError },
    errors: RecordError[],
  ): { index: number; update: T }[] {
    const out: { index: number; update: T }[] = [];
    records.forEach((record, index) => {
      const r = parse(record, index);
      if (r.ok) out.push({ index, update: r.update });
      else errors.push(r.error);
    });
    return out;
  }

  #countOps(kind: 'user' | 'group', updates: { update: ProfileUpdate }[]): number {
    for (const { update } of updates) for (const { op } of update.ops) this.metrics.profileUpdates.inc({ kind, operation: op });
    return updates.length;
  }

  /** Splits records by the project their token names; unknown tokens become record errors. */
  async #groupByToken<T>(
    items: T[],
    endpoint: keyof typeof TOKEN_FIELD,
    tokenOf: (item: T) => string | undefined,
    errors: RecordError[],
    indexOf: (item: T) => number,
  ): Promise<Map<number, T[]>> {
    const byProject = new Map<number, T[]>();
    const field = TOKEN_FIELD[endpoint];
    // A batch almost always names one token: look each distinct token up once.
    const projectOf = new Map<string, Project | undefined>();
    for (const item of items) {
      const token = tokenOf(item);
      if (token && !projectOf.has(token)) projectOf.set(token, await this.projects.byToken(token));
      const project = token ? projectOf.get(token) : undefined;
      if (!project) {
        const message = token ? `${field} "${token}" is not the token of any project` : `${field} is missing: every record must carry the project token`;
        errors.push({ index: indexOf(item), field, message });
        continue;
      }
      const list = byProject.get(project.id);
      if (list) list.push(item);
      else byProject.set(project.id, [item]);
    }
    const tokenErrors = errors.filter((e) => e.field === field).length;
    if (byProject.size === 0 && tokenErrors > 0 && tokenErrors === errors.length) {
      this.metrics.requestsRejected.inc({ endpoint, reason: 'invalid_token' });
      throw new IngestError('invalid_token', errors[0]!.message);
    }
    return byProject;
  }

  async #storeEvents(
    endpoint: 'track' | 'import',
    byProject: Map<number, { update: NormalizedEvent }[]>,
    errors: RecordError[],
    now: number,
  ) {
    const batches: EventBatch[] = [];
    let count = 0;
    for (const [projectId, items] of byProject) {
      if (items.length === 0) continue;
      const events = items.map((i) => i.update);
      count += events.length;
      batches.push({ projectId, events, aliases: events.flatMap((e) => (e.alias ? [e.alias] : [])) });
    }
    // Projects in a fixed order, so concurrent requests naming several lock rows in the same order.
    batches.sort((a, b) => a.projectId - b.projectId);
    const { inserted, duplicates } = batches.length ? await this.#writer.writeEvents(batches, now) : { inserted: 0, duplicates: 0 };
    this.metrics.eventsIngested.inc({ endpoint }, inserted);
    if (duplicates) this.metrics.eventsDuplicate.inc({ endpoint }, duplicates);
    return this.#finish(endpoint, count, errors, duplicates);
  }

  #finish(endpoint: Endpoint, accepted: number, errors: RecordError[], duplicates = 0): BatchOutcome {
    errors.sort((a, b) => a.index - b.index);
    for (const e of errors) this.metrics.recordsRejected.inc({ endpoint, field: e.field });
    if (errors.length) this.metrics.requestsRejected.inc({ endpoint, reason: 'invalid_records' });
    return { accepted, duplicates, errors };
  }
}
