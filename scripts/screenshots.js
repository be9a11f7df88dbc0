// The README's screenshots: `npm run docs:screenshots` (builds first, then runs this file).
//
// Starts the service on a fresh embedded database with a small, lively project (profiles, an
// hour of events, a receiver that accepts, one that refuses with a message, one that is gone),
// makes a connection, cohort, syncs, a subscription, a report with an alert and a webhook message
// through the API, lets them run, and photographs the main pages in Debian's Chromium at 1280×800
// (and the overview at phone width) into docs/screenshots/.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { loadConfig } from '../dist/config.js';
import { createProject } from '../dist/projects/projects.js';
import { startService } from '../dist/service.js';

const OUT = fileURLToPath(new URL('../docs/screenshots/', import.meta.url));
const CHROMIUM = process.env.COHORTCAST_TEST_CHROMIUM ?? '/usr/bin/chromium';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-screenshots-'));
const receiver = http.createServer((req, res) => {
  req.resume().on('end', () => {
    if (req.url === '/quota') return res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"list quota exceeded: 1,000 members at most"}');
    if (req.url === '/gone') return res.writeHead(410).end('{"error":"this hook was removed"}');
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"success"}');
  });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${receiver.address().port}`;

const env = { ...process.env, DATABASE_URL: '', COHORTCAST_LOG_LEVEL: 'error', COHORTCAST_ALLOW_HTTP: 'true', COHORTCAST_ALLOWED_NETWORKS: '127.0.0.0/8', COHORTCAST_SECRET_KEY: Buffer.alloc(32, 3).toString('base64') };
const config = loadConfig({ dataDir: dir, port: 0, host: '127.0.0.1' }, env);
config.delivery.cohortSyncSchedule = [0];
config.scheduler.pollIntervalMs = 100;
const service = await startService(config);
const project = await createProject(service.store, 'Acme');
const api = async (p, method = 'GET', body) => {
  const res = await fetch(`${service.url}/api/v1${p}`, { method, headers: { authorization: `Bearer ${project.secret}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body && JSON.stringify(body) });
  const data = await res.json().catch(() => undefined);
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(data)}`);
  return data;
};
const ingest = (p, body) => fetch(`${service.url}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

let browser;
try {
  const plans = ['free', 'pro', 'pro', 'team'];
  const names = ['Ada', 'Bo', 'Cy', 'Dee', 'Eve', 'Fin', 'Gus', 'Hal', 'Ivy', 'Jo', 'Kim', 'Lu'];
  await ingest('/engage', names.map((n, i) => ({ $token: project.token, $distinct_id: n.toLowerCase(), $set: { $name: n, $email: `${n.toLowerCase()}@example.com`, plan: plans[i % 4], country: ['DE', 'FR', 'US'][i % 3] } })));
  const now = Date.now();
  const events = [];
  for (let m = 59; m >= 0; m--) {
    const n = 3 + Math.round(4 + 3 * Math.sin(m / 6));
    for (let k = 0; k < n; k++) {
      const who = names[(m * 7 + k) % names.length].toLowerCase();
      const name = k % 5 === 0 ? 'Purchase' : k % 2 ? 'Page View' : 'Search';
      events.push({ event: name, properties: { token: project.token, distinct_id: who, time: now - m * 60_000 - k * 997, $insert_id: `s${m}-${k}`, ...(name === 'Purchase' ? { amount: 10 + ((m * k) % 90) } : { path: '/pricing' }) } });
    }
  }
  await ingest('/track', events);

  const crm = await api('/connections', 'POST', { name: 'CRM webhook', url: `${origin}/crm` });
  const lists = await api('/connections', 'POST', { name: 'Email lists', url: `${origin}/quota` });
  const old = await api('/connections', 'POST', { name: 'Old warehouse', url: `${origin}/gone` });
  await api(`/connections/${old.id}/test`, 'POST').catch(() => {});
  const pros = await api('/cohorts', 'POST', { name: 'Paying users', description: 'pro or team plan, purchased this month', definition: { and: [{ property: 'plan', op: 'in', value: ['pro', 'team'] }, { event: 'Purchase', within_days: 30 }] } });
  const sync = await api('/cohort-syncs', 'POST', { cohort_id: pros.id, connection_id: crm.id });
  await api('/cohort-syncs', 'POST', { cohort_id: pros.id, connection_id: lists.id });
  await api('/subscriptions', 'POST', { name: 'New payers to the CRM', event_types: ['cohort.member_entered'], cohort_ids: [pros.id], channels: [{ type: 'webhook', connection_id: crm.id }] });
  const report = await api('/reports', 'POST', { name: 'Purchases per hour', type: 'insights', query: { event: 'Purchase', measure: { type: 'total' }, interval: 'hour' } });
  const alert = await api('/alerts', 'POST', { name: 'Purchase spike', report_id: report.id, condition: { type: 'above', value: 5 }, frequency: 'hourly', channels: [{ type: 'webhook', connection_id: crm.id }] });
  await api('/messages', 'POST', { name: 'Welcome, payers', cohort_id: pros.id, connection_id: crm.id, schedule: { type: 'asap' } });
  // Old warehouse: a delivery it answers 410 to disables it, as a failing connection looks.
  await service.delivery.outbox.enqueue(service.store.db, [{ projectId: project.id, connectionId: old.id, ownerKind: 'export', ownerId: 'nightly', policy: 'standard', contentType: 'application/json', body: '{"rows":120}' }]);
  service.delivery.dispatcher.wake(true);
  await sleep(3000);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  fs.mkdirSync(OUT, { recursive: true });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(`${service.url}/`);
  await page.getByLabel('Project secret').fill(project.secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Pages' }).waitFor();
  const firstDelivery = (await api(`/deliveries?connection_id=${crm.id}&limit=1`)).results[0];
  const shots = [
    ['overview', '#/overview'],
    ['connection', `#/connections/${crm.id}`],
    ['deliveries', '#/deliveries'],
    ['delivery', `#/deliveries/${firstDelivery.id}`],
    ['cohort', `#/cohorts/${pros.id}`],
    ['sync', `#/syncs/${sync.id}`],
    ['alert', `#/alerts/${alert.id}`, '.chart'],
    ['profile', '#/profiles/ada'],
  ];
  for (const [name, hash, focus] of shots) {
    await page.evaluate((h) => (location.hash = h), hash);
    await page.waitForLoadState('networkidle');
    await sleep(400);
    // A page whose picture is further down (an alert's chart) is scrolled to it.
    if (focus) await page.locator(focus).first().evaluate((el) => el.scrollIntoView({ block: 'center' }));
    await page.screenshot({ path: path.join(OUT, `${name}.png`) });
    console.log(`docs/screenshots/${name}.png`);
  }
  await page.setViewportSize({ width: 390, height: 844 });
  await page.evaluate(() => (location.hash = '#/syncs'));
  await page.waitForLoadState('networkidle');
  await sleep(400);
  await page.screenshot({ path: path.join(OUT, 'phone-syncs.png') });
  console.log('docs/screenshots/phone-syncs.png');
} finally {
  await browser?.close();
  await service.close();
  receiver.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
