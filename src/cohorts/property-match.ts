import { dateText } from '../store/cohort-sql.js';
import type { PropertyFilter } from './definition.js';

/**
 * A property filter evaluated on a properties object in JavaScript, with the meaning the SQL
 * compiler (store/cohort-sql.ts) gives it: a string or boolean equals exactly, a number
 * numerically; contains ignores case; numbers compare only with numbers; dates are text
 * `YYYY-MM-DDTHH:MM:SS` in UTC; a missing property matches no positive filter.
 */
export function propertyMatches(f: PropertyFilter, props: Record<string, unknown>, now: number): boolean {
  const v = Object.hasOwn(props, f.property) ? props[f.property] : undefined;
  const text = typeof v === 'string' ? v : undefined;
  const num = typeof v === 'number' ? v : undefined;
  const equals = (x: string | number | boolean) => (typeof x === 'number' ? num === x : v === x);
  switch (f.op) {
    case 'equals':
      return equals(f.value);
    case 'not_equals':
      return !equals(f.value);
    case 'contains':
      return text !== undefined && text.toLowerCase().includes(f.value.toLowerCase());
    case 'not_contains':
      return !(text !== undefined && text.toLowerCase().includes(f.value.toLowerCase()));
    case 'greater_than':
      return num !== undefined && num > f.value;
    case 'less_than':
      return num !== undefined && num < f.value;
    case 'between':
      return num !== undefined && num >= f.value[0] && num <= f.value[1];
    case 'before':
      return text !== undefined && text < dateText(f.value, now);
    case 'after':
      return text !== undefined && text > dateText(f.value, now);
    case 'between_dates': {
      const [a, b] = f.value.map((d) => dateText(d, now)).sort() as [string, string];
      return text !== undefined && text >= a && text <= b;
    }
    case 'set':
      return v !== undefined && v !== null;
    case 'not_set':
      return v === undefined || v === null;
    case 'in':
      return f.value.some(equals);
    case 'not_in':
      return !f.value.some(equals);
  }
}
