// Names for the ids a cohort sync holds (its cohort, its connection), shared by the syncs pages.
import { api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { useLoad } from '../lib/hooks.js';
import { href } from '../lib/router.js';

/**
 * Cohorts and connections by id, for names and for the form's selects: their first 1000 each (one
 * call apiece; both are lists people make by hand). A sync naming one past those shows its id.
 */
export function useNames() {
  const [cohorts] = useLoad(() => api('/cohorts', { query: { limit: 1000 } }), []);
  const [connections] = useLoad(() => api('/connections', { query: { limit: 1000 } }), []);
  const byId = (state) => new Map((state.data?.results ?? []).map((x) => [x.id, x.name]));
  return { cohorts: byId(cohorts), connections: byId(connections), error: cohorts.error ?? connections.error };
}

export const cohortLink = (names, id) => html`<a href=${href('cohorts', [id])}>${names.cohorts.get(id) ?? `Cohort ${id}`}</a>`;
export const connectionName = (names, id) => names.connections.get(id) ?? `Connection ${id}`;

