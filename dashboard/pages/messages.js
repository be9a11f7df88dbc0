// Webhook messages: the list, a new one, and one message's settings, test, runs and recipients.
import { useState } from 'preact/hooks';
import { api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { useAction, usePaged } from '../lib/hooks.js';
import { Choice, ConnectionName, DeleteButton, EnableButton, FormError, ItemHead, JsonArea, TestButton, errorAt, parseJson, useItem, useOptions } from '../lib/items.js';
import { href, navigate } from '../lib/router.js';
import { Badge, Field, Json, LoadState, Pager, Select, Time } from '../lib/ui.js';

const FIELDS = ['name', 'connection_id', 'cohort_id', 'definition', 'schedule', 'properties'];
const INLINE = 'inline';
const SCHEDULE_HINT =
  '{"type": "asap"} · {"type": "scheduled", "at": "09:00", "days_of_week": ["wed"], "timezone": "America/Los_Angeles"} · {"type": "scheduled", "cron": "0 9 * * 3"} · {"type": "recurring", "every": "daily" | "weekly" | "monthly" | "as_met", "at"?, "limit"?: {"max": 1, "per": "week"}}';

/** The form for a new message, or (with `initial`) for changing one: `save` gets the body. */
function MessageForm({ initial, save, submitLabel }) {
  const connections = useOptions('/connections');
  const cohorts = useOptions('/cohorts');
  const [name, setName] = useState(initial?.name ?? '');
  const [connection, setConnection] = useState(initial ? String(initial.connection_id) : '');
  const [target, setTarget] = useState(initial ? (initial.definition ? INLINE : String(initial.cohort_id)) : '');
  const [definition, setDefinition] = useState(initial?.definition ? JSON.stringify(initial.definition, null, 2) : '{"property": "plan", "op": "equals", "value": "pro"}');
  const [schedule, setSchedule] = useState(JSON.stringify(initial?.schedule ?? { type: 'asap' }, null, 2));
  const [properties, setProperties] = useState((initial?.properties ?? []).join(', '));
  const chosenConnection = connection || connections[0]?.[0];
  const chosenTarget = target || cohorts[0]?.[0] || INLINE;
  const [state, submit] = useAction(() => {
    const props = properties.split(/[\s,]+/).filter(Boolean);
    return save({
      name,
      connection_id: Number(chosenConnection),
      ...(chosenTarget === INLINE ? { definition: parseJson('definition', definition) } : { cohort_id: Number(chosenTarget) }),
      schedule: parseJson('schedule', schedule),
      properties: props.length ? props : null,
    });
  });
  return html`<form onSubmit=${(e) => (e.preventDefault(), submit())} aria-label=${submitLabel}>
    <${Field} id="msg-name" label="Name" required value=${name} onInput=${setName} error=${errorAt(state, 'name')} />
    <${Choice} id="msg-connection" label="Connection (where the users are posted)" value=${chosenConnection} onChange=${setConnection} options=${connections} error=${errorAt(state, 'connection_id')} />
    <${Choice} id="msg-target" label="Target" value=${chosenTarget} onChange=${setTarget} options=${[...cohorts.map(([v, l]) => [v, `Cohort ${l}`]), [INLINE, 'An inline definition']]} error=${errorAt(state, 'cohort_id')} />
    ${chosenTarget === INLINE && html`<${JsonArea} id="msg-definition" label="Definition (JSON)" hint="As cohorts write them: property filters, events that did or did not occur within N days." value=${definition} onInput=${setDefinition} error=${errorAt(state, 'definition')} />`}
    <${JsonArea} id="msg-schedule" label="Schedule (JSON)" hint=${SCHEDULE_HINT} value=${schedule} onInput=${setSchedule} error=${errorAt(state, 'schedule')} />
    <${Field} id="msg-properties" label="Profile properties sent" hint="Comma-separated; empty sends all of them." value=${properties} onInput=${setProperties} error=${errorAt(state, 'properties')} />
    <${FormError} state=${state} fields=${FIELDS} />
    <p><button class="primary" type="submit" disabled=${state.busy}>${submitLabel}</button></p>
  </form>`;
}

const describeSchedule = (s) => [s.type, s.every, s.at, s.cron, s.days_of_week?.join(' '), s.timezone].filter(Boolean).join(' · ');

function MessageList() {
  const list = usePaged('/messages');
  const create = async (body) => {
    const made = await api('/messages', { method: 'POST', body });
    navigate('messages', [made.id]);
  };
  return html`<section>
    <h1>Webhook messages</h1>
    <details>
      <summary>New message</summary>
      <${MessageForm} save=${create} submitLabel="Create message" />
    </details>
    <${LoadState} state=${list} />
    ${list.data?.results.length === 0 && html`<p class="muted">No messages yet.</p>`}
    ${list.data?.results.length > 0 &&
    html`<div class="table-wrap"><table>
      <thead><tr><th>Name</th><th>Schedule</th><th>Target</th><th>State</th></tr></thead>
      <tbody>${list.data.results.map(
        (m) => html`<tr>
          <td><a href=${href('messages', [m.id])}>${m.name}</a></td>
          <td>${describeSchedule(m.schedule)}</td>
          <td>${m.definition ? 'inline definition' : `cohort #${m.cohort_id}`}</td>
          <td><${Badge} value=${m.enabled ? 'active' : 'paused'} /></td>
        </tr>`,
      )}</tbody>
    </table></div>`}
    <${Pager} list=${list} label="Message pages" />
  </section>`;
}

function Runs({ id }) {
  const list = usePaged(`/messages/${id}/runs`, {}, { every: 5000 });
  return html`<section aria-labelledby="runs">
    <h2 id="runs">Runs</h2>
    <${LoadState} state=${list} />
    ${list.data?.results.length === 0 && html`<p class="muted">No runs yet.</p>`}
    ${list.data?.results.length > 0 &&
    html`<div class="table-wrap"><table>
      <thead><tr><th>Run</th><th>Started</th><th>Users</th><th>Sent</th><th>Failed</th><th>Dropped</th><th>Outstanding</th><th>Finished</th></tr></thead>
      <tbody>${list.data.results.map(
        (r) => html`<tr>
          <td>#${r.id} <span class="muted">${r.kind}</span></td>
          <td><${Time} at=${r.started_at} /></td>
          <td>${r.users}</td><td>${r.sent}</td><td>${r.failed}</td><td>${r.dropped}</td><td>${r.outstanding}</td>
          <td><${Time} at=${r.finished_at} /></td>
        </tr>`,
      )}</tbody>
    </table></div>`}
    <${Pager} list=${list} label="Run pages" />
  </section>`;
}

const STATES = [['', 'Any state'], ...['waiting', 'queued', 'sent', 'failed', 'dropped'].map((s) => [s, s])];

function Recipients({ id }) {
  const [state, setState] = useState('');
  const [distinctId, setDistinctId] = useState('');
  const list = usePaged(`/messages/${id}/recipients`, { state, distinct_id: distinctId.trim() }, { every: 5000 });
  return html`<section aria-labelledby="recipients">
    <h2 id="recipients">Recipients</h2>
    <div class="filters">
      <${Select} id="rcpt-state" label="State" value=${state} onChange=${setState} options=${STATES} />
      <${Field} id="rcpt-id" label="Distinct id" value=${distinctId} onInput=${setDistinctId} />
    </div>
    <${LoadState} state=${list} />
    ${list.data?.results.length === 0 && html`<p class="muted">Nobody yet.</p>`}
    ${list.data?.results.length > 0 &&
    html`<div class="table-wrap"><table>
      <thead><tr><th>Distinct id</th><th>State</th><th>Sends</th><th>Last sent</th><th>Delivery</th><th>Why not sent</th></tr></thead>
      <tbody>${list.data.results.map(
        (r) => html`<tr>
          <td>${r.distinct_id}</td>
          <td><${Badge} value=${r.state} /></td>
          <td>${r.sends}</td>
          <td><${Time} at=${r.last_sent_at} /></td>
          <td>${r.delivery_id ? html`<a href=${href('deliveries', [r.delivery_id])}>#${r.delivery_id}</a>` : '—'}</td>
          <td>${r.reason ?? ''}</td>
        </tr>`,
      )}</tbody>
    </table></div>`}
    <${Pager} list=${list} label="Recipient pages" />
  </section>`;
}

function MessageItem({ id }) {
  const path = `/messages/${id}`;
  const { state, reload, editing, save, editButton } = useItem(path);
  if (!state.data) return html`<${LoadState} state=${state} />`;
  const m = state.data;
  return html`<section>
    <${ItemHead} back="messages" backLabel="Webhook messages" title=${m.name} state=${m.enabled ? 'active' : 'paused'}>
      <${EnableButton} path=${path} enabled=${m.enabled} onChanged=${reload} />
      ${editButton}
      <${DeleteButton} path=${path} what=${`message “${m.name}”, its ledger and runs`} page="messages" />
    </${ItemHead}>
    ${editing && html`<${MessageForm} initial=${m} save=${save} submitLabel="Save changes" />`}
    <h2>Settings</h2>
    <dl class="facts">
      <dt>Connection</dt><dd><${ConnectionName} id=${m.connection_id} /></dd>
      <dt>Target</dt><dd>${m.definition ? html`its own cohort <a href=${href('cohorts', [m.cohort_id])}>#${m.cohort_id}</a>: <${Json} value=${m.definition} label="Definition" />` : html`cohort <a href=${href('cohorts', [m.cohort_id])}>#${m.cohort_id}</a>`}</dd>
      <dt>Schedule</dt><dd>${describeSchedule(m.schedule)} <${Json} value=${m.schedule} label="Schedule" /></dd>
      <dt>Properties sent</dt><dd>${m.properties ? m.properties.join(', ') : 'all'}</dd>
      <dt>Created</dt><dd><${Time} at=${m.created_at} /></dd>
    </dl>
    <h2>Test</h2>
    <p class="hint">Posts five profiles picked at random to the connection now, with <code>x-cohortcast-test: true</code>; never recorded as sent.</p>
    <${TestButton}
      path=${`${path}/test`}
      label="Send a test"
      show=${(r) => html`<dl class="facts">
        <dt>Users sent</dt><dd>${r.users.length ? r.users.join(', ') : 'none (no profiles yet)'}</dd>
        <dt>Answer</dt><dd>${r.ok ? 'Accepted' : 'Not accepted'}${r.status ? `: HTTP ${r.status}` : ''}${r.error ? ` (${r.error})` : ''}</dd>
        ${r.response_body && html`<dt>Reply</dt><dd><code>${r.response_body}</code></dd>`}
        <dt>Delivery</dt><dd><a href=${href('deliveries', [r.delivery_id])}>#${r.delivery_id}</a></dd>
      </dl>`}
    />
    <p><a href=${href('deliveries', [], { owner_kind: 'message-test', owner_id: m.id })}>Every test delivery of this message</a></p>
    <${Runs} id=${m.id} />
    <${Recipients} id=${m.id} />
  </section>`;
}

export function Messages({ parts }) {
  return parts[0] ? html`<${MessageItem} id=${parts[0]} />` : html`<${MessageList} />`;
}
