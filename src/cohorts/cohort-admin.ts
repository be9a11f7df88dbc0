import { ActionableError } from '../errors.js';
import type { Store } from '../store/database.js';
import { syncsUsingCohort } from '../store/cohort-sync-repo.js';
import { cohortDefinitions, cohortMembers, cohortSize, deleteCohort, getCohort, insertCohort, listCohorts, updateCohort, type CohortRecord, type Evaluation } from '../store/cohorts-repo.js';
import { DefinitionError, parseDefinition, referencedCohorts, type Definition } from './definition.js';

/** A refusal the API turns into a 4xx. */
export class CohortError extends ActionableError {}

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
    if (name === undefined) throw new CohortError(400, 'invalid_cohort', 'name: required');
    if (input.definition === undefined) throw new CohortError(400, 'invalid_definition', 'definition: required');
    const definition = this.#definition(input.definition);
    await this.#checkReferences(projectId, undefined, definition);
    return insertCohort(this.store, projectId, { name, description: this.#description(input.description) ?? '', definition }, Date.now());
  }

  async update(projectId: number, id: number, input: CohortInput): Promise<CohortRecord> {
    const definition = input.definition === undefined ? undefined : this.#definition(input.definition);
    if (definition) await this.#checkReferences(projectId, id, definition);
    const updated = await updateCohort(this.store, projectId, id, { name: this.#name(input.name), description: this.#description(input.description), definition }, Date.now());
    if (!updated) throw notFound(id);
    return updated;
  }

  async get(projectId: number, id: number): Promise<CohortRecord> {
    const cohort = await getCohort(this.store, projectId, id);
    if (!cohort) throw notFound(id);
    return cohort;
  }

  list(projectId: number, after: number | undefined, limit: number): Promise<CohortRecord[]> {
    return listCohorts(this.store, projectId, after, limit);
  }

  async remove(projectId: number, id: number): Promise<void> {
    const all = await cohortDefinitions(this.store.db, projectId);
    const users = [...all].filter(([other, d]) => other !== id && referencedCohorts(d).includes(id)).map(([other]) => other);
    if (users.length > 0) throw new CohortError(409, 'cohort_in_use', `cohort ${id} is used by cohort${users.length > 1 ? 's' : ''} ${users.join(', ')}; change or delete those first`);
    const syncs = await syncsUsingCohort(this.store.db, projectId, id);
    if (syncs.length > 0) throw new CohortError(409, 'cohort_in_use', `cohort ${id} is synced by cohort sync${syncs.length > 1 ? 's' : ''} ${syncs.join(', ')}; delete those first`);
    if (!(await deleteCohort(this.store, projectId, id))) throw notFound(id);
  }

  /** What evaluating the cohort now needs: its definition and those of every cohort it names. */
  async evaluation(projectId: number, id: number, now = Date.now()): Promise<Evaluation> {
    const all = await cohortDefinitions(this.store.db, projectId);
    const definition = all.get(id);
    if (!definition) throw notFound(id);
    return { projectId, definition, cohorts: all, now };
  }

  async members(projectId: number, id: number, after: string | undefined, limit: number) {
    return cohortMembers(this.store, await this.evaluation(projectId, id), after, limit);
  }

  async size(projectId: number, id: number): Promise<number> {
    return cohortSize(this.store, await this.evaluation(projectId, id));
  }

  #name(v: unknown): string | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.trim() === '' || v.length > 200) throw new CohortError(400, 'invalid_cohort', 'name: expected 1-200 characters');
    return v;
  }

  #description(v: unknown): string | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.length > 2000) throw new CohortError(400, 'invalid_cohort', 'description: expected at most 2000 characters');
    return v;
  }

  #definition(v: unknown): Definition {
    try {
      return parseDefinition(v);
    } catch (err) {
      if (err instanceof DefinitionError) throw new CohortError(400, 'invalid_definition', err.message);
      throw err;
    }
  }

  /** Named cohorts must exist in the project, and a cohort may not reach itself through them. */
  async #checkReferences(projectId: number, self: number | undefined, definition: Definition): Promise<void> {
    const named = referencedCohorts(definition);
    if (named.length === 0) return;
    const all = await cohortDefinitions(this.store.db, projectId);
    const missing = named.find((id) => !all.has(id));
    if (missing !== undefined) throw new CohortError(400, 'invalid_definition', `definition: names cohort ${missing}, which does not exist in this project`);
    if (self === undefined) return;
    // Walk what the new definition reaches; reaching `self` closes a cycle.
    const path = (id: number, trail: number[]): number[] | undefined => {
      if (id === self) return [...trail, id];
      if (trail.includes(id)) return undefined;
      for (const next of referencedCohorts(all.get(id)!)) {
        const found = path(next, [...trail, id]);
        if (found) return found;
      }
      return undefined;
    };
    for (const id of named) {
      const cycle = path(id, [self]);
      if (cycle) throw new CohortError(400, 'invalid_definition', `definition: cohort ${self} would include itself (${cycle.join(' → ')})`);
    }
  }
}

const notFound = (id: number) => new CohortError(404, 'not_found', `no cohort ${id} in this project`);
