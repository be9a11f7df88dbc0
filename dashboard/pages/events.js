import { html } from '../lib/html.js';
import { usePaged } from '../lib/hooks.js';
import { fromLocalInput } from '../lib/local-time.js';
import { propertyFilter, useQueryForm } from '../lib/query-form.js';
import { href } from '../lib/router.js';
import { Field, Json, LoadState, Pager, Time } from '../lib/ui.js';

const KEYS = ['event', 'distinct_id', 'property', 'value', 'from', 'to'];

/** Events newest first, searched by name, distinct id, one property's value and a time window. */
export function Events({ query }) {
  const form = useQueryForm('events', query, KEYS);
  const list = usePaged('/events', {
    order: 'desc',
    event: query.event,
    distinct_id: query.distinct_id,
    ...propertyFilter(query.property, query.value),
    from: fromLocalInput(query.from),
    to: fromLocalInput(query.to),
  });
  const { values, set } = form;
  return html`<section>
    <h1>Events</h1>
    <form class="filters" onSubmit=${form.submit} aria-label="Search events">
      <${Field} id="ev-event" label="Event name" value=${values.event} onInput=${set('event')} />
      <${Field} id="ev-distinct" label="Distinct id" value=${values.distinct_id} onInput=${set('distinct_id')} />
      <${Field} id="ev-property" label="Property" placeholder="e.g. plan" value=${values.property} onInput=${set('property')} />
      <${Field} id="ev-value" label="equals" placeholder="e.g. pro" value=${values.value} onInput=${set('value')} />
      <${Field} id="ev-from" label="From" type="datetime-local" value=${values.from} onInput=${set('from')} />
      <${Field} id="ev-to" label="Until" type="datetime-local" value=${values.to} onInput=${set('to')} />
      <div class="actions"><button class="primary" type="submit">Search</button><button type="button" onClick=${form.clear}>Clear</button></div>
    </form>
    ${query.property && html`<p class="muted">A property search reads every event of the window in turn; narrow it with a time window on a large project.</p>`}
    <${LoadState} state=${list} />
    ${list.data &&
    (list.data.results.length === 0
      ? html`<p>No events match.</p>`
      : html`<div class="table-wrap"><table>
          <thead><tr><th>Time</th><th>Event</th><th>Distinct id</th><th>Properties</th></tr></thead>
          <tbody>
            ${list.data.results.map(
              (e) => html`<tr>
                <td><${Time} at=${e.time} /></td>
                <td>${e.event}</td>
                <td><a href=${href('profiles', [e.distinct_id])}>${e.distinct_id}</a></td>
                <td><details><summary>${Object.keys(e.properties).length} properties</summary><${Json} value=${e.properties} label=${`Properties of ${e.event} at ${e.time}`} /></details></td>
              </tr>`,
            )}
          </tbody>
        </table></div>`)}
    <${Pager} list=${list} label="Event pages" />
  </section>`;
}
