import { describe, expect, it } from 'vitest';
import { parseDefinition, referencedCohorts } from '../../src/cohorts/definition.js';
import { dateText } from '../../src/store/cohort-sql.js';

describe('parseDefinition', () => {
  it('accepts every kind of filter, nested, and answers it unchanged', () => {
    const definition = {
      and: [
        { property: 'plan', op: 'equals', value: 'pro' },
        { property: '$last_seen', op: 'before', value: { days_ago: 21 } },
        { property: 'signup', op: 'between_dates', value: ['2024-01-01', '2024-06-30T23:59:59Z'] },
        { property: 'seats', op: 'between', value: [1, 10] },
        { property: '$email', op: 'set' },
        { event: 'Purchase', count: { op: 'at_least', value: 2 }, within_days: 30, where: [{ property: 'amount', op: 'greater_than', value: 10 }] },
        { not: { event: 'Login', within_days: 21 } },
        { or: [{ property: '$country_code', op: 'in', value: ['US', 'CA'] }, { cohort: 7 }] },
      ],
    };
    expect(parseDefinition(definition)).toEqual(definition);
    expect(referencedCohorts(parseDefinition(definition))).toEqual([7]);
  });

  it.each([
    ['not an object', [], 'definition: expected an object (a filter, or and / or / not), got a list'],
    ['no kind', { op: 'equals' }, 'definition: expected one of "and", "or", "not", "cohort", "event" or "property"'],
    ['two kinds', { and: [], or: [] }, 'definition: give only one of "and", "or"'],
    ['an empty and', { and: [] }, 'definition.and: expected a non-empty list of conditions'],
    ['an unknown operator, deep', { or: [{ not: { property: 'plan', op: 'resembles', value: 'x' } }] }, 'definition.or[0].not.op: expected one of equals, not_equals,'],
    ['a list where a scalar goes', { property: 'plan', op: 'equals', value: ['pro'] }, 'definition.value: expected a string, number or boolean, got a list'],
    ['a string where a number goes', { property: 'seats', op: 'greater_than', value: '3' }, 'definition.value: expected a number, got "3"'],
    ['bounds the wrong way round', { property: 'seats', op: 'between', value: [10, 1] }, 'definition.value: the low bound 10 is above the high bound 1'],
    ['a date that is not ISO 8601', { property: 'signup', op: 'before', value: '31/12/2024' }, 'definition.value: expected an ISO 8601 date such as "2024-05-31"'],
    ['a negative relative date', { property: 'signup', op: 'after', value: { days_ago: -1 } }, 'definition.value.days_ago: expected a whole number from 0 to 3650, got -1'],
    ['a value on set', { property: 'plan', op: 'set', value: true }, 'definition.value: unknown field; allowed here: property, op'],
    ['an empty in list', { property: 'plan', op: 'in', value: [] }, 'definition.value: expected a list of 1 to 1000 values'],
    ['an object in an in list', { property: 'plan', op: 'in', value: ['a', {}] }, 'definition.value[1]: expected a string, number or boolean, got an object'],
    ['a quote in a property name', { property: 'a"b', op: 'set' }, 'definition.property: a property name cannot contain quotes or backslashes'],
    ['no window on an event filter', { event: 'Login' }, 'definition.within_days: expected a whole number from 1 to 3650'],
    ['a bad count op', { event: 'Login', within_days: 7, count: { op: 'more', value: 1 } }, 'definition.count.op: expected one of at_least, at_most, exactly, got "more"'],
    ['a fractional count', { event: 'Login', within_days: 7, count: { op: 'at_least', value: 1.5 } }, 'definition.count.value: expected a whole number from 0 to 1000000000, got 1.5'],
    ['a non-filter in where', { event: 'Login', within_days: 7, where: [{ event: 'x' }] }, 'definition.where[0]: expected an event property filter'],
    ['a cohort id that is not one', { cohort: 'seven' }, 'definition.cohort: expected a cohort id (a positive integer), got "seven"'],
    ['an unknown field', { not: { cohort: 1 }, extra: 1 }, 'definition.extra: unknown field; allowed here: not'],
  ])('refuses %s, naming the path', (_name, value, message) => {
    expect(() => parseDefinition(value)).toThrow(message);
  });

  it('refuses trees deeper than 32 levels', () => {
    let deep: unknown = { property: 'plan', op: 'set' };
    for (let i = 0; i < 40; i++) deep = { not: deep };
    expect(() => parseDefinition(deep)).toThrow(/nested deeper than 32 levels/);
  });
});

describe('dateText', () => {
  const now = Date.UTC(2024, 4, 31, 12, 0, 0);
  it('writes relative dates and zoned instants in UTC, as Mixpanel stores dates', () => {
    expect(dateText({ days_ago: 21 }, now)).toBe('2024-05-10T12:00:00');
    expect(dateText('2024-05-31T14:00:00+02:00', now)).toBe('2024-05-31T12:00:00');
    expect(dateText('2024-05-31 08:30:00', now)).toBe('2024-05-31T08:30:00');
    expect(dateText('2024-05-31', now)).toBe('2024-05-31');
  });
});
