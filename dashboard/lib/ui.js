// Small pieces every page uses: loading and error states, pagers, fields, times.
import { html } from './html.js';

/** The state of a load: "Loading…", the API's message, or nothing once there is data. */
export function LoadState({ state }) {
  if (state.error) return html`<p class="error" role="alert">${state.error}</p>`;
  if (state.loading) return html`<p class="muted" aria-live="polite">Loading…</p>`;
  return null;
}

/** An action's outcome at the place the person acted: the refusal in words, or a confirmation. */
export function Outcome({ state, done }) {
  if (state.busy) return html`<span class="muted" role="status">Working…</span>`;
  if (state.error) return html`<p class="error" role="alert">${state.error}</p>`;
  if (state.result !== undefined && done) return html`<p class="notice" role="status">${typeof done === 'function' ? done(state.result) : done}</p>`;
  return null;
}

/** Previous/next over a `usePaged` list. */
export function Pager({ list, label = 'Pages' }) {
  if (list.page === 1 && !list.hasNext) return null;
  return html`<nav class="pager" aria-label=${label}>
    <button type="button" onClick=${list.previous} disabled=${list.page === 1}>Previous</button>
    <span>Page ${list.page}</span>
    <button type="button" onClick=${list.next} disabled=${!list.hasNext}>Next</button>
  </nav>`;
}

/** A labelled input; `hint` and `error` are tied to it for screen readers. */
export function Field({ id, label, hint, error, value, onInput, type = 'text', ...rest }) {
  const described = [hint && `${id}-hint`, error && `${id}-error`].filter(Boolean).join(' ') || undefined;
  return html`<div class="field">
    <label for=${id}>${label}</label>
    ${hint && html`<p class="hint" id=${`${id}-hint`}>${hint}</p>`}
    <input id=${id} type=${type} value=${value} onInput=${(e) => onInput(e.currentTarget.value)} aria-invalid=${error ? 'true' : undefined} aria-describedby=${described} ...${rest} />
    ${error && html`<p class="error" id=${`${id}-error`} role="alert">${error}</p>`}
  </div>`;
}

/** A labelled select over [value, label] pairs. */
export function Select({ id, label, value, onChange, options }) {
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <select id=${id} value=${value} onChange=${(e) => onChange(e.currentTarget.value)}>
      ${options.map(([v, l]) => html`<option value=${v}>${l}</option>`)}
    </select>
  </div>`;
}

/** A time as the person's local date and time, with the exact ISO instant on hover. */
export function Time({ at }) {
  if (!at) return html`<span class="muted">—</span>`;
  const d = new Date(at);
  return html`<time datetime=${d.toISOString()} title=${d.toISOString()}>${d.toLocaleString()}</time>`;
}

/** A state word with a colour that is never the only signal (the word is always there). */
export function Badge({ value }) {
  return html`<span class=${`badge badge-${String(value).replace(/[^a-z_]/gi, '')}`}>${value}</span>`;
}

/** Pretty JSON in a scrollable block. */
export function Json({ value, label }) {
  return html`<pre class="json" tabindex="0" aria-label=${label}>${typeof value === 'string' ? value : JSON.stringify(value, null, 2)}</pre>`;
}
