// One cohort (#/cohorts/ID): its definition to change, its live count and members, and what uses it.
import { useState } from 'preact/hooks';
import { api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { useLoad, usePaged } from '../lib/hooks.js';
import { href } from '../lib/router.js';
import { LoadState, Pager } from '../lib/ui.js';
import { CohortForm } from './cohorts-editor.js';

function Count({ id }) {
  const [count] = useLoad(() => api(`/cohorts/${id}/count`), [id]);
  return html`<div class="card" aria-live="polite">
    <div>Members now</div>
    ${count.data ? html`<div class="value" data-testid="cohort-count">${count.data.count}</div>` : html`<${LoadState} state=${count} />`}
  </div>`;
}

const personName = (p) => p.$name ?? ([p.$first_name, p.$last_name].filter(Boolean).join(' ') || '');

function Members({ id }) {
  const list = usePaged(`/cohorts/${id}/members`, {}, { limit: 20 });
  return html`<section aria-labelledby="members-heading">
    <h2 id="members-heading">Members</h2>
    <${LoadState} state=${list} />
    ${list.data &&
    (list.data.results.length === 0 && list.page === 1
      ? html`<p class="muted">No members now.</p>`
      : html`<div class="table-wrap"><table>
          <thead><tr><th>Distinct ID</th><th>E-mail</th><th>Name</th></tr></thead>
          <tbody>
            ${list.data.results.map((m) => html`<tr><td>${m.$distinct_id}</td><td>${m.$properties.$email ?? ''}</td><td>${personName(m.$properties)}</td></tr>`)}
          </tbody>
        </table></div>`)}
    <${Pager} list=${list} label="Member pages" />
  </section>`;
}

const USERS = [
  ['cohort_syncs', 'Cohort syncs', 'syncs', 'Sync'],
  ['messages', 'Webhook messages', 'messages', 'Message'],
  ['subscriptions', 'Subscriptions', 'subscriptions', 'Subscription'],
  ['cohorts', 'Cohorts that name it', 'cohorts', 'Cohort'],
];

/** What uses the cohort, from GET /cohorts/:id/usage (one call, exact: the lists that block its deletion). */
function Usage({ id }) {
  const [usage] = useLoad(() => api(`/cohorts/${id}/usage`), [id]);
  const used = usage.data && USERS.filter(([key]) => usage.data[key].length > 0);
  return html`<section aria-labelledby="usage-heading">
    <h2 id="usage-heading">Where it is used</h2>
    <${LoadState} state=${usage} />
    ${used && used.length === 0 && html`<p class="muted">Nothing uses this cohort.</p>`}
    ${used?.length > 0 &&
    html`<dl class="facts">
      ${used.map(([key, label, page, one]) => html`<dt>${label}</dt><dd>${usage.data[key].map((n, i) => html`${i > 0 && ', '}<a href=${href(page, [n])}>${one} ${n}</a>`)}</dd>`)}
    </dl>`}
  </section>`;
}

export function CohortPage({ id }) {
  const [cohort, reload] = useLoad(() => api(`/cohorts/${id}`), [id]);
  // A save shows the count and members anew (from the first page).
  const [version, setVersion] = useState(0);
  const saved = () => {
    reload();
    setVersion((v) => v + 1);
  };
  return html`<section>
    <p><a href=${href('cohorts')}>All cohorts</a></p>
    <h1>${cohort.data ? `Cohort: ${cohort.data.name}` : `Cohort ${id}`}</h1>
    <${LoadState} state=${cohort} />
    ${cohort.data &&
    html`<div class="cards"><${Count} key=${version} id=${id} /></div>
      <h2>Definition</h2>
      <${CohortForm} key=${cohort.data.id} cohort=${cohort.data} label="Change the cohort" onSaved=${saved} />
      <${Members} key=${version} id=${id} />
      <${Usage} id=${id} />`}
  </section>`;
}
