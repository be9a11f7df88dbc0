import { useState } from 'preact/hooks';
import { api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { useAction, usePaged } from '../lib/hooks.js';
import { href } from '../lib/router.js';
import { Badge, Field, LoadState, Pager } from '../lib/ui.js';
import { ConnectionPage } from './connection.js';
import { testReply } from './connection-actions.js';
import { OnceSecret } from './once-secret.js';

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

export function Connections({ parts, query }) {
  if (parts[0]) return html`<${ConnectionPage} key=${parts[0]} id=${parts[0]} query=${query} />`;
  return html`<${ConnectionList} />`;
}

function ConnectionList() {
  const list = usePaged('/connections');
  const [tests, setTests] = useState({});
  const test = async (id) => {
    setTests((t) => ({ ...t, [id]: 'Sending a test…' }));
    try {
      const reply = await api(`/connections/${id}/test`, { method: 'POST' });
      setTests((t) => ({ ...t, [id]: testReply(reply) }));
    } catch (err) {
      setTests((t) => ({ ...t, [id]: err.message }));
    }
  };
  return html`<section>
    <h1>Connections</h1>
    <${NewConnection} onCreated=${list.reload} />
    <${LoadState} state=${list} />
    ${list.data &&
    html`<div class="table-wrap"><table>
      <thead><tr><th>Name</th><th>URL</th><th>State</th><th>Test</th></tr></thead>
      <tbody>
        ${list.data.results.map(
          (c) => html`<tr>
            <td><a href=${href('connections', [c.id])}>${c.name}</a></td>
            <td class="url">${c.url}</td>
            <td><${Badge} value=${c.state} /></td>
            <td><button type="button" onClick=${() => test(c.id)} aria-label=${`Test ${c.name}`}>Test</button> <span role="status">${tests[c.id] ?? ''}</span></td>
          </tr>`,
        )}
      </tbody>
    </table></div>`}
    <${Pager} list=${list} label="Connection pages" />
  </section>`;
}
