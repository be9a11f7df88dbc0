import { useRef } from 'preact/hooks';
import { api } from '../lib/api.js';
import { Chart } from '../lib/chart.js';
import { html } from '../lib/html.js';
import { useLoad } from '../lib/hooks.js';
import { href } from '../lib/router.js';
import { LoadState, Time } from '../lib/ui.js';

const REFRESH_MS = 5000;
/** Queue depths sampled while the page is open (the server keeps no history of them). */
const SAMPLES = 120;

const sum = (minutes, key) => minutes.reduce((n, m) => n + m[key], 0);

/** "in 2 min", "3 min late": how the earliest waiting delivery stands against now. */
function dueWords(at, now) {
  const s = Math.round((Date.parse(at) - Date.parse(now)) / 1000);
  const span = (x) => (x < 90 ? `${x} s` : x < 5400 ? `${Math.round(x / 60)} min` : `${Math.round(x / 3600)} h`);
  return s >= 0 ? `due in ${span(s)}` : `${span(-s)} late`;
}

function Card({ label, value, detail, link }) {
  return html`<div class="card">
    <div>${link ? html`<a href=${link}>${label}</a>` : label}</div>
    <div class="value">${value}</div>
    ${detail && html`<div class="muted">${detail}</div>`}
  </div>`;
}

export function Overview() {
  const depth = useRef([]);
  const [state] = useLoad(
    async () => {
      const o = await api('/overview');
      depth.current = [...depth.current, [Date.parse(o.now) / 1000, o.queue.pending]].slice(-SAMPLES);
      return o;
    },
    [],
    { every: REFRESH_MS },
  );
  if (!state.data) return html`<${LoadState} state=${state} />`;
  const o = state.data;
  const times = o.minutes.map((m) => Date.parse(m.at) / 1000);
  const waiting = `${o.queue.pending}${o.queue.pending_capped ? '+' : ''}`;
  return html`<section>
    <h1>Overview</h1>
    <p class="muted">The last hour, refreshed every ${REFRESH_MS / 1000} s. Updated <${Time} at=${o.now} />.</p>
    ${state.error && html`<p class="error" role="alert">${state.error}</p>`}
    <div class="cards">
      <${Card} label="Events this hour" value=${sum(o.minutes, 'events')} detail=${o.events_capped ? 'the newest 100,000 counted' : 'by their time'} link=${href('events')} />
      <${Card} label="Delivered this hour" value=${sum(o.minutes, 'succeeded')} link=${href('deliveries', [], { state: 'succeeded' })} />
      <${Card} label="Failed this hour" value=${sum(o.minutes, 'failed')} link=${href('deliveries', [], { state: 'failed' })} />
      <${Card} label="Deliveries waiting" value=${waiting} detail=${o.queue.oldest_due_at ? `oldest ${dueWords(o.queue.oldest_due_at, o.now)}` : 'nothing waiting'} link=${href('deliveries', [], { state: 'pending' })} />
      <${Card} label="Failing connections" value=${o.failing_connections.length} link=${href('connections')} />
      <${Card} label="Paused syncs" value=${o.paused_syncs_count} link=${href('syncs')} />
    </div>
    <div class="charts">
      <${Chart} title="Events per minute" times=${times} series=${[{ label: 'events', values: o.minutes.map((m) => m.events) }]} />
      <${Chart}
        title="Deliveries per minute"
        times=${times}
        series=${[
          { label: 'delivered', values: o.minutes.map((m) => m.succeeded), stroke: '#137333' },
          { label: 'failed', values: o.minutes.map((m) => m.failed), stroke: '#a50e0e' },
        ]}
      />
      <${Chart} title="Deliveries waiting (since this page opened)" times=${depth.current.map(([t]) => t)} series=${[{ label: 'waiting', values: depth.current.map(([, n]) => n), stroke: '#b06000' }]} />
    </div>
    ${o.failing_connections.length > 0 &&
    html`<h2>Failing connections</h2>
      <ul>
        ${o.failing_connections.map(
          (c) => html`<li>
            <a href=${href('connections', [c.id])}>${c.name}</a>: ${c.state}
            ${c.state === 'disabled' ? html` since <${Time} at=${c.since} />${c.reason ? ` (${c.reason})` : ''}` : html` until <${Time} at=${c.until} />`}
          </li>`,
        )}
      </ul>`}
    ${o.paused_syncs.length > 0 &&
    html`<h2>Paused syncs</h2>
      <ul>
        ${o.paused_syncs.map((s) => html`<li><a href=${href('syncs', [s.id])}>Sync ${s.id}</a>: ${s.reason ?? 'paused'}</li>`)}
      </ul>`}
  </section>`;
}
