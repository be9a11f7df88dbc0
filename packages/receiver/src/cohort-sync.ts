/** Cohort sync requests (Mixpanel's Custom Webhook format) and the reply the sender expects. */

export type CohortSyncAction = 'members' | 'add_members' | 'remove_members';

export interface CohortMember {
  mixpanel_distinct_id: string;
  email?: string;
  first_name?: string;
  last_name?: string;
  phone_number?: string;
  /** Exported properties: present only when they have a value. */
  [property: string]: unknown;
}

export interface CohortSyncRequest {
  action: CohortSyncAction;
  parameters: {
    mixpanel_project_id: string;
    mixpanel_cohort_id: string;
    mixpanel_cohort_name: string;
    mixpanel_cohort_description: string;
    mixpanel_session_id: string;
    /** page_count runs from 1 to total_pages over the whole session. */
    page_info: { total_pages: number; page_count: number };
    members: CohortMember[];
  };
}

export interface CohortSyncReply {
  action: CohortSyncAction;
  status: 'success' | 'failure';
  error?: { message: string; code: number };
}

/** A request that is not a cohort sync page; `path` names the offending field. */
export class CohortSyncFormatError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

const ACTIONS: CohortSyncAction[] = ['members', 'add_members', 'remove_members'];
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Parses and checks one cohort sync request body (text or already parsed), as
 * schema/cohort-sync.schema.json describes it; throws CohortSyncFormatError naming the first problem.
 */
export function parseCohortSync(body: string | unknown): CohortSyncRequest {
  let value: unknown = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch (err) {
      throw new CohortSyncFormatError('body', `not JSON: ${(err as Error).message}`);
    }
  }
  if (!isObject(value)) throw new CohortSyncFormatError('body', 'expected a JSON object');
  if (!ACTIONS.includes(value.action as CohortSyncAction)) throw new CohortSyncFormatError('action', `expected one of ${ACTIONS.join(', ')}`);
  const p = value.parameters;
  if (!isObject(p)) throw new CohortSyncFormatError('parameters', 'expected an object');
  for (const key of ['mixpanel_project_id', 'mixpanel_cohort_id', 'mixpanel_session_id'] as const) {
    if (typeof p[key] !== 'string' || p[key] === '') throw new CohortSyncFormatError(`parameters.${key}`, 'expected a non-empty string');
  }
  for (const key of ['mixpanel_cohort_name', 'mixpanel_cohort_description'] as const) {
    if (typeof p[key] !== 'string') throw new CohortSyncFormatError(`parameters.${key}`, 'expected a string');
  }
  const info = p.page_info;
  if (!isObject(info) || !Number.isInteger(info.total_pages) || !Number.isInteger(info.page_count)) {
    throw new CohortSyncFormatError('parameters.page_info', 'expected {"total_pages": N, "page_count": K}');
  }
  const total = info.total_pages as number;
  const page = info.page_count as number;
  if (total < 1 || page < 1 || page > total) throw new CohortSyncFormatError('parameters.page_info', `page_count ${page} is not between 1 and total_pages ${total}`);
  if (!Array.isArray(p.members) || p.members.length > 1000) throw new CohortSyncFormatError('parameters.members', 'expected a list of at most 1000 members');
  p.members.forEach((m, i) => {
    if (!isObject(m) || typeof m.mixpanel_distinct_id !== 'string' || m.mixpanel_distinct_id === '') {
      throw new CohortSyncFormatError(`parameters.members[${i}].mixpanel_distinct_id`, 'expected a non-empty string');
    }
    for (const [k, v] of Object.entries(m)) {
      if (v === null) throw new CohortSyncFormatError(`parameters.members[${i}].${k}`, 'a field with no value is left out, never null');
    }
  });
  return value as unknown as CohortSyncRequest;
}

/** The reply the sender expects: success, or failure with a message shown to its users and an HTTP status code. */
export function cohortSyncReply(action: CohortSyncAction, failure?: { message: string; code: number }): CohortSyncReply {
  return failure ? { action, status: 'failure', error: failure } : { action, status: 'success' };
}
