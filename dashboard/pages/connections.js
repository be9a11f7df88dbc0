import { useState } from 'preact/hooks';
import { api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { useAction, usePaged } from '../lib/hooks.js';
import { Badge, Field, LoadState, Pager } from '../lib/ui.js';

/** A secret shown the one time it exists in the clear (create, rotate), with a copy button. */
export function OnceSecret({ what, secret }) {
  return html`<div class="notice" role="status">
    <p>${what} Its signing secret is shown this once: keep it where your receiver can read it.</p>
    <p class="secret" data-testid="signing-secret">${secret}</p>
    <button type="button" onClick=${() => navigator.clipboard?.writeText(secret)}>Copy</button>
  </div>`;
}

function NewConnection({ onCreated }) {
  const [name, setName] = useState('');
  const [url, setUrl] = useState('');
  const [state, create] = useAction(async () => {
    const connection = await api('/connections', { method: 'POST', body: { name, url } });
    setName('');
    setUrl('');
    onCreated();
    return connection;
  });
  return html`<form onSubmit=${(e) => (e.preventDefault(), create())} aria-label="New connection">
      <h2>New connection</h2>
      <${Field} id="conn-name" label="Name" required value=${name} onInput=${setName} />
      <${Field} id="conn-url" label="URL" type="url" required placeholder="https://example.com/hooks/mixpanel" value=${url} onInput=${setUrl} />
      ${state.error && html`<p class="error" role="alert">${state.error}</p>`}
      <p><button class="primary" type="submit" disabled=${state.busy}>Create</button></p>
    </form>
    ${state.result && html`<${OnceSecret} what=${`Connection “${state.result.name}” created.`} secret=${state.result.signing_secret} />`}`;
}

export function Connections() {
  const list = usePaged('/connections');
  const [tests, setTests] = useState({});
  const test = async (id) => {
    setTests((t) => ({ ...t, [id]: 'Sending a test…' }));
    try {
      const r = await api(`/connections/${id}/test`, { method: 'POST' });
      setTests((t) => ({ ...t, [id]: r.ok ? `Delivered: HTTP ${r.status} in ${r.duration_ms} ms` : `Not delivered: ${r.status ? `HTTP ${r.status}` : ''} ${r.error ?? ''}`.trim() }));
    } catch (err) {
      setTests((t) => ({ ...t, [id]: err.message }));
    }
  };
  return html`<section>
    <h1>Connections</h1>
    <${NewConnection} onCreated=${list.reload} />
    <${LoadState} state=${list} />
    ${list.data &&
    html`<table>
      <thead><tr><th>Name</th><th>URL</th><th>State</th><th>Test</th></tr></thead>
      <tbody>
        ${list.data.results.map(
          (c) => html`<tr>
            <td>${c.name}</td>
            <td class="url">${c.url}</td>
            <td><${Badge} value=${c.state} /></td>
            <td><button type="button" onClick=${() => test(c.id)} aria-label=${`Test ${c.name}`}>Test</button> <span role="status">${tests[c.id] ?? ''}</span></td>
          </tr>`,
        )}
      </tbody>
    </table>`}
    <${Pager} list=${list} label="Connection pages" />
  </section>`;
}
