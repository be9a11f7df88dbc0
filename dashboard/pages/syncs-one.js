// One cohort sync (#/syncs/ID): its state and why it paused, Run now and Resume, and its runs,
// refreshed every second while a run is going.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { useAction, useLoad, usePaged } from '../lib/hooks.js';
import { href } from '../lib/router.js';
import { Badge, LoadState, Outcome, Pager, Time } from '../lib/ui.js';

/** A run's page deliveries are owned by `cohort-sync` with owner id `RUN:PAGE` (src/cohort-sync/pages.ts); "RUN:" lists them all. */
function RunDeliveries({ run }) {
  if (run.total_pages === 0) return html`<span class="muted">—</span>`;
  return html`<a href=${href('deliveries', [], { owner_kind: 'cohort-sync', owner_id: `${run.id}:` })} aria-label=${`Deliveries of run ${run.id}`}>${run.total_pages} page${run.total_pages === 1 ? '' : 's'}</a>`;
}

function Runs({ runs }) {
  return html`<section aria-labelledby="runs-heading">
    <h2 id="runs-heading">Runs</h2>
    <${LoadState} state=${runs} />
    ${runs.data &&
    (runs.data.results.length === 0 && runs.page === 1
      ? html`<p class="muted">No runs yet.</p>`
      : html`<div class="table-wrap"><table class="runs">
          <thead><tr><th>Run</th><th>State</th><th>Pages acknowledged</th><th>Added</th><th>Removed</th><th>Session</th><th>Started</th><th>Finished</th><th>Deliveries</th></tr></thead>
          <tbody>
            ${runs.data.results.map(
              (r) => html`<tr data-run=${r.id}>
                <td>${r.id} <span class="muted">(${r.kind})</span></td>
                <td><${Badge} value=${r.state} />${r.error && html`<div class="run-error">${r.error}</div>`}</td>
                <td><progress max=${Math.max(r.total_pages, 1)} value=${r.pages_acked} aria-label=${`Run ${r.id}: ${r.pages_acked} of ${r.total_pages} pages acknowledged`}></progress> ${r.pages_acked} of ${r.total_pages}</td>
                <td>${r.members_added}</td>
                <td>${r.members_removed}</td>
                <td class="session">${r.session_id}</td>
                <td><${Time} at=${r.started_at} /></td>
                <td><${Time} at=${r.finished_at} /></td>
                <td><${RunDeliveries} run=${r} /></td>
              </tr>`,
            )}
          </tbody>
        </table></div>`)}
    <${Pager} list=${runs} label="Run pages" />
  </section>`;
}

/** A button for a POST on the sync, with the API's refusal (or a confirmation) beside it. */
function SyncAction({ label, path, done, onDone }) {
  const [state, start] = useAction(async () => {
    const result = await api(path, { method: 'POST' });
    onDone();
    return result;
  });
  return html`<div class="actions">
    <button type="button" onClick=${() => start()} disabled=${state.busy}>${label}</button>
    <${Outcome} state=${state} done=${done} />
  </div>`;
}

export function SyncPage({ id }) {
  // While a run goes (or one is due: just created, run now, resumed), the sync and its runs are read every second.
  const [live, setLive] = useState(false);
  const every = live ? 1000 : undefined;
  const runs = usePaged(`/cohort-syncs/${id}/runs`, {}, { limit: 20, every });
  const [sync, reloadSync] = useLoad(() => api(`/cohort-syncs/${id}`), [id], { every });
  useEffect(() => {
    const newest = runs.data?.results[0];
    const s = sync.data;
    setLive(newest?.state === 'running' || (s?.state === 'active' && (!newest || Date.parse(s.next_run_at) <= Date.now())));
  }, [runs.data, sync.data]);
  const [cohort] = useLoad(() => (sync.data ? api(`/cohorts/${sync.data.cohort_id}`) : Promise.resolve(undefined)), [sync.data?.cohort_id]);
  const [connection] = useLoad(() => (sync.data ? api(`/connections/${sync.data.connection_id}`) : Promise.resolve(undefined)), [sync.data?.connection_id]);
  const refresh = () => (reloadSync(), runs.reload());
  const s = sync.data;
  return html`<section>
    <p><a href=${href('syncs')}>All cohort syncs</a></p>
    <h1>Cohort sync ${id}</h1>
    <${LoadState} state=${sync} />
    ${s &&
    html`<dl class="facts">
        <dt>State</dt><dd><${Badge} value=${s.state} /></dd>
        ${s.state_reason && html`<dt>Why paused</dt><dd class="state-reason" data-testid="state-reason">${s.state_reason}</dd>`}
        <dt>Cohort</dt><dd><a href=${href('cohorts', [s.cohort_id])}>${cohort.data?.name ?? `Cohort ${s.cohort_id}`}</a></dd>
        <dt>Connection</dt><dd>${connection.data?.name ?? `Connection ${s.connection_id}`}</dd>
        <dt>Schedule</dt><dd>${s.one_time ? 'once' : `every ${s.interval_minutes} minutes`}</dd>
        <dt>Next run</dt><dd><${Time} at=${s.next_run_at} /></dd>
        <dt>Last success</dt><dd><${Time} at=${s.last_success_at} /></dd>
        <dt>Properties exported</dt><dd>${s.properties_to_export.join(', ') || html`<span class="muted">none</span>`}</dd>
        <dt>Told when it pauses</dt><dd>${s.owner_emails.join(', ') || html`<span class="muted">nobody</span>`}</dd>
        <dt>Pause e-mails</dt><dd><a href=${href('deliveries', [], { owner_kind: 'cohort-sync-notice', owner_id: s.id })}>Deliveries of this sync's e-mails</a></dd>
      </dl>
      <div class="actions">
        <${SyncAction} label="Run now" path=${`/cohort-syncs/${id}/run`} done="Run started." onDone=${refresh} />
        <${SyncAction} label="Resume" path=${`/cohort-syncs/${id}/resume`} done="Resumed." onDone=${refresh} />
      </div>`}
    <${Runs} runs=${runs} />
  </section>`;
}
