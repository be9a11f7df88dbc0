/**
 * What a property value may hold, checked in one walk that stops at the first problem, so a
 * hostile value costs at most its own size: nesting depth (both databases must be able to read it
 * back: SQLite's JSON functions stop at 1,000 levels), names in bytes, keys per object, items per
 * list, and numbers a JSON column can hold (JSON.parse turns 1e400 into Infinity, which would be
 * stored as null without a word).
 */
export interface ValueRules {
  /** Levels of lists and objects in a property value: 1 is the likes of {"a": 1}, 0 a scalar alone. */
  maxDepth: number;
  /** UTF-8 bytes of any property name, at any level. */
  maxNameBytes: number;
  maxObjectKeys: number;
  /** Items of any list; Infinity for none. */
  maxListLength: number;
}

/** Where a value breaks a rule (the field, as failed_records name it) and how, as a person reads it. */
export interface ValueProblem {
  field: string;
  message: string;
}

/**
 * The first problem with `value` under `rules`, or undefined. `path` names the value, an object
 * of properties (an event's, or a profile operation's): its values are the property values.
 */
export function valueProblem(value: unknown, rules: ValueRules, path: string): ValueProblem | undefined {
  return walk(value, rules, path, 0);
}

const problem = (field: string, what: string): ValueProblem => ({ field, message: `${field}: ${what}` });

function walk(value: unknown, rules: ValueRules, path: string, depth: number): ValueProblem | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : problem(path, `${value} is out of range for a number (about ±1.8e308)`);
  if (typeof value !== 'object' || value === null) return undefined;
  if (depth > rules.maxDepth) return problem(path, `nested more than ${rules.maxDepth} levels deep`);
  if (Array.isArray(value)) {
    if (value.length > rules.maxListLength) return problem(path, `a list may have at most ${rules.maxListLength} items, this one has ${value.length}`);
    for (let i = 0; i < value.length; i++) {
      const found = walk(value[i], rules, `${path}[${i}]`, depth + 1);
      if (found) return found;
    }
    return undefined;
  }
  const keys = Object.keys(value);
  if (keys.length > rules.maxObjectKeys) return problem(path, `an object may have at most ${rules.maxObjectKeys} keys, this one has ${keys.length}`);
  for (const key of keys) {
    const found = nameProblem(key, rules, path) ?? walk((value as Record<string, unknown>)[key], rules, `${path}.${short(key)}`, depth + 1);
    if (found) return found;
  }
  return undefined;
}

/** A property name over the byte limit. */
export function nameProblem(name: string, rules: Pick<ValueRules, 'maxNameBytes'>, path: string): ValueProblem | undefined {
  return overBytes(name, rules.maxNameBytes) ? problem(path, `the property name "${short(name)}" is longer than ${rules.maxNameBytes} bytes`) : undefined;
}

/** A name or id as an error message may quote it: never the whole of a huge one. */
export const short = (text: string): string => (text.length > 40 ? `${text.slice(0, 40)}…` : text);

/** Whether a text is over `max` UTF-8 bytes (at most 3 a UTF-16 unit: most texts skip the count). */
export const overBytes = (text: string, max: number): boolean => text.length > max || (text.length * 3 > max && Buffer.byteLength(text) > max);
