// How a connection answered lately (GET /connections/:id/health); the window lives in the URL (?window=7d).
import { api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { useLoad } from '../lib/hooks.js';
import { href, navigate } from '../lib/router.js';
import { Badge, LoadState, Select, Time } from '../lib/ui.js';

const WINDOWS = [
  ['1h', 'the last hour'],
  ['24h', 'the last 24 hours'],
  ['7d', 'the last 7 days'],
  ['30d', 'the last 30 days'],
];

const percent = (rate) => `${Math.round(rate * 1000) / 10}%`;

export function ConnectionHealth({ id, window = '24h' }) {
  const [state] = useLoad(() => api(`/connections/${id}/health`, { query: { window } }), [id, window], { every: 30_000 });
  const h = state.data;
  const options = WINDOWS.some(([w]) => w === window) ? WINDOWS : [[window, window], ...WINDOWS];
  return html`<section aria-labelledby="health-h">
    <h2 id="health-h">Health</h2>
    <${Select} id="health-window" label="Over" value=${window} onChange=${(w) => navigate('connections', [id], { window: w })} options=${options} />
    <${LoadState} state=${state} />
    ${h &&
    html`<div class="cards">
        <div class="card"><div>Success rate</div><div class="value" data-testid="success-rate">${h.success_rate === null ? '—' : percent(h.success_rate)}</div><div class="muted">${h.succeeded} of ${h.attempts} attempts</div></div>
        <div class="card"><div>Latency p50</div><div class="value">${h.latency_ms ? `${h.latency_ms.p50} ms` : '—'}</div></div>
        <div class="card"><div>Latency p95</div><div class="value">${h.latency_ms ? `${h.latency_ms.p95} ms` : '—'}</div></div>
      </div>
      ${h.sampled && html`<p class="muted">Figures of its latest ${h.deliveries_read} deliveries: the window holds more.</p>`}
      ${h.last_errors.length > 0 &&
      html`<h3>Last errors</h3>
        <div class="table-wrap"><table>
          <thead><tr><th>Delivery</th><th>When</th><th>Answer</th><th>Why</th></tr></thead>
          <tbody>
            ${h.last_errors.map(
              (e) => html`<tr>
                <td><a href=${href('deliveries', [e.delivery_id])}>#${e.delivery_id}</a> (attempt ${e.attempt})</td>
                <td><${Time} at=${e.started_at} /></td>
                <td>${e.status === null ? 'no answer' : `HTTP ${e.status}`} <${Badge} value=${e.outcome} /></td>
                <td>${e.reason ?? e.error}</td>
              </tr>`,
            )}
          </tbody>
        </table></div>`}`}
  </section>`;
}
