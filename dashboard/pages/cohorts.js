// Cohorts: the list (cursor pages) with a form to create one; #/cohorts/ID is one cohort.
import { html } from '../lib/html.js';
import { usePaged } from '../lib/hooks.js';
import { href, navigate } from '../lib/router.js';
import { LoadState, Pager, Time } from '../lib/ui.js';
import { CohortForm } from './cohorts-editor.js';
import { CohortPage } from './cohorts-one.js';

export const Cohorts = ({ parts }) => (parts[0] ? html`<${CohortPage} key=${parts[0]} id=${parts[0]} />` : html`<${CohortList} />`);

function CohortList() {
  const list = usePaged('/cohorts');
  return html`<section>
    <h1>Cohorts</h1>
    <${LoadState} state=${list} />
    ${list.data &&
    (list.data.results.length === 0 && list.page === 1
      ? html`<p class="muted">No cohorts yet.</p>`
      : html`<div class="table-wrap"><table>
          <thead><tr><th>Name</th><th>Description</th><th>Changed</th></tr></thead>
          <tbody>
            ${list.data.results.map(
              (c) => html`<tr>
                <td><a href=${href('cohorts', [c.id])}>${c.name}</a></td>
                <td>${c.description}</td>
                <td><${Time} at=${c.updated_at} /></td>
              </tr>`,
            )}
          </tbody>
        </table></div>`)}
    <${Pager} list=${list} label="Cohort pages" />
    <h2>New cohort</h2>
    <${CohortForm} label="New cohort" onSaved=${(c) => navigate('cohorts', [c.id])} />
  </section>`;
}
