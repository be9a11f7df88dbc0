// The cohort definition editor: JSON in a textarea, with a mistake shown at its line, whether the
// browser found it (the text is not JSON) or the API did (its error.path, a JSON pointer).
import { useRef, useState } from 'preact/hooks';
import { ApiFailure, api } from '../lib/api.js';
import { html } from '../lib/html.js';
import { Field } from '../lib/ui.js';

/** A mistake in a JSON text, at `offset`. */
export class JsonSyntax extends Error {
  constructor(message, offset) {
    super(message);
    this.offset = offset;
  }
}

const escapeKey = (key) => key.replace(/~/g, '~0').replace(/\//g, '~1');
const LITERAL = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;

/**
 * Reads a JSON text strictly and answers where each value starts, by JSON pointer (an object's
 * member: where its key starts, so the line shown is the one naming it). A mistake throws
 * JsonSyntax with its offset: the browser's own JSON.parse does not always say where.
 */
export function scanJson(text) {
  const at = new Map();
  let i = 0;
  const fail = (what) => {
    throw new JsonSyntax(i >= text.length ? `${what}, but the text ends` : `${what}, found ${JSON.stringify(text[i])}`, Math.min(i, text.length));
  };
  const space = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const string = () => {
    const start = i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] < ' ') fail('expected the string to be closed on its line');
      i += text[i] === '\\' ? 2 : 1;
    }
    if (i >= text.length) fail('expected the string to be closed');
    i++;
    try {
      return JSON.parse(text.slice(start, i));
    } catch {
      i = start;
      return fail('expected a string with valid escapes (\\n, \\", \\\\, \\u00e9…)');
    }
  };
  const value = (pointer, keyAt) => {
    space();
    at.set(pointer, keyAt ?? i);
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      space();
      if (text[i] === close) return void i++;
      for (let n = 0; ; n++) {
        space();
        if (c === '[') value(`${pointer}/${n}`);
        else {
          if (text[i] !== '"') fail('expected a property name in double quotes');
          const start = i;
          const key = string();
          space();
          if (text[i] !== ':') fail('expected ":" after the property name');
          i++;
          value(`${pointer}/${escapeKey(key)}`, start);
        }
        space();
        if (text[i] === close) return void i++;
        if (text[i] !== ',') fail(`expected "," or "${close}"`);
        i++;
      }
    }
    if (c === '"') return void string();
    LITERAL.lastIndex = i;
    if (!LITERAL.test(text)) fail('expected a value: an object, a list, a string, a number, true, false or null');
    i = LITERAL.lastIndex;
  };
  value('');
  space();
  if (i < text.length) fail('expected the end of the text');
  return at;
}

/** The offset of the value at `pointer`, or of the nearest of its parents the text has (a missing field: the object that lacks it). */
export function offsetOf(at, pointer) {
  let p = pointer;
  while (!at.has(p)) p = p.slice(0, p.lastIndexOf('/'));
  return at.get(p);
}

/** Line and column (both from 1) of an offset. */
function lineOf(text, offset) {
  const before = text.slice(0, offset);
  const start = before.lastIndexOf('\n') + 1;
  return { line: before.split('\n').length, column: offset - start + 1, start };
}

/**
 * A labelled monospace textarea for a definition. `problem` ({ message, text, offset, pointer? }) is
 * a mistake in `text` as it was when saved: its message, where it is, and the lines around it with
 * its line marked and a caret under its column.
 */
export function DefinitionEditor({ id, value, onInput, problem }) {
  const area = useRef();
  const where = problem && lineOf(problem.text, problem.offset);
  const lines = problem ? problem.text.split('\n') : [];
  const first = where ? Math.max(1, where.line - 2) : 0;
  const last = where ? Math.min(lines.length, where.line + 2) : 0;
  const goTo = () => {
    const end = problem.text.indexOf('\n', where.start);
    area.current.focus();
    area.current.setSelectionRange(where.start, end === -1 ? problem.text.length : end);
  };
  return html`<div class="field">
    <label for=${id}>Definition (JSON)</label>
    <p class="hint" id=${`${id}-hint`}>A filter, or <code>and</code> / <code>or</code> / <code>not</code> of filters, as the README's Cohorts section describes.</p>
    <textarea id=${id} ref=${area} rows="14" spellcheck="false" autocapitalize="off" value=${value} onInput=${(e) => onInput(e.currentTarget.value)}
      aria-invalid=${problem ? 'true' : undefined} aria-describedby=${problem ? `${id}-hint ${id}-error` : `${id}-hint`}></textarea>
    ${problem &&
    html`<div class="error definition-problem" id=${`${id}-error`} role="alert">
      <p><strong>Line ${where.line}${problem.pointer !== undefined ? html`, at <code>${problem.pointer || '/'}</code>` : ''}:</strong> ${problem.message}</p>
      <pre class="json" tabindex="0" aria-label=${`Lines ${first} to ${last} of the definition as saved; line ${where.line} is marked`}>${lines.slice(first - 1, last).map((text, i) => {
        const n = first + i;
        const number = `${String(n).padStart(4)}  `;
        // The caret line is a plain string: htm drops template whitespace that holds a newline.
        return n === where.line ? html`<mark>${number}${text}</mark>${`\n${' '.repeat(number.length + where.column - 1)}^\n`}` : `${number}${text}\n`;
      })}</pre>
      <button type="button" onClick=${goTo}>Show line ${where.line} in the editor</button>
    </div>`}
  </div>`;
}

const EXAMPLE = '{\n  "and": [\n    { "property": "plan", "op": "equals", "value": "pro" },\n    { "event": "Purchase", "within_days": 30 }\n  ]\n}';

/** Where the API's refusal belongs: the editor (a pointer under /definition), the name or description field, or the form as a whole. */
function place(err, text, at) {
  const path = err.path ?? '';
  if (path === '/definition' || path.startsWith('/definition/')) {
    const pointer = path.slice('/definition'.length);
    return { definition: { message: err.message, text, offset: offsetOf(at, pointer), pointer } };
  }
  if (path === '/name' || path === '/description') return { [path.slice(1)]: err.message };
  return { form: err.message };
}

/**
 * Create (no `cohort`) or change a cohort: name, description and the definition. The JSON is read in
 * the browser first (a mistake shown at its line, nothing sent); the API's refusal is shown where it points.
 */
export function CohortForm({ cohort, onSaved, label }) {
  const [name, setName] = useState(cohort?.name ?? '');
  const [description, setDescription] = useState(cohort?.description ?? '');
  const [text, setText] = useState(cohort ? JSON.stringify(cohort.definition, null, 2) : EXAMPLE);
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState({});
  const [saved, setSaved] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setSaved(false);
    let at;
    try {
      at = scanJson(text);
    } catch (err) {
      if (!(err instanceof JsonSyntax)) throw err;
      setErrors({ definition: { message: `Not valid JSON: ${err.message}.`, text, offset: err.offset } });
      return;
    }
    setBusy(true);
    try {
      const body = { name, description, definition: JSON.parse(text) };
      const result = await (cohort ? api(`/cohorts/${cohort.id}`, { method: 'PATCH', body }) : api('/cohorts', { method: 'POST', body }));
      setErrors({});
      setSaved(true);
      onSaved(result);
    } catch (err) {
      setErrors(err instanceof ApiFailure ? place(err, text, at) : { form: err.message });
    } finally {
      setBusy(false);
    }
  };
  const prefix = cohort ? `cohort-${cohort.id}` : 'new-cohort';
  return html`<form onSubmit=${submit} aria-label=${label}>
    <${Field} id=${`${prefix}-name`} label="Name" required maxlength="200" value=${name} onInput=${setName} error=${errors.name} />
    <${Field} id=${`${prefix}-description`} label="Description" maxlength="2000" value=${description} onInput=${setDescription} error=${errors.description} />
    <${DefinitionEditor} id=${`${prefix}-definition`} value=${text} onInput=${setText} problem=${errors.definition} />
    ${errors.form && html`<p class="error" role="alert">${errors.form}</p>`}
    <p class="actions">
      <button class="primary" type="submit" disabled=${busy}>${cohort ? 'Save' : 'Create'}</button>
      ${busy && html`<span class="muted" role="status">Saving…</span>`}
      ${saved && cohort && html`<span class="notice" role="status">Saved.</span>`}
    </p>
  </form>`;
}
