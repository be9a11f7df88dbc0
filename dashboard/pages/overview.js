import { api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { useLoad } from '../lib/hooks.js';
import { LoadState } from '../lib/ui.js';

async function countOf(path, query) {
  const page = await api(path, { query: { ...query, limit: 1000 } });
  return page.next_cursor ? `${page.results.length}+` : String(page.results.length);
}

export function Overview() {
  const [state] = useLoad(async () => {
    const connections = (await api('/connections', { query: { limit: 1000 } })).results;
    const [pending, failed] = await Promise.all([countOf('/deliveries', { state: 'pending' }), countOf('/deliveries', { state: 'failed' })]);
    return { connections, pending, failed };
  });
  if (!state.data) return html`<${LoadState} state=${state} />`;
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
