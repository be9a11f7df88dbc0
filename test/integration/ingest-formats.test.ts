import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/service.js';

let svc: TestService;
let token: string;
let basic: string;
beforeAll(async () => {
  svc = await startTestService();
  token = svc.project.token;
  basic = `Basic ${Buffer.from(`${svc.project.secret}:`).toString('base64')}`;
});
afterAll(() => svc?.close());

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64');
let seq = 0;
/** A unique distinct_id per test, so tests do not see each other's events. */
const uid = (name: string) => `${name}-${++seq}`;

async function eventsOf(distinctId: string) {
  const res = await svc.api(`/api/v1/events?distinct_id=${encodeURIComponent(distinctId)}&limit=1000`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { results: { event: string; time_ms: number; insert_id: string | null; properties: Record<string, unknown> }[] }).results;
}

const post = (path: string, body: string | Buffer, headers: Record<string, string> = {}) =>
  fetch(svc.url + path, { method: 'POST', body: typeof body === 'string' ? body : new Uint8Array(body), headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers } });

describe('/track formats', () => {
  it('takes GET ?data=base64, with a + turned into a space by a careless encoder', async () => {
    const id = uid('get');
    // Find a payload whose base64 holds a '+', then send it unescaped: it arrives as a space.
    let payload = '';
    for (let i = 0; !payload.includes('+'); i++) payload = b64({ event: `E${'>'.repeat(i)}?`, properties: { token, distinct_id: id } });
    const res = await fetch(`${svc.url}/track?data=${payload}`);
    expect(await res.text()).toBe('1');
    expect(await eventsOf(id)).toHaveLength(1);
  });

  it('takes POST form data= as base64, URL-encoded base64 and raw JSON', async () => {
    const id = uid('form');
    const ev = (n: number) => ({ event: 'Form', properties: { token, distinct_id: id, n } });
    expect(await (await post('/track', `data=${b64(ev(1))}`)).text()).toBe('1');
    expect(await (await post('/track', `data=${encodeURIComponent(b64(ev(2)))}`)).text()).toBe('1');
    expect(await (await post('/track', `data=${encodeURIComponent(JSON.stringify([ev(3), ev(4)]))}`)).text()).toBe('1');
    const stored = await eventsOf(id);
    expect(stored.map((e) => e.properties.n).sort()).toEqual([1, 2, 3, 4]);
  });

  it('takes a bare JSON array body, and gzip', async () => {
    const id = uid('json');
    const batch = [1, 2, 3].map((n) => ({ event: 'Json', properties: { token, distinct_id: id, n } }));
    expect(await (await post('/track', JSON.stringify(batch), { 'content-type': 'application/json' })).text()).toBe('1');
    const gz = zlib.gzipSync(`data=${encodeURIComponent(b64({ event: 'Gz', properties: { token, distinct_id: id } }))}`);
    expect(await (await post('/track', gz, { 'content-encoding': 'gzip' })).text()).toBe('1');
    expect(await eventsOf(id)).toHaveLength(4);
  });

  it('reads time in seconds and in milliseconds', async () => {
    const id = uid('time');
    const sec = 1_700_000_000;
    await post('/track', `data=${b64([
      { event: 'S', properties: { token, distinct_id: id, time: sec } },
      { event: 'Ms', properties: { token, distinct_id: id, time: sec * 1000 + 123 } },
      { event: 'Frac', properties: { token, distinct_id: id, time: sec + 0.5 } },
    ])}`);
    const byName = Object.fromEntries((await eventsOf(id)).map((e) => [e.event, e.time_ms]));
    expect(byName).toEqual({ S: sec * 1000, Ms: sec * 1000 + 123, Frac: sec * 1000 + 500 });
  });

  it('de-duplicates on (event, time, distinct_id, $insert_id) and nothing else', async () => {
    const id = uid('dedup');
    const e = (event: string, insert: string, time = 1_700_000_000) => ({ event, properties: { token, distinct_id: id, time, $insert_id: insert } });
    const batch = [e('A', 'x1'), e('A', 'x1'), e('A', 'x2'), e('B', 'x1'), e('A', 'x1', 1_700_000_001)];
    expect(await (await post('/track', `data=${b64(batch)}`)).text()).toBe('1');
    expect(await (await post('/track', `data=${b64(batch)}`)).text()).toBe('1');
    expect(await eventsOf(id)).toHaveLength(4);
  });

  it('answers verbose JSON, a GIF for img=1, and JSONP for callback=', async () => {
    const id = uid('modes');
    const data = encodeURIComponent(b64({ event: 'M', properties: { token, distinct_id: id } }));
    const verbose = await fetch(`${svc.url}/track?verbose=1&data=${data}`);
    expect(verbose.headers.get('content-type')).toMatch(/application\/json/);
    expect(await verbose.json()).toEqual({ status: 1, error: null });
    const img = await fetch(`${svc.url}/track?img=1&data=${data}`);
    expect(img.headers.get('content-type')).toBe('image/gif');
    expect(Buffer.from(await img.arrayBuffer()).subarray(0, 6).toString()).toBe('GIF89a');
    const jsonp = await fetch(`${svc.url}/track?callback=mp.cb_1&verbose=1&data=${data}`);
    expect(await jsonp.text()).toBe('mp.cb_1({"status":1,"error":null});');
    // A bad callback is refused before anything is stored, so a client's retry cannot double it.
    const badCallback = await fetch(`${svc.url}/track?callback=alert(1)&data=${data}`);
    expect(badCallback.status).toBe(400);
    expect(await eventsOf(id)).toHaveLength(3);
  });

  it('records the client address with ip=1 only', async () => {
    const id = uid('ip');
    await post('/track?ip=1', `data=${b64({ event: 'WithIp', properties: { token, distinct_id: id } })}`);
    await post('/track?ip=0', `data=${b64({ event: 'NoIp', properties: { token, distinct_id: id } })}`);
    const byName = Object.fromEntries((await eventsOf(id)).map((e) => [e.event, e.properties]));
    expect(byName.WithIp!.ip).toBe('127.0.0.1');
    expect(byName.NoIp).not.toHaveProperty('ip');
  });

  it('answers with a trailing slash and CORS headers that echo the Origin', async () => {
    const res = await fetch(`${svc.url}/track/?verbose=1`, {
      method: 'POST',
      headers: { origin: 'https://shop.example', 'content-type': 'application/x-www-form-urlencoded' },
      body: `data=${b64({ event: 'Cors', properties: { token, distinct_id: uid('cors') } })}`,
    });
    expect(await res.json()).toEqual({ status: 1, error: null });
    expect(res.headers.get('access-control-allow-origin')).toBe('https://shop.example');
    expect(res.headers.get('access-control-allow-credentials')).toBe('true');
  });
});

describe('/track bad input', () => {
  it('refuses malformed base64 and JSON with a message the client shows', async () => {
    const bad = await fetch(`${svc.url}/track?verbose=1&data=%%%not-base64`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/neither JSON nor base64/);
    const badJson = await post('/track?verbose=1', 'data=' + encodeURIComponent('{"event": "x", '));
    expect(badJson.status).toBe(400);
    expect(((await badJson.json()) as { error: string }).error).toMatch(/not valid JSON/);
    const plain = await fetch(`${svc.url}/track?data=bm90IGpzb24`);
    expect(await plain.text()).toBe('0');
    const empty = await fetch(`${svc.url}/track?verbose=1`);
    expect(((await empty.json()) as { error: string }).error).toMatch(/no data/);
  });

  it('refuses an unknown token with 401', async () => {
    const res = await post('/track?verbose=1', `data=${b64({ event: 'X', properties: { token: 'nope', distinct_id: 'a' } })}`);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toMatch(/"nope" is not the token of any project/);
  });

  it('keeps the valid part of a batch and names the refused records', async () => {
    const id = uid('partial');
    const batch = [
      { event: 'Ok', properties: { token, distinct_id: id } },
      { event: 'NoUser', properties: { token } },
      { event: '', properties: { token, distinct_id: id } },
      { event: 'Placeholder', properties: { token, distinct_id: 'undefined' } },
      { event: 'Ok2', properties: { token, distinct_id: id } },
    ];
    const res = await post('/track?verbose=1', `data=${b64(batch)}`);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { status: number; error: string; failed_records: { index: number; field: string }[] };
    expect(body.status).toBe(0);
    expect(body.error).toMatch(/3 record\(s\) refused, 2 accepted/);
    expect(body.failed_records.map((r) => [r.index, r.field])).toEqual([
      [1, 'properties.distinct_id'],
      [2, 'event'],
      [3, 'properties.distinct_id'],
    ]);
    expect((await eventsOf(id)).map((e) => e.event).sort()).toEqual(['Ok', 'Ok2']);
  });

  it('refuses more than 2000 events, and events over 1 MB', async () => {
    const many = Array.from({ length: 2001 }, () => ({ event: 'X', properties: { token, distinct_id: 'many' } }));
    const res = await post('/track?verbose=1', JSON.stringify(many), { 'content-type': 'application/json' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/at most 2000 records/);
    const id = uid('huge');
    const huge = [
      { event: 'Huge', properties: { token, distinct_id: id, blob: 'x'.repeat(1024 * 1024) } },
      { event: 'Small', properties: { token, distinct_id: id } },
    ];
    const hugeRes = await post('/track?verbose=1', JSON.stringify(huge), { 'content-type': 'application/json' });
    expect(hugeRes.status).toBe(400);
    expect((await eventsOf(id)).map((e) => e.event)).toEqual(['Small']);
  });

  it('refuses a body over 10 MB with 413, in the shape of the endpoint', async () => {
    const big = 'data=' + 'A'.repeat(10 * 1024 * 1024 + 10);
    const res = await post('/track?verbose=1', big);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { status: number }).status).toBe(0);
    const bomb = zlib.gzipSync(Buffer.alloc(11 * 1024 * 1024, 0x20));
    const resBomb = await post('/import', bomb, { 'content-type': 'application/json', 'content-encoding': 'gzip', authorization: basic });
    expect(resBomb.status).toBe(413);
    expect(((await resBomb.json()) as { code: number }).code).toBe(413);
  });
});

describe('/import', () => {
  const ev = (id: string, i: number, extra: Record<string, unknown> = {}) => ({
    event: 'Imported',
    properties: { time: 1_600_000_000 + i, distinct_id: id, $insert_id: `imp-${id}-${i}`, ...extra },
  });

  it('takes JSON and NDJSON, gzip, and answers with num_records_imported', async () => {
    const id = uid('imp');
    const json = await post('/import?strict=1', JSON.stringify([ev(id, 1), ev(id, 2)]), { 'content-type': 'application/json', authorization: basic });
    expect(json.status).toBe(200);
    expect(await json.json()).toEqual({ code: 200, status: 'OK', num_records_imported: 2 });
    const ndjson = [ev(id, 3), ev(id, 4), ev(id, 5)].map((e) => JSON.stringify(e)).join('\n') + '\n';
    const nd = await post('/import', zlib.gzipSync(ndjson), { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip', authorization: basic });
    expect(await nd.json()).toMatchObject({ code: 200, num_records_imported: 3 });
    expect(await eventsOf(id)).toHaveLength(5);
  });

  it('with strict=1 imports the valid records and lists the failed ones as Mixpanel does', async () => {
    const id = uid('strict');
    const batch = [ev(id, 1), { event: 'NoInsert', properties: { time: 1_600_000_000, distinct_id: id } }, ev(id, 3, { time: 'yesterday' }), ev(id, 4, { time: Date.now() / 1000 + 7200 })];
    const res = await post('/import?strict=1', JSON.stringify(batch), { 'content-type': 'application/json', authorization: basic });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: number; num_records_imported: number; failed_records: { index: number; insert_id?: string; field: string; message: string }[] };
    expect(body.code).toBe(400);
    expect(body.num_records_imported).toBe(1);
    expect(body.failed_records).toEqual([
      expect.objectContaining({ index: 1, field: 'properties.$insert_id' }),
      expect.objectContaining({ index: 2, insert_id: `imp-${id}-3`, field: 'properties.time' }),
      expect.objectContaining({ index: 3, insert_id: `imp-${id}-4`, field: 'properties.time', message: expect.stringMatching(/future/) }),
    ]);
    const lax = await post('/import?strict=0', JSON.stringify(batch), { 'content-type': 'application/json', authorization: basic });
    expect(await lax.json()).toMatchObject({ code: 200 });
    // strict=0 also takes the event without $insert_id; the duplicate of record 0 is not stored twice.
    expect((await eventsOf(id)).map((e) => e.event).sort()).toEqual(['Imported', 'NoInsert']);
  });

  it('accepts Basic auth with the secret or the token, and api_key=', async () => {
    const id = uid('auth');
    const body = (i: number) => JSON.stringify([ev(id, i)]);
    const tokenAuth = `Basic ${Buffer.from(`${token}:`).toString('base64')}`;
    expect((await post('/import', body(1), { 'content-type': 'application/json', authorization: tokenAuth })).status).toBe(200);
    expect((await post(`/import?api_key=${svc.project.secret}`, body(2), { 'content-type': 'application/json' })).status).toBe(200);
    const none = await post('/import', body(3), { 'content-type': 'application/json' });
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ code: 401, status: 'Unauthorized', error: expect.stringMatching(/Basic auth/) });
    const wrong = await post('/import', body(4), { 'content-type': 'application/json', authorization: `Basic ${Buffer.from('wrong:').toString('base64')}` });
    expect(wrong.status).toBe(401);
    expect(await eventsOf(id)).toHaveLength(2);
  });

  it('refuses malformed JSON and NDJSON, naming the line', async () => {
    const bad = await post('/import', '[{"event":', { 'content-type': 'application/json', authorization: basic });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 400, error: expect.stringMatching(/not valid JSON/) });
    const nd = await post('/import', '{"event":"a","properties":{}}\n{oops}\n', { 'content-type': 'application/x-ndjson', authorization: basic });
    expect(await nd.json()).toMatchObject({ code: 400, error: expect.stringMatching(/line 2/) });
    const enc = await post('/import', 'x', { 'content-type': 'application/json', 'content-encoding': 'br', authorization: basic });
    expect(enc.status).toBe(415);
  });
});

describe('/engage and /groups', () => {
  it('applies $set_once only to missing keys and honours $time and $ignore_time', async () => {
    const id = uid('engage');
    const send = (u: Record<string, unknown>) => post('/engage?verbose=1', `data=${b64({ $token: token, $distinct_id: id, ...u })}`).then((r) => r.json());
    expect(await send({ $set: { plan: 'pro' }, $time: 1_600_000_000_000 })).toEqual({ status: 1, error: null });
    await send({ $set_once: { plan: 'free', source: 'ad' }, $ignore_time: true });
    const res = await svc.api(`/api/v1/profiles/${id}`);
    expect(await res.json()).toEqual({ $distinct_id: id, $properties: { plan: 'pro', source: 'ad', $last_seen: '2020-09-13T12:26:40' } });
  });

  it('refuses unknown operations and missing ids, keeping the valid updates', async () => {
    const id = uid('engage-bad');
    const batch = [
      { $token: token, $distinct_id: id, $set: { a: 1 } },
      { $token: token, $distinct_id: id, $explode: { a: 1 } },
      { $token: token, $set: { a: 2 } },
      { $token: token, $distinct_id: id, $add: { a: 'two' } },
    ];
    const res = await post('/engage?verbose=1', `data=${b64(batch)}`);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; failed_records: { index: number; message: string }[] };
    expect(body.failed_records.map((r) => r.index)).toEqual([1, 2, 3]);
    expect(body.failed_records[0]!.message).toMatch(/unknown operation "\$explode"/);
    const profile = (await (await svc.api(`/api/v1/profiles/${id}`)).json()) as { $properties: Record<string, unknown> };
    expect(profile.$properties.a).toBe(1);
  });

  it('refuses /groups updates without a group key', async () => {
    const res = await post('/groups?verbose=1', `data=${b64({ $token: token, $group_id: 'x', $set: { a: 1 } })}`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/\$group_key/);
  });
});
