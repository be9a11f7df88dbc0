// Pieces of the pages that manage saved things (messages, alerts, reports, subscriptions): JSON
// fields, refusals placed at the field they name, test/pause/delete buttons, and recent deliveries.
import { useState } from 'preact/hooks';
import { api } from './api.js';
import { html } from './html.js';
import { useAction, useLoad } from './hooks.js';
import { href, navigate } from './router.js';
import { Badge, LoadState, Outcome, Time } from './ui.js';

/** The top-level field an API refusal names ("schedule.at: expected…", "body.channels[0]: …"), if any. */
export function fieldOf(message = '') {
  return /^(?:body\.)?([A-Za-z_]+)[^\s:]*:/.exec(message)?.[1];
}

/** The refusal in `state` when it names `field`, for showing at that field. */
export const errorAt = (state, field) => (state.error && fieldOf(state.error) === field ? state.error : undefined);

/** The refusal when it names none of the form's `fields`: shown under the form instead. */
export function FormError({ state, fields }) {
  if (!state.error || fields.includes(fieldOf(state.error))) return null;
  return html`<p class="error" role="alert">${state.error}</p>`;
}

/** JSON typed into a field, parsed; a mistake is a refusal naming the field, like the API's. */
export function parseJson(field, text, { optional = false } = {}) {
  if (optional && text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${field}: not valid JSON (${err.message})`);
  }
}

/** A labelled textarea for the structured parts (JSON), with its hint and refusal tied to it. */
export function JsonArea({ id, label, hint, error, value, onInput, rows = 4 }) {
  const described = [hint && `${id}-hint`, error && `${id}-error`].filter(Boolean).join(' ') || undefined;
  return html`<div class="field">
    <label for=${id}>${label}</label>
    ${hint && html`<p class="hint" id=${`${id}-hint`}>${hint}</p>`}
    <textarea id=${id} rows=${rows} spellcheck="false" value=${value} onInput=${(e) => onInput(e.currentTarget.value)} aria-invalid=${error ? 'true' : undefined} aria-describedby=${described}></textarea>
    ${error && html`<p class="error" id=${`${id}-error`} role="alert">${error}</p>`}
  </div>`;
}

/** A labelled select with a refusal tied to it; `options` are [value, label] pairs. */
export function Choice({ id, label, value, onChange, options, error }) {
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <select id=${id} value=${value} onChange=${(e) => onChange(e.currentTarget.value)} aria-invalid=${error ? 'true' : undefined} aria-describedby=${error ? `${id}-error` : undefined}>
      ${options.map(([v, l]) => html`<option value=${v}>${l}</option>`)}
    </select>
    ${error && html`<p class="error" id=${`${id}-error`} role="alert">${error}</p>`}
  </div>`;
}

/** The first page (up to 100) of a list, as select options; the id is typed when there are more. */
export function useOptions(path, label = (r) => `${r.name} (#${r.id})`) {
  const [state] = useLoad(() => api(path, { query: { limit: 100 } }), [path]);
  return (state.data?.results ?? []).map((r) => [String(r.id), label(r)]);
}

/**
 * One saved thing at `path` (e.g. /alerts/4): read, and changed by PATCH. After a save the form
 * closes and the thing is read again (`afterSave` for what else depends on it); `editButton` opens
 * and closes the form.
 */
export function useItem(path, { afterSave } = {}) {
  const [state, reload] = useLoad(() => api(path), [path]);
  const [editing, setEditing] = useState(false);
  const save = async (body) => {
    await api(path, { method: 'PATCH', body });
    setEditing(false);
    reload();
    afterSave?.();
  };
  const editButton = html`<button type="button" onClick=${() => setEditing(!editing)} aria-expanded=${editing}>${editing ? 'Stop editing' : 'Edit'}</button>`;
  return { state, reload, editing, save, editButton };
}

/** POST …/test and what came back: `show` renders the reply (what was sent, what the receiver said); `onDone` after it. */
export function TestButton({ path, label = 'Test', show, onDone }) {
  const [state, run] = useAction(async () => {
    const reply = await api(path, { method: 'POST' });
    onDone?.();
    return reply;
  });
  return html`<div class="test">
    <button type="button" onClick=${() => run()} disabled=${state.busy}>${label}</button>
    <${Outcome} state=${state} />
    ${state.result && html`<div role="status">${show(state.result)}</div>`}
  </div>`;
}

/** Pause or enable through PATCH {enabled}; the refusal, if any, beside the button. */
export function EnableButton({ path, enabled, onChanged }) {
  const [state, run] = useAction(async () => onChanged(await api(path, { method: 'PATCH', body: { enabled: !enabled } })));
  return html`<button type="button" onClick=${() => run()} disabled=${state.busy}>${enabled ? 'Pause' : 'Enable'}</button><${Outcome} state=${state} />`;
}

/** Delete after an explicit second click; goes back to the list (`page`) when done. */
export function DeleteButton({ path, what, page }) {
  const [asking, setAsking] = useState(false);
  const [state, run] = useAction(async () => {
    await api(path, { method: 'DELETE' });
    navigate(page);
  });
  if (!asking) return html`<button type="button" onClick=${() => setAsking(true)}>Delete</button>`;
  return html`<span class="confirm" role="group" aria-label="Confirm delete">
    <span>Delete ${what}? This cannot be undone.</span>
    <button type="button" class="danger" onClick=${() => run()} disabled=${state.busy}>Yes, delete</button>
    <button type="button" onClick=${() => setAsking(false)}>Cancel</button>
    <${Outcome} state=${state} />
  </span>`;
}

/** "Delivered: HTTP 200" / "Not delivered (reason)" for one channel's reply to a test, and its delivery (the request as sent). */
export function Reply({ r }) {
  return html`<span>${r.ok ? 'Delivered' : 'Not delivered'}${r.status ? `: HTTP ${r.status}` : ''}${r.error ? ` (${r.error})` : ''}</span>
    ${r.delivery_id && html` <a href=${href('deliveries', [r.delivery_id])} aria-label=${`Delivery ${r.delivery_id}: what was sent`}>#${r.delivery_id}</a>`}`;
}

/** A link to the deliveries of an owner (kind and id, or an id prefix ending in "/"), and the latest few inline. */
export function RecentDeliveries({ kinds, ownerId }) {
  const [state] = useLoad(() => Promise.all(kinds.map((kind) => api('/deliveries', { query: { owner_kind: kind, owner_id: ownerId, limit: 5 } }))), [ownerId, kinds.join()], { every: 5000 });
  const latest = (state.data ?? []).flatMap((p) => p.results).sort((a, b) => b.id - a.id).slice(0, 5);
  return html`<section aria-labelledby="recent-deliveries">
    <h2 id="recent-deliveries">Latest deliveries</h2>
    <ul class="links">${kinds.map((kind) => html`<li><a href=${href('deliveries', [], { owner_kind: kind, owner_id: ownerId })}>All ${kind} deliveries</a></li>`)}</ul>
    <${LoadState} state=${state} />
    ${state.data && latest.length === 0 && html`<p class="muted">None yet.</p>`}
    ${latest.length > 0 &&
    html`<div class="table-wrap"><table>
      <thead><tr><th>Delivery</th><th>Channel</th><th>State</th><th>Last answer</th><th>Created</th></tr></thead>
      <tbody>${latest.map(
        (d) => html`<tr>
          <td><a href=${href('deliveries', [d.id])}>#${d.id}</a> <span class="muted">${d.owner.kind}</span></td>
          <td>${d.channel}</td>
          <td><${Badge} value=${d.state} /></td>
          <td>${d.last_status ? `HTTP ${d.last_status}` : ''} ${d.last_error ?? ''}</td>
          <td><${Time} at=${d.created_at} /></td>
        </tr>`,
      )}</tbody>
    </table></div>`}
  </section>`;
}

/** A connection by its name and URL (the API never answers its secrets). */
export function ConnectionName({ id }) {
  const [conn] = useLoad(() => api(`/connections/${id}`), [id]);
  if (!conn.data) return html`<span>${conn.error ?? `#${id}`}</span>`;
  return html`<span>${conn.data.name} (#${conn.data.id}) <span class="url">${conn.data.url}</span></span>`;
}

/** The item's header: its name, state, and the actions. */
export function ItemHead({ back, backLabel, title, state, children }) {
  return html`<p><a href=${href(back)}>← ${backLabel}</a></p>
    <h1>${title} ${state !== undefined && html`<${Badge} value=${state} />`}</h1>
    <div class="actions">${children}</div>`;
}
