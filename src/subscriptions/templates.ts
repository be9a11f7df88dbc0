import { Liquid, type Template } from 'liquidjs';

/**
 * Payload, text, subject and body templates are Liquid (liquidjs): a template can read the event
 * and format it, but never run code, so whoever writes one cannot take over the server (a Jinja2
 * port could). The filters a Jinja2 author reaches for are there: `tojson`, `default`, `upper`,
 * `lower`, `round` (Liquid's own `json`, `upcase`, `downcase` too). The context is the event
 * envelope: {{ event_id }}, {{ event_type }}, {{ data.distinct_id }}, …
 */
// Rendering runs on the fan-out's event loop: a template that loops or builds strings without end
// is stopped (it fails that delivery, saying why) long before it could stall the process.
const engine = new Liquid({ strictFilters: true, ownPropertyOnly: true, jsTruthy: false, outputEscape: undefined, renderLimit: 20, memoryLimit: 10_000_000 });
engine.registerFilter('tojson', (v: unknown) => JSON.stringify(v ?? null));
engine.registerFilter('upper', (v: unknown) => String(v ?? '').toUpperCase());
engine.registerFilter('lower', (v: unknown) => String(v ?? '').toLowerCase());

export class TemplateError extends Error {}

/** Parses a template; a broken one throws TemplateError naming the line and what is wrong. */
export function compileTemplate(source: string, where: string): Template[] {
  try {
    return engine.parse(source);
  } catch (err) {
    const e = err as Error & { token?: { getPosition?: () => [number, number] } };
    const at = e.token?.getPosition?.();
    throw new TemplateError(`${where}: ${at ? `line ${at[0]}: ` : ''}${e.message.replace(/, line:\d+, col:\d+$/, '')}`);
  }
}

/** Renders a compiled template with the event envelope as its context (synchronously: no I/O in a template). */
export function renderTemplate(template: Template[], context: Record<string, unknown>): string {
  return engine.renderSync(template, context) as string;
}
