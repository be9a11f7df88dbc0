/**
 * An alert's condition, as Mixpanel's custom alerts have them, and one beyond them:
 *   above / below        the bucket's value against a threshold;
 *   increase / decrease  the change from the previous bucket, by more than an amount or a percentage;
 *   anomaly              the value outside a band learned from the same bucket of past weeks: the
 *                        median of those values ± sensitivity × 1.4826 × their median absolute
 *                        deviation (a robust standard deviation: one past outlier does not widen
 *                        the band, as it would a mean and standard deviation), the scale never
 *                        below a tenth of the median's size, so a perfectly flat history still
 *                        tolerates small wobbles. The same hour of the week (hourly reports), day
 *                        of the week (daily), or the past weeks (weekly): seasonality is the week's.
 * Comparisons use the full value; shown values are rounded to 2 decimals.
 */

export type Condition =
  | { type: 'above' | 'below'; value: number }
  | { type: 'increase' | 'decrease'; by: number; unit: 'amount' | 'percent' }
  | { type: 'anomaly'; sensitivity: number; weeks: number };

export class ConditionError extends Error {}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
/** Past values an anomaly needs before it judges. */
export const MIN_HISTORY = 4;

export function parseCondition(v: unknown): Condition {
  const fail = (field: string, message: string) => new ConditionError(`condition${field}: ${message}`);
  if (!isObject(v)) throw fail('', 'expected {"type": "above" | "below" | "increase" | "decrease" | "anomaly", …}');
  const only = (allowed: string[]) => {
    const extra = Object.keys(v).find((k) => !allowed.includes(k));
    if (extra !== undefined) throw fail(`.${extra}`, `not a field of a ${String(v.type)} condition; allowed: ${allowed.join(', ')}`);
  };
  if (v.type === 'above' || v.type === 'below') {
    only(['type', 'value']);
    if (!finite(v.value)) throw fail('.value', 'expected the threshold, a number');
    return { type: v.type, value: v.value };
  }
  if (v.type === 'increase' || v.type === 'decrease') {
    only(['type', 'by', 'unit']);
    if (!finite(v.by) || v.by < 0) throw fail('.by', 'expected the change to exceed, a number ≥ 0');
    const unit = v.unit ?? 'amount';
    if (unit !== 'amount' && unit !== 'percent') throw fail('.unit', 'expected "amount" or "percent"');
    return { type: v.type, by: v.by, unit };
  }
  if (v.type === 'anomaly') {
    only(['type', 'sensitivity', 'weeks']);
    const sensitivity = v.sensitivity ?? 3;
    if (!finite(sensitivity) || sensitivity <= 0 || sensitivity > 10) throw fail('.sensitivity', 'expected how many robust deviations from the median count as anomalous, above 0 and at most 10 (default 3)');
    const weeks = v.weeks ?? 8;
    if (!Number.isInteger(weeks) || (weeks as number) < MIN_HISTORY || (weeks as number) > 52) throw fail('.weeks', `expected the weeks of history to learn from, ${MIN_HISTORY} to 52 (default 8)`);
    return { type: 'anomaly', sensitivity, weeks: weeks as number };
  }
  throw fail('.type', 'expected above, below, increase, decrease or anomaly');
}

export interface Verdict {
  crossed: boolean;
  /** The previous bucket (increase, decrease), or the median (anomaly). */
  baseline: number | null;
  /** The band an anomaly allows. */
  low: number | null;
  high: number | null;
  /** Why nothing could be judged, when so. */
  note: string | null;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Judges one bucket's value: `previous` is the bucket before it, `history` the same bucket in past weeks. */
export function judge(c: Condition, value: number | null, previous: number | null, history: (number | null)[]): Verdict {
  const none = (note: string): Verdict => ({ crossed: false, baseline: null, low: null, high: null, note });
  if (value === null) return none('no value in this bucket');
  switch (c.type) {
    case 'above':
      return { crossed: value > c.value, baseline: null, low: null, high: null, note: null };
    case 'below':
      return { crossed: value < c.value, baseline: null, low: null, high: null, note: null };
    case 'increase':
    case 'decrease': {
      if (previous === null) return none('no value in the previous bucket');
      const change = c.type === 'increase' ? value - previous : previous - value;
      if (c.unit === 'amount') return { crossed: change > c.by, baseline: previous, low: null, high: null, note: null };
      if (previous === 0) return { ...none('the previous bucket is 0: a percentage change is undefined'), baseline: 0 };
      return { crossed: (change / Math.abs(previous)) * 100 > c.by, baseline: previous, low: null, high: null, note: null };
    }
    case 'anomaly': {
      const past = history.filter((h): h is number => h !== null);
      if (past.length < MIN_HISTORY) return none(`${past.length} past weeks with a value; an anomaly needs ${MIN_HISTORY}`);
      const m = median(past);
      const mad = median(past.map((x) => Math.abs(x - m)));
      const scale = Math.max(1.4826 * mad, 0.1 * Math.abs(m), 1e-9);
      const low = m - c.sensitivity * scale;
      const high = m + c.sensitivity * scale;
      return { crossed: value < low || value > high, baseline: m, low, high, note: null };
    }
  }
}

/** A value as people read it: at most 2 decimals, thousands separated. */
export const formatValue = (v: number): string => new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 }).format(v);

/** Mixpanel's condition type and operator words for a condition. */
export function describeCondition(c: Condition): { type: string; operator: string; threshold: number | null; words: string } {
  switch (c.type) {
    case 'above':
      return { type: 'absolute', operator: 'greater than', threshold: c.value, words: `above ${formatValue(c.value)}` };
    case 'below':
      return { type: 'absolute', operator: 'less than', threshold: c.value, words: `below ${formatValue(c.value)}` };
    case 'increase':
    case 'decrease': {
      const by = c.unit === 'percent' ? `${formatValue(c.by)}%` : formatValue(c.by);
      return { type: c.unit === 'percent' ? 'relative' : 'absolute_change', operator: `${c.type}s by more than`, threshold: c.by, words: `${c.type}d by more than ${by} from the previous bucket` };
    }
    case 'anomaly':
      return { type: 'anomaly', operator: 'outside the expected range', threshold: null, words: 'outside the range its past weeks predict' };
  }
}
