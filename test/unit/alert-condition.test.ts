import { describe, expect, it } from 'vitest';
import { formatValue, judge, parseCondition, ConditionError } from '../../src/alerts/condition.js';
import { inWindow, parseWindows } from '../../src/alerts/windows.js';

describe('alert conditions', () => {
  it('compare the full value, and show it rounded to 2 decimals with thousands separators', () => {
    expect(judge({ type: 'above', value: 100 }, 100.0001, null, []).crossed).toBe(true);
    expect(judge({ type: 'above', value: 100 }, 100, null, []).crossed).toBe(false);
    expect(judge({ type: 'below', value: 0.5 }, 0.49, null, []).crossed).toBe(true);
    expect(formatValue(1234567.891)).toBe('1,234,567.89');
    expect(formatValue(-0.005)).toBe('-0.01');
    expect(formatValue(50)).toBe('50');
  });

  it('judge changes from the previous bucket by an amount or a percentage', () => {
    expect(judge({ type: 'increase', by: 100, unit: 'percent' }, 50, 10, [])).toMatchObject({ crossed: true, baseline: 10 });
    expect(judge({ type: 'increase', by: 100, unit: 'percent' }, 20, 10, []).crossed).toBe(false);
    expect(judge({ type: 'decrease', by: 50, unit: 'percent' }, 10, 60, []).crossed).toBe(true);
    expect(judge({ type: 'decrease', by: 50, unit: 'amount' }, 10, 60, []).crossed).toBe(false);
    expect(judge({ type: 'increase', by: 5, unit: 'amount' }, 16, 10, []).crossed).toBe(true);
    expect(judge({ type: 'increase', by: 10, unit: 'percent' }, 5, 0, [])).toMatchObject({ crossed: false, note: 'the previous bucket is 0: a percentage change is undefined' });
    expect(judge({ type: 'increase', by: 10, unit: 'percent' }, 5, null, []).note).toBe('no value in the previous bucket');
  });

  it('find an anomaly outside median ± sensitivity × 1.4826 × MAD, robust to one past outlier', () => {
    const c = { type: 'anomaly' as const, sensitivity: 3, weeks: 8 };
    // One past week had an outlier (500): the median and MAD ignore it, a mean and deviation would not.
    const past = [100, 104, 96, 101, 99, 500, 103, 97];
    const v = judge(c, 140, null, past);
    expect(v.crossed).toBe(true);
    expect(v.baseline).toBe(100.5);
    expect(v.low).toBeCloseTo(100.5 - 3 * Math.max(1.4826 * 3, 10.05), 6);
    expect(judge(c, 112, null, past).crossed).toBe(false);
    expect(judge(c, 140, null, [100, null, 100]).note).toBe('2 past weeks with a value; an anomaly needs 4');
  });

  it('are refused with the field that is wrong', () => {
    const field = (v: unknown) => {
      try {
        parseCondition(v);
        return 'accepted';
      } catch (err) {
        return (err as ConditionError).message.split(':')[0];
      }
    };
    expect(field({ type: 'above' })).toBe('condition.value');
    expect(field({ type: 'above', value: 1, by: 2 })).toBe('condition.by');
    expect(field({ type: 'increase', by: -1 })).toBe('condition.by');
    expect(field({ type: 'anomaly', sensitivity: 0 })).toBe('condition.sensitivity');
    expect(parseCondition({ type: 'anomaly' })).toEqual({ type: 'anomaly', sensitivity: 3, weeks: 8 });
  });
});

describe('notification windows', () => {
  it('hold days and hours in their time zone', () => {
    const w = parseWindows({ days_of_week: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '09:00', to: '17:30', timezone: 'America/New_York' })!;
    expect(inWindow(w, Date.UTC(2026, 11, 7, 14, 0))).toBe(true); // Monday 09:00 in New York
    expect(inWindow(w, Date.UTC(2026, 11, 7, 13, 59))).toBe(false);
    expect(inWindow(w, Date.UTC(2026, 11, 7, 22, 29))).toBe(true);
    expect(inWindow(w, Date.UTC(2026, 11, 7, 22, 30))).toBe(false);
    expect(inWindow(w, Date.UTC(2026, 11, 5, 15, 0))).toBe(false); // a Saturday
    expect(inWindow(null, 0)).toBe(true);
    expect(inWindow(parseWindows({ to: '24:00' }), Date.UTC(2026, 11, 5, 23, 59))).toBe(true);
  });
});
