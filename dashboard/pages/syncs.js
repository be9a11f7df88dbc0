// Cohort syncs: the list (state, and why paused in the receiver's words) with a form to create one;
// #/syncs/ID is one sync.
import { useState } from 'preact/hooks';
import { api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { useAction, usePaged } from '../lib/hooks.js';
import { href, navigate } from '../lib/router.js';
import { Badge, Field, LoadState, Pager, Select, Time } from '../lib/ui.js';
import { cohortLink, connectionName, useNames } from './syncs-names.js';
import { SyncPage } from './syncs-one.js';

const list = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);

function NewSync({ names }) {
  const [cohort, setCohort] = useState('');
  const [connection, setConnection] = useState('');
  const [every, setEvery] = useState('');
  const [exported, setExported] = useState('');
  const [owners, setOwners] = useState('');
  const [state, create] = useAction(async () => {
    const body = { cohort_id: Number(cohort), connection_id: Number(connection), properties_to_export: list(exported), owner_emails: list(owners) };
    if (every !== '') body.interval_minutes = Number(every);
    const sync = await api('/cohort-syncs', { method: 'POST', body });
    navigate('syncs', [sync.id]);
    return sync;
  });
  const options = (map, what) => [['', `Choose a ${what}`], ...[...map].map(([id, name]) => [String(id), `${name} (${id})`])];
  return html`<form onSubmit=${(e) => (e.preventDefault(), create())} aria-label="New cohort sync">
    <h2>New cohort sync</h2>
    <p class="hint">The first run starts at once and sends the whole cohort; later runs send what changed.</p>
    <${Select} id="sync-cohort" label="Cohort" value=${cohort} onChange=${setCohort} options=${options(names.cohorts, 'cohort')} />
    <${Select} id="sync-connection" label="Connection" value=${connection} onChange=${setConnection} options=${options(names.connections, 'connection')} />
    <${Field} id="sync-interval" label="Every (minutes)" type="number" min="1" max="10080" hint="Left empty: every 30 minutes." value=${every} onInput=${setEvery} />
    <${Field} id="sync-properties" label="Properties to export" hint="Profile property names, separated by commas (optional)." value=${exported} onInput=${setExported} />
    <${Field} id="sync-owners" label="Owner e-mails" hint="Told by e-mail when the sync pauses; separated by commas (optional)." value=${owners} onInput=${setOwners} />
    ${state.error && html`<p class="error" role="alert">${state.error}</p>`}
    <p><button class="primary" type="submit" disabled=${state.busy || !cohort || !connection}>Create</button></p>
  </form>`;
}

function SyncList() {
  const names = useNames();
  const syncs = usePaged('/cohort-syncs');
  return html`<section>
    <h1>Cohort syncs</h1>
    ${names.error && html`<p class="error" role="alert">${names.error}</p>`}
    <${LoadState} state=${syncs} />
    ${syncs.data &&
    (syncs.data.results.length === 0 && syncs.page === 1
      ? html`<p class="muted">No cohort syncs yet.</p>`
      : html`<div class="table-wrap"><table class="syncs">
          <thead><tr><th>Sync</th><th>Cohort</th><th>Connection</th><th>State</th><th>Why paused</th><th>Next run</th></tr></thead>
          <tbody>
            ${syncs.data.results.map(
              (s) => html`<tr>
                <td><a href=${href('syncs', [s.id])}>Sync ${s.id}</a></td>
                <td>${cohortLink(names, s.cohort_id)}</td>
                <td>${connectionName(names, s.connection_id)}</td>
                <td><${Badge} value=${s.state} /></td>
                <td>${s.state === 'paused' ? s.state_reason : ''}</td>
                <td><${Time} at=${s.next_run_at} /></td>
              </tr>`,
            )}
          </tbody>
        </table></div>`)}
    <${Pager} list=${syncs} label="Cohort sync pages" />
    <${NewSync} names=${names} />
  </section>`;
}

export const Syncs = ({ parts }) => (parts[0] ? html`<${SyncPage} key=${parts[0]} id=${parts[0]} />` : html`<${SyncList} />`);
