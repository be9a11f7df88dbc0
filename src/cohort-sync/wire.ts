import type { DeliveryConfig } from '../config.js';
import type { RetryPolicy } from '../delivery/policies.js';

/**
 * Mixpanel's cohort sync to a custom webhook (seed 002), as it goes over the wire:
 *   POST application/json {"action": "members" | "add_members" | "remove_members",
 *     "parameters": {"mixpanel_project_id", "mixpanel_cohort_id", "mixpanel_cohort_name",
 *       "mixpanel_cohort_description", "mixpanel_session_id", "page_info": {"total_pages", "page_count"},
 *       "members": [{"mixpanel_distinct_id", "email", "first_name", "last_name", "phone_number", …exported}]}}
 * and the reply {"action", "status": "success" | "failure", "error": {"message", "code"}}.
 * A member's exported properties are appended by the database as it builds a page
 * (store/cohort-sync-repo.ts pageMembersJson); everything else of the format is here.
 * packages/receiver holds the receiving side and a JSON Schema of it.
 */

export type SyncAction = 'members' | 'add_members' | 'remove_members';

/** Page fields and the profile properties they come from; exported properties follow them. */
const MEMBER_FIELDS: readonly (readonly [field: string, property: string])[] = [
  ['email', '$email'],
  ['first_name', '$first_name'],
  ['last_name', '$last_name'],
  ['phone_number', '$phone'],
];

/**
 * A profile as a page member, without its closing brace: mixpanel_distinct_id and the identity
 * fields as text; a field with no value (missing, null or empty text) is left out. The profile
 * writer keeps it on every profile (profiles.sync_member), so building a page of a million-member
 * export is concatenation, not a JSON parse per member.
 */
export function syncMemberHead(distinctId: string, properties: Record<string, unknown>): string {
  let head = `{"mixpanel_distinct_id":${JSON.stringify(distinctId)}`;
  for (const [field, key] of MEMBER_FIELDS) {
    const v = properties[key];
    if (v === undefined || v === null || v === '') continue;
    head += `,"${field}":${JSON.stringify(typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v))}`;
  }
  return head;
}

/** What every page of a run carries besides its members, fixed when the run starts. */
export interface PageEnvelope {
  projectId: number;
  cohortId: number;
  cohortName: string;
  cohortDescription: string;
  sessionId: string;
  totalPages: number;
}

/** A page's body: the envelope by JSON.stringify, the members (JSON text built by the database) spliced in as they are. */
export function pageBody(envelope: PageEnvelope, action: SyncAction, pageCount: number, membersJson: string): string {
  const head = JSON.stringify({
    action,
    parameters: {
      mixpanel_project_id: String(envelope.projectId),
      mixpanel_cohort_id: String(envelope.cohortId),
      mixpanel_cohort_name: envelope.cohortName,
      mixpanel_cohort_description: envelope.cohortDescription,
      mixpanel_session_id: envelope.sessionId,
      page_info: { total_pages: envelope.totalPages, page_count: pageCount },
    },
  });
  return `${head.slice(0, -2)},"members":${membersJson}}}`;
}

/** The receiver's reply when it says "failure" (error.code decides as a status would); undefined otherwise. */
export function readCohortSyncReply(body: string): { code: number | undefined; message: string } | undefined {
  let reply: unknown;
  try {
    reply = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof reply !== 'object' || reply === null || (reply as { status?: unknown }).status !== 'failure') return undefined;
  const error = (reply as { error?: { code?: unknown; message?: unknown } }).error ?? {};
  const code = Number(error.code);
  const message = typeof error.message === 'string' && error.message ? error.message : 'the receiver answered status "failure"';
  return { code: Number.isInteger(code) ? code : undefined, message };
}

export const COHORT_SYNC_POLICY = 'mixpanel-cohort-sync';

/** Mixpanel's: 5xx, 429, timeouts and failure replies retried 5 times within 60 s; 400/401/403/404 end it (the sync pauses). */
export function cohortSyncPolicy(config: Pick<DeliveryConfig, 'cohortSyncSchedule'>): RetryPolicy {
  return {
    name: COHORT_SYNC_POLICY,
    schedule: config.cohortSyncSchedule,
    jitter: 0,
    success: '2xx',
    permanent: [400, 401, 403, 404],
    disableOn: [],
    retry: true,
    readReply: readCohortSyncReply,
  };
}
