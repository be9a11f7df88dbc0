// Deliveries, newest first, filtered by what the URL's query says (#/deliveries?state=failed&connection_id=3),
// so other pages can link to a filtered list.
import { useState } from 'preact/hooks';
import { html } from '../lib/html.js';
import { usePaged } from '../lib/hooks.js';
import { fromLocalInput, toLocalInput } from '../lib/local-time.js';
import { href, navigate } from '../lib/router.js';
import { Badge, Field, LoadState, Pager, Select, Time } from '../lib/ui.js';
import { connectionLink, useConnections } from './connection-names.js';
import { DeliveryPage, answer } from './delivery.js';

const FILTERS = ['connection_id', 'channel', 'state', 'owner_kind', 'owner_id', 'event_id', 'since', 'until'];
const any = (values) => [['', 'any'], ...values.map((v) => [v, v])];
const STATES = any(['pending', 'succeeded', 'failed', 'cancelled']);
const CHANNELS = any(['webhook', 'email', 'slack', 'sms']);

function Filters({ query, connections }) {
  const [f, setF] = useState({ ...query, since: toLocalInput(query.since), until: toLocalInput(query.until) });
  const set = (key) => (value) => setF((old) => ({ ...old, [key]: value }));
  const known = connections.some((c) => String(c.id) === query.connection_id);
  const options = [['', 'any'], ...(query.connection_id && !known ? [[query.connection_id, `#${query.connection_id}`]] : []), ...connections.map((c) => [String(c.id), c.name])];
  const apply = () => navigate('deliveries', [], { ...Object.fromEntries(FILTERS.map((k) => [k, f[k]])), since: fromLocalInput(f.since), until: fromLocalInput(f.until) });
  return html`<form class="filters" aria-label="Filters" onSubmit=${(e) => (e.preventDefault(), apply())}>
    <${Select} id="f-connection" label="Connection" value=${f.connection_id ?? ''} onChange=${set('connection_id')} options=${options} />
    <${Select} id="f-channel" label="Channel" value=${f.channel ?? ''} onChange=${set('channel')} options=${CHANNELS} />
    <${Select} id="f-state" label="State" value=${f.state ?? ''} onChange=${set('state')} options=${STATES} />
    <${Field} id="f-owner-kind" label="Owner kind" placeholder="cohort-sync" value=${f.owner_kind ?? ''} onInput=${set('owner_kind')} />
    <${Field} id="f-owner-id" label="Owner id" hint="Ending in / or : takes every owner under it." value=${f.owner_id ?? ''} onInput=${set('owner_id')} />
    <${Field} id="f-event" label="Event id" placeholder="evt_…" value=${f.event_id ?? ''} onInput=${set('event_id')} />
    <${Field} id="f-since" label="Made from" type="datetime-local" value=${f.since} onInput=${set('since')} />
    <${Field} id="f-until" label="Made before" type="datetime-local" value=${f.until} onInput=${set('until')} />
    <div class="actions field">
      <button class="primary" type="submit">Apply</button>
      <a href=${href('deliveries')}>Clear</a>
    </div>
  </form>`;
}

function DeliveryList({ query }) {
  const connections = useConnections();
  const filters = Object.fromEntries(FILTERS.filter((k) => query[k]).map((k) => [k, query[k]]));
  const list = usePaged('/deliveries', filters);
  return html`<section>
    <h1>Deliveries</h1>
    <${Filters} key=${JSON.stringify(filters)} query=${filters} connections=${connections} />
    <div class="actions"><button type="button" onClick=${list.reload}>Refresh</button></div>
    <${LoadState} state=${list} />
    ${list.data &&
    (list.data.results.length === 0
      ? html`<p class="muted">No delivery matches.</p>`
      : html`<div class="table-wrap"><table>
          <thead><tr><th>Delivery</th><th>Made</th><th>State</th><th>Connection</th><th>Owner</th><th>Attempts</th><th>Last answer</th></tr></thead>
          <tbody>
            ${list.data.results.map(
              (d) => html`<tr>
                <td><a href=${href('deliveries', [d.id])}>#${d.id}</a></td>
                <td><${Time} at=${d.created_at} /></td>
                <td><${Badge} value=${d.state} /></td>
                <td>${d.connection_id === null ? html`<span class="muted">${d.channel}</span>` : connectionLink(connections, d.connection_id)}</td>
                <td>${d.owner.kind} ${d.owner.id}</td>
                <td>${d.attempts}</td>
                <td>${d.last_error ?? answer(d.channel, d.last_status)}</td>
              </tr>`,
            )}
          </tbody>
        </table></div>`)}
    <${Pager} list=${list} label="Delivery pages" />
  </section>`;
}

export function Deliveries({ parts, query }) {
  if (parts[0]) return html`<${DeliveryPage} key=${parts[0]} id=${parts[0]} />`;
  return html`<${DeliveryList} query=${query} />`;
}
