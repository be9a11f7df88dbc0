// The cohortcast dashboard: Preact with htm (no build step), over the management API.
// The project secret lives in this tab's sessionStorage and goes out as the Authorization header only.
import { h, render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import htm from 'htm';

const html = htm.bind(h);
const SECRET = 'cohortcast.secret';

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** A call to /api/v1 with the secret; a refusal becomes an ApiFailure holding the API's own message. */
async function api(path, { method = 'GET', body, secret = sessionStorage.getItem(SECRET) } = {}) {
  const headers = { authorization: `Bearer ${secret}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!res.ok) throw new ApiFailure(res.status, data?.error?.code ?? 'http_error', data?.error?.message ?? `the service answered HTTP ${res.status}`);
  return data;
}

function SignIn({ onSignedIn, reason }) {
  const [secret, setSecret] = useState('');
  const [error, setError] = useState(reason);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api('/connections?limit=1', { secret: secret.trim() });
      sessionStorage.setItem(SECRET, secret.trim());
      onSignedIn();
    } catch (err) {
      setError(err.status === 401 ? `That secret was refused: ${err.message}` : err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <h1>Sign in to cohortcast</h1>
    <p>Use your project's secret (shown once when the project was made, e.g. by <code>cohortcast project create</code>). It stays in this browser tab only.</p>
    <form onSubmit=${submit}>
      <label for="secret">Project secret</label>
      <input id="secret" type="password" autocomplete="off" required value=${secret} onInput=${(e) => setSecret(e.currentTarget.value)} />
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <p><button class="primary" type="submit" disabled=${busy}>Sign in</button></p>
    </form>
  </main>`;
}

/** Loads `load()` once and again on `reload()`; a 401 signs out. */
function useLoad(load, signOut) {
  const [state, setState] = useState({ loading: true });
  const reload = useCallback(() => {
    load()
      .then((data) => setState({ data }))
      .catch((err) => (err.status === 401 ? signOut('Your secret is no longer accepted; sign in again.') : setState({ error: err.message })));
  }, []);
  useEffect(reload, [reload]);
  return [state, reload];
}

async function countOf(path) {
  const page = await api(`${path}${path.includes('?') ? '&' : '?'}limit=1000`);
  return page.next_cursor ? `${page.results.length}+` : String(page.results.length);
}

function Overview({ signOut }) {
  const [state] = useLoad(async () => {
    const connections = (await api('/connections?limit=1000')).results;
    const [pending, failed] = await Promise.all([countOf('/deliveries?state=pending'), countOf('/deliveries?state=failed')]);
    return { connections, pending, failed };
  }, signOut);
  if (state.loading) return html`<p>Loading…</p>`;
  if (state.error) return html`<p class="error" role="alert">${state.error}</p>`;
  const { connections, pending, failed } = state.data;
  const failing = connections.filter((c) => c.state !== 'active');
  return html`<section>
    <h1>Overview</h1>
    <div class="cards">
      <div class="card"><div>Connections</div><div class="value">${connections.length}</div></div>
      <div class="card"><div>Connections disabled or throttled</div><div class="value">${failing.length}</div></div>
      <div class="card"><div>Deliveries waiting</div><div class="value">${pending}</div></div>
      <div class="card"><div>Deliveries failed</div><div class="value">${failed}</div></div>
    </div>
    ${failing.length > 0 && html`<h2>Failing connections</h2><ul>${failing.map((c) => html`<li>${c.name}: ${c.state}${c.disabled_reason ? ` (${c.disabled_reason})` : ''}</li>`)}</ul>`}
  </section>`;
}

function Connections({ signOut }) {
  const [state, reload] = useLoad(async () => (await api('/connections?limit=1000')).results, signOut);
  const [name, setName] = useState('');
  const [url, setUrl] = useState('');
  const [createError, setCreateError] = useState();
  const [created, setCreated] = useState();
  const [tests, setTests] = useState({});
  const create = async (e) => {
    e.preventDefault();
    setCreateError(undefined);
    setCreated(undefined);
    try {
      const connection = await api('/connections', { method: 'POST', body: { name, url } });
      setCreated(connection);
      setName('');
      setUrl('');
      reload();
    } catch (err) {
      if (err.status === 401) return signOut('Your secret is no longer accepted; sign in again.');
      setCreateError(err.message);
    }
  };
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
    <form onSubmit=${create} aria-label="New connection">
      <h2>New connection</h2>
      <label for="conn-name">Name</label>
      <input id="conn-name" required value=${name} onInput=${(e) => setName(e.currentTarget.value)} />
      <label for="conn-url">URL</label>
      <input id="conn-url" type="url" required placeholder="https://example.com/hooks/mixpanel" value=${url} onInput=${(e) => setUrl(e.currentTarget.value)} />
      ${createError && html`<p class="error" role="alert">${createError}</p>`}
      <p><button class="primary" type="submit">Create</button></p>
    </form>
    ${created &&
    html`<div class="notice" role="status">
      <p>Connection “${created.name}” created. Its signing secret is shown this once: keep it where your receiver can read it.</p>
      <p class="secret" data-testid="signing-secret">${created.signing_secret}</p>
      <button type="button" onClick=${() => navigator.clipboard?.writeText(created.signing_secret)}>Copy</button>
    </div>`}
    ${state.loading && html`<p>Loading…</p>`}
    ${state.error && html`<p class="error" role="alert">${state.error}</p>`}
    ${state.data &&
    html`<table>
      <thead><tr><th>Name</th><th>URL</th><th>State</th><th>Test</th></tr></thead>
      <tbody>
        ${state.data.map(
          (c) => html`<tr>
            <td>${c.name}</td>
            <td class="url">${c.url}</td>
            <td>${c.state}</td>
            <td><button type="button" onClick=${() => test(c.id)} aria-label=${`Test ${c.name}`}>Test</button> <span role="status">${tests[c.id] ?? ''}</span></td>
          </tr>`,
        )}
      </tbody>
    </table>`}
  </section>`;
}

const PAGES = { overview: ['Overview', Overview], connections: ['Connections', Connections] };
const currentPage = () => (location.hash.replace(/^#\/?/, '') in PAGES ? location.hash.replace(/^#\/?/, '') : 'overview');

function App() {
  const [signedIn, setSignedIn] = useState(Boolean(sessionStorage.getItem(SECRET)));
  const [reason, setReason] = useState();
  const [page, setPage] = useState(currentPage());
  useEffect(() => {
    const onHash = () => setPage(currentPage());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  const signOut = (why) => {
    sessionStorage.removeItem(SECRET);
    setReason(why);
    setSignedIn(false);
  };
  if (!signedIn) return html`<${SignIn} reason=${reason} onSignedIn=${() => setSignedIn(true)} />`;
  const [, Page] = PAGES[page];
  return html`<header>
      <strong>cohortcast</strong>
      <nav aria-label="Pages">${Object.entries(PAGES).map(([key, [label]]) => html`<a href=${`#/${key}`} aria-current=${key === page ? 'page' : undefined}>${label}</a>`)}</nav>
      <button type="button" onClick=${() => signOut()}>Sign out</button>
    </header>
    <main><${Page} key=${page} signOut=${signOut} /></main>`;
}

render(html`<${App} />`, document.getElementById('app'));
