// One connection: its settings, an edit form, its health, and what can be done to it.
import { useState } from 'preact/hooks';
import { api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { useAction, useLoad } from '../lib/hooks.js';
import { href } from '../lib/router.js';
import { Badge, Field, LoadState, Time } from '../lib/ui.js';
import { EnableConnection, RecoverWindow, RotateSecret, TestConnection } from './connection-actions.js';
import { ConnectionHealth } from './connection-health.js';

function State({ c }) {
  if (c.state === 'disabled') return html`<${Badge} value="disabled" /> since <${Time} at=${c.disabled_at} />: ${c.disabled_reason}`;
  if (c.state === 'throttled') return html`<${Badge} value="throttled" /> until <${Time} at=${c.throttled_until} /> (the receiver asked to slow down)`;
  return html`<${Badge} value=${c.state} />`;
}

function Settings({ c }) {
  const headers = Object.keys(c.headers ?? {});
  return html`<dl class="facts">
    <dt>URL</dt><dd class="url">${c.url}</dd>
    <dt>State</dt><dd><${State} c=${c} /></dd>
    <dt>Headers</dt><dd>${headers.length ? headers.join(', ') : html`<span class="muted">none</span>`}</dd>
    <dt>Secret header</dt><dd>${c.secret_header ? c.secret_header.name : html`<span class="muted">none</span>`}</dd>
    <dt>Basic auth</dt><dd>${c.basic_auth ? `user ${c.basic_auth.username}` : html`<span class="muted">none</span>`}</dd>
    <dt>Timeout</dt><dd>${c.timeout_ms} ms</dd>
    <dt>Max concurrency</dt><dd>${c.max_concurrency} requests at once</dd>
    <dt>Rate limit</dt><dd>${c.rate_limit_per_s ? `${c.rate_limit_per_s} a second` : html`<span class="muted">none</span>`}</dd>
    ${c.previous_secret_valid_until && html`<dt>Previous secret</dt><dd>still signs until <${Time} at=${c.previous_secret_valid_until} /></dd>`}
    <dt>Created</dt><dd><${Time} at=${c.created_at} /></dd>
    <dt>Changed</dt><dd><${Time} at=${c.updated_at} /></dd>
  </dl>`;
}

/** The fields a person edits, as strings for the inputs. */
const editable = (c) => ({ name: c.name, url: c.url, timeout_ms: String(c.timeout_ms), max_concurrency: String(c.max_concurrency), rate_limit_per_s: c.rate_limit_per_s === null ? '' : String(c.rate_limit_per_s) });

function EditConnection({ c, onSaved }) {
  const [form, setForm] = useState(editable(c));
  const set = (key) => (value) => setForm((f) => ({ ...f, [key]: value }));
  const [state, save] = useAction(async () => {
    const body = { name: form.name, url: form.url, timeout_ms: Number(form.timeout_ms), max_concurrency: Number(form.max_concurrency), rate_limit_per_s: form.rate_limit_per_s === '' ? null : Number(form.rate_limit_per_s) };
    const saved = await api(`/connections/${c.id}`, { method: 'PATCH', body });
    onSaved();
    return saved;
  });
  return html`<form onSubmit=${(e) => (e.preventDefault(), save())} aria-labelledby="edit-h">
    <h2 id="edit-h">Edit</h2>
    <${Field} id="edit-name" label="Name" required value=${form.name} onInput=${set('name')} />
    <${Field} id="edit-url" label="URL" type="url" required value=${form.url} onInput=${set('url')} />
    <${Field} id="edit-timeout" label="Timeout (ms)" type="number" min="1" required value=${form.timeout_ms} onInput=${set('timeout_ms')} />
    <${Field} id="edit-concurrency" label="Max concurrency" type="number" min="1" max="1000" required value=${form.max_concurrency} onInput=${set('max_concurrency')} />
    <${Field} id="edit-rate" label="Rate limit (requests a second)" hint="Empty: no limit." type="number" min="1" value=${form.rate_limit_per_s} onInput=${set('rate_limit_per_s')} />
    ${state.error && html`<p class="error" role="alert">${state.error}</p>`}
    <div class="actions">
      <button class="primary" type="submit" disabled=${state.busy}>Save</button>
      ${state.result && html`<span class="notice" role="status">Saved.</span>`}
    </div>
  </form>`;
}

export function ConnectionPage({ id, query }) {
  const [state, reload] = useLoad(() => api(`/connections/${id}`), [id]);
  const c = state.data;
  return html`<section>
    <p><a href=${href('connections')}>← Connections</a></p>
    <h1>${c ? `Connection “${c.name}”` : `Connection ${id}`}</h1>
    <${LoadState} state=${state} />
    ${c &&
    html`<${Settings} c=${c} />
      <${EnableConnection} connection=${c} onChanged=${reload} />
      <p class="actions">
        <a href=${href('deliveries', [], { connection_id: c.id })}>Its deliveries</a>
        <a href=${href('deliveries', [], { connection_id: c.id, state: 'failed' })}>Its failed deliveries</a>
      </p>
      <${ConnectionHealth} id=${c.id} window=${query.window} />
      <${TestConnection} connection=${c} />
      <${EditConnection} c=${c} onSaved=${reload} />
      <${RotateSecret} connection=${c} onChanged=${reload} />
      <${RecoverWindow} connection=${c} />`}
  </section>`;
}
