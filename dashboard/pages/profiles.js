import { api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { useLoad, usePaged } from '../lib/hooks.js';
import { propertyFilter, useQueryForm } from '../lib/query-form.js';
import { href } from '../lib/router.js';
import { Field, Json, LoadState, Pager, Time } from '../lib/ui.js';

const KEYS = ['distinct_id', 'property', 'value'];
/** Properties worth a column when a profile has them (Mixpanel's reserved ones). */
const SHOWN = ['$name', '$email', '$phone'];

function ProfileList({ query }) {
  const form = useQueryForm('profiles', query, KEYS);
  const list = usePaged('/profiles', { distinct_id: query.distinct_id, ...propertyFilter(query.property, query.value) });
  const { values, set } = form;
  return html`<section>
    <h1>Profiles</h1>
    <form class="filters" onSubmit=${form.submit} aria-label="Search profiles">
      <${Field} id="pr-distinct" label="Distinct id" hint="one, or several separated by commas" value=${values.distinct_id} onInput=${set('distinct_id')} />
      <${Field} id="pr-property" label="Property" placeholder="e.g. plan" value=${values.property} onInput=${set('property')} />
      <${Field} id="pr-value" label="equals" placeholder="e.g. pro" value=${values.value} onInput=${set('value')} />
      <div class="actions"><button class="primary" type="submit">Search</button><button type="button" onClick=${form.clear}>Clear</button></div>
    </form>
    <${LoadState} state=${list} />
    ${list.data &&
    (list.data.results.length === 0
      ? html`<p>No profiles match.</p>`
      : html`<div class="table-wrap"><table>
          <thead><tr><th>Distinct id</th><th>Name, e-mail, phone</th><th>Properties</th></tr></thead>
          <tbody>
            ${list.data.results.map(
              (p) => html`<tr>
                <td><a href=${href('profiles', [p.$distinct_id])}>${p.$distinct_id}</a></td>
                <td>${SHOWN.map((k) => p.$properties[k]).filter((v) => v !== undefined).join(' · ') || html`<span class="muted">—</span>`}</td>
                <td>${Object.keys(p.$properties).length}</td>
              </tr>`,
            )}
          </tbody>
        </table></div>`)}
    <${Pager} list=${list} label="Profile pages" />
  </section>`;
}

/** One profile: its properties and its events, newest first. */
function Profile({ distinctId }) {
  const [state] = useLoad(() => api(`/profiles/${encodeURIComponent(distinctId)}`), [distinctId]);
  const events = usePaged('/events', { distinct_id: distinctId, order: 'desc' }, { limit: 20 });
  return html`<section>
    <p><a href=${href('profiles')}>← Profiles</a></p>
    <h1>Profile ${distinctId}</h1>
    <${LoadState} state=${state} />
    ${state.data &&
    html`<dl class="facts">
      ${Object.entries(state.data.$properties).map(([k, v]) => html`<dt>${k}</dt><dd>${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}</dd>`)}
    </dl>`}
    <h2>Recent events</h2>
    <${LoadState} state=${events} />
    ${events.data &&
    (events.data.results.length === 0
      ? html`<p>No events from this user.</p>`
      : html`<div class="table-wrap"><table>
          <thead><tr><th>Time</th><th>Event</th><th>Properties</th></tr></thead>
          <tbody>
            ${events.data.results.map(
              (e) => html`<tr>
                <td><${Time} at=${e.time} /></td>
                <td>${e.event}</td>
                <td><${Json} value=${e.properties} label=${`Properties of ${e.event} at ${e.time}`} /></td>
              </tr>`,
            )}
          </tbody>
        </table></div>`)}
    <${Pager} list=${events} label="Event pages" />
  </section>`;
}

export function Profiles({ parts, query }) {
  return parts[0] === undefined ? html`<${ProfileList} query=${query} />` : html`<${Profile} distinctId=${parts[0]} />`;
}
