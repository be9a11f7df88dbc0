/**
 * Text PostgreSQL cannot store: NUL (in TEXT or JSONB) and lone UTF-16 surrogates (in JSONB).
 * SQLite would take both; we treat them the same way on both databases, so what one accepts
 * the other stores identically: NUL is refused, a lone surrogate becomes U+FFFD.
 */

/** JSON.stringify writes NUL as \u0000; an odd run of backslashes before it would make it literal text. */
const ESCAPED_NUL = /(?<!\\)(?:\\\\)*\\u0000/;
/** JSON.stringify (ES2019) writes lone surrogates, and only those, as \udXXX escapes. */
const ESCAPED_LONE_SURROGATE = /(?<=(?<!\\)(?:\\\\)*)\\ud[89a-f][0-9a-f]{2}/g;

export const hasNul = (text: string): boolean => text.includes('\0');

/** JSON.stringify, or undefined for a value nested too deeply to serialise (JSON.parse accepts more depth). */
export function stringifyOrUndefined(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch (err) {
    if (err instanceof RangeError) return undefined;
    throw err;
  }
}

export function jsonHasNul(json: string): boolean {
  return json.includes('\\u0000') && ESCAPED_NUL.test(json);
}

/** JSON text with every lone surrogate replaced by U+FFFD, as String.prototype.toWellFormed does. */
export function wellFormedJson(json: string): string {
  return json.includes('\\ud') ? json.replace(ESCAPED_LONE_SURROGATE, '\\ufffd') : json;
}

/** A JSON value with the same repair applied to every string in it (keys included). */
export function wellFormedValue<T>(value: T): T {
  const json = JSON.stringify(value);
  const repaired = wellFormedJson(json);
  return repaired === json ? value : (JSON.parse(repaired) as T);
}
