import { html } from '../lib/html.js';

/** A secret shown the one time it exists in the clear (create, rotate), with a copy button. */
export function OnceSecret({ what, secret }) {
  return html`<div class="notice" role="status">
    <p>${what} Its signing secret is shown this once: keep it where your receiver can read it.</p>
    <p class="secret" data-testid="signing-secret">${secret}</p>
    <button type="button" onClick=${() => navigator.clipboard?.writeText(secret)}>Copy</button>
  </div>`;
}
