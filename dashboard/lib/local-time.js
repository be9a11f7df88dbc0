// <input type="datetime-local"> speaks the person's local time without a zone; the API and the URL speak ISO instants.

/** An ISO instant (or anything Date parses) as a datetime-local value; '' for nothing or nonsense. */
export function toLocalInput(at) {
  if (!at) return '';
  const d = new Date(/^\d+$/.test(at) ? Number(at) * (String(at).length > 11 ? 1 : 1000) : at);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A datetime-local value as an ISO instant; undefined when empty. */
export const fromLocalInput = (value) => (value ? new Date(value).toISOString() : undefined);
