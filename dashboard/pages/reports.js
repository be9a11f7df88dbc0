// Reports (the saved metrics alerts watch): the list, a new one, and one report's result as a chart.
import { useState } from 'preact/hooks';
import { api } from '../lib/api.js';
import { Chart } from '../lib/chart.js';
import { html } from '../lib/html.js';
import { useAction, useLoad, usePaged } from '../lib/hooks.js';
import { Choice, DeleteButton, FormError, ItemHead, JsonArea, errorAt, parseJson, useItem } from '../lib/items.js';
import { href, navigate } from '../lib/router.js';
import { Field, Json, LoadState, Pager, Time } from '../lib/ui.js';

const FIELDS = ['name', 'type', 'query'];
const TYPES = [
  ['insights', 'Insights'],
  ['funnels', 'Funnels'],
];
const EXAMPLE = { insights: { event: 'Purchase', measure: { type: 'total' }, interval: 'day' }, funnels: { steps: [{ event: 'Signup' }, { event: 'Purchase' }], measure: 'conversion', interval: 'day' } };
const QUERY_HINT =
  'Insights: {"event"?, "measure": {"type": "total" | "unique" | "sum" | "average" | "min" | "max", "property"?}, "where"?, "profile_where"?, "cohort_id"?, "breakdown"?: {"property", "on": "event" | "profile"}, "interval": "hour" | "day" | "week", "timezone"?}. ' +
  'Funnels: {"steps": [{"event", "where"?}, …], "window_days"?, "measure": "conversion" | "completed", "interval", …}.';
const COLOURS = ['#0b57d0', '#137333', '#a142f4', '#b06000', '#5f6368', '#c5221f'];

/** A report's result drawn: one line per segment over its buckets; `threshold` and `marks` as the Chart takes them. */
export function ResultChart({ result, title, threshold, marks }) {
  const times = result.buckets.map((b) => Date.parse(b.from) / 1000);
  const series = result.series.map((s, i) => ({ label: s.segment === '$overall' ? 'value' : s.segment, values: s.values, stroke: COLOURS[i % COLOURS.length] }));
  if (times.length === 0 || series.length === 0) return html`<p class="muted">No data in this range.</p>`;
  return html`<${Chart} title=${title} times=${times} series=${series} threshold=${threshold} marks=${marks} />
    <p class="hint">${result.interval} buckets in ${result.timezone}, answered from ${result.source}.</p>`;
}

function ReportForm({ initial, save, submitLabel }) {
  const [name, setName] = useState(initial?.name ?? '');
  const [type, setType] = useState(initial?.type ?? 'insights');
  const [query, setQuery] = useState(JSON.stringify(initial?.query ?? EXAMPLE.insights, null, 2));
  const [state, submit] = useAction(() => save({ name, type, query: parseJson('query', query) }));
  const changeType = (t) => {
    setType(t);
    if (!initial) setQuery(JSON.stringify(EXAMPLE[t], null, 2));
  };
  return html`<form onSubmit=${(e) => (e.preventDefault(), submit())} aria-label=${submitLabel}>
    <${Field} id="report-name" label="Name" required value=${name} onInput=${setName} error=${errorAt(state, 'name')} />
    <${Choice} id="report-type" label="Type" value=${type} onChange=${changeType} options=${TYPES} error=${errorAt(state, 'type')} />
    <${JsonArea} id="report-query" label="Query (JSON)" hint=${QUERY_HINT} rows="6" value=${query} onInput=${setQuery} error=${errorAt(state, 'query')} />
    <${FormError} state=${state} fields=${FIELDS} />
    <p><button class="primary" type="submit" disabled=${state.busy}>${submitLabel}</button></p>
  </form>`;
}

function ReportList() {
  const list = usePaged('/reports');
  const create = async (body) => {
    const made = await api('/reports', { method: 'POST', body });
    navigate('reports', [made.id]);
  };
  return html`<section>
    <h1>Reports</h1>
    <p>Saved metrics, drawn over time; <a href=${href('alerts')}>alerts</a> watch them.</p>
    <details>
      <summary>New report</summary>
      <${ReportForm} save=${create} submitLabel="Create report" />
    </details>
    <${LoadState} state=${list} />
    ${list.data?.results.length === 0 && html`<p class="muted">No reports yet.</p>`}
    ${list.data?.results.length > 0 &&
    html`<div class="table-wrap"><table>
      <thead><tr><th>Name</th><th>Type</th><th>Interval</th><th>Changed</th></tr></thead>
      <tbody>${list.data.results.map(
        (r) => html`<tr>
          <td><a href=${href('reports', [r.id])}>${r.name}</a></td>
          <td>${r.type}</td>
          <td>${r.query.interval}</td>
          <td><${Time} at=${r.updated_at} /></td>
        </tr>`,
      )}</tbody>
    </table></div>`}
    <${Pager} list=${list} label="Report pages" />
  </section>`;
}

function ReportItem({ id }) {
  const [result, reloadResult] = useLoad(() => api(`/reports/${id}/result`), [id]);
  const path = `/reports/${id}`;
  const { state, editing, save, editButton } = useItem(path, { afterSave: reloadResult });
  if (!state.data) return html`<${LoadState} state=${state} />`;
  const r = state.data;
  return html`<section>
    <${ItemHead} back="reports" backLabel="Reports" title=${r.name}>
      ${editButton}
      <${DeleteButton} path=${path} what=${`report “${r.name}”`} page="reports" />
      <a href=${href('alerts', [], { report_id: r.id })}>New alert on it</a>
    </${ItemHead}>
    ${editing && html`<${ReportForm} initial=${r} save=${save} submitLabel="Save changes" />`}
    <h2>Result</h2>
    <${LoadState} state=${result} />
    ${result.data && html`<${ResultChart} result=${result.data} title=${r.name} />`}
    <h2>Definition</h2>
    <dl class="facts"><dt>Type</dt><dd>${r.type}</dd><dt>Query</dt><dd><${Json} value=${r.query} label="Query" /></dd></dl>
  </section>`;
}

export function Reports({ parts }) {
  return parts[0] ? html`<${ReportItem} id=${parts[0]} />` : html`<${ReportList} />`;
}
