// One delivery: what it sends, every attempt and how it was judged, and retry.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { useAction, useLoad } from '../lib/hooks.js';
import { href } from '../lib/router.js';
import { Badge, Json, LoadState, Outcome, Time } from '../lib/ui.js';
import { connectionLink, useConnections } from './connection-names.js';

/** A reply's status code with what speaks it: HTTP, or SMTP for e-mail. */
export const answer = (channel, status) => (status === null || status === undefined ? '' : `${channel === 'email' ? 'SMTP' : 'HTTP'} ${status}`);

/** A JSON body pretty-printed; a form body (Mixpanel's messages: `users=[…]`) decoded field by field; anything else as it is. */
function pretty(text, contentType = '') {
  if (contentType.startsWith('application/x-www-form-urlencoded')) {
    return [...new URLSearchParams(text)].map(([key, value]) => `${key} =\n${pretty(value)}`).join('\n\n');
  }
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function Facts({ d }) {
  const connections = useConnections();
  return html`<dl class="facts">
    <dt>State</dt><dd><${Badge} value=${d.state} /> ${d.outcome && d.outcome !== d.state ? d.outcome : ''}</dd>
    <dt>Channel</dt><dd>${d.channel}</dd>
    ${d.connection_id !== null && html`<dt>Connection</dt><dd>${connectionLink(connections, d.connection_id)}</dd>`}
    <dt>Owner</dt><dd><a href=${href('deliveries', [], { owner_kind: d.owner.kind, owner_id: d.owner.id })}>${d.owner.kind} ${d.owner.id}</a></dd>
    ${d.event_id && html`<dt>Event</dt><dd>${d.event_id}</dd>`}
    <dt>Retry policy</dt><dd>${d.policy}</dd>
    <dt>webhook-id</dt><dd><code>${d.webhook_id}</code></dd>
    <dt>Made</dt><dd><${Time} at=${d.created_at} /></dd>
    ${d.next_attempt_at && html`<dt>Next attempt</dt><dd><${Time} at=${d.next_attempt_at} /></dd>`}
    ${d.completed_at && html`<dt>Ended</dt><dd><${Time} at=${d.completed_at} /></dd>`}
    <dt>Attempts</dt><dd>${d.attempts}</dd>
  </dl>`;
}

function Retry({ d, onRetried }) {
  const [state, retry] = useAction(async () => {
    const retried = await api(`/deliveries/${d.id}/retry`, { method: 'POST' });
    onRetried();
    return retried;
  });
  return html`<div class="actions">
    <button class="primary" type="button" onClick=${() => retry()} disabled=${state.busy}>Retry</button>
    <${Outcome} state=${state} done="Back in the queue: it goes again now, from the start of its retry schedule, with the same webhook-id." />
  </div>`;
}

function Attempt({ a, channel }) {
  const headers = a.response_headers ?? {};
  return html`<article class="attempt" aria-labelledby=${`attempt-${a.attempt}`}>
    <h3 id=${`attempt-${a.attempt}`}>Attempt ${a.attempt}: ${a.status === null ? 'no answer' : answer(channel, a.status)} <${Badge} value=${a.outcome} /></h3>
    <dl class="facts">
      <dt>Started</dt><dd><${Time} at=${a.started_at} /></dd>
      <dt>Latency</dt><dd>${a.duration_ms} ms</dd>
      ${a.reason && html`<dt>Why</dt><dd>${a.reason}</dd>`}
      ${a.error && a.error !== a.reason && html`<dt>Error</dt><dd>${a.error}</dd>`}
      <dt>Worker</dt><dd>${a.worker}</dd>
      ${a.response_body !== null && html`<dt>Reply</dt><dd><${Json} label=${`Reply to attempt ${a.attempt}`} value=${a.response_body === '' ? '(empty)' : pretty(a.response_body)} /></dd>`}
    </dl>
    ${Object.keys(headers).length > 0 &&
    html`<details><summary>Reply headers</summary>
      <dl class="facts">${Object.entries(headers).map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>
    </details>`}
  </article>`;
}

export function DeliveryPage({ id }) {
  // Followed every second while it waits to go (after a retry), still once it has ended.
  const [live, setLive] = useState(false);
  const [state, reload] = useLoad(() => api(`/deliveries/${id}`), [id], { every: live ? 1000 : undefined });
  const d = state.data;
  useEffect(() => setLive(d?.state === 'pending'), [d?.state]);
  return html`<section>
    <p><a href=${href('deliveries')}>← Deliveries</a></p>
    <h1>Delivery #${id}</h1>
    <${LoadState} state=${state} />
    ${d &&
    html`<${Facts} d=${d} />
      <${Retry} d=${d} onRetried=${reload} />
      <h2>Body</h2>
      ${d.body === null
        ? html`<p class="notice">Retention removed its body on <${Time} at=${d.body_pruned_at} />: it can no longer be sent again. Its attempts are kept.</p>`
        : html`<p class="muted">${d.content_type}</p><${Json} label="Body" value=${pretty(d.body, d.content_type)} />`}
      ${Object.keys(d.headers ?? {}).length > 0 && html`<h2>Its own headers</h2><dl class="facts">${Object.entries(d.headers).map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`}
      <h2>Attempts</h2>
      ${d.attempts_log.length === 0 ? html`<p class="muted">None yet.</p>` : d.attempts_log.map((a) => html`<${Attempt} key=${a.attempt} a=${a} channel=${d.channel} />`)}`}
  </section>`;
}
