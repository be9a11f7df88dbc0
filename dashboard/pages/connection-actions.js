// What a person does to one connection besides editing it: test, rotate its secret, enable it again, recover failures.
import { useState } from 'preact/hooks';
import { api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { useAction } from '../lib/hooks.js';
import { fromLocalInput } from '../lib/local-time.js';
import { href } from '../lib/router.js';
import { Field, Outcome, Select, Time } from '../lib/ui.js';
import { OnceSecret } from './once-secret.js';

/** A test's answer in one line. */
export const testReply = (r) => (r.ok ? `Delivered: HTTP ${r.status} in ${r.duration_ms} ms` : `Not delivered: ${r.status ? `HTTP ${r.status}` : ''} ${r.error ?? ''}`.trim());

export function TestConnection({ connection }) {
  const [state, test] = useAction(() => api(`/connections/${connection.id}/test`, { method: 'POST' }));
  return html`<section aria-labelledby="test-h">
    <h2 id="test-h">Test</h2>
    <div class="actions">
      <button type="button" onClick=${() => test()} disabled=${state.busy}>Send a test</button>
      <${Outcome} state=${state} done=${(r) => html`${testReply(r)}${r.response_body ? html`: <code>${r.response_body}</code>` : ''}`} />
    </div>
  </section>`;
}

export function EnableConnection({ connection, onChanged }) {
  const [state, enable] = useAction(async () => {
    const updated = await api(`/connections/${connection.id}`, { method: 'PATCH', body: { enabled: true } });
    onChanged();
    return updated;
  });
  // Mounted whatever the state, so the confirmation stays once the connection is active again.
  return html`<div class="actions">
    ${connection.state === 'disabled' && html`<button class="primary" type="button" onClick=${() => enable()} disabled=${state.busy}>Enable again</button>`}
    <${Outcome} state=${state} done="Enabled: its waiting deliveries go again." />
  </div>`;
}

const GRACES = [
  ['', 'as configured (default 24 h)'],
  ['3600000', '1 hour'],
  ['604800000', '7 days'],
  ['0', 'no time: the old secret stops now'],
];

export function RotateSecret({ connection, onChanged }) {
  const [grace, setGrace] = useState('');
  const [state, rotate] = useAction(async () => {
    const rotated = await api(`/connections/${connection.id}/rotate-secret`, { method: 'POST', body: grace === '' ? {} : { grace_ms: Number(grace) } });
    onChanged();
    return rotated;
  });
  const r = state.result;
  return html`<section aria-labelledby="rotate-h">
    <h2 id="rotate-h">Signing secret</h2>
    <form onSubmit=${(e) => (e.preventDefault(), rotate())} aria-label="Rotate the signing secret">
      <${Select} id="rotate-grace" label="The old secret keeps signing for" value=${grace} onChange=${setGrace} options=${GRACES} />
      <div class="actions"><button type="submit" disabled=${state.busy}>Rotate the signing secret</button> <${Outcome} state=${state} /></div>
    </form>
    ${r &&
    html`<${OnceSecret} what=${`A new secret for “${r.name}”.`} secret=${r.signing_secret} />
      <p class="muted">${r.previous_secret_valid_until ? html`The previous secret also signs until <${Time} at=${r.previous_secret_valid_until} />.` : 'The previous secret no longer signs.'}</p>`}
  </section>`;
}

export function RecoverWindow({ connection }) {
  const [since, setSince] = useState('');
  const [until, setUntil] = useState('');
  const [state, recover] = useAction(() => api(`/connections/${connection.id}/recover`, { method: 'POST', body: { since: fromLocalInput(since), until: fromLocalInput(until) } }));
  return html`<section aria-labelledby="recover-h">
    <h2 id="recover-h">Recover failed deliveries</h2>
    <form onSubmit=${(e) => (e.preventDefault(), recover())} aria-label="Recover failed deliveries">
      <p class="hint">Sends again every delivery to this connection that failed in the window.</p>
      <div class="filters">
        <${Field} id="recover-since" label="Failed from" type="datetime-local" required value=${since} onInput=${setSince} />
        <${Field} id="recover-until" label="Until (empty: now)" type="datetime-local" value=${until} onInput=${setUntil} />
      </div>
      <div class="actions">
        <button type="submit" disabled=${state.busy}>Recover</button>
        <${Outcome}
          state=${state}
          done=${(r) => html`${r.requeued === 1 ? '1 delivery' : `${r.requeued} deliveries`} sent back to the queue. <a href=${href('deliveries', [], { connection_id: connection.id })}>See its deliveries</a>`}
        />
      </div>
    </form>
  </section>`;
}
