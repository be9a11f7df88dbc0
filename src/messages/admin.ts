import { CohortAdmin } from '../cohorts/cohort-admin.js';
import type { DeliveryEngine } from '../delivery/engine.js';
import { ActionableError } from '../errors.js';
import { iso } from '../iso-time.js';
import { refreshWatches } from '../membership/watches.js';
import { firstOccurrence } from '../scheduling/timing.js';
import { cancelDeliveries } from '../store/outbox-repo.js';
import { deleteCohort, getCohort, insertCohort, updateCohort } from '../store/cohorts-repo.js';
import { findConnection } from '../store/connections-repo.js';
import type { Store } from '../store/database.js';
import { listRecipients, openBatchDeliveries, randomProfiles, type RecipientView } from '../store/message-ledger-repo.js';
import { deleteMessageRows, findMessage, insertMessage, insertRun, listMessages, listRuns, MESSAGE_SCHEDULE_KIND, updateMessage, type MessageFields, type MessageRow, type MessageRunRow } from '../store/messages-repo.js';
import { putSchedule, removeSchedule } from '../store/schedules-repo.js';
import { readJson, type MessageRecipientsTable } from '../store/schema.js';
import { cronOf, isLive, kindOf, parseSchedule, ScheduleError, timingOf, timezoneOf, type MessageSchedule } from './schedule.js';
import { BATCH_SIZE, formBody, MESSAGE_CONTENT_TYPE, TEST_HEADER, userJson } from './wire.js';

export interface MessageInput {
  name?: unknown;
  cohort_id?: unknown;
  definition?: unknown;
  connection_id?: unknown;
  schedule?: unknown;
  properties?: unknown;
  enabled?: unknown;
}

const invalid = (message: string) => new ActionableError(400, 'invalid_message', message);
const notFound = (id: number) => new ActionableError(404, 'not_found', `no message ${id} in this project`);
const TEST_OWNER = 'message-test';
/** Profiles a test send picks (the seed's words: five, at random). */
const TEST_USERS = 5;

/**
 * Webhook messages as the API and the command line manage them. Everything is checked when saved
 * (cohort or inline definition, connection, schedule, properties), in one transaction with its
 * schedule and the project's watched cohorts. An inline definition becomes a cohort of the
 * message's own, named after it and deleted with it.
 */
export class MessageAdmin {
  constructor(private readonly deps: { store: Store; engine?: DeliveryEngine; now?: () => number; changed?: (projectId: number) => Promise<void> }) {}

  #now(): number {
    return (this.deps.now ?? Date.now)();
  }

  async create(projectId: number, input: MessageInput): Promise<MessageRow> {
    if (input.name === undefined) throw invalid('name: required');
    if (input.connection_id === undefined) throw invalid('connection_id: required: the connection the users are posted to');
    if (input.schedule === undefined) throw invalid('schedule: required: {"type": "asap"}, {"type": "scheduled", "at", "days_of_week", "timezone"} or {"type": "recurring", "every", …}');
    if ((input.cohort_id === undefined) === (input.definition === undefined)) throw invalid('cohort_id: give the cohort to target, or an inline "definition", one of the two');
    const f = await this.#check(projectId, input, undefined);
    const now = this.#now();
    const row = await this.deps.store.db.transaction().execute(async (trx) => {
      let cohortId = f.cohortId;
      if (f.definition !== undefined) cohortId = (await insertCohort(trx, projectId, { name: ownCohortName(f.name), description: 'the targeting of a webhook message', definition: f.definition }, now)).id;
      const m = await insertMessage(trx, projectId, { name: f.name, cohort_id: cohortId!, own_cohort: f.definition !== undefined ? 1 : 0, connection_id: f.connectionId, schedule: f.schedule, kind: kindOf(f.schedule), properties: f.properties, enabled: f.enabled ? 1 : 0, seeded: 0 }, now);
      if (f.definition !== undefined) await updateCohort(trx, projectId, cohortId!, { name: ownCohortName(f.name, m.id) }, now);
      if (isLive(m.kind)) await insertRun(trx, m.id, 'live', now, now);
      await this.#schedule(trx, m, now);
      await refreshWatches(trx, projectId, now);
      return m;
    });
    await this.deps.changed?.(projectId);
    return row;
  }

  async update(projectId: number, id: number, input: MessageInput): Promise<MessageRow> {
    const current = await this.get(projectId, id);
    if (input.cohort_id !== undefined && input.definition !== undefined) throw invalid('cohort_id: give the cohort to target, or an inline "definition", not both');
    const f = await this.#check(projectId, input, current);
    const now = this.#now();
    const row = await this.deps.store.db.transaction().execute(async (trx) => {
      let cohortId = f.cohortId ?? current.cohort_id;
      let own = current.own_cohort === 1 && (f.cohortId === undefined || f.cohortId === current.cohort_id);
      if (f.definition !== undefined) {
        if (own) await updateCohort(trx, projectId, cohortId, { definition: f.definition, name: ownCohortName(f.name, id) }, now);
        else cohortId = (await insertCohort(trx, projectId, { name: ownCohortName(f.name, id), description: 'the targeting of a webhook message', definition: f.definition }, now)).id;
        own = true;
      }
      const kind = kindOf(f.schedule);
      const enabled = f.enabled ? 1 : 0;
      // A live message that starts following a cohort (again) queues its members then, once.
      const restart = isLive(kind) && (cohortId !== current.cohort_id || kind !== current.kind || (enabled === 1 && current.enabled === 0));
      const m = (await updateMessage(trx, projectId, id, { name: f.name, cohort_id: cohortId, own_cohort: own ? 1 : 0, connection_id: f.connectionId, schedule: f.schedule, kind, properties: f.properties, enabled, ...(restart ? { seeded: 0 } : {}) }, now))!;
      if (current.own_cohort === 1 && current.cohort_id !== cohortId) await deleteCohort(trx, projectId, current.cohort_id);
      if (isLive(kind) && !isLive(current.kind)) await insertRun(trx, id, 'live', now, now);
      if (restart || JSON.stringify(readJson(current.schedule)) !== JSON.stringify(f.schedule)) await this.#schedule(trx, m, now);
      await refreshWatches(trx, projectId, now);
      return m;
    });
    await this.deps.changed?.(projectId);
    return row;
  }

  async get(projectId: number, id: number): Promise<MessageRow> {
    const row = await findMessage(this.deps.store.db, projectId, id);
    if (!row) throw notFound(id);
    return row;
  }

  list(projectId: number, after: number | undefined, limit: number): Promise<MessageRow[]> {
    return listMessages(this.deps.store.db, projectId, after, limit);
  }

  /** Deletes the message, its ledger, runs and batches (those still queued are cancelled), its schedule and its own cohort. */
  async remove(projectId: number, id: number): Promise<void> {
    const m = await this.get(projectId, id);
    const now = this.#now();
    await this.deps.store.db.transaction().execute(async (trx) => {
      const open = await openBatchDeliveries(trx, id);
      if (open.length > 0) await cancelDeliveries(trx, { ids: open }, 'the webhook message was deleted', Date.now());
      await deleteMessageRows(trx, id);
      await removeSchedule(trx, MESSAGE_SCHEDULE_KIND, String(id));
      if (m.own_cohort === 1) await deleteCohort(trx, projectId, m.cohort_id);
      await refreshWatches(trx, projectId, now);
    });
    await this.deps.changed?.(projectId);
  }

  async runs(projectId: number, id: number, before: number | undefined, limit: number): Promise<MessageRunRow[]> {
    await this.get(projectId, id);
    return listRuns(this.deps.store.db, id, before, limit);
  }

  async recipients(projectId: number, id: number, q: { after?: string; state?: MessageRecipientsTable['state']; distinctId?: string; limit: number }): Promise<RecipientView[]> {
    await this.get(projectId, id);
    return listRecipients(this.deps.store.db, id, q);
  }

  /**
   * Sends five profiles picked at random from the project to the message's connection now, in
   * one request marked as a test (x-cohortcast-test: true), and answers what the receiver said.
   * Never recorded in the ledger; logged as any delivery is (owner message-test).
   */
  async test(projectId: number, id: number) {
    const m = await this.get(projectId, id);
    const { engine, store } = this.deps;
    if (!engine) throw new Error('sending a test needs the delivery engine');
    const only = m.properties === null ? null : readJson<string[]>(m.properties);
    const users = await randomProfiles(store.db, store.dialect, projectId, Math.min(TEST_USERS, BATCH_SIZE));
    if (users.length === 0) throw new ActionableError(409, 'no_profiles', 'the project has no profiles yet: a test sends five of them, picked at random');
    const now = Date.now();
    // Not due for the claim loop: sent here, at once (should this process die first, it goes out later).
    const [d] = await engine.outbox.enqueue(store.db, [
      { projectId, connectionId: m.connection_id, ownerKind: TEST_OWNER, ownerId: id, policy: 'once', contentType: MESSAGE_CONTENT_TYPE, body: formBody(users.map((u) => userJson(u.distinct_id, u.properties, only))), headers: { [TEST_HEADER]: 'true' }, notBefore: now + 60_000 },
    ]);
    const done = await engine.dispatcher.sendNow(d!.id);
    const status = done?.result.status ?? null;
    return {
      message_id: id,
      delivery_id: d!.id,
      users: users.map((u) => u.distinct_id),
      // Mixpanel's rule: only a 200 would have marked these users sent.
      ok: status === 200,
      status,
      error: done ? (status === 200 ? null : done.verdict.kind === 'success' ? `HTTP ${status}: only a 200 marks users sent` : done.verdict.reason) : 'the connection could not be sent to now (disabled or throttled)',
      response_body: done?.result.body.slice(0, 1024) ?? null,
    };
  }

  /** The message's schedule: a live one runs once now (its first users); a calendar one at its next occurrence. */
  async #schedule(trx: Parameters<typeof putSchedule>[0], m: MessageRow, now: number): Promise<void> {
    const schedule = readJson<MessageSchedule>(m.schedule);
    const cron = cronOf(schedule);
    const next = cron === undefined ? now : firstOccurrence(cron, timezoneOf(schedule), now);
    await putSchedule(trx, { kind: MESSAGE_SCHEDULE_KIND, key: String(m.id), timing: timingOf(schedule), nextRunAt: next, replaceNext: true }, now);
  }

  /** The shape first (name, schedule, properties), then what it names (cohort, connection): the cheap refusals come first. */
  async #check(projectId: number, input: MessageInput, current: MessageRow | undefined) {
    const { store } = this.deps;
    const name = input.name ?? current?.name;
    if (typeof name !== 'string' || name.trim() === '' || name.length > 200) throw invalid('name: expected 1-200 characters');
    let schedule: MessageSchedule;
    try {
      schedule = parseSchedule(input.schedule ?? readJson(current!.schedule));
    } catch (err) {
      if (err instanceof ScheduleError) throw invalid(err.message);
      throw err;
    }
    const properties = input.properties === undefined ? (current?.properties == null ? null : readJson<string[]>(current.properties)) : input.properties;
    if (properties !== null && (!Array.isArray(properties) || properties.length === 0 || properties.length > 255 || properties.some((p) => typeof p !== 'string' || p === '' || p.length > 255))) {
      throw invalid('properties: expected a list of 1 to 255 profile property names (or null: all of them)');
    }
    const enabled = input.enabled ?? (current ? current.enabled === 1 : true);
    if (typeof enabled !== 'boolean') throw invalid('enabled: expected true or false');
    let cohortId: number | undefined;
    if (input.cohort_id !== undefined) {
      if (typeof input.cohort_id !== 'number' || !Number.isSafeInteger(input.cohort_id) || !(await getCohort(store, projectId, input.cohort_id))) throw invalid(`cohort_id: no cohort ${JSON.stringify(input.cohort_id)} in this project`);
      cohortId = input.cohort_id;
    }
    const definition = input.definition === undefined ? undefined : await new CohortAdmin(store).checkDefinition(projectId, current?.own_cohort === 1 ? current.cohort_id : undefined, input.definition);
    const connectionId = input.connection_id ?? current?.connection_id;
    if (typeof connectionId !== 'number' || !Number.isSafeInteger(connectionId) || !(await findConnection(store, projectId, connectionId))) throw invalid(`connection_id: no connection ${JSON.stringify(connectionId)} in this project`);
    return { name, cohortId, definition, connectionId, schedule, properties: properties === null ? null : [...new Set(properties as string[])], enabled };
  }
}

const ownCohortName = (name: string, id?: number) => `${name} (message ${id ?? 'new'})`.slice(0, 200);

/** A message as the API shows it: an inline definition shown as the definition, its cohort as cohort_id. */
export async function presentMessage(store: Store, r: MessageRow) {
  const definition = r.own_cohort === 1 ? ((await getCohort(store, r.project_id, r.cohort_id))?.definition ?? null) : null;
  return {
    id: r.id,
    name: r.name,
    cohort_id: r.cohort_id,
    ...(definition ? { definition } : {}),
    connection_id: r.connection_id,
    schedule: readJson<MessageSchedule>(r.schedule),
    properties: r.properties === null ? null : readJson<string[]>(r.properties),
    enabled: r.enabled === 1,
    created_at: iso(r.created_at),
    updated_at: iso(r.updated_at),
  };
}

export const presentRun = (r: MessageRunRow) => ({
  id: r.id,
  kind: r.kind,
  planned_at: iso(r.planned_at),
  started_at: iso(r.started_at),
  finished_at: iso(r.finished_at),
  users: r.users,
  sent: r.sent,
  failed: r.failed,
  dropped: r.dropped,
  outstanding: r.outstanding,
});

export const presentRecipient = (r: RecipientView) => ({
  distinct_id: r.distinct_id,
  state: r.state,
  run_id: r.run_id,
  batch_id: r.batch_id,
  delivery_id: r.delivery_id,
  sends: r.sends,
  first_sent_at: iso(r.first_sent_at),
  last_sent_at: iso(r.last_sent_at),
  next_attempt_at: r.state === 'waiting' ? iso(r.due_at) : null,
  attempts: r.attempts,
  reason: r.reason,
  updated_at: iso(r.updated_at),
});
