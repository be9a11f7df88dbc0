import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_CHROMIUM, launchBrowser, openDashboard } from '../helpers/browser.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startTestService, type TestService } from '../helpers/service.js';

/**
 * The dashboard in Debian's Chromium (headless), on the embedded database: signing in (a wrong
 * secret refused), the overview, and connections: a refused URL shows the API's own message where
 * the person typed it, a good one shows its signing secret once, and a test reaches a real receiver.
 * No page logs an error (the browser's own line for a refusal the test asked for excepted).
 */
let svc: TestService;
let receiver: Receiver;
let browser: Browser;

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  receiver = await startReceiver();
  svc = await startTestService((config) => {
    config.delivery.allowHttp = true;
    config.delivery.allowedNetworks = ['127.0.0.0/8'];
  });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await svc?.close();
  await receiver?.close();
});

describe.skipIf(!HAVE_CHROMIUM)('the dashboard in a browser', () => {
  it('refuses a wrong secret, signs in with the right one, creates and tests a connection', async () => {
    const { page, consoleErrors } = await openDashboard(browser, svc.url, { expectedStatuses: [400, 401] });
    await page.getByLabel('Project secret').fill('not-the-secret');
    await page.getByRole('button', { name: 'Sign in' }).click();
    expect(await page.getByRole('alert').textContent({ timeout: 10_000 })).toMatch(/That secret was refused/);

    await page.getByLabel('Project secret').fill(svc.project.secret);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();

    await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Connections' }).click();
    await page.getByRole('heading', { name: 'New connection' }).waitFor();
    await page.getByLabel('Name').fill('Private');
    await page.getByLabel('URL').fill('https://10.1.2.3/hook');
    await page.getByRole('button', { name: 'Create' }).click();
    const refusal = await page.locator('form .error').textContent({ timeout: 5000 });
    const api = await svc.json('/api/v1/connections', 'POST', { name: 'Private', url: 'https://10.1.2.3/hook' });
    expect(api.status).toBe(400);
    expect(refusal).toBe(api.body.error.message);

    await page.getByLabel('Name').fill('Receiver');
    await page.getByLabel('URL').fill(receiver.url);
    await page.getByRole('button', { name: 'Create' }).click();
    const secret = await page.getByTestId('signing-secret').textContent();
    expect(secret).toMatch(/^whsec_/);
    await page.getByRole('cell', { name: 'Receiver', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Test Receiver' }).click();
    const row = page.locator('tbody tr', { hasText: 'Delivered:' });
    await row.waitFor({ timeout: 10_000 });
    expect(await row.textContent()).toMatch(/Receiver.*Delivered: HTTP 200 in \d+ ms/);
    expect(receiver.received.some((r) => r.path === '/hook')).toBe(true);

    // Reloaded, the tab is still signed in on the same page, and the signing secret is shown nowhere again.
    await page.reload();
    await page.getByRole('cell', { name: 'Receiver', exact: true }).waitFor();
    await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    const eventsCard = page.locator('.card', { hasText: 'Events this hour' }).locator('.value');
    expect(await eventsCard.textContent()).toBe('0');
    // uPlot draws each chart's canvas in an effect, just after the page renders.
    await page.locator('.chart canvas').nth(2).waitFor();
    expect(await page.locator('.chart canvas').count()).toBe(3);

    // The overview refreshes itself: events tracked now appear without a reload.
    const now = Date.now();
    const events = [1, 2].map((i) => ({ event: 'Opened', properties: { token: svc.project.token, distinct_id: `d${i}`, time: now, $insert_id: `dash-${i}` } }));
    expect(await (await fetch(`${svc.url}/track`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) })).text()).toBe('1');
    await page.locator('.card', { hasText: 'Events this hour' }).locator('.value', { hasText: /^2$/ }).waitFor({ timeout: 15_000 });
    expect(await page.content()).not.toContain(secret!);
    expect(consoleErrors).toEqual([]);
    await page.close();
  });
});
