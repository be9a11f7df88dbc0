import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/service.js';

const require = createRequire(import.meta.url);
// The official browser SDK, unchanged: its self-contained UMD build defines window.mixpanel.
const MIXPANEL_JS = fs.readFileSync(require.resolve('mixpanel-browser/dist/mixpanel.umd.js'));
const MIXPANEL_VERSION = (require('mixpanel-browser/package.json') as { version: string }).version;

// Debian's Chromium (`apt-get install chromium`; .ci/run installs it); never a downloaded browser.
// Without it these tests are skipped with a line saying so, unless COHORTCAST_TEST_REQUIRE_CHROMIUM=1
// (CI), which makes its absence a failure.
const CHROMIUM = process.env.COHORTCAST_TEST_CHROMIUM ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = fs.existsSync(CHROMIUM) || process.env.COHORTCAST_TEST_REQUIRE_CHROMIUM === '1';
if (!HAVE_CHROMIUM) {
  console.warn(`mixpanel-browser tests skipped: no Chromium at ${CHROMIUM}. Install it with \`apt-get install chromium\` (Debian) or point COHORTCAST_TEST_CHROMIUM at one.`);
}
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let browser: Browser;
let pageServer: http.Server;
let pageOrigin: string;

/** Serves the test page from an origin of its own, so every call to the service is cross-origin. */
function startPageServer(): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><html><head><script src="/mixpanel.umd.js"></script></head><body>test page</body></html>');
    } else if (req.url === '/mixpanel.umd.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      res.end(MIXPANEL_JS);
    } else {
      // favicon.ico and the like: answered empty, so no 404 shows up as a console error.
      res.writeHead(204).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  pageServer = await startPageServer();
  pageOrigin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => (pageServer ? pageServer.close(resolve) : resolve(undefined)));
});

interface Scenario {
  token: string;
  apiHost: string;
  batch: boolean;
}

/**
 * Runs in the page: what an application does with the SDK. Resolves with what each call's
 * callback received (in batch mode that is the enqueue acknowledgement, not the reply).
 * Calls wait for their callback so the order of people operations is deterministic.
 */
async function runScenario({ token, apiHost, batch }: Scenario): Promise<unknown[]> {
  const mp = (window as unknown as { mixpanel: import('mixpanel-browser').Mixpanel }).mixpanel;
  await new Promise((loaded) =>
    mp.init(token, {
      api_host: apiHost,
      batch_requests: batch,
      batch_flush_interval_ms: 100,
      debug: true,
      // Without batching the SDK only asks for the JSON reply when verbose.
      verbose: !batch,
      // A custom header makes the unbatched POSTs non-simple, so Chromium sends a real preflight.
      xhr_headers: batch ? {} : { 'X-Cohortcast-Test': '1' },
      loaded,
    }),
  );
  const results: unknown[] = [];
  const call = async (fn: (cb: (response: unknown) => void) => void) => results.push(await new Promise(fn));
  mp.register({ app_version: '1.2.3', plan: 'pro' });
  // '+', '/' and non-ASCII push the base64 payload through every alphabet edge.
  await call((cb) => mp.track('Page Viewed', { page: '/pricing?a=1&b=2', unicode: 'héllo ✓ 日本 +/=' }, cb));
  mp.identify('user-42');
  await call((cb) => mp.track('Checkout Started', { cart_value: 99.5, items: ['a', 'b'], nested: { ok: true } }, cb));
  await call((cb) => mp.people.set({ $email: 'u42@example.com', plan: 'pro', tags: ['a'] }, cb));
  await call((cb) => mp.people.set_once({ plan: 'ignored', first_seen: 'monday' }, cb));
  await call((cb) => mp.people.increment('logins', 2, cb));
  await call((cb) => mp.people.increment({ logins: 1 }, cb));
  await call((cb) => mp.people.append('pages', 'home', cb));
  await call((cb) => mp.people.append('pages', 'cart', cb));
  await call((cb) => mp.people.union('tags', ['a', 'b', 'b'], cb));
  return results;
}

interface Captured {
  url: string;
  method: string;
  status: number;
  requestHeaders: Record<string, string>;
  postData: string | null;
  headers: Record<string, string>;
  body: string;
  /** Set when the reply could not be read, e.g. one still arriving as the context closes. */
  readError?: string;
}

interface StoredEvent {
  event: string;
  distinct_id: string;
  properties: Record<string, unknown>;
}

/** Polls until `check` stops throwing (up to 10 s): the SDK sends on its own schedule. */
async function eventually<T>(check: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe.skipIf(!HAVE_CHROMIUM).each([
  { mode: 'batched', batch: true },
  { mode: 'unbatched', batch: false },
])('mixpanel-browser $mode in headless Chromium, unchanged', ({ batch }) => {
  let svc: TestService;
  let page: Page;
  const responses: Promise<Captured>[] = [];
  const requested: string[] = [];
  const consoleErrors: string[] = [];
  const preflights: { status: number; headers: Record<string, string> }[] = [];
  let callbackResults: unknown[];

  const events = async (query: string) => {
    const res = await svc.api(`/api/v1/events?${query}`);
    expect(res.status).toBe(200);
    return ((await res.json()) as { results: StoredEvent[] }).results;
  };

  beforeAll(async () => {
    svc = await startTestService();
    const context = await browser.newContext();
    page = await context.newPage();
    page.on('request', (req) => requested.push(req.url()));
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(msg.text());
    });
    // Playwright does not surface CORS preflights; Chromium's DevTools protocol does.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    cdp.on('Network.responseReceived', ({ type, response }) => {
      if (type !== 'Preflight') return;
      const headers = Object.fromEntries(Object.entries(response.headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
      preflights.push({ status: response.status, headers });
    });
    page.on('response', (res) => {
      if (!res.url().startsWith(svc.url)) return;
      const req = res.request();
      const base = { url: res.url(), method: req.method(), status: res.status(), postData: req.postData() };
      // Never rejects: a reply still being read when the context closes must not become an
      // unhandled rejection after the tests that await these have finished.
      responses.push(
        (async (): Promise<Captured> => ({
          ...base,
          requestHeaders: await req.allHeaders(),
          headers: await res.allHeaders(),
          body: await res.text(),
        }))().catch((err: Error) => ({ ...base, requestHeaders: {}, headers: {}, body: '', readError: err.message })),
      );
    });
    await page.goto(`${pageOrigin}/`);
    callbackResults = await page.evaluate(runScenario, { token: svc.project.token, apiHost: svc.url, batch });
  });

  afterAll(async () => {
    await page?.context().close();
    await svc?.close();
  });

  it('stores the events with their properties, super properties and the identified distinct_id', async () => {
    const stored = await eventually(async () => {
      const list = await events('');
      expect(list.map((e) => e.event).sort()).toEqual(['$identify', 'Checkout Started', 'Page Viewed']);
      return list;
    });
    const byName = (name: string) => stored.find((e) => e.event === name)!;
    const checkout = byName('Checkout Started');
    expect(checkout.distinct_id).toBe('user-42');
    expect(checkout.properties).toMatchObject({
      cart_value: 99.5,
      items: ['a', 'b'],
      nested: { ok: true },
      app_version: '1.2.3',
      plan: 'pro',
      mp_lib: 'web',
      $lib_version: MIXPANEL_VERSION,
      $browser: 'Chrome',
      $user_id: 'user-42',
    });
    expect(checkout.properties.$current_url).toBe(`${pageOrigin}/`);
    expect(checkout.properties.$device_id).toEqual(expect.any(String));

    const identify = byName('$identify');
    const anonymous = `$device:${checkout.properties.$device_id as string}`;
    expect(identify.distinct_id).toBe('user-42');
    expect(identify.properties.$anon_distinct_id).toBe(anonymous);
    const viewed = byName('Page Viewed');
    expect(viewed.properties).toMatchObject({
      page: '/pricing?a=1&b=2',
      unicode: 'héllo ✓ 日本 +/=',
      app_version: '1.2.3',
      plan: 'pro',
      mp_lib: 'web',
      $device_id: checkout.properties.$device_id,
    });
    // Aliases resolve at ingestion: sent and answered before $identify, the anonymous event
    // keeps its device id; in a batch it usually shares with $identify, it becomes user-42's.
    if (batch) expect([anonymous, 'user-42']).toContain(viewed.distinct_id);
    else expect(viewed.distinct_id).toBe(anonymous);
  });

  it('applies $set, $set_once, $add, $append and $union to the profile', async () => {
    const props = await eventually(async () => {
      const res = await svc.api('/api/v1/profiles/user-42');
      expect(res.status).toBe(200);
      const p = ((await res.json()) as { $properties: Record<string, unknown> }).$properties;
      expect(p).toMatchObject({ logins: 3, tags: ['a', 'b'], pages: ['home', 'cart'] });
      return p;
    });
    expect(props).toMatchObject({ $email: 'u42@example.com', plan: 'pro', first_seen: 'monday', $browser: 'Chrome' });
  });

  it('answers the browser with 200, verbose JSON and credentialed CORS headers', async () => {
    // Every callback fired: the SDK read each reply (blocked CORS would surface as status 0).
    expect(callbackResults).toHaveLength(9);
    expect(callbackResults).toEqual(Array(9).fill(batch ? 1 : { status: 1, error: null }));

    const replies = await eventually(async () => {
      const all = await Promise.all(responses);
      // Wait until the replies for the people batch (or each people call) have come in too.
      expect(all.some((r) => new URL(r.url).pathname === '/engage/')).toBe(true);
      return all;
    });
    for (const r of replies) {
      expect(r.readError).toBeUndefined();
      expect(r.method).toBe('POST');
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toEqual({ status: 1, error: null });
      expect(r.headers['access-control-allow-origin']).toBe(pageOrigin);
      expect(r.headers['access-control-allow-credentials']).toBe('true');
      // The default payload format off mixpanel.com: form-encoded base64, not JSON.
      expect(r.requestHeaders['content-type']).toBe('application/x-www-form-urlencoded');
      const data = new URLSearchParams(r.postData ?? '').get('data') ?? '';
      expect(data).toMatch(/^[A-Za-z0-9+/]+=*$/);
      expect(JSON.parse(Buffer.from(data, 'base64').toString('utf8'))).toBeTruthy();
    }
    const paths = new Set(replies.map((r) => new URL(r.url).pathname));
    expect(paths).toEqual(new Set(['/track/', '/engage/']));
    if (!batch) {
      // Each unbatched POST carried a custom header, so Chromium preflighted every one
      // (9 calls, plus the $identify event and $set_once the SDK sends on its own).
      expect(replies.length).toBeGreaterThanOrEqual(10);
      // At least one each: Chromium may preflight a request again, or one whose reply is still on its way.
      expect(preflights.length).toBeGreaterThanOrEqual(replies.length);
      for (const p of preflights) {
        expect(p.status).toBe(204);
        expect(p.headers['access-control-allow-origin']).toBe(pageOrigin);
        expect(p.headers['access-control-allow-credentials']).toBe('true');
        expect(p.headers['access-control-allow-headers']?.toLowerCase()).toContain('x-cohortcast-test');
      }
    } else {
      // Simple requests (form POSTs without custom headers) need no preflight.
      expect(preflights).toEqual([]);
      // Batched bodies are JSON arrays of records.
      const first = new URLSearchParams(replies[0]!.postData ?? '').get('data')!;
      expect(Array.isArray(JSON.parse(Buffer.from(first, 'base64').toString('utf8')))).toBe(true);
    }
  });

  it('talks only to 127.0.0.1 and logs no SDK errors', () => {
    expect(requested.length).toBeGreaterThan(0);
    for (const url of requested) expect(new URL(url).hostname).toBe('127.0.0.1');
    expect(consoleErrors).toEqual([]);
  });
});

describe('CORS preflight', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(() => svc?.close());

  it('allows a credentialed POST from any page origin', async () => {
    const origin = 'http://app.example.test:8080';
    const res = await fetch(`${svc.url}/track/?verbose=1&ip=1`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,x-cohortcast-test',
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(origin);
    expect(res.headers.get('access-control-allow-credentials')).toBe('true');
    expect(res.headers.get('access-control-allow-methods')).toMatch(/\bPOST\b/);
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('x-cohortcast-test');
    // Echoing the Origin makes the reply depend on it, which caches must know.
    expect(res.headers.get('vary')?.toLowerCase()).toContain('origin');
    expect(res.headers.get('access-control-max-age')).toBe('86400');
  });
});
