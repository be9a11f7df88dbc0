import { isDeepStrictEqual } from 'node:util';
import '../helpers/fast-check-seed.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyUpdate,
  mixpanelDate,
  parseGroupUpdate,
  parseUserUpdate,
  USER_OPERATIONS,
  type Operation,
  type UserUpdate,
} from '../../src/ingest/profile-ops.js';
import { defaultIngestLimits } from '../../src/config.js';

type Props = Record<string, unknown>;
type Properties = Props;
const L = defaultIngestLimits;

const NOW = Date.UTC(2024, 4, 6, 7, 8, 9, 345);
/** Mixpanel's $last_seen: ISO 8601, UTC, to the second, no zone suffix. */
const MIXPANEL_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/;
const MODIFIERS = ['$token', 'token', '$distinct_id', '$ip', '$time', '$ignore_time', '$ignore_alias', '$device_id', '$user_id'];

/** Parses an /engage record (it must be valid) through the real parser. */
function update(ops: Partial<Record<Operation, unknown>>, modifiers: Props = { $ignore_time: true }): UserUpdate {
  const parsed = parseUserUpdate({ $token: 'tok', $distinct_id: 'user-1', ...modifiers, ...ops }, 0, NOW, L);
  if (!parsed.ok) throw new Error(`test bug: ${JSON.stringify(parsed.error)}`);
  return parsed.update;
}
const apply = (current: Props | null, ops: Partial<Record<Operation, unknown>>, modifiers?: Props) =>
  applyUpdate(current, update(ops, modifiers), L) as Properties | null;

// Profile keys. Names of Object.prototype members are left to their own test below, so one
// bug there does not make every property fail; $last_seen is the service's own key.
const key = fc
  .oneof(fc.constantFrom('a', 'b', 'c', 'plan', '$email', 'n'), fc.string({ minLength: 1, maxLength: 6 }))
  .filter((k) => !(k in Object.prototype) && k !== '$last_seen');
const value = fc.jsonValue({ maxDepth: 2 });
const dict = <T>(v: fc.Arbitrary<T>, minKeys = 0) => fc.dictionary(key, v, { minKeys, maxKeys: 6, noNullPrototype: true });
const profile = dict(value);
/** Few distinct scalars, so lists often hold equal elements. */
const scalar = fc.oneof(fc.constantFrom('x', 'y', 'z', ''), fc.integer({ min: -3, max: 3 }), fc.boolean(), fc.constant(null));
const item = fc.oneof({ weight: 4, arbitrary: scalar }, { weight: 1, arbitrary: fc.array(scalar, { maxLength: 2 }) });
const list = fc.array(item, { maxLength: 8 });
/** A profile whose values are often lists or numbers. */
const mixedProfile = dict(fc.oneof(list, fc.integer({ min: -1000, max: 1000 }), value));

const canon = (v: unknown) => JSON.stringify(v);
const setOf = (xs: unknown[]) => new Set(xs.map(canon));

describe('applyUpdate: properties of each operation', () => {
  it('$set_once never overwrites an existing key and adds the missing ones', () => {
    fc.assert(
      fc.property(profile, dict(value, 1), (current, once) => {
        const result = apply(current, { $set_once: once })!;
        for (const [k, v] of Object.entries(current)) expect(result[k]).toEqual(v);
        for (const [k, v] of Object.entries(once)) if (!(k in current)) expect(result[k]).toEqual(v);
        expect(Object.keys(result).sort()).toEqual([...new Set([...Object.keys(current), ...Object.keys(once)])].sort());
      }),
    );
  });

  it('$set_once: the first value written wins across updates', () => {
    fc.assert(
      fc.property(fc.array(dict(value, 1), { minLength: 1, maxLength: 5 }), (updates) => {
        let state: Props | null = null;
        for (const once of updates) state = apply(state, { $set_once: once });
        const first = new Map<string, unknown>();
        for (const once of updates) for (const [k, v] of Object.entries(once)) if (!first.has(k)) first.set(k, v);
        expect(state).toEqual(Object.fromEntries(first));
      }),
    );
  });

  it('$set: the last value written wins; other keys are untouched', () => {
    fc.assert(
      fc.property(profile, dict(value, 1), (current, set) => {
        expect(apply(current, { $set: set })).toEqual({ ...current, ...set });
      }),
    );
  });

  it('$union is idempotent', () => {
    fc.assert(
      fc.property(mixedProfile, dict(list, 1), (current, union) => {
        const once = apply(current, { $union: union });
        expect(apply(once, { $union: union })).toEqual(once);
      }),
    );
  });

  it('$union has set semantics: keeps the list, appends each missing element once, ignores non-lists', () => {
    fc.assert(
      fc.property(mixedProfile, dict(list, 1), (current, union) => {
        const result = apply(current, { $union: union })!;
        for (const [k, items] of Object.entries(union)) {
          const base = current[k];
          if (base !== undefined && !Array.isArray(base)) {
            expect(result[k]).toEqual(base);
            continue;
          }
          const before = (base as unknown[] | undefined) ?? [];
          const after = result[k] as unknown[];
          expect(after.slice(0, before.length)).toEqual(before);
          const added = after.slice(before.length);
          expect(setOf(after)).toEqual(new Set([...setOf(before), ...setOf(items)]));
          // Nothing added twice, nothing added that was there already.
          expect(setOf(added).size).toBe(added.length);
          for (const x of added) expect(setOf(before).has(canon(x))).toBe(false);
        }
      }),
    );
  });

  it('$union: the resulting set does not depend on the order of the updates', () => {
    fc.assert(
      fc.property(mixedProfile, dict(list, 1), dict(list, 1), (current, a, b) => {
        const ab = apply(apply(current, { $union: a }), { $union: b })!;
        const ba = apply(apply(current, { $union: b }), { $union: a })!;
        expect(Object.keys(ab).sort()).toEqual(Object.keys(ba).sort());
        for (const k of Object.keys(ab)) {
          if (Array.isArray(ab[k]) && (k in a || k in b)) expect(setOf(ab[k] as unknown[])).toEqual(setOf(ba[k] as unknown[]));
          else expect(ab[k]).toEqual(ba[k]);
        }
      }),
    );
  });

  it('$add sums into numbers, starts missing keys at 0 and leaves non-numbers alone', () => {
    fc.assert(
      fc.property(mixedProfile, dict(fc.integer({ min: -1e6, max: 1e6 }), 1), (current, add) => {
        const result = apply(current, { $add: add })!;
        for (const k of new Set([...Object.keys(current), ...Object.keys(add)])) {
          const before = current[k];
          if (!(k in add)) expect(result[k]).toEqual(before);
          else if (before === undefined) expect(result[k]).toBe(add[k]);
          else if (typeof before === 'number') expect(result[k]).toBe(before + add[k]!);
          else expect(result[k]).toEqual(before);
        }
      }),
    );
  });

  it('$add over many updates equals the sum of the increments', () => {
    fc.assert(
      fc.property(fc.array(dict(fc.integer({ min: -1e6, max: 1e6 }), 1), { minLength: 1, maxLength: 8 }), (adds) => {
        let state: Props | null = null;
        for (const add of adds) state = apply(state, { $add: add });
        const sums: Props = {};
        for (const add of adds) for (const [k, n] of Object.entries(add)) sums[k] = ((sums[k] as number | undefined) ?? 0) + n;
        expect(state).toEqual(sums);
      }),
    );
  });

  it('$unset removes exactly the keys named', () => {
    const scenario = profile.chain((current) =>
      fc.tuple(fc.constant(current), fc.subarray(Object.keys(current)), fc.array(key, { maxLength: 3 })),
    );
    fc.assert(
      fc.property(scenario, ([current, present, other]) => {
        const names = [...present, ...other];
        const result = apply(current, { $unset: names })!;
        const expected = Object.fromEntries(Object.entries(current).filter(([k]) => !names.includes(k)));
        expect(result).toEqual(expected);
        expect(Object.keys(result).sort()).toEqual(Object.keys(expected).sort());
      }),
    );
  });

  it('$delete yields null, whatever the profile and whatever else the update holds', () => {
    fc.assert(
      fc.property(fc.option(profile, { nil: null }), fc.option(dict(value, 1), { nil: undefined }), fc.boolean(), (current, set, touch) => {
        const ops: Partial<Record<Operation, unknown>> = { $delete: '' };
        if (set) ops.$set = set;
        expect(apply(current, ops, touch ? {} : { $ignore_time: true })).toBeNull();
      }),
    );
  });

  it('$remove removes every element equal to the value and keeps the rest in order', () => {
    const scenario = mixedProfile.chain((current) => {
      const lists = Object.keys(current).filter((k) => Array.isArray(current[k]));
      const target = lists.length ? fc.oneof(fc.constantFrom(...lists), key) : key;
      return fc.tuple(fc.constant(current), target).chain(([c, k]) => {
        const own = Array.isArray(c[k]) && (c[k] as unknown[]).length ? fc.constantFrom(...(c[k] as unknown[])) : item;
        return fc.tuple(fc.constant(c), fc.constant(k), fc.oneof(own, item));
      });
    });
    fc.assert(
      fc.property(scenario, ([current, k, v]) => {
        const result = apply(current, { $remove: { [k]: v } })!;
        const before = current[k];
        if (Array.isArray(before)) {
          expect(result[k]).toEqual(before.filter((x) => !isDeepStrictEqual(x, v)));
          for (const x of result[k] as unknown[]) expect(isDeepStrictEqual(x, v)).toBe(false);
        } else {
          expect(result[k]).toEqual(before);
          expect(k in result).toBe(k in current);
        }
        for (const other of Object.keys(current)) if (other !== k) expect(result[other]).toEqual(current[other]);
      }),
    );
  });

  it('applied to no profile, an update creates one only with a creating operation and no $delete', () => {
    const creating = ['$set', '$set_once', '$add', '$append', '$union'] as const;
    const opValue: Record<Operation, fc.Arbitrary<unknown>> = {
      $set: dict(value, 1),
      $set_once: dict(value, 1),
      $add: dict(fc.integer({ min: -9, max: 9 }), 1),
      $append: dict(value, 1),
      $union: dict(list, 1),
      $remove: dict(item),
      $unset: fc.array(key, { maxLength: 3 }),
      $delete: fc.constant(''),
    };
    const ops = fc.record(opValue, { requiredKeys: [] }).filter((o) => Object.keys(o).length > 0);
    fc.assert(
      fc.property(ops, fc.boolean(), (chosen, touch) => {
        const result = apply(null, chosen, touch ? {} : { $ignore_time: true });
        const creates = creating.some((op) => op in chosen) && !('$delete' in chosen);
        expect(result !== null).toBe(creates);
        if (result && touch) expect(result.$last_seen).toBe(mixpanelDate(NOW));
        if (result && !touch) expect(result).not.toHaveProperty('$last_seen');
      }),
    );
  });

  it('never mutates the profile it is given', () => {
    fc.assert(
      fc.property(mixedProfile, dict(fc.integer({ min: -9, max: 9 }), 1), dict(list, 1), (current, add, union) => {
        const copy = structuredClone(current);
        apply(current, { $add: add, $union: union, $append: union, $remove: { a: 1 }, $unset: Object.keys(current) });
        expect(current).toEqual(copy);
      }),
    );
  });

  it('keys named like Object.prototype members behave like any other key', () => {
    // A profile is plain JSON: "constructor" or "toString" are ordinary property names.
    const protoKey = fc.constantFrom('constructor', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', '__proto__');
    const op = fc.constantFrom('$set', '$set_once', '$add', '$append', '$union') as fc.Arbitrary<Operation>;
    fc.assert(
      fc.property(protoKey, op, (k, operation) => {
        const v = operation === '$add' ? 5 : operation === '$union' ? ['u'] : 'v';
        // JSON.parse gives an own property even for "__proto__", as a request body would.
        const record = JSON.parse(`{"$distinct_id":"u","$ignore_time":true,"${operation}":{"${k}":${JSON.stringify(v)}}}`) as Props;
        const parsed = parseUserUpdate(record, 0, NOW, L);
        expect(parsed.ok).toBe(true);
        const result = applyUpdate({}, (parsed as { update: UserUpdate }).update, L);
        const stored = JSON.parse(JSON.stringify(result)) as Props;
        const expected = operation === '$append' ? ['v'] : v;
        expect({ [`${operation} ${k}`]: Object.prototype.hasOwnProperty.call(stored, k) ? stored[k] : '(missing)' }).toEqual({
          [`${operation} ${k}`]: expected,
        });
      }),
      { examples: [['constructor', '$set_once']] },
    );
  });
});

describe('parseUserUpdate: properties', () => {
  it('never throws; accepted updates list their operations in the fixed order', () => {
    const record = fc.oneof(
      fc.jsonValue(),
      fc.dictionary(
        fc.oneof(fc.constantFrom(...USER_OPERATIONS, ...MODIFIERS), fc.string({ maxLength: 6 })),
        fc.oneof(fc.jsonValue({ maxDepth: 2 }), dict(value), fc.array(fc.string())),
        { maxKeys: 6 },
      ),
    );
    fc.assert(
      fc.property(record, (r) => {
        const parsed = parseUserUpdate(r, 3, NOW, L);
        if (!parsed.ok) {
          expect(parsed.error.index).toBe(3);
          expect(typeof parsed.error.field).toBe('string');
          expect(parsed.error.message.length).toBeGreaterThan(0);
          return;
        }
        const ops = parsed.update.ops.map((o) => o.op);
        expect(ops.length).toBeGreaterThan(0);
        expect(ops).toEqual(USER_OPERATIONS.filter((op) => op in (r as Props)));
        for (const k of Object.keys(r as Props)) expect([...USER_OPERATIONS, ...MODIFIERS]).toContain(k);
      }),
    );
  });

  it('an unknown operation is refused with an error naming it', () => {
    const unknown = fc
      .string({ minLength: 1, maxLength: 10 })
      .map((s) => `$${s}`)
      .filter((k) => !(USER_OPERATIONS as readonly string[]).includes(k) && !MODIFIERS.includes(k) && k !== '$distinct_id');
    fc.assert(
      fc.property(unknown, dict(value, 1), (op, set) => {
        const parsed = parseUserUpdate({ $distinct_id: 'u', $set: set, [op]: { a: 1 } }, 0, NOW, L);
        expect(parsed.ok).toBe(false);
        if (!parsed.ok) {
          expect(parsed.error.field).toBe(op);
          expect(parsed.error.message).toContain(`"${op}"`);
        }
      }),
    );
  });

  it('any numeric $time either is refused or gives $last_seen in Mixpanel format', () => {
    const time = fc.oneof(
      fc.integer({ min: 0, max: 4_102_444_800 }), // seconds up to 2100
      fc.integer({ min: 100_000_000_000, max: 4_102_444_800_000 }), // milliseconds up to 2100
      fc.double({ min: 0, max: 1e20, noNaN: true }),
      fc.double({ noNaN: true }),
    );
    fc.assert(
      fc.property(time, fc.boolean(), (t, asString) => {
        const parsed = parseUserUpdate({ $distinct_id: 'u', $time: asString ? String(t) : t, $set: { a: 1 } }, 0, NOW, L);
        if (!parsed.ok) {
          expect(parsed.error.field).toBe('$time');
          return;
        }
        let result: Props | null = null;
        expect(() => (result = applyUpdate({}, parsed.update, L) as Props | null)).not.toThrow();
        expect(result!.$last_seen).toMatch(MIXPANEL_DATE);
      }),
      { examples: [[1e16, false], [253_402_300_800_000, false]] },
    );
  });
});

describe('Mixpanel semantics, by example', () => {
  it('$append to a missing key creates a one-element list; to a list it appends; to a scalar it does nothing', () => {
    expect(apply({}, { $append: { pages: 'home' } })).toEqual({ pages: ['home'] });
    expect(apply(null, { $append: { pages: { p: 1 } } })).toEqual({ pages: [{ p: 1 }] });
    expect(apply({ pages: ['home'] }, { $append: { pages: 'home' } })).toEqual({ pages: ['home', 'home'] });
    expect(apply({ pages: 'home' }, { $append: { pages: 'cart' } })).toEqual({ pages: 'home' });
  });

  it('$append of a list appends the list as one element', () => {
    expect(apply({ l: [1] }, { $append: { l: [2, 3] } })).toEqual({ l: [1, [2, 3]] });
  });

  it('$ignore_time leaves $last_seen alone (true or "true")', () => {
    const current = { $last_seen: '2020-01-02T03:04:05', plan: 'free' };
    expect(apply(current, { $set: { plan: 'pro' } }, { $ignore_time: true })).toEqual({ $last_seen: '2020-01-02T03:04:05', plan: 'pro' });
    expect(apply(current, { $set: { plan: 'pro' } }, { $ignore_time: 'true' })).toEqual({ $last_seen: '2020-01-02T03:04:05', plan: 'pro' });
  });

  it('without $time, $last_seen becomes the time the update was received, to the second', () => {
    expect(apply({ $last_seen: '2020-01-02T03:04:05' }, { $set: { a: 1 } }, {})).toEqual({ a: 1, $last_seen: '2024-05-06T07:08:09' });
  });

  it('$time sets $last_seen to that time, as YYYY-MM-DDTHH:MM:SS in UTC', () => {
    for (const $time of [1_700_000_000, 1_700_000_000_123, '1700000000', '2023-11-14T22:13:20Z']) {
      const result = apply({}, { $set: { a: 1 } }, { $time });
      expect(result).toEqual({ a: 1, $last_seen: '2023-11-14T22:13:20' });
      expect(result!.$last_seen).toMatch(MIXPANEL_DATE);
    }
  });

  it('an explicit $set of $last_seen wins over the update time', () => {
    expect(apply({}, { $set: { $last_seen: '2019-01-01T00:00:00' } }, {})).toEqual({ $last_seen: '2019-01-01T00:00:00' });
  });

  it('an unparsable $time is refused, naming $time', () => {
    const parsed = parseUserUpdate({ $distinct_id: 'u', $time: 'yesterday', $set: { a: 1 } }, 2, NOW, L);
    expect(parsed).toMatchObject({ ok: false, error: { index: 2, field: '$time' } });
  });

  it('an unknown operation gives an error naming it', () => {
    const parsed = parseUserUpdate({ $token: 't', $distinct_id: 'u', $increment: { logins: 1 } }, 4, NOW, L);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.error).toMatchObject({ index: 4, field: '$increment' });
      expect(parsed.error.message).toContain('"$increment"');
    }
  });

  it('refuses operations with values of the wrong shape, naming the key', () => {
    const add = parseUserUpdate({ $distinct_id: 'u', $add: { logins: 'one' } }, 0, NOW, L);
    expect(add).toMatchObject({ ok: false, error: { field: '$add' } });
    expect(!add.ok && add.error.message).toContain('"logins"');
    expect(parseUserUpdate({ $distinct_id: 'u', $union: { tags: 'a' } }, 0, NOW, L)).toMatchObject({ ok: false, error: { field: '$union' } });
    expect(parseUserUpdate({ $distinct_id: 'u', $unset: 'a' }, 0, NOW, L)).toMatchObject({ ok: false, error: { field: '$unset' } });
    expect(parseUserUpdate({ $distinct_id: 'u', $set: [1] }, 0, NOW, L)).toMatchObject({ ok: false, error: { field: '$set' } });
  });

  it('needs a distinct id and at least one operation', () => {
    expect(parseUserUpdate({ $set: { a: 1 } }, 0, NOW, L)).toMatchObject({ ok: false, error: { field: '$distinct_id' } });
    expect(parseUserUpdate({ $distinct_id: '', $set: { a: 1 } }, 0, NOW, L)).toMatchObject({ ok: false, error: { field: '$distinct_id' } });
    expect(parseUserUpdate({ $distinct_id: 'u', $token: 't' }, 0, NOW, L)).toMatchObject({ ok: false });
    expect(parseUserUpdate({ $device_id: 'd1', $set: { a: 1 } }, 0, NOW, L)).toMatchObject({ ok: true, update: { distinctId: '$device:d1' } });
  });

  it('several operations in one update apply in the fixed order: $set, $set_once, $add, …, $unset, $delete', () => {
    expect(apply({}, { $unset: ['a'], $set: { a: 1, b: 1 }, $set_once: { a: 2, c: 3 }, $add: { b: 10 } })).toEqual({ b: 11, c: 3 });
  });

  it('$remove and $unset on no profile do not create one', () => {
    expect(apply(null, { $remove: { tags: 'a' } })).toBeNull();
    expect(apply(null, { $unset: ['a'] })).toBeNull();
    expect(apply(null, { $remove: { tags: 'a' } }, {})).toBeNull();
  });

  it('group updates refuse $add and $append, naming the operation', () => {
    const parsed = parseGroupUpdate({ $group_key: 'company', $group_id: 'acme', $add: { seats: 1 } }, 0, NOW, L);
    expect(parsed).toMatchObject({ ok: false, error: { field: '$add' } });
    expect(!parsed.ok && parsed.error.message).toContain('"$add"');
  });
});
