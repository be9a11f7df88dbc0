import type { CohortMember, CohortSyncRequest } from './cohort-sync.js';

interface Session {
  cohortId: string;
  total: number;
  /** page_count → members of a full export (kept until the export is complete). */
  pages: Map<number, CohortMember[]>;
  complete: boolean;
}

export interface Receipt {
  /** Seen before (same webhook-id, or same session and page): nothing changed; reply success again. */
  duplicate: boolean;
  /** Every page of this request's session has now arrived. */
  sessionComplete: boolean;
}

/**
 * A receiver's copy of each cohort, rebuilt from cohort sync requests. A full export (`members`)
 * replaces the cohort once all its pages have arrived, in any order; `add_members` and
 * `remove_members` apply page by page. Pages are idempotent: a page sent again (the sender retries,
 * or resumes a run) changes nothing, so a receiver can always answer success to it.
 */
export class CohortMirror {
  readonly #cohorts = new Map<string, Map<string, CohortMember>>();
  readonly #sessions = new Map<string, Session>();
  readonly #seenIds = new Set<string>();

  receive(req: CohortSyncRequest, webhookId?: string): Receipt {
    const p = req.parameters;
    if (webhookId !== undefined) {
      if (this.#seenIds.has(webhookId)) return { duplicate: true, sessionComplete: this.#sessions.get(p.mixpanel_session_id)?.complete ?? false };
      this.#seenIds.add(webhookId);
    }
    let session = this.#sessions.get(p.mixpanel_session_id);
    if (!session) {
      session = { cohortId: p.mixpanel_cohort_id, total: p.page_info.total_pages, pages: new Map(), complete: false };
      this.#sessions.set(p.mixpanel_session_id, session);
    }
    const page = p.page_info.page_count;
    if (session.complete || session.pages.has(page)) return { duplicate: true, sessionComplete: session.complete };
    session.pages.set(page, req.action === 'members' ? p.members : []);
    const cohort = this.#cohort(p.mixpanel_cohort_id);
    if (req.action === 'add_members') for (const m of p.members) cohort.set(m.mixpanel_distinct_id, m);
    if (req.action === 'remove_members') for (const m of p.members) cohort.delete(m.mixpanel_distinct_id);
    if (session.pages.size === session.total) {
      session.complete = true;
      if (req.action === 'members') {
        // The whole export has arrived: it replaces what was there.
        cohort.clear();
        for (const members of session.pages.values()) for (const m of members) cohort.set(m.mixpanel_distinct_id, m);
      }
      session.pages.clear();
    }
    return { duplicate: false, sessionComplete: session.complete };
  }

  /** The cohort's members as the last complete export and later diffs say, in distinct id order. */
  members(cohortId: string): CohortMember[] {
    return [...(this.#cohorts.get(cohortId)?.values() ?? [])].sort((a, b) => (a.mixpanel_distinct_id < b.mixpanel_distinct_id ? -1 : a.mixpanel_distinct_id > b.mixpanel_distinct_id ? 1 : 0));
  }

  /** Sessions that have started and not yet received every page. */
  openSessions(): string[] {
    return [...this.#sessions].filter(([, s]) => !s.complete).map(([id]) => id);
  }

  #cohort(id: string): Map<string, CohortMember> {
    let cohort = this.#cohorts.get(id);
    if (!cohort) this.#cohorts.set(id, (cohort = new Map()));
    return cohort;
  }
}
