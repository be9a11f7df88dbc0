import { ActionableError } from '../errors.js';
import type { Store } from '../store/database.js';
import { syncsUsingCohort } from '../store/cohort-sync-repo.js';
import { subscriptionsNamingCohort } from '../store/subscriptions-repo.js';
import { messagesUsingCohort } from '../store/messages-repo.js';
import { isPermanentFailure } from '../store/failures.js';
import { cohortDefinitions, cohortMembers, cohortSize, deleteCohort, getCohort, insertCohort, listCohorts, updateCohort, type CohortRecord, type Evaluation } from '../store/cohorts-repo.js';
import { DefinitionError, parseDefinition, referencedCohorts, type Definition } from './definition.js';
import { checkExpandedSize, cycleThrough, expandedSizes, MAX_EXPANDED_FILTERS } from './expansion.js';

/** A refusal the API turns into a 4xx. */
export class CohortError extends ActionableError {}

/** The ids of what uses a cohort (each of these blocks its deletion). */
export interface CohortUsage {
  cohorts: number[];
  cohortSyncs: number[];
  subscriptions: number[];
  messages: number[];
}

export interface CohortInput {
  name?: unknown;
  description?: unknown;
  definition?: unknown;
}

/** Creates, changes and evaluates cohorts; the one place their rules live (API and CLI both use it). */
export class CohortAdmin {
  constructor(readonly store: Store) {}

  async create(projectId: number, input: CohortInput): Promise<CohortRecord> {
    const name = this.#name(input.name);
    if (name === undefined) throw new CohortError(400, 'invalid_cohort', 'name: required', '/name');
    if (input.definition === undefined) throw new CohortError(400, 'invalid_definition', 'definition: required', '/definition');
    const definition = this.#definition(input.definition);
    await this.#checkReferences(projectId, undefined, definition);
    return insertCohort(this.store.db, projectId, { name, description: this.#description(input.description) ?? '', definition }, Date.now());
  }

  async update(projectId: number, id: number, input: CohortInput): Promise<CohortRecord> {
    const definition = input.definition === undefined ? undefined : this.#definition(input.definition);
    if (definition) await this.#checkReferences(projectId, id, definition);
    const updated = await updateCohort(this.store.db, projectId, id, { name: this.#name(input.name), description: this.#description(input.description), definition }, Date.now());
    if (!updated) throw notFound(id);
    return updated;
  }

  /** A definition as create and update check it (parsed, its references checked): for surfaces that take one inline. */
  async checkDefinition(projectId: number, self: number | undefined, v: unknown): Promise<Definition> {
    const definition = this.#definition(v);
    await this.#checkReferences(projectId, self, definition);
    return definition;
  }

  async get(projectId: number, id: number): Promise<CohortRecord> {
    const cohort = await getCohort(this.store, projectId, id);
    if (!cohort) throw notFound(id);
    return cohort;
  }

  list(projectId: number, after: number | undefined, limit: number): Promise<CohortRecord[]> {
    return listCohorts(this.store, projectId, after, limit);
  }

  /** What uses the cohort: the cohorts that name it, the syncs that send it, the subscriptions that watch it and the messages that target it. */
  async usage(projectId: number, id: number): Promise<CohortUsage> {
    const all = await cohortDefinitions(this.store.db, projectId);
    if (!all.has(id)) throw notFound(id);
    const { db } = this.store;
    return {
      cohorts: [...all].filter(([other, d]) => other !== id && referencedCohorts(d).includes(id)).map(([other]) => other),
      cohortSyncs: await syncsUsingCohort(db, projectId, id),
      subscriptions: await subscriptionsNamingCohort(db, projectId, id),
      messages: await messagesUsingCohort(db, projectId, id),
    };
  }

  async remove(projectId: number, id: number): Promise<void> {
    const { cohorts, cohortSyncs, subscriptions, messages } = await this.usage(projectId, id);
    const s = (ids: number[]) => (ids.length > 1 ? 's' : '');
    if (cohorts.length > 0) throw new CohortError(409, 'cohort_in_use', `cohort ${id} is used by cohort${s(cohorts)} ${cohorts.join(', ')}; change or delete those first`);
    if (cohortSyncs.length > 0) throw new CohortError(409, 'cohort_in_use', `cohort ${id} is synced by cohort sync${s(cohortSyncs)} ${cohortSyncs.join(', ')}; delete those first`);
    if (subscriptions.length > 0) throw new CohortError(409, 'cohort_in_use', `cohort ${id} is watched by subscription${s(subscriptions)} ${subscriptions.join(', ')}; change or delete those first`);
    if (messages.length > 0) throw new CohortError(409, 'cohort_in_use', `cohort ${id} is the target of webhook message${s(messages)} ${messages.join(', ')}; change or delete those first`);
    if (!(await deleteCohort(this.store.db, projectId, id))) throw notFound(id);
  }

  /**
   * What evaluating the cohort now needs: its definition and those of every cohort it names.
   * A cohort saved before the expansion limit existed may exceed it: refused (422) with the reason.
   */
  async evaluation(projectId: number, id: number, now = Date.now()): Promise<Evaluation> {
    const all = await cohortDefinitions(this.store.db, projectId);
    const definition = all.get(id);
    if (!definition) throw notFound(id);
    const problem = evaluationProblem(id, all);
    if (problem) throw new CohortError(422, 'cohort_not_evaluable', problem);
    return { projectId, definition, cohorts: all, now };
  }

  async members(projectId: number, id: number, after: string | undefined, limit: number) {
    return this.#evaluating(id, async () => cohortMembers(this.store, await this.evaluation(projectId, id), after, limit));
  }

  async size(projectId: number, id: number): Promise<number> {
    return this.#evaluating(id, async () => cohortSize(this.store, await this.evaluation(projectId, id)));
  }

  /** A failure that evaluating again would not change (the data read cannot be) is the caller's to know: 422, not 500. */
  async #evaluating<T>(id: number, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (isPermanentFailure(err)) throw new CohortError(422, 'cohort_not_evaluable', `cohort ${id} cannot be evaluated: ${(err as Error).message}`);
      throw err;
    }
  }

  #name(v: unknown): string | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.trim() === '' || v.length > 200) throw new CohortError(400, 'invalid_cohort', 'name: expected 1-200 characters', '/name');
    return v;
  }

  #description(v: unknown): string | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.length > 2000) throw new CohortError(400, 'invalid_cohort', 'description: expected at most 2000 characters', '/description');
    return v;
  }

  #definition(v: unknown): Definition {
    try {
      return parseDefinition(v);
    } catch (err) {
      if (err instanceof DefinitionError) throw new CohortError(400, 'invalid_definition', err.message, err.pointer);
      throw err;
    }
  }

  /**
   * Named cohorts must exist in the project, a cohort may not reach itself through them, and no
   * cohort may expand past MAX_EXPANDED_FILTERS: neither this one nor, after a change, one that
   * names it. Each check walks each definition once.
   */
  async #checkReferences(projectId: number, self: number | undefined, definition: Definition): Promise<void> {
    const all = await cohortDefinitions(this.store.db, projectId);
    const missing = referencedCohorts(definition).find((id) => !all.has(id));
    if (missing !== undefined) throw new CohortError(400, 'invalid_definition', `definition: names cohort ${missing}, which does not exist in this project`, '/definition');
    // The new definition in its place (a cohort being created gets an id no other can name yet).
    const key = self ?? -1;
    const after = new Map(all).set(key, definition);
    if (self !== undefined) {
      const cycle = cycleThrough(self, definition, all);
      if (cycle) throw new CohortError(400, 'invalid_definition', `definition: cohort ${self} would include itself (${cycle.join(' → ')})`, '/definition');
    }
    const sizes = expandedSizes(after);
    try {
      checkExpandedSize(sizes.get(key)!, 'definition');
      if (self === undefined) return;
      // Cohorts that name this one grow with it; one already over the limit may stay as it was.
      const before = expandedSizes(all);
      for (const [id, size] of sizes) {
        if (id !== key && size > MAX_EXPANDED_FILTERS && size > (before.get(id) ?? 0)) checkExpandedSize(size, 'definition', `cohort ${id}, which names this one,`);
      }
    } catch (err) {
      if (err instanceof DefinitionError) throw new CohortError(400, 'invalid_definition', err.message, err.pointer);
      throw err;
    }
  }
}

/** Why a stored cohort cannot be evaluated (it expands past the limit), or undefined. */
export function evaluationProblem(id: number, all: ReadonlyMap<number, Definition>): string | undefined {
  const size = expandedSizes(all).get(id) ?? 0;
  return size > MAX_EXPANDED_FILTERS ? `cohort ${id} expands to ${size} filters once the cohorts it names are put in, more than the ${MAX_EXPANDED_FILTERS} that can be evaluated; change its definition or those of the cohorts it names` : undefined;
}

const notFound = (id: number) => new CohortError(404, 'not_found', `no cohort ${id} in this project`);
