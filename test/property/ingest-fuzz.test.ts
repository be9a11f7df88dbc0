import crypto from 'node:crypto';
import net from 'node:net';
import zlib from 'node:zlib';
import '../helpers/fast-check-seed.js';
import fc from 'fast-check';
import { sql } from 'kysely';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProject, type CreatedProject } from '../../src/projects/projects.js';
import { startTestService, type TestService } from '../helpers/service.js';

/**
 * Whatever arrives over HTTP, the ingestion API answers, in the shape its mode calls for,
 * with one of Mixpanel's statuses, and never a 500; and what it stores follows a model.
 * Limits are shrunk so random requests also reach the 413 and too-many-records paths.
 */

const MAX_BODY = 64 * 1024;
const MAX_EVENTS = 50;
const REQUEST_TIMEOUT_MS = 10_000;
const ALLOWED_STATUSES = [200, 400, 401, 413, 415];
const STATUS_TEXT: Record<number, string> = { 200: 'OK', 400: 'Bad Request', 401: 'Unauthorized', 413: 'Request Entity Too Large', 415: 'Unsupported Media Type' };
/** JSONP callbacks the service must honour: dotted JavaScript identifiers, at most 128 characters. */
const JS_CALLBACK = /^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/;
const PATHS = ['/track', '/track/', '/engage', '/groups', '/import'] as const;

let svc: TestService;
let project: CreatedProject;

beforeAll(async () => {
  svc = await startTestService((config) => {
    config.ingest.maxBodyBytes = MAX_BODY;
    config.ingest.maxEventsPerRequest = MAX_EVENTS;
  });
  project = svc.project;
});
afterAll(() => svc?.close());

// ---------------------------------------------------------------------------------------------
// Requests

interface Req {
  method: 'GET' | 'POST';
  path: (typeof PATHS)[number];
  query: [string, string][];
  /** Appended verbatim after the encoded query: malformed escapes and the like. */
  rawQuery: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
}

interface Reply {
  status: number;
  contentType: string;
  body: Buffer;
}

const urlOf = (req: Pick<Req, 'path' | 'query' | 'rawQuery'>) => {
  const qs = new URLSearchParams(req.query).toString() + req.rawQuery;
  return `${svc.url}${req.path}${qs ? `?${qs}` : ''}`;
};

async function send(req: Req): Promise<Reply> {
  const res = await request(urlOf(req), {
    method: req.method,
    headers: req.headers,
    body: req.body,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  const ct = res.headers['content-type'];
  return { status: res.statusCode, contentType: (Array.isArray(ct) ? ct[0] : ct) ?? '', body };
}

// ---------------------------------------------------------------------------------------------
// What a well-formed reply looks like

const flag = (v: string | undefined) => v === '1' || v === 'true';

/** The query as the service reads it: the first value of each name. */
function queryFields(req: Req): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(new URLSearchParams(req.query).toString() + req.rawQuery)) if (!(k in fields)) fields[k] = v;
  return fields;
}

/** Form fields of the body, when it is a form (after gzip/deflate, as the service would read it). */
function bodyFormFields(req: Req): Record<string, string> {
  if (!req.body?.length) return {};
  let raw = req.body;
  const enc = (req.headers['content-encoding'] ?? '').trim().toLowerCase();
  try {
    if (enc === 'gzip' || enc === 'x-gzip') raw = zlib.gunzipSync(raw);
    else if (enc === 'deflate') raw = zlib.inflateSync(raw);
    else if (enc !== '' && enc !== 'identity') return {};
  } catch {
    return {};
  }
  const text = raw.toString('utf8').trim();
  if (text.startsWith('{') || text.startsWith('[')) return {};
  return Object.fromEntries(new URLSearchParams(text));
}

function checkLegacyBody(text: string, verbose: boolean, status: number | undefined) {
  if (verbose) {
    const json = JSON.parse(text) as { status: unknown; error: unknown; failed_records?: unknown };
    expect([0, 1]).toContain(json.status);
    if (json.status === 1) expect(json.error).toBeNull();
    else expect(typeof json.error === 'string' && json.error.length > 0).toBe(true);
    if (json.failed_records !== undefined) checkFailedRecords(json.failed_records);
    if (status !== undefined) expect(json.status === 1).toBe(status === 200);
  } else {
    expect(['1', '0']).toContain(text);
    if (status !== undefined) expect(text === '1').toBe(status === 200);
  }
}

function checkFailedRecords(list: unknown) {
  expect(Array.isArray(list)).toBe(true);
  for (const r of list as Record<string, unknown>[]) {
    expect(Number.isInteger(r.index)).toBe(true);
    expect(typeof r.field).toBe('string');
    expect(typeof r.message).toBe('string');
  }
}

/** "1"/"0", verbose JSON, a 1x1 GIF or JSONP, chosen by the query's img, callback and verbose. */
function checkLegacy(fields: Record<string, string>, reply: Reply): string {
  const text = reply.body.toString('utf8');
  if (flag(fields.img)) {
    expect(reply.status).toBe(200);
    expect(reply.contentType).toMatch(/^image\/gif/);
    expect(reply.body.subarray(0, 6).toString('latin1')).toMatch(/^GIF8[79]a$/);
    expect([reply.body.readUInt16LE(6), reply.body.readUInt16LE(8)]).toEqual([1, 1]);
    return 'gif';
  }
  const verbose = flag(fields.verbose);
  const callback = fields.callback;
  if (callback !== undefined && callback !== '') {
    if (!JS_CALLBACK.test(callback) || callback.length > 128) {
      expect(reply.status).toBe(400);
      expect(reply.contentType).toMatch(/^text\/plain/);
      expect(text).toMatch(/callback/);
      return 'bad callback';
    }
    expect(reply.status).toBe(200);
    expect(reply.contentType).toMatch(/^text\/javascript/);
    expect(text.startsWith(`${callback}(`) && text.endsWith(');')).toBe(true);
    checkLegacyBody(text.slice(callback.length + 1, -2), verbose, undefined);
    return 'jsonp';
  }
  expect(reply.contentType).toMatch(verbose ? /^application\/json/ : /^text\/plain/);
  checkLegacyBody(text, verbose, reply.status);
  return verbose ? 'verbose' : 'plain';
}

/** /import's own JSON: {code, status, num_records_imported?, error?, failed_records?}. */
function checkImportJson(reply: Reply) {
  expect(reply.contentType).toMatch(/^application\/json/);
  const json = JSON.parse(reply.body.toString('utf8')) as Record<string, unknown>;
  expect(json.code).toBe(reply.status);
  expect(json.status).toBe(STATUS_TEXT[reply.status]);
  if (reply.status === 200) {
    expect(Number.isInteger(json.num_records_imported) && (json.num_records_imported as number) >= 0).toBe(true);
    expect(json.error).toBeUndefined();
  } else {
    expect(typeof json.error).toBe('string');
  }
  if (reply.status === 401) expect(json.num_records_imported).toBeUndefined();
  if (json.failed_records !== undefined) checkFailedRecords(json.failed_records);
}

function parseOrNull(body: Buffer): object | null {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    return typeof value === 'object' ? value : null;
  } catch {
    return null;
  }
}

/** Checks a reply against the request; returns the reply's mode. */
function checkReply(req: Req, reply: Reply): string {
  expect(ALLOWED_STATUSES).toContain(reply.status);
  const fields = queryFields(req);
  if (req.path !== '/import') return checkLegacy(fields, reply);
  // /import answers in its JSON unless the request is in the legacy form shape (data=).
  const isImportJson = reply.contentType.startsWith('application/json') && Object.hasOwn(parseOrNull(reply.body) ?? {}, 'code');
  if (isImportJson) {
    checkImportJson(reply);
    return 'import';
  }
  const legacy =
    fields.data !== undefined || bodyFormFields(req).data !== undefined || (req.headers['content-type'] ?? '').includes('x-www-form-urlencoded');
  expect(legacy).toBe(true);
  return `import ${checkLegacy(fields, reply)}`;
}

/** What the random requests reached, so a generator that stopped reaching a path fails the test. */
const seen = { statuses: new Set<number>(), modes: new Set<string>() };

async function sendAndCheck(req: Req) {
  let reply: Reply;
  try {
    reply = await send(req);
  } catch (err) {
    throw new Error(`no reply to ${req.method} ${urlOf(req)}: ${(err as Error).message}`);
  }
  try {
    seen.modes.add(checkReply(req, reply));
    seen.statuses.add(reply.status);
  } catch (err) {
    (err as Error).message += `\nreply: ${reply.status} ${reply.contentType} ${JSON.stringify(reply.body.toString('utf8').slice(0, 300))}`;
    throw err;
  }
  return reply;
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

const rare = <T>(arb: fc.Arbitrary<T>, weight = 1) =>
  fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight, arbitrary: arb });
const str = fc.string({ maxLength: 12 });
const json = fc.jsonValue({ maxDepth: 2 });
const nowS = Math.floor(Date.now() / 1000);

/** Plausible and implausible times, but within what a 64-bit millisecond count holds. */
const time = fc.oneof(
  fc.integer({ min: nowS - 3 * 365 * 86400, max: nowS }),
  fc.integer({ min: (nowS - 3 * 365 * 86400) * 1000, max: nowS * 1000 }),
  fc.constantFrom(0, -1, 10, 1e11, 1.5e9 + 0.5, '1700000000', '', 'soon', null, true, nowS + 86400, [1]),
);

/** Mostly `good`, sometimes `bad`: random records stay close enough to valid to reach the store. */
const often = <T, U>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<U>) =>
  fc.oneof({ weight: 6, arbitrary: good as fc.Arbitrary<T | U> }, { weight: 1, arbitrary: bad as fc.Arbitrary<T | U> });
/** A JSON value, or the key left out (JSON.stringify drops undefined). */
const junk = fc.oneof(json, fc.constant(undefined));
const name = fc.oneof(fc.constantFrom('Signup', 'Page View', 'plan', '$email', 'n'), fc.string({ minLength: 1, maxLength: 10 }));
const plainId = fc.oneof(fc.constantFrom('alice', 'bob', 'carol'), fc.string({ minLength: 1, maxLength: 10 }));
const dict = <T>(v: fc.Arbitrary<T>) => fc.dictionary(name, v, { minKeys: 1, maxKeys: 3 });

function records(p: CreatedProject) {
  const token = often(fc.constant(p.token), fc.oneof(str, fc.integer(), junk));
  const props = fc
    .tuple(
      fc.record({
        token,
        distinct_id: often(plainId, fc.oneof(fc.integer(), fc.constantFrom('undefined', 'null', '0', '', '-1'), junk)),
        time: often(time, junk),
        $insert_id: often(fc.oneof(fc.uuid(), fc.constant(undefined)), fc.oneof(str, fc.integer(), fc.string({ minLength: 37, maxLength: 40 }))),
      }),
      rare(
        fc.record(
          { $user_id: str, $device_id: str, alias: str, $anon_distinct_id: str, $distinct_ids: fc.array(str, { maxLength: 3 }) },
          { requiredKeys: [] },
        ),
      ),
      fc.dictionary(str, json, { maxKeys: 4 }),
    )
    .map(([known, ids, extra]) => ({ ...extra, ...ids, ...known }));
  const event = fc.record({
    event: often(name, fc.oneof(fc.constantFrom('$create_alias', '$identify', '$merge', ''), json, fc.string({ minLength: 256, maxLength: 260 }))),
    properties: often(props, junk),
  });
  const opValues = {
    $set: often(dict(json), json),
    $set_once: often(dict(json), json),
    $add: often(dict(fc.oneof(fc.integer(), fc.double({ noNaN: true, min: -1e9, max: 1e9 }))), dict(json)),
    $append: often(dict(json), json),
    $union: often(dict(fc.array(json, { maxLength: 3 })), json),
    $remove: often(dict(json), json),
    $unset: often(fc.array(name, { maxLength: 3 }), json),
    $delete: json,
  };
  type Op = keyof typeof opValues;
  // Up to three operations; $delete seldom, so profiles live long enough to be updated.
  const ops = (allowed: Op[]) =>
    fc
      .tuple(fc.subarray(allowed, { minLength: 0, maxLength: 3 }), fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constant('$delete' as const) }))
      .chain(([chosen, del]) => fc.tuple(...[...chosen, ...(del ? [del] : [])].map((op) => opValues[op].map((v) => [op, v] as const))))
      .map((pairs) => Object.fromEntries(pairs));
  const modifiers = rare(
    fc.record(
      {
        $time: fc.oneof(fc.integer({ min: 0, max: nowS }), fc.constantFrom('2024-01-02T03:04:05Z', 'yesterday', -5, '', null)),
        $ignore_time: fc.oneof(fc.boolean(), str),
        $ignore_alias: fc.boolean(), // not a /groups modifier: refused there
        $ip: str,
      },
      { requiredKeys: [] },
    ),
  ).map((m) => m ?? {});
  const unknownOp = rare(fc.tuple(fc.string({ maxLength: 8 }).map((k) => `$${k}`), json));
  const withUnknown = ([r, unknown]: [Record<string, unknown>, [string, unknown] | undefined]) => (unknown ? { ...r, [unknown[0]]: unknown[1] } : r);
  const userOps: Op[] = ['$set', '$set_once', '$add', '$append', '$union', '$remove', '$unset'];
  const engage = fc
    .tuple(
      fc.tuple(fc.record({ $token: token, $distinct_id: often(plainId, fc.oneof(fc.integer(), junk)) }), modifiers, ops(userOps)),
      unknownOp,
    )
    .map(([[ids, mods, o], unknown]) => withUnknown([{ ...mods, ...o, ...ids }, unknown]));
  const groups = fc
    .tuple(
      fc.tuple(
        fc.record({ $token: token, $group_key: often(name, junk), $group_id: often(fc.oneof(plainId, fc.integer()), junk) }),
        modifiers,
        // Sometimes $add or $append, which /groups must refuse.
        fc.oneof({ weight: 4, arbitrary: ops(['$set', '$set_once', '$union', '$remove', '$unset']) }, { weight: 1, arbitrary: ops(userOps) }),
      ),
      unknownOp,
    )
    .map(([[ids, mods, o], unknown]) => withUnknown([{ ...mods, ...o, ...ids }, unknown]));
  return { event, engage, groups };
}

type Records = { record: fc.Arbitrary<unknown>; batch: fc.Arbitrary<unknown> };

/** Records for an endpoint: mostly of its own kind, some of the others' kinds and some plain JSON. */
function recordsFor(p: CreatedProject, path: Req['path']): Records {
  const r = records(p);
  const own = path === '/engage' ? r.engage : path === '/groups' ? r.groups : r.event;
  const record = fc.oneof(
    { weight: 8, arbitrary: own as fc.Arbitrary<unknown> },
    { weight: 1, arbitrary: r.event as fc.Arbitrary<unknown> },
    { weight: 1, arbitrary: r.engage as fc.Arbitrary<unknown> },
    { weight: 1, arbitrary: r.groups as fc.Arbitrary<unknown> },
    { weight: 1, arbitrary: json as fc.Arbitrary<unknown> },
  );
  return { record, batch: fc.oneof(record, fc.array(record, { maxLength: 8 })) };
}

/** Bodies of every shape Mixpanel's clients send, and of many they do not. */
function bodies(p: CreatedProject, { record, batch }: Records) {
  const payloadText = fc.oneof(
    { weight: 3, arbitrary: batch.map((b) => JSON.stringify(b)) },
    { weight: 1, arbitrary: fc.json({ maxDepth: 3 }) },
  );
  type Body = { body?: Buffer; contentType?: string; contentEncoding?: string };
  const text = (t: string, contentType?: string): Body => ({ body: Buffer.from(t), contentType });
  const b64 = (t: string) => Buffer.from(t).toString('base64');
  const ndjson = fc.array(fc.oneof(record.map((r) => JSON.stringify(r)), str), { maxLength: 6 }).map((lines) => lines.join('\n'));
  const junk = [
    fc.constant<Body>({}),
    fc.uint8Array({ maxLength: 400 }).map((b): Body => ({ body: Buffer.from(b) })),
    fc.string({ unit: 'binary', maxLength: 200 }).map((s) => text(s)),
    fc.json().map((s) => text(s, 'application/json')),
    // Almost-valid JSON: valid text cut short or with a byte changed.
    fc.tuple(payloadText, fc.nat(), fc.integer({ min: 0, max: 127 })).map(([t, at, c]) => {
      const i = t.length ? at % t.length : 0;
      return text(at % 2 ? t.slice(0, i) : t.slice(0, i) + String.fromCharCode(c) + t.slice(i + 1), 'application/json');
    }),
    payloadText.map((t) => text(b64(t))),
    fc.uint8Array({ maxLength: 300 }).map((b): Body => ({ body: zlib.gzipSync(b), contentEncoding: 'gzip' })),
    // Over the limits: a body too large, a gzip bomb, too many records.
    fc.integer({ min: 1, max: 4096 }).map((n): Body => ({ body: Buffer.alloc(MAX_BODY + n, 'a') })),
    fc.integer({ min: 1, max: 4 }).map((n): Body => ({ body: zlib.gzipSync(Buffer.alloc(MAX_BODY * n + 1, ' ')), contentEncoding: 'gzip' })),
    fc.integer({ min: MAX_EVENTS + 1, max: MAX_EVENTS + 5 }).map((n) =>
      text(JSON.stringify(Array.from({ length: n }, (_, i) => ({ event: 'e', properties: { token: p.token, distinct_id: `u${i}` } }))), 'application/json'),
    ),
  ];
  const payloads = [
    payloadText.map((t) => text(t, 'application/json')),
    payloadText.map((t) => text(t)),
    fc.tuple(payloadText, fc.boolean()).map(([t, base64]) => text(`data=${encodeURIComponent(base64 ? b64(t) : t)}`, 'application/x-www-form-urlencoded')),
    fc.tuple(payloadText, str).map(([t, extra]) => text(`data=${b64(t)}&${extra}`, 'application/x-www-form-urlencoded')),
    fc.tuple(payloadText, fc.constantFrom('gzip', 'x-gzip', 'deflate')).map(([t, enc]): Body => ({
      body: enc === 'deflate' ? zlib.deflateSync(t) : zlib.gzipSync(t),
      contentEncoding: enc,
      contentType: 'application/json',
    })),
    fc.tuple(ndjson, fc.boolean()).map(([t, typed]) => text(t, typed ? 'application/x-ndjson' : undefined)),
  ];
  return fc.oneof(...junk.map((arbitrary) => ({ weight: 1, arbitrary })), ...payloads.map((arbitrary) => ({ weight: 3, arbitrary })));
}

function requests(p: CreatedProject) {
  const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
  const dataOf = (batch: fc.Arbitrary<unknown>) => fc.oneof(
    batch.map((b) => Buffer.from(JSON.stringify(b)).toString('base64')),
    batch.map((b) => Buffer.from(JSON.stringify(b)).toString('base64url')),
    batch.map((b) => JSON.stringify(b)),
    fc.base64String({ maxLength: 40 }),
    str,
  );
  const queryOf = (data: fc.Arbitrary<string>, method: Req['method']) => fc
    .record(
      {
        data: method === 'GET' ? fc.oneof({ weight: 1, arbitrary: fc.constant(undefined) }, { weight: 4, arbitrary: data }) : rare(data),
        verbose: rare(fc.constantFrom('1', '0', 'true', 'false', 'yes', '')),
        ip: rare(fc.constantFrom('1', '0')),
        img: rare(fc.constantFrom('1', '0', 'true', '')),
        callback: rare(fc.oneof(fc.constantFrom('cb', 'jQuery1_2', 'a.b.c', '$x', '1bad', 'x y', '', 'a..b', '<x>', 'a'.repeat(129)), str)),
        strict: rare(fc.constantFrom('1', '0', 'true', 'false', 'x')),
        api_key: rare(fc.oneof(fc.constant(p.secret), str)),
        extra: rare(fc.tuple(fc.constantFrom('data', 'verbose', 'img', 'x'), str)),
      },
      { requiredKeys: [] },
    )
    .map((q) => {
      const pairs: [string, string][] = [];
      for (const [k, v] of Object.entries(q)) {
        if (v === undefined) continue;
        if (k === 'extra') pairs.push(v as [string, string]); // a second value for a name: the first wins
        else pairs.push([k, v as string]);
      }
      return pairs;
    });
  const headerText = fc.stringMatching(/^[ -~]{0,24}$/).map((s) => s.trim());
  const contentType = fc.oneof(
    fc.constantFrom(
      'application/json',
      'application/x-www-form-urlencoded',
      'application/x-ndjson',
      'application/ndjson',
      'text/plain',
      'application/octet-stream',
      'multipart/form-data; boundary=x',
      'application/json; charset=utf-8',
      'application/json;;;',
      '',
    ),
    headerText,
  );
  const contentEncoding = fc.oneof(fc.constantFrom('gzip', 'x-gzip', 'deflate', 'br', 'identity', 'GZIP', 'compress', 'gzip, deflate', ''), headerText);
  const auth = fc.oneof(
    { weight: 12, arbitrary: fc.constant(basic(`${p.secret}:`)) },
    fc.constant(basic(`${p.token}:`)),
    fc.constant(basic(`${p.secret}:password`)),
    fc.constant(`Bearer ${p.secret}`),
    fc.constantFrom('Basic', 'Basic !!!', 'Basic ' + Buffer.from(':').toString('base64')),
    // NUL bytes in the username have their own test below ('/import Basic auth username').
    fc.uint8Array({ maxLength: 40 }).filter((b) => !b.includes(0)).map((b) => `Basic ${Buffer.from(b).toString('base64')}`),
    headerText,
  );
  const rawQuery = fc.constantFrom('', '', '', '&%', '&%zz=1', '&&', '&=x', '&data', '&data=%E0%A4%A', '&verbose=%FF');
  const seldom = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });
  const perPath = new Map(
    PATHS.map((path) => {
      const recs = recordsFor(p, path);
      return [path, { body: bodies(p, recs), data: dataOf(recs.batch) }] as const;
    }),
  );
  return fc
    .tuple(fc.constantFrom<Req['method']>('GET', 'POST', 'POST'), fc.constantFrom(...PATHS))
    .chain(([method, path]) =>
      fc.record({
        method: fc.constant(method),
        path: fc.constant(path),
        query: queryOf(perPath.get(path)!.data, method),
        rawQuery,
        body: perPath.get(path)!.body,
        contentType: seldom(contentType),
        contentEncoding: seldom(contentEncoding),
        auth: fc.oneof({ weight: 1, arbitrary: fc.constant(undefined) }, { weight: 3, arbitrary: auth }),
      }),
    )
    .map((r): Req => {
      const headers: Record<string, string> = {};
      const post = r.method === 'POST';
      const ct = r.contentType ?? r.body.contentType;
      const ce = r.contentEncoding ?? r.body.contentEncoding;
      if (post && ct !== undefined) headers['content-type'] = ct;
      if (post && ce !== undefined) headers['content-encoding'] = ce;
      if (r.auth !== undefined) headers.authorization = r.auth;
      return { method: r.method, path: r.path, query: r.query, rawQuery: r.rawQuery, headers, body: post ? r.body.body : undefined };
    });
}

async function expectHealthy() {
  const res = await request(`${svc.url}/healthz`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  expect(res.statusCode).toBe(200);
  expect(await res.body.json()).toMatchObject({ status: 'ok' });
}

/** Every event stored for a project, through the read API (which must cope with whatever was stored). */
async function listAllEvents(p: CreatedProject) {
  const all: { insert_id: string | null; time_ms: number; time: string }[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const res = await svc.api(`/api/v1/events?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, {
      headers: { authorization: `Bearer ${p.secret}` },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { results: typeof all; next_cursor: string | null };
    all.push(...body.results);
    cursor = body.next_cursor;
    if (!cursor) return all;
  }
  throw new Error('the events API did not stop paging');
}

// ---------------------------------------------------------------------------------------------

describe('no input crashes or hangs the ingestion API', () => {
  it('answers every random request with an allowed status and a well-formed body', async () => {
    seen.statuses.clear();
    seen.modes.clear();
    await fc.assert(
      fc.asyncProperty(requests(project), async (req) => {
        await sendAndCheck(req);
      }),
      { numRuns: 1000 },
    );
    await expectHealthy();
    expect([...seen.statuses].sort()).toEqual([...ALLOWED_STATUSES].sort());
    for (const mode of ['plain', 'verbose', 'gif', 'jsonp', 'bad callback', 'import']) expect(seen.modes).toContain(mode);
  });

  it('answers concurrent random requests', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(requests(project), { minLength: 5, maxLength: 25 }), async (reqs) => {
        await Promise.all(reqs.map(sendAndCheck));
      }),
      { numRuns: 12 },
    );
    await expectHealthy();
  });

  const odd = fc.string({
    unit: fc.constantFrom('\u0000', '\ud800', '\udfff', '\u2028', '\u00e9', 'a', '"', '\\', '\u{1f600}'),
    minLength: 1,
    maxLength: 6,
  });
  const anyString = fc.oneof(odd, fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }));
  const places = [
    'event name',
    'distinct_id',
    'property value',
    'property key',
    'token',
    'profile distinct_id',
    'profile value',
    'group id',
    '/import Basic auth username',
  ] as const;
  it.each(places)('stores or refuses any string as %s (NUL, lone surrogates, U+2028), never a 500', async (where) => {
    await fc.assert(
      fc.asyncProperty(anyString, async (s) => {
        const props: Record<string, unknown> = { token: project.token, distinct_id: 'u', $insert_id: crypto.randomUUID() };
        let path: Req['path'] = '/track';
        let record: unknown = { event: 'E', properties: props };
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (where === 'token') props.token = s;
        if (where === '/import Basic auth username') {
          path = '/import';
          headers.authorization = `Basic ${Buffer.from(`${s}:`).toString('base64')}`;
          props.time = nowS;
        }
        if (where === 'event name') record = { event: s, properties: props };
        if (where === 'distinct_id') props.distinct_id = s;
        if (where === 'property value') props.p = s;
        if (where === 'property key') props[s] = 1;
        if (where === 'profile distinct_id') [path, record] = ['/engage', { $token: project.token, $distinct_id: s, $set: { a: 1 } }];
        if (where === 'profile value') [path, record] = ['/engage', { $token: project.token, $distinct_id: 'u', $set: { [s]: s } }];
        if (where === 'group id') [path, record] = ['/groups', { $token: project.token, $group_key: 'k', $group_id: s, $set: { a: s } }];
        const reply = await sendAndCheck({
          method: 'POST',
          path,
          query: [['verbose', '1']],
          rawQuery: '',
          headers,
          body: Buffer.from(JSON.stringify([record])),
        });
        // Well-formed text that was accepted is stored as sent.
        const wellFormed = !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s) && !s.includes('\u0000');
        if (reply.status === 200 && wellFormed && ['event name', 'distinct_id', 'property value', 'property key'].includes(where)) {
          const row = await svc.service.store.db
            .selectFrom('events')
            .select(['event', 'distinct_id', 'properties'])
            .where('insert_id', '=', props.$insert_id as string)
            .executeTakeFirstOrThrow();
          const stored = { ...row, properties: typeof row.properties === 'string' ? JSON.parse(row.properties) : row.properties };
          if (where === 'event name') expect(stored.event).toBe(s);
          if (where === 'distinct_id') expect(stored.distinct_id).toBe(s);
          if (where === 'property value') expect(stored.properties.p).toBe(s);
          if (where === 'property key') expect(stored.properties[s]).toBe(1);
        }
      }),
      { numRuns: 15, examples: [['a\u0000b'], ['\ud800'], ['\u2028\u{1f600}']] },
    );
    await expectHealthy();
  });

  it('stores and lists, or refuses, events and profile updates with any numeric time', async () => {
    const p = await createProject(svc.service.store, 'times');
    const anyTime = fc.oneof(
      fc.double({ noNaN: true }),
      fc.double({ min: 1e11, max: 1e22, noNaN: true }),
      fc.bigInt({ min: 0n, max: 10n ** 25n }).map((n) => n.toString()),
      fc.integer({ min: 0, max: 2 ** 53 - 1 }),
    );
    await fc.assert(
      fc.asyncProperty(anyTime, fc.constantFrom('/track', '/engage'), async (t, path) => {
        const body =
          path === '/track'
            ? { event: 'T', properties: { token: p.token, distinct_id: 'u', time: t } }
            : { $token: p.token, $distinct_id: 'u', $time: t, $set: { a: 1 } };
        await sendAndCheck({
          method: 'POST',
          path,
          query: [['verbose', '1']],
          rawQuery: '',
          headers: { 'content-type': 'application/json' },
          body: Buffer.from(JSON.stringify(body)),
        });
      }),
      { numRuns: 60, examples: [[1e20, '/track'], [1e16, '/engage'], [1e16, '/track']] },
    );
    // Whatever was accepted can be read back.
    const events = await listAllEvents(p);
    for (const e of events) expect(e.time).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    await expectHealthy();
  });

  it('answers malformed HTTP at the socket level and stays up', async () => {
    const { port } = new URL(svc.url);
    const raw = [
      'POST /track HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n',
      'POST /import HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n',
      'POST /track HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
      'GET /track?data=%%% HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
    ];
    for (const text of raw) {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(Number(port), '127.0.0.1');
        let out = '';
        socket.setTimeout(REQUEST_TIMEOUT_MS, () => {
          socket.destroy();
          reject(new Error(`no answer to ${JSON.stringify(text)}`));
        });
        socket.on('data', (d) => {
          out += d.toString('latin1');
          if (out.includes('\r\n\r\n')) socket.end();
        });
        socket.on('end', () => resolve(out));
        socket.on('close', () => resolve(out));
        socket.on('error', reject);
        socket.write(text);
      });
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
      expect(ALLOWED_STATUSES).toContain(status);
    }
    await expectHealthy();
  });
});

// ---------------------------------------------------------------------------------------------
// Model: what is stored

type Rec = { event?: unknown; properties?: unknown } | unknown;
interface ValidSpec {
  event: string;
  id: { distinct_id: string } | { distinct_id: number } | { $user_id: string } | { $device_id: string };
  time: number;
  extra: Record<string, unknown>;
}

const validSpec: fc.Arbitrary<ValidSpec> = fc.record({
  event: fc.constantFrom('Signup', 'Page View', 'Purchase', 'évènement ✓'),
  id: fc.oneof(
    fc.constantFrom('alice', 'bob', 'carol').map((d) => ({ distinct_id: d })),
    fc.integer({ min: 1, max: 1000 }).map((d) => ({ distinct_id: d })),
    fc.constantFrom('u-1', 'u-2').map((d) => ({ $user_id: d })),
    fc.constantFrom('dev-1', 'dev-2').map((d) => ({ $device_id: d })),
  ),
  time: fc.oneof(
    fc.integer({ min: Date.UTC(2020, 0, 1) / 1000, max: nowS - 86400 }),
    fc.integer({ min: Date.UTC(2020, 0, 1), max: (nowS - 86400) * 1000 }),
  ),
  extra: fc.dictionary(
    fc.string({ minLength: 1, maxLength: 8 }).filter((k) => !['token', 'time', 'distinct_id', '$insert_id', '$user_id', '$device_id', 'ip'].includes(k)),
    // NUL is refused by design (PostgreSQL cannot store it): a valid record holds none.
    fc.jsonValue({ maxDepth: 1 }).filter((v) => !JSON.stringify(v).includes('\\u0000')),
    { maxKeys: 3, noNullPrototype: true },
  ).filter((extra) => !Object.keys(extra).some((k) => k.includes('\0'))),
});

/** Records that both /track and /import (strict) refuse. */
const invalidRecord = (good: Record<string, unknown>): fc.Arbitrary<Rec> =>
  fc.constantFrom<Rec>(
    42,
    null,
    'event',
    [],
    { properties: good },
    { event: '', properties: good },
    { event: 7, properties: good },
    { event: 'x'.repeat(256), properties: good },
    { event: 'E', properties: [] },
    { event: 'E', properties: { ...good, distinct_id: 'undefined' } },
    { event: 'E', properties: { ...good, distinct_id: undefined } },
    { event: 'E', properties: { ...good, $insert_id: 'not valid!' } },
    { event: 'E', properties: { ...good, $insert_id: 'x'.repeat(37) } },
    { event: 'E', properties: { ...good, time: 'soon' } },
    { event: 'E', properties: { ...good, time: -5 } },
    { event: 'E', properties: { ...good, time: 10 } },
  );

type Transport = 'import-json' | 'import-ndjson' | 'import-gzip' | 'track-form' | 'track-json';

function transportRequest(transport: Transport, p: CreatedProject, recs: Rec[]): Req {
  const auth = { authorization: `Basic ${Buffer.from(`${p.secret}:`).toString('base64')}` };
  const body = JSON.stringify(recs);
  const importRequest = (headers: Record<string, string>, payload: Buffer): Req => ({
    method: 'POST',
    path: '/import',
    query: [['strict', '1']],
    rawQuery: '',
    headers: { ...auth, ...headers },
    body: payload,
  });
  switch (transport) {
    case 'import-json':
      return importRequest({ 'content-type': 'application/json' }, Buffer.from(body));
    case 'import-ndjson':
      return importRequest({ 'content-type': 'application/x-ndjson' }, Buffer.from(recs.map((r) => JSON.stringify(r)).join('\n')));
    case 'import-gzip':
      return importRequest({ 'content-type': 'application/json', 'content-encoding': 'gzip' }, zlib.gzipSync(body));
    case 'track-form':
      return {
        method: 'POST',
        path: '/track',
        query: [['verbose', '1']],
        rawQuery: '',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(`data=${encodeURIComponent(Buffer.from(body).toString('base64'))}`),
      };
    case 'track-json':
      return { method: 'POST', path: '/track', query: [['verbose', '1']], rawQuery: '', headers: { 'content-type': 'application/json' }, body: Buffer.from(body) };
  }
}

let insertCounter = 0;

async function storedKeys(projectId: number): Promise<string[]> {
  const rows = await svc.service.store.db
    .selectFrom('events')
    .select(['event', 'time', 'distinct_id', 'insert_id'])
    .where('project_id', '=', projectId)
    .execute();
  return rows.map((r) => JSON.stringify([r.event, Number(r.time), r.distinct_id, r.insert_id])).sort();
}

describe('what is stored follows a model', () => {
  it('stores each valid record once, refuses the invalid ones, and a re-sent batch stores nothing new', async () => {
    const batch = fc
      .record({
        valid: fc.array(fc.tuple(validSpec, fc.constantFrom('once', 'once', 'once', 'twice', 'retimed')), { maxLength: 18 }),
        invalid: fc.array(fc.nat(), { maxLength: 6 }),
        transport: fc.constantFrom<Transport>('import-json', 'import-ndjson', 'import-gzip', 'track-form', 'track-json'),
      })
      .chain(({ valid, invalid, transport }) => {
        const tag = `r${crypto.randomBytes(4).toString('hex')}`;
        const good = { distinct_id: 'x', time: nowS - 3600, $insert_id: `${tag}-bad` };
        return fc
          .tuple(fc.tuple(...invalid.map(() => invalidRecord(good))), fc.constant(valid), fc.constant(transport), fc.constant(tag))
          .chain(([bad, v, t, tg]) => {
            const tagged = [
              ...v.flatMap(([spec, how], i) => {
                const insertId = `${tg}-${insertCounter++}-${i}`;
                const make = (time: number) => ({ valid: true as const, spec, insertId, time });
                if (how === 'twice') return [make(spec.time), make(spec.time)];
                if (how === 'retimed') return [make(spec.time), make(spec.time + 1)]; // same $insert_id, another time: a different event
                return [make(spec.time)];
              }),
              ...bad.map((record) => ({ valid: false as const, record })),
            ];
            return fc.tuple(fc.shuffledSubarray(tagged, { minLength: tagged.length, maxLength: tagged.length }), fc.constant(t));
          });
      });

    await fc.assert(
      fc.asyncProperty(batch, async ([items, transport]) => {
        const p = await createProject(svc.service.store, 'model');
        const track = transport.startsWith('track');
        const recs: Rec[] = items.map((it) => {
          if (!it.valid) {
            const r = it.record;
            if (track && r && typeof r === 'object' && !Array.isArray(r)) {
              const props = (r as { properties?: unknown }).properties;
              if (props && typeof props === 'object' && !Array.isArray(props)) return { ...r, properties: { ...props, token: p.token } };
            }
            return r;
          }
          return {
            event: it.spec.event,
            properties: { ...it.spec.extra, ...it.spec.id, time: it.time, $insert_id: it.insertId, ...(track ? { token: p.token } : {}) },
          };
        });
        // The model: Mixpanel de-duplicates on (event, time, distinct_id, $insert_id).
        const expected = new Set<string>();
        for (const it of items) {
          if (!it.valid) continue;
          const id = it.spec.id;
          const distinctId = 'distinct_id' in id ? String(id.distinct_id) : '$user_id' in id ? id.$user_id : `$device:${id.$device_id}`;
          const ms = it.time < 1e11 ? it.time * 1000 : it.time;
          expected.add(JSON.stringify([it.spec.event, ms, distinctId, it.insertId]));
        }
        const validCount = items.filter((i) => i.valid).length;
        const invalidAt = items.flatMap((it, i) => (it.valid ? [] : [i]));

        for (const attempt of [1, 2]) {
          const req = transportRequest(transport, p, recs);
          const reply = await sendAndCheck(req);
          const body = JSON.parse(reply.body.toString('utf8')) as Record<string, unknown>;
          expect(reply.status, `attempt ${attempt}`).toBe(invalidAt.length ? 400 : 200);
          if (!track) expect(body.num_records_imported).toBe(validCount);
          const failed = (body.failed_records as { index: number }[] | undefined) ?? [];
          expect(failed.map((f) => f.index)).toEqual(invalidAt);
          expect(await storedKeys(p.id), `after attempt ${attempt}`).toEqual([...expected].sort());
        }
      }),
      { numRuns: 30 },
    );
  });

  it('counts each stored event once in the per-user daily counts', async () => {
    const p = await createProject(svc.service.store, 'counts');
    const events = Array.from({ length: 30 }, (_, i) => ({
      event: 'Counted',
      properties: { distinct_id: `u${i % 3}`, time: Date.UTC(2024, 0, 1 + (i % 2)) / 1000 + i, $insert_id: `c-${i}` },
    }));
    const req = transportRequest('import-json', p, events);
    for (let i = 0; i < 2; i++) expect((await sendAndCheck(req)).status).toBe(200);
    const rows = await svc.service.store.db
      .selectFrom('event_daily_counts')
      .select([sql<number>`sum(count)`.as('total')])
      .where('project_id', '=', p.id)
      .executeTakeFirstOrThrow();
    expect(Number(rows.total)).toBe(30);
  });
});
