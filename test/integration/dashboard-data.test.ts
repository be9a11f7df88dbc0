import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_CHROMIUM, launchBrowser, openDashboard } from '../helpers/browser.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Events and profiles in the dashboard (Chromium, embedded database): profiles searched by a
 * property, one profile with its events newest first and paged, events searched by name and
 * property, the search kept in the URL across a reload.
 */
let svc: TestService;
let browser: Browser;

const post = (path: string, body: unknown) => fetch(`${svc.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.text());

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  svc = await startTestService();
  const token = svc.project.token;
  const people = ['ada', 'bob', 'cy'].map((id, i) => ({ $token: token, $distinct_id: id, $set: { plan: i === 1 ? 'free' : 'pro', $email: `${id}@example.com` } }));
  expect(await post('/engage', people)).toBe('1');
  const base = Date.now() - 3_600_000;
  // 55 page views by ada (more than a page of 50), one purchase each by bob and cy.
  const events = [
    ...Array.from({ length: 55 }, (_, i) => ({ event: 'Viewed', properties: { token, distinct_id: 'ada', time: base + i * 1000, $insert_id: `v${i}`, n: i } })),
    { event: 'Purchased', properties: { token, distinct_id: 'bob', time: base + 100_000, $insert_id: 'p1', amount: 5 } },
    { event: 'Purchased', properties: { token, distinct_id: 'cy', time: base + 200_000, $insert_id: 'p2', amount: 9 } },
  ];
  expect(await post('/track', events)).toBe('1');
  await waitFor('the events to be stored', async () => ((await svc.json('/api/v1/events?event=Purchased')).body.results.length === 2 ? true : undefined));
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await svc?.close();
});

describe.skipIf(!HAVE_CHROMIUM)('events and profiles in the dashboard', () => {
  it('searches profiles, shows one with its events newest first, and searches events', async () => {
    const { page, consoleErrors } = await openDashboard(browser, svc.url, { secret: svc.project.secret });
    const nav = page.getByRole('navigation', { name: 'Pages' });
    /** Waits until the table shows exactly `n` rows (a new search replaces the old list when it answers). */
    const rows = (n: number) => page.waitForFunction((count) => document.querySelectorAll('tbody tr').length === count, n);

    await nav.getByRole('link', { name: 'Profiles' }).click();
    await page.getByRole('link', { name: 'bob', exact: true }).waitFor();
    await page.getByLabel('Property').fill('plan');
    await page.getByLabel('equals').fill('pro');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForURL(/#\/profiles\?property=plan&value=pro$/);
    await rows(2);
    expect(await page.locator('tbody tr td:first-child').allTextContents()).toEqual(['ada', 'cy']);
    // The search is in the URL: a reload shows the same list.
    await page.reload();
    await rows(2);
    expect(await page.locator('tbody tr td:first-child').allTextContents()).toEqual(['ada', 'cy']);

    await page.getByRole('link', { name: 'ada', exact: true }).click();
    await page.getByRole('heading', { name: 'Profile ada' }).waitFor();
    expect(await page.locator('dl.facts').textContent()).toContain('ada@example.com');
    await page.getByRole('heading', { name: 'Recent events' }).waitFor();
    await page.locator('tbody tr').first().waitFor();
    // 20 a page, newest first: n = 54 … 35, then the next page from 34.
    const firstPage = await page.locator('tbody tr td:nth-child(3)').allTextContents();
    expect(firstPage).toHaveLength(20);
    expect(JSON.parse(firstPage[0]!).n).toBe(54);
    expect(JSON.parse(firstPage[19]!).n).toBe(35);
    await page.getByRole('navigation', { name: 'Event pages' }).getByRole('button', { name: 'Next' }).click();
    await page.getByText('Page 2').waitFor();
    await page.locator('tbody tr td:nth-child(3)', { hasText: '"n": 34' }).first().waitFor();
    expect(JSON.parse((await page.locator('tbody tr td:nth-child(3)').first().textContent())!).n).toBe(34);

    await nav.getByRole('link', { name: 'Events' }).click();
    await page.getByLabel('Event name').fill('Purchased');
    await page.getByLabel('Property').fill('amount');
    await page.getByLabel('equals').fill('9');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForURL(/event=Purchased/);
    await rows(1);
    await page.getByRole('link', { name: 'cy', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Clear' }).click();
    await page.waitForURL(/#\/events$/);
    await page.getByRole('navigation', { name: 'Event pages' }).waitFor();
    await rows(50);
    expect(await page.locator('tbody tr td:nth-child(2)').first().textContent()).toBe('Purchased');

    expect(consoleErrors).toEqual([]);
    await page.close();
  });
});
