const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration with a unit (`30d`, `12h`, `90m`, `45s`, `500ms`) or bare milliseconds, in ms; undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(text);
  return m ? Number(m[1]) * UNITS[m[2] ?? 'ms']! : undefined;
}
