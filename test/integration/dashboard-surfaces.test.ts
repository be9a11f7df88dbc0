import { createRequire } from 'node:module';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_CHROMIUM, launchBrowser, openDashboard } from '../helpers/browser.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startTestService, type TestService } from '../helpers/service.js';

/**
 * The dashboard's subscriptions, reports, alerts and webhook messages in Chromium, over a real
 * service (short intervals) and a real receiver; data goes in through the ingestion API with the
 * official mixpanel client. Each surface is made in its form, tested, and its history read.
 */
const Mixpanel = createRequire(import.meta.url)('mixpanel') as typeof import('mixpanel');

let svc: TestService;
let receiver: Receiver;
let browser: Browser;

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  receiver = await startReceiver();
  svc = await startTestService((c) => {
    c.logLevel = 'error';
    c.delivery.allowHttp = true;
    c.delivery.allowedNetworks = ['127.0.0.0/8'];
    c.delivery.pollIntervalMs = 50;
    c.scheduler.pollIntervalMs = 50;
    c.alerts.checkIntervalMs = 200;
    c.messages.batchIntervalMs = 50;
    c.subscriptions.fanoutIntervalMs = 50;
  });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await svc?.close();
  await receiver?.close();
});

const client = () => Mixpanel.init(svc.project.token, { host: new URL(svc.url).host, protocol: 'http' });
const setProfile = (id: string, props: Record<string, unknown>) => new Promise<void>((resolve, reject) => client().people.set(id, props as Record<string, string>, (err) => (err ? reject(err) : resolve())));
const track = (event: string, props: Record<string, unknown>) => new Promise<void>((resolve, reject) => client().track(event, props as Record<string, string>, (err) => (err ? reject(err) : resolve())));
const hits = (path: string) => receiver.received.filter((r) => r.path === path);

async function connection(path: string): Promise<number> {
  const res = await svc.json('/api/v1/connections', 'POST', { name: path.slice(1), url: receiver.origin + path });
  expect(res.status).toBe(201);
  return res.body.id;
}

/** The form's JSON field, replaced with `value`. */
const fillJson = (page: Page, label: string, value: unknown) => page.getByLabel(label).fill(JSON.stringify(value));

describe.skipIf(!HAVE_CHROMIUM)('subscriptions, reports, alerts and messages in a browser', () => {
  it('makes, tests and shows the history of each', async () => {
    const [subHook, alertHook, msgHook] = await Promise.all([connection('/sub'), connection('/alert'), connection('/msg')]);
    const { page, consoleErrors } = await openDashboard(browser, svc.url, { secret: svc.project.secret, expectedStatuses: [400] });
    page.setDefaultTimeout(8000);

    // A subscription: made in the form, tested (the receiver gets the sample), its deliveries listed.
    await page.getByRole('link', { name: 'Subscriptions' }).click();
    await page.getByText('New subscription').click();
    await page.getByLabel('Name', { exact: true }).fill('New users');
    await page.getByLabel('profile.created').check();
    await fillJson(page, 'Channels (JSON)', [{ type: 'webhook', connection_id: subHook }]);
    await page.getByRole('button', { name: 'Create subscription' }).click();
    await page.getByRole('heading', { name: 'New users' }).waitFor();
    await page.locator('.channels').getByText(`sub (#${subHook})`).waitFor();
    await page.getByRole('button', { name: 'Send a test' }).click();
    await page.getByText('profile.created → channel 1 (webhook): Delivered: HTTP 200').waitFor();
    expect(hits('/sub').some((r) => JSON.parse(r.body).test === true)).toBe(true);
    await page.locator('#recent-deliveries ~ div tbody tr', { hasText: 'subscription-test' }).getByText('succeeded').waitFor();
    // A real event: a new profile, told to the subscription, shows in its history after a reload.
    await setProfile('ada', { plan: 'pro' });
    await page.getByText('All subscription deliveries').waitFor();
    await expect.poll(() => hits('/sub').length, { timeout: 10_000 }).toBe(2);
    await page.reload();
    await page.locator('#recent-deliveries ~ div tbody td:first-child', { hasText: /^#\d+ subscription$/ }).waitFor();
    expect(await page.getByRole('link', { name: 'All subscription deliveries' }).getAttribute('href')).toMatch(/^#\/deliveries\?owner_kind=subscription&owner_id=\d+%2F$/);

    // A report and an alert its last hour crosses: the check fires, the chart shows it, the history says so.
    const now = Date.now();
    for (const [i, at] of [now - 3_600_000, now].entries()) for (let n = 0; n < 3; n++) await track('Purchase', { distinct_id: `u${n}`, time: Math.floor(at / 1000), $insert_id: `p${i}-${n}` });
    await page.getByRole('link', { name: 'Reports' }).click();
    await page.getByText('New report').click();
    await page.getByLabel('Name', { exact: true }).fill('Purchases per hour');
    await fillJson(page, 'Query (JSON)', { event: 'Purchase', measure: { type: 'total' }, interval: 'hour' });
    await page.getByRole('button', { name: 'Create report' }).click();
    await page.locator('figure.chart canvas').waitFor();
    await page.getByRole('link', { name: 'New alert on it' }).click();
    await page.getByLabel('Name', { exact: true }).fill('Purchase spike');
    await fillJson(page, 'Condition (JSON)', { type: 'above', value: 2 });
    await page.getByLabel('Notify at most').selectOption('hourly');
    await fillJson(page, 'Channels (JSON)', [{ type: 'webhook', connection_id: alertHook }]);
    await page.getByRole('button', { name: 'Create alert' }).click();
    await page.getByRole('heading', { name: 'Purchase spike' }).waitFor();
    const fired = page.locator('#history ~ div tbody tr', { hasText: 'fired' });
    await fired.waitFor({ timeout: 10_000 });
    expect(await fired.locator('td').nth(3).textContent()).toBe('3');
    await page.locator('dt:text-is("Last fired") + dd time').waitFor();
    // The firing's delivery, among the alert's deliveries (a reload reads them again).
    await page.reload();
    await page.locator('#recent-deliveries ~ div tbody td:first-child', { hasText: /^#\d+ alert$/ }).waitFor();
    await page.locator('figure.chart canvas').waitFor();
    // The chart is named for its report.
    await page.locator('figure.chart figcaption', { hasText: /^Purchases per hour$/ }).waitFor();
    await expect.poll(() => hits('/alert').map((r) => JSON.parse(r.body).event_type)).toEqual(['custom_alert_triggered']);
    await page.getByRole('button', { name: 'Send a test' }).click();
    await page.getByText('Channel 1 (webhook): Delivered: HTTP 200').waitFor();
    expect(JSON.parse(hits('/alert')[1]!.body).alert.name).toBe('[TEST] Purchase spike');

    // A webhook message: a bad schedule is refused at its field, in the API's words; fixed, tested, run.
    await Promise.all(['bo', 'cy'].map((id) => setProfile(id, { plan: 'pro' })));
    await page.getByRole('link', { name: 'Messages' }).click();
    await page.getByText('New message').click();
    await page.getByLabel('Name', { exact: true }).fill('Pros');
    await page.getByLabel('Connection (where the users are posted)').selectOption(String(msgHook));
    await page.getByLabel('Target').selectOption('inline');
    await fillJson(page, 'Definition (JSON)', { property: 'plan', op: 'equals', value: 'pro' });
    const bad = { type: 'scheduled', at: '25:00' };
    await fillJson(page, 'Schedule (JSON)', bad);
    await page.getByRole('button', { name: 'Create message' }).click();
    const refusal = await page.locator('#msg-schedule-error').textContent();
    const api = await svc.json('/api/v1/messages', 'POST', { name: 'Pros', connection_id: msgHook, definition: { property: 'plan', op: 'equals', value: 'pro' }, schedule: bad });
    expect(api.status).toBe(400);
    expect(refusal).toBe(api.body.error.message);
    expect(await page.getByLabel('Schedule (JSON)').getAttribute('aria-invalid')).toBe('true');
    await fillJson(page, 'Schedule (JSON)', { type: 'asap' });
    await page.getByRole('button', { name: 'Create message' }).click();
    await page.getByRole('heading', { name: 'Pros' }).waitFor();
    await page.getByRole('button', { name: 'Send a test' }).click();
    await page.getByText('Accepted: HTTP 200').waitFor();
    expect(hits('/msg').some((r) => r.headers['x-cohortcast-test'] === 'true')).toBe(true);
    const run = page.locator('#runs ~ div tbody tr').first();
    await expect.poll(async () => (await run.count()) && (await run.locator('td').nth(3).textContent()), { timeout: 15_000 }).toBe('3');
    await page.reload();
    const recipients = page.locator('#recipients ~ div.table-wrap tbody tr');
    await expect.poll(() => recipients.evaluateAll((rows: HTMLTableRowElement[]) => rows.map((r) => `${r.cells[0]!.textContent} ${r.cells[1]!.textContent}`)), { timeout: 10_000 }).toEqual(['ada sent', 'bo sent', 'cy sent']);
    // A recipient's batch: its form body shown decoded, the users' JSON laid out.
    await recipients.first().locator('a[href^="#/deliveries/"]').click();
    await page.getByRole('heading', { name: /^Delivery #\d+$/ }).waitFor();
    const body = await page.getByLabel('Body', { exact: true }).textContent();
    expect(body).toMatch(/^users =\n\[/);
    expect(body).toContain('"$distinct_id": "ada"');
    await page.goBack();
    await page.getByRole('heading', { name: 'Pros' }).waitFor();

    // Paused from its page, then deleted after a confirmation.
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('button', { name: 'Enable' }).waitFor();
    expect((await svc.json(`/api/v1/messages/${page.url().split('/').at(-1)}`)).body.enabled).toBe(false);
    await page.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('button', { name: 'Yes, delete' }).click();
    await page.getByRole('heading', { name: 'Webhook messages' }).waitFor();
    expect((await svc.json('/api/v1/messages')).body.results).toEqual([]);
    expect(consoleErrors).toEqual([]);
    await page.close();
  }, 30_000);
});
