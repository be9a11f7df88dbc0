// Alerts: the list, a new one, and one alert's settings, test, its report drawn with the threshold
// and firings, its history of checks and its deliveries.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { useAction, useLoad, usePaged } from '../lib/hooks.js';
import { Choice, DeleteButton, FormError, ItemHead, JsonArea, RecentDeliveries, Reply, TestButton, errorAt, parseJson, useItem, useOptions } from '../lib/items.js';
import { href, navigate } from '../lib/router.js';
import { Badge, Field, Json, LoadState, Pager, Time } from '../lib/ui.js';
import { ResultChart } from './reports.js';

const FIELDS = ['name', 'report_id', 'condition', 'segment', 'frequency', 'windows', 'channels', 'creator', 'creator_email'];
const FREQUENCIES = ['hourly', 'daily', 'weekly', 'monthly'].map((f) => [f, f]);
const CONDITION_HINT = '{"type": "above" | "below", "value": N} · {"type": "increase" | "decrease", "by": N, "unit": "amount" | "percent"} · {"type": "anomaly", "sensitivity"?: 3, "weeks"?: 8}';
const CHANNELS_HINT = '1 to 10 of: {"type": "webhook", "connection_id", "payload_template"?}, {"type": "slack", "connection_id", "text_template"?}, {"type": "email", "to": [addresses]}.';
const pretty = (v) => (v === undefined || v === null ? '' : JSON.stringify(v, null, 2));

function AlertForm({ initial, reportId, save, submitLabel }) {
  const reports = useOptions('/reports');
  const [name, setName] = useState(initial?.name ?? '');
  const [report, setReport] = useState(String(initial?.report_id ?? reportId ?? ''));
  const [condition, setCondition] = useState(pretty(initial?.condition ?? { type: 'above', value: 100 }));
  const [segment, setSegment] = useState(initial?.segment ?? '');
  const [frequency, setFrequency] = useState(initial?.frequency ?? 'daily');
  const [windows, setWindows] = useState(pretty(initial?.windows));
  const [channels, setChannels] = useState(pretty(initial?.channels ?? [{ type: 'webhook', connection_id: 1 }]));
  const [creator, setCreator] = useState(initial?.creator ?? '');
  const [creatorEmail, setCreatorEmail] = useState(initial?.creator_email ?? '');
  const chosenReport = report || reports[0]?.[0];
  const [state, submit] = useAction(() =>
    save({
      name,
      report_id: Number(chosenReport),
      condition: parseJson('condition', condition),
      segment: segment.trim() || null,
      frequency,
      windows: parseJson('windows', windows, { optional: true }) ?? null,
      channels: parseJson('channels', channels),
      creator: creator.trim() || null,
      creator_email: creatorEmail.trim() || null,
    }),
  );
  return html`<form onSubmit=${(e) => (e.preventDefault(), submit())} aria-label=${submitLabel}>
    <${Field} id="alert-name" label="Name" required value=${name} onInput=${setName} error=${errorAt(state, 'name')} />
    <${Choice} id="alert-report" label="Report" value=${chosenReport} onChange=${setReport} options=${reports} error=${errorAt(state, 'report_id')} />
    ${reports.length === 0 && html`<p class="hint">An alert watches a report: <a href=${href('reports')}>make one first</a>.</p>`}
    <${JsonArea} id="alert-condition" label="Condition (JSON)" hint=${CONDITION_HINT} value=${condition} onInput=${setCondition} error=${errorAt(state, 'condition')} />
    <${Field} id="alert-segment" label="Segment (optional)" hint='For a report with a breakdown: one value, or "$any".' value=${segment} onInput=${setSegment} error=${errorAt(state, 'segment')} />
    <${Choice} id="alert-frequency" label="Notify at most" value=${frequency} onChange=${setFrequency} options=${FREQUENCIES} error=${errorAt(state, 'frequency')} />
    <${JsonArea} id="alert-windows" label="Notification windows (JSON, optional)" hint='{"days_of_week": ["mon", "tue"], "from": "09:00", "to": "17:30", "timezone": "Europe/Paris"}' value=${windows} onInput=${setWindows} error=${errorAt(state, 'windows')} />
    <${JsonArea} id="alert-channels" label="Channels (JSON)" hint=${CHANNELS_HINT} value=${channels} onInput=${setChannels} error=${errorAt(state, 'channels')} />
    <${Field} id="alert-creator" label="Creator (optional)" value=${creator} onInput=${setCreator} error=${errorAt(state, 'creator')} />
    <${Field} id="alert-creator-email" label="Creator's e-mail (optional)" hint="Told when the alert's report can no longer be computed." type="email" value=${creatorEmail} onInput=${setCreatorEmail} error=${errorAt(state, 'creator_email')} />
    <${FormError} state=${state} fields=${FIELDS} />
    <p><button class="primary" type="submit" disabled=${state.busy}>${submitLabel}</button></p>
  </form>`;
}

const describeCondition = (c) =>
  c.type === 'anomaly' ? `outside the usual band (sensitivity ${c.sensitivity}, ${c.weeks} weeks)` : c.by !== undefined ? `${c.type} by ${c.by}${c.unit === 'percent' ? '%' : ''}` : `${c.type} ${c.value}`;

function AlertList({ query }) {
  const list = usePaged('/alerts');
  const create = async (body) => {
    const made = await api('/alerts', { method: 'POST', body });
    navigate('alerts', [made.id]);
  };
  return html`<section>
    <h1>Alerts</h1>
    <p>An alert watches a <a href=${href('reports')}>report</a> and notifies when it crosses its condition.</p>
    <details open=${Boolean(query.report_id)}>
      <summary>New alert</summary>
      <${AlertForm} reportId=${query.report_id} save=${create} submitLabel="Create alert" />
    </details>
    <${LoadState} state=${list} />
    ${list.data?.results.length === 0 && html`<p class="muted">No alerts yet.</p>`}
    ${list.data?.results.length > 0 &&
    html`<div class="table-wrap"><table>
      <thead><tr><th>Name</th><th>Condition</th><th>State</th><th>Last fired</th></tr></thead>
      <tbody>${list.data.results.map(
        (a) => html`<tr>
          <td><a href=${href('alerts', [a.id])}>${a.name}</a></td>
          <td>${describeCondition(a.condition)}</td>
          <td><${Badge} value=${a.state} /></td>
          <td><${Time} at=${a.last_fired_at} /></td>
        </tr>`,
      )}</tbody>
    </table></div>`}
    <${Pager} list=${list} label="Alert pages" />
  </section>`;
}

const compared = (c) => (c.band ? `band ${c.band.low} – ${c.band.high}` : c.baseline !== null && c.baseline !== undefined ? `previous ${c.baseline}` : '');

function History({ list }) {
  return html`<section aria-labelledby="history">
    <h2 id="history">History</h2>
    <${LoadState} state=${list} />
    ${list.data?.results.length === 0 && html`<p class="muted">Not checked yet: each bucket of the report is checked once it has closed.</p>`}
    ${list.data?.results.length > 0 &&
    html`<div class="table-wrap"><table>
      <thead><tr><th>Checked</th><th>Bucket</th><th>Segment</th><th>Value</th><th>Compared with</th><th>Crossed</th><th>Notified</th><th>Note</th></tr></thead>
      <tbody>${list.data.results.map(
        (c) => html`<tr>
          <td><${Time} at=${c.checked_at} /></td>
          <td><${Time} at=${c.bucket.from} /></td>
          <td>${c.segment === '$overall' ? '' : c.segment}</td>
          <td>${c.value ?? '—'}</td>
          <td>${compared(c)}</td>
          <td>${c.crossed ? 'yes' : 'no'}</td>
          <td>${c.notified ? html`<${Badge} value="fired" />` : 'no'}</td>
          <td>${c.note ?? ''}</td>
        </tr>`,
      )}</tbody>
    </table></div>`}
    <${Pager} list=${list} label="History pages" />
  </section>`;
}

function AlertItem({ id }) {
  const path = `/alerts/${id}`;
  const { state, reload, editing, save, editButton } = useItem(path);
  const history = usePaged(`/alerts/${id}/history`, {}, { every: 5000 });
  const reportId = state.data?.report_id;
  const [result] = useLoad(() => (reportId ? api(`/reports/${reportId}/result`) : Promise.resolve(undefined)), [reportId]);
  const [report] = useLoad(() => (reportId ? api(`/reports/${reportId}`) : Promise.resolve(undefined)), [reportId]);
  // A new check may have fired: read the alert again (last fired, quiet until).
  const latestCheck = history.data?.results[0]?.id;
  useEffect(() => void (latestCheck && reload()), [latestCheck]);
  // Bumped by a test, so the history below reads again and shows it.
  const [tests, setTests] = useState(0);
  if (!state.data) return html`<${LoadState} state=${state} />`;
  const a = state.data;
  const fired = (history.data?.results ?? []).filter((c) => c.notified).map((c) => Date.parse(c.bucket.from) / 1000);
  return html`<section>
    <${ItemHead} back="alerts" backLabel="Alerts" title=${a.name} state=${a.state}>
      ${editButton}
      <${DeleteButton} path=${path} what=${`alert “${a.name}” and its history`} page="alerts" />
    </${ItemHead}>
    ${a.state_reason && html`<p class="error">${a.state_reason}</p>`}
    ${editing && html`<${AlertForm} initial=${a} save=${save} submitLabel="Save changes" />`}
    <h2>Settings</h2>
    <dl class="facts">
      <dt>Report</dt><dd><a href=${href('reports', [a.report_id])}>${report.data?.name ?? `#${a.report_id}`}</a></dd>
      <dt>Condition</dt><dd>${describeCondition(a.condition)}</dd>
      <dt>Segment</dt><dd>${a.segment ?? '—'}</dd>
      <dt>Notifies at most</dt><dd>${a.frequency}</dd>
      <dt>Windows</dt><dd>${a.windows ? html`<${Json} value=${a.windows} label="Windows" />` : 'any time'}</dd>
      <dt>Channels</dt><dd><${Json} value=${a.channels} label="Channels" /></dd>
      <dt>Creator</dt><dd>${[a.creator, a.creator_email].filter(Boolean).join(', ') || '—'}</dd>
      <dt>Last fired</dt><dd><${Time} at=${a.last_fired_at} /></dd>
      <dt>Quiet until</dt><dd><${Time} at=${a.quiet_until} /></dd>
      <dt>Checked up to</dt><dd><${Time} at=${a.checked_to} /></dd>
    </dl>
    <h2>Test</h2>
    <p class="hint">Sends the alert to every channel now, its name prefixed <code>[TEST]</code>, with the report's value in its last bucket; not recorded in the history.</p>
    <${TestButton}
      path=${`${path}/test`}
      label="Send a test"
      onDone=${() => setTests((n) => n + 1)}
      show=${(r) => html`<p>${r.payload?.condition?.sentence ?? ''}</p>
        <ul class="replies">${r.results.map((x) => html`<li>Channel ${x.channel + 1} (${x.type}): <${Reply} r=${x} /></li>`)}</ul>
        <details><summary>What was sent</summary><${Json} value=${r.payload} label="The alert's body as sent" /></details>`}
    />
    <h2>The report</h2>
    <${LoadState} state=${result} />
    ${result.data && html`<${ResultChart} result=${result.data} title=${report.data?.name ?? `Report #${a.report_id}`} threshold=${a.condition.value} marks=${fired} />`}
    <p class="hint">The dashed line is the threshold; the orange lines are the buckets that fired (on this page of the history).</p>
    <${History} list=${history} />
    <${RecentDeliveries} key=${tests} kinds=${['alert', 'alert-test']} ownerId=${`${a.id}/`} />
  </section>`;
}

export function Alerts({ parts, query }) {
  return parts[0] ? html`<${AlertItem} id=${parts[0]} />` : html`<${AlertList} query=${query} />`;
}
