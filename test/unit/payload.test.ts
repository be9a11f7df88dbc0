import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { defaultIngestLimits } from '../../src/config.js';
import { IngestError } from '../../src/ingest/errors.js';
import { normalizeEvent, toMillis } from '../../src/ingest/events.js';
import { asRecords, decodeDataField, decodeRequest, inflate } from '../../src/ingest/payload.js';

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64');
const reasonOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof IngestError) return err.reason;
    throw err;
  }
  return 'no error';
};

describe('decodeDataField', () => {
  it('reads JSON, base64 (both alphabets) and base64 whose + became a space', () => {
    const value = { event: 'é?>>', properties: { a: [1, 2] } };
    expect(decodeDataField(JSON.stringify(value))).toEqual(value);
    expect(decodeDataField(b64(value))).toEqual(value);
    expect(decodeDataField(Buffer.from(JSON.stringify(value)).toString('base64url'))).toEqual(value);
    const withPlus = b64({ event: '>>>?>' });
    expect(withPlus).toContain('+');
    expect(decodeDataField(withPlus.replace(/\+/g, ' '))).toEqual({ event: '>>>?>' });
  });

  it('refuses what is neither', () => {
    expect(reasonOf(() => decodeDataField('%%%'))).toBe('malformed');
    expect(reasonOf(() => decodeDataField(Buffer.from('plain words').toString('base64')))).toBe('malformed');
    expect(reasonOf(() => decodeDataField('{"a":'))).toBe('malformed');
  });
});

describe('decodeRequest', () => {
  const limit = 1024;
  it('overlays form fields on query fields and reads data from either', () => {
    const d = decodeRequest({ query: { verbose: '1', data: b64({ q: 1 }) }, body: Buffer.from(`data=${b64({ b: 1 })}&ip=1`), contentType: undefined, contentEncoding: undefined }, limit);
    expect(d.fields).toMatchObject({ verbose: '1', ip: '1' });
    expect(d.payload).toEqual({ b: 1 });
    const q = decodeRequest({ query: { data: b64({ q: 1 }) }, body: undefined, contentType: undefined, contentEncoding: undefined }, limit);
    expect(q.payload).toEqual({ q: 1 });
  });

  it('reads NDJSON by content type, and by shape when the type is missing', () => {
    const text = '{"a":1}\n\n{"a":2}\n';
    for (const contentType of ['application/x-ndjson', 'text/plain']) {
      expect(decodeRequest({ query: {}, body: Buffer.from(text), contentType, contentEncoding: undefined }, limit).payload).toEqual([{ a: 1 }, { a: 2 }]);
    }
  });

  it('inflates gzip and deflate within the limit, and refuses more', () => {
    expect(inflate(zlib.gzipSync('hello'), 'gzip', limit).toString()).toBe('hello');
    expect(inflate(zlib.deflateSync('hello'), 'deflate', limit).toString()).toBe('hello');
    expect(reasonOf(() => inflate(zlib.gzipSync(Buffer.alloc(limit + 1)), 'gzip', limit))).toBe('too_large');
    expect(reasonOf(() => inflate(Buffer.from('not gzip'), 'gzip', limit))).toBe('malformed');
    expect(reasonOf(() => inflate(Buffer.from('x'), 'br', limit))).toBe('unsupported_encoding');
    expect(reasonOf(() => inflate(Buffer.alloc(limit + 1), undefined, limit))).toBe('too_large');
  });

  it('counts records against the limit', () => {
    expect(asRecords({ a: 1 }, 2)).toEqual([{ a: 1 }]);
    expect(reasonOf(() => asRecords([1, 2, 3], 2))).toBe('too_many_events');
    expect(reasonOf(() => asRecords(undefined, 2))).toBe('malformed');
  });
});

describe('normalizeEvent', () => {
  const now = Date.UTC(2026, 0, 1);
  const ctx = { mode: 'track' as const, now, limits: defaultIngestLimits, requireInsertId: false };

  it('reads seconds, fractional seconds, milliseconds and numeric strings', () => {
    expect(toMillis(1_700_000_000)).toBe(1_700_000_000_000);
    expect(toMillis(1_700_000_000.25)).toBe(1_700_000_000_250);
    expect(toMillis(1_700_000_000_123)).toBe(1_700_000_000_123);
    expect(toMillis('1700000000')).toBe(1_700_000_000_000);
    expect(toMillis('soon')).toBeUndefined();
    expect(toMillis(-5)).toBeUndefined();
  });

  it('derives distinct_id from $user_id or $device_id, as Simplified ID Merge does', () => {
    const ok = (p: Record<string, unknown>) => {
      const r = normalizeEvent({ event: 'E', properties: p }, 0, ctx);
      if (!r.ok) throw new Error(r.error.message);
      return r.event;
    };
    expect(ok({ $user_id: 'u1', $device_id: 'd1' }).distinctId).toBe('u1');
    expect(ok({ $device_id: 'd1' }).distinctId).toBe('$device:d1');
    expect(ok({ distinct_id: 42 }).distinctId).toBe('42');
    expect(ok({ distinct_id: '' }).distinctId).toBe('');
    expect(ok({ distinct_id: 'a' }).time).toBe(now);
  });

  it('stores properties without the columns, and the same dedup key for the same identity', () => {
    const a = normalizeEvent({ event: 'E', properties: { token: 't', distinct_id: 'u', time: 1_700_000_000, $insert_id: 'i-1', x: 1 } }, 0, ctx);
    const b = normalizeEvent({ event: 'E', properties: { token: 't', distinct_id: 'u', time: 1_700_000_000_000, $insert_id: 'i-1', x: 2 } }, 0, ctx);
    const c = normalizeEvent({ event: 'E', properties: { distinct_id: 'u', time: 1_700_000_000, $insert_id: 'i-2' } }, 0, ctx);
    if (!a.ok || !b.ok || !c.ok) throw new Error('expected valid events');
    expect(JSON.parse(a.event.properties)).toEqual({ x: 1 });
    expect(a.event.token).toBe('t');
    expect(a.event.dedupKey).toBe(b.event.dedupKey);
    expect(a.event.dedupKey).not.toBe(c.event.dedupKey);
  });

  it('names the field at fault, with the $insert_id when there is one', () => {
    const fail = (record: unknown, c: Parameters<typeof normalizeEvent>[2] = ctx) => {
      const r = normalizeEvent(record, 7, c);
      if (r.ok) throw new Error('expected a failure');
      return r.error;
    };
    expect(fail('nope')).toMatchObject({ index: 7, field: 'event' });
    expect(fail({ event: 'E', properties: [] })).toMatchObject({ field: 'properties' });
    expect(fail({ event: 'E', properties: { distinct_id: 'u', $insert_id: 'has space' } })).toMatchObject({ field: 'properties.$insert_id' });
    expect(fail({ event: 'E', properties: { distinct_id: 'null', $insert_id: 'ok-1' } })).toEqual({
      index: 7,
      insert_id: 'ok-1',
      field: 'properties.distinct_id',
      message: expect.stringMatching(/placeholder/),
    });
    const imp = { ...ctx, mode: 'import' as const, requireInsertId: true };
    expect(fail({ event: 'E', properties: { distinct_id: 'u', $insert_id: 'a' } }, imp)).toMatchObject({ field: 'properties.time' });
    expect(fail({ event: 'E', properties: { distinct_id: 'u', time: 10 } }, imp)).toMatchObject({ field: 'properties.$insert_id' });
    expect(fail({ event: 'E', properties: { distinct_id: 'u', $insert_id: 'a', time: 1_000 } }, imp).message).toMatch(/1971/);
    const props = Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`p${i}`, i]));
    expect(fail({ event: 'E', properties: { distinct_id: 'u', ...props } })).toMatchObject({ field: 'properties' });
  });

  it('turns $create_alias, $identify and $merge into aliases', () => {
    const alias = (event: string, p: Record<string, unknown>) => {
      const r = normalizeEvent({ event, properties: { distinct_id: 'canon', ...p } }, 0, ctx);
      return r.ok ? r.event.alias : 'invalid';
    };
    expect(alias('$create_alias', { alias: 'other' })).toEqual({ alias: 'other', distinctId: 'canon' });
    expect(alias('$identify', { $anon_distinct_id: 'anon-1' })).toEqual({ alias: 'anon-1', distinctId: 'canon' });
    expect(alias('$merge', { $distinct_ids: ['a', 'b'] })).toEqual({ alias: 'b', distinctId: 'a' });
    expect(alias('Purchase', { alias: 'x' })).toBeUndefined();
  });
});

describe('values JSON.parse accepts but JSON.stringify cannot', () => {
  it('refuses properties nested too deeply as a record error, not a crash', () => {
    const deep = JSON.parse('['.repeat(200_000) + ']'.repeat(200_000)) as unknown;
    const r = normalizeEvent({ event: 'E', properties: { distinct_id: 'u', deep } }, 0, {
      mode: 'track',
      now: Date.now(),
      limits: defaultIngestLimits,
      requireInsertId: false,
    });
    const field = `properties.deep${'[0]'.repeat(32)}`;
    expect(r).toEqual({ ok: false, error: { index: 0, field, message: `${field}: nested more than 32 levels deep` } });
  });
});
