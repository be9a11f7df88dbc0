// Event subscriptions: the list, a new one, and one subscription's settings, test and deliveries.
import { useState } from 'preact/hooks';
import { api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { useAction, useLoad, usePaged } from '../lib/hooks.js';
import { ConnectionName, DeleteButton, EnableButton, FormError, ItemHead, JsonArea, RecentDeliveries, Reply, TestButton, errorAt, parseJson, useItem } from '../lib/items.js';
import { href, navigate } from '../lib/router.js';
import { Badge, Field, Json, LoadState, Pager, Time } from '../lib/ui.js';

const FIELDS = ['name', 'event_types', 'cohort_ids', 'event_filter', 'channels'];
const pretty = (v) => (v === undefined || v === null ? '' : JSON.stringify(v, null, 2));

/** The form for a new subscription, or (with `initial`) for changing one: `save` gets the body. */
export function SubscriptionForm({ initial, save, submitLabel }) {
  const [types] = useLoad(() => api('/event-types'));
  const [name, setName] = useState(initial?.name ?? '');
  const [eventTypes, setEventTypes] = useState(initial?.event_types ?? []);
  const [cohorts, setCohorts] = useState((initial?.cohort_ids ?? []).join(', '));
  const [filter, setFilter] = useState(pretty(initial?.event_filter));
  const [channels, setChannels] = useState(pretty(initial?.channels ?? [{ type: 'webhook', connection_id: 1 }]));
  const [state, submit] = useAction(() =>
    save({
      name,
      event_types: eventTypes,
      cohort_ids: cohorts.split(/[\s,]+/).filter(Boolean).map(Number),
      event_filter: parseJson('event_filter', filter, { optional: true }) ?? null,
      channels: parseJson('channels', channels),
    }),
  );
  const toggle = (type, on) => setEventTypes((t) => (on ? [...t, type] : t.filter((x) => x !== type)));
  const typesError = errorAt(state, 'event_types');
  return html`<form onSubmit=${(e) => (e.preventDefault(), submit())} aria-label=${submitLabel}>
    <${Field} id="sub-name" label="Name" required value=${name} onInput=${setName} error=${errorAt(state, 'name')} />
    <fieldset aria-describedby=${typesError ? 'sub-types-error' : undefined}>
      <legend>Event types</legend>
      <${LoadState} state=${types} />
      <div class="checks">
        ${(types.data?.results ?? []).map(
          (t) => html`<label class="check" title=${t.description}><input type="checkbox" checked=${eventTypes.includes(t.type)} onChange=${(e) => toggle(t.type, e.currentTarget.checked)} /> ${t.type}</label>`,
        )}
      </div>
      ${typesError && html`<p class="error" id="sub-types-error" role="alert">${typesError}</p>`}
    </fieldset>
    <${Field} id="sub-cohorts" label="Cohort ids" hint="Comma-separated: the cohorts whose members entering and leaving it tells of (needed with cohort.member_*)." value=${cohorts} onInput=${setCohorts} error=${errorAt(state, 'cohort_ids')} />
    <${JsonArea} id="sub-filter" label="Event filter (JSON, optional)" hint='For event.ingested: {"events": ["Purchase"], "where": [{"property": "plan", "op": "equals", "value": "pro"}]}' value=${filter} onInput=${setFilter} error=${errorAt(state, 'event_filter')} />
    <${JsonArea}
      id="sub-channels"
      label="Channels (JSON)"
      hint='1 to 10 of: {"type": "webhook", "connection_id", "payload_template"?}, {"type": "slack", "connection_id", "text_template"?}, {"type": "email", "to": [addresses], "subject_template"?, "body_template"?}, {"type": "sms", "connection_id", "from", "to": [numbers], "body_template"?}. Templates are Liquid over the event: {{ data.distinct_id }}.'
      rows="6"
      value=${channels}
      onInput=${setChannels}
      error=${errorAt(state, 'channels')}
    />
    <${FormError} state=${state} fields=${FIELDS} />
    <p><button class="primary" type="submit" disabled=${state.busy}>${submitLabel}</button></p>
  </form>`;
}

function SubscriptionList() {
  const list = usePaged('/subscriptions');
  const create = async (body) => {
    const made = await api('/subscriptions', { method: 'POST', body });
    navigate('subscriptions', [made.id]);
  };
  return html`<section>
    <h1>Subscriptions</h1>
    <details>
      <summary>New subscription</summary>
      <${SubscriptionForm} save=${create} submitLabel="Create subscription" />
    </details>
    <${LoadState} state=${list} />
    ${list.data?.results.length === 0 && html`<p class="muted">No subscriptions yet.</p>`}
    ${list.data?.results.length > 0 &&
    html`<div class="table-wrap"><table>
      <thead><tr><th>Name</th><th>Event types</th><th>Channels</th><th>State</th></tr></thead>
      <tbody>${list.data.results.map(
        (s) => html`<tr>
          <td><a href=${href('subscriptions', [s.id])}>${s.name}</a></td>
          <td>${s.event_types.join(', ')}</td>
          <td>${s.channels.map((c) => c.type).join(', ')}</td>
          <td><${Badge} value=${s.enabled ? 'active' : 'paused'} /></td>
        </tr>`,
      )}</tbody>
    </table></div>`}
    <${Pager} list=${list} label="Subscription pages" />
  </section>`;
}

/** A channel's settings: its destination (the connection's name and URL, never its secrets) and templates. */
function ChannelFacts({ channel }) {
  const { type, connection_id: connectionId, ...rest } = channel;
  return html`<li>
    <strong>${type}</strong>
    <dl class="facts">
      ${connectionId && html`<dt>Connection</dt><dd><${ConnectionName} id=${connectionId} /></dd>`}
      ${Object.entries(rest).map(([k, v]) => html`<dt>${k}</dt><dd>${typeof v === 'string' ? html`<code>${v}</code>` : Array.isArray(v) ? v.join(', ') : JSON.stringify(v)}</dd>`)}
    </dl>
  </li>`;
}

function SubscriptionItem({ id }) {
  const path = `/subscriptions/${id}`;
  const { state, reload, editing, save, editButton } = useItem(path);
  // Bumped by a test, so the history below reads again and shows it.
  const [tests, setTests] = useState(0);
  if (!state.data) return html`<${LoadState} state=${state} />`;
  const s = state.data;
  return html`<section>
    <${ItemHead} back="subscriptions" backLabel="Subscriptions" title=${s.name} state=${s.enabled ? 'active' : 'paused'}>
      <${EnableButton} path=${path} enabled=${s.enabled} onChanged=${reload} />
      ${editButton}
      <${DeleteButton} path=${path} what=${`subscription “${s.name}”`} page="subscriptions" />
    </${ItemHead}>
    ${editing && html`<${SubscriptionForm} initial=${s} save=${save} submitLabel="Save changes" />`}
    <h2>Settings</h2>
    <dl class="facts">
      <dt>Event types</dt><dd>${s.event_types.join(', ')}</dd>
      <dt>Cohorts</dt><dd>${s.cohort_ids.length ? s.cohort_ids.map((c) => html`<a href=${href('cohorts', [c])}>#${c}</a> `) : '—'}</dd>
      <dt>Event filter</dt><dd>${s.event_filter ? html`<${Json} value=${s.event_filter} label="Event filter" />` : '—'}</dd>
      <dt>Created</dt><dd><${Time} at=${s.created_at} /></dd>
      <dt>Changed</dt><dd><${Time} at=${s.updated_at} /></dd>
    </dl>
    <h3>Channels</h3>
    <ol class="channels">${s.channels.map((c) => html`<${ChannelFacts} channel=${c} />`)}</ol>
    <h2>Test</h2>
    <p class="hint">Sends a sample event of each of its types to every channel now, marked <code>"test": true</code>.</p>
    <${TestButton}
      path=${`${path}/test`}
      label="Send a test"
      onDone=${() => setTests((n) => n + 1)}
      show=${(r) => html`<ul class="replies">${r.results.map((x) => html`<li>${x.event_type} → channel ${x.channel + 1} (${x.type}): <${Reply} r=${x} />${x.response_body ? html` <code>${x.response_body}</code>` : ''}</li>`)}</ul>`}
    />
    <${RecentDeliveries} key=${tests} kinds=${['subscription', 'subscription-test']} ownerId=${`${s.id}/`} />
  </section>`;
}

export function Subscriptions({ parts }) {
  return parts[0] ? html`<${SubscriptionItem} id=${parts[0]} />` : html`<${SubscriptionList} />`;
}
