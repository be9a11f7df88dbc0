import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RETENTION_KIND } from '../../src/retention/pruner.js';
import { HAVE_CHROMIUM, launchBrowser, openDashboard } from '../helpers/browser.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The connection and delivery pages in Chromium, against a real service and a real receiver, on the
 * database under test: a connection edited (the API's refusal shown at the form), its secret
 * rotated (shown once), deliveries that fail for real found in the list filtered by state, their
 * attempts with the receiver's answers, one retried and one recovered once the receiver is back,
 * and the connection's health counting it all; then a connection a 410 disabled enabled again, and
 * a delivery whose body retention removed refused a retry in the API's words. No page logs an error.
 */
let svc: TestService;
let receiver: Receiver;
let browser: Browser;
let down = true;
const MAINTENANCE = '{"error":"down for maintenance"}';

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  receiver = await startReceiver(() => (down ? { status: 500, body: MAINTENANCE } : { status: 200, body: '{"ok":true}' }));
  svc = await startTestService((config) => {
    config.delivery.allowHttp = true;
    config.delivery.allowedNetworks = ['127.0.0.0/8'];
    config.delivery.pollIntervalMs = 20;
    // Three attempts a few milliseconds apart, then the delivery has failed.
    config.delivery.standardSchedule = [0, 5, 5];
    config.delivery.jitter = 0;
  });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await svc?.close();
  await receiver?.close();
});

const deliveryState = async (id: number) => (await svc.json<{ state: string }>(`/api/v1/deliveries/${id}`)).body.state;

describe.skipIf(!HAVE_CHROMIUM)('connections and deliveries in a browser', () => {
  it('edits a connection, rotates its secret, and follows failed deliveries to their retry and recovery', async () => {
    const { page, consoleErrors } = await openDashboard(browser, svc.url, { secret: svc.project.secret, expectedStatuses: [400] });
    page.setDefaultTimeout(10_000);
    const menu = page.getByRole('navigation', { name: 'Pages' });
    await menu.getByRole('link', { name: 'Connections' }).click();
    await page.getByLabel('Name').fill('CRM');
    await page.getByLabel('URL').fill(`${receiver.origin}/first`);
    await page.getByRole('button', { name: 'Create' }).click();
    const firstSecret = await page.getByTestId('signing-secret').textContent();
    await page.getByRole('link', { name: 'CRM', exact: true }).click();
    await page.getByRole('heading', { name: 'Connection “CRM”' }).waitFor();
    const id = Number(/#\/connections\/(\d+)/.exec(page.url())![1]);

    // Edit: a private address is refused with the API's own words, at the form; a good URL is saved.
    await page.getByLabel('URL', { exact: true }).fill('https://10.1.2.3/hook');
    await page.getByRole('button', { name: 'Save' }).click();
    const refusal = await page.locator('form[aria-labelledby="edit-h"] .error').textContent();
    const api = await svc.json(`/api/v1/connections/${id}`, 'PATCH', { url: 'https://10.1.2.3/hook' });
    expect(api.status).toBe(400);
    expect(refusal).toBe(api.body.error.message);
    await page.getByLabel('URL', { exact: true }).fill(receiver.url);
    await page.getByLabel('Timeout (ms)').fill('2500');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved.').waitFor();
    await page.locator('dl.facts dd', { hasText: '2500 ms' }).waitFor();
    expect(await page.locator('dl.facts dd.url').textContent()).toBe(receiver.url);

    // Rotate: the new secret is shown once, differs from the first, and says how long the old one signs.
    await page.getByRole('button', { name: 'Rotate the signing secret' }).click();
    const secret = await page.getByTestId('signing-secret').textContent();
    expect(secret).toMatch(/^whsec_/);
    expect(secret).not.toBe(firstSecret);
    expect(await page.getByText('The previous secret also signs until').textContent()).toMatch(/\d/);
    await page.reload();
    await page.getByRole('heading', { name: 'Connection “CRM”' }).waitFor();
    await page.getByText('Previous secret').waitFor();
    expect(await page.content()).not.toContain(secret!);

    // Two real deliveries through the engine's outbox; the receiver answers 500 until each has failed.
    const made = await svc.service.delivery.outbox.enqueue(
      svc.service.store.db,
      [1, 2].map((n) => ({ projectId: svc.project.id, connectionId: id, ownerKind: 'test', ownerId: n, policy: 'standard', contentType: 'application/json', body: `{"n":${n}}` })),
    );
    svc.service.delivery.dispatcher.wake(true);
    await waitFor('both deliveries to fail', async () => ((await deliveryState(made[0]!.id)) === 'failed' && (await deliveryState(made[1]!.id)) === 'failed' ? true : undefined));

    // The list, filtered by state through the form: the filter lands in the URL.
    await menu.getByRole('link', { name: 'Deliveries' }).click();
    await page.getByRole('heading', { name: 'Deliveries' }).waitFor();
    await page.getByLabel('State').selectOption('failed');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.waitForURL(/#\/deliveries\?state=failed$/);
    const rows = page.locator('tbody tr');
    await rows.first().waitFor();
    expect(await rows.count()).toBe(2);
    expect(await rows.first().textContent()).toContain('HTTP 500');
    // A time filter goes into the URL as an instant, and the API applies it.
    await page.getByLabel('Made from').fill('2099-06-15T12:00');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.waitForURL(/#\/deliveries\?state=failed&since=2099-06-15T\d\d%3A\d\d%3A00\.000Z$/);
    await page.getByText('No delivery matches.').waitFor();
    await page.goBack();
    await rows.first().waitFor();

    // One delivery: its body and three attempts, each with the receiver's status and reply.
    await page.getByRole('link', { name: `#${made[0]!.id}`, exact: true }).click();
    await page.getByRole('heading', { name: `Delivery #${made[0]!.id}` }).waitFor();
    expect(await page.getByLabel('Body', { exact: true }).textContent()).toContain('"n": 1');
    const attempts = page.locator('article.attempt');
    expect(await attempts.count()).toBe(3);
    for (let i = 0; i < 3; i++) {
      expect(await attempts.nth(i).locator('h3').textContent()).toMatch(/HTTP 500/);
      expect(await attempts.nth(i).locator('.json').textContent()).toContain('down for maintenance');
    }
    expect(await attempts.nth(2).locator('h3').textContent()).toContain('exhausted');

    // The receiver is back: a retry from the page succeeds, as a fourth attempt.
    down = false;
    await page.getByRole('button', { name: 'Retry' }).click();
    await page.getByText('Back in the queue').waitFor();
    await page.locator('dl.facts .badge', { hasText: 'succeeded' }).waitFor({ timeout: 10_000 });
    await attempts.nth(3).waitFor();
    expect(await attempts.nth(3).locator('h3').textContent()).toMatch(/Attempt 4: HTTP 200/);

    // The other one, recovered from its connection's page by time window.
    await page.getByRole('link', { name: 'CRM', exact: true }).click();
    await page.getByRole('heading', { name: 'Connection “CRM”' }).waitFor();
    await page.getByLabel('Failed from').fill('2020-01-01T00:00');
    await page.getByRole('button', { name: 'Recover', exact: true }).click();
    await page.getByText('1 delivery sent back to the queue.').waitFor();
    await waitFor('the recovered delivery to succeed', async () => ((await deliveryState(made[1]!.id)) === 'succeeded' ? true : undefined));

    // Health over the window chosen (kept in the URL): 2 of 8 attempts succeeded, the last errors listed.
    await page.getByLabel('Over', { exact: true }).selectOption('7d');
    await page.waitForURL(/\?window=7d$/);
    await page.getByText('2 of 8 attempts').waitFor();
    expect(await page.getByTestId('success-rate').textContent()).toBe('25%');
    expect(await page.locator('section[aria-labelledby="health-h"] tbody tr').count()).toBe(6);
    expect(consoleErrors).toEqual([]);
    await page.close();
  });

  it('enables a connection a 410 disabled, and shows why a delivery without its body cannot go again', async () => {
    // A service of its own: its retention removes the body of a finished delivery at once.
    const gone = await startReceiver(() => ({ status: 410, body: 'gone' }));
    const own = await startTestService((config) => {
      config.delivery.allowHttp = true;
      config.delivery.allowedNetworks = ['127.0.0.0/8'];
      config.delivery.pollIntervalMs = 20;
      config.retention.bodiesMs = 1;
    });
    try {
      const c = (await own.json<{ id: number }>('/api/v1/connections', 'POST', { name: 'Gone', url: gone.url })).body.id;
      const [d] = await own.service.delivery.outbox.enqueue(own.service.store.db, [{ projectId: own.project.id, connectionId: c, ownerKind: 'test', ownerId: 1, policy: 'standard', contentType: 'application/json', body: '{}' }]);
      own.service.delivery.dispatcher.wake(true);
      await waitFor('the 410 to disable the connection', async () => ((await own.json<{ state: string }>(`/api/v1/connections/${c}`)).body.state === 'disabled' ? true : undefined));
      await own.service.scheduler.runNow(RETENTION_KIND, '');
      await waitFor('retention to remove the body', async () => ((await own.json<{ body_pruned_at: string | null }>(`/api/v1/deliveries/${d!.id}`)).body.body_pruned_at ?? undefined));

      const { page, consoleErrors } = await openDashboard(browser, own.url, { secret: own.project.secret, expectedStatuses: [409] });
      page.setDefaultTimeout(10_000);
      await page.goto(`${own.url}/#/deliveries/${d!.id}`);
      await page.getByText('Retention removed its body on').waitFor();
      await page.getByRole('button', { name: 'Retry' }).click();
      const refusal = await page.locator('.actions .error').textContent();
      expect(refusal).toMatch(/cannot be sent again: retention removed its body/);
      expect(refusal).toBe((await own.json(`/api/v1/deliveries/${d!.id}/retry`, 'POST')).body.error.message);

      await page.getByRole('link', { name: 'Gone', exact: true }).click();
      await page.getByText(/disabled.*since.*410/).waitFor();
      await page.getByRole('button', { name: 'Enable again' }).click();
      await page.getByText('Enabled: its waiting deliveries go again.').waitFor();
      await page.locator('dl.facts .badge', { hasText: 'active' }).waitFor();
      expect((await own.json<{ state: string }>(`/api/v1/connections/${c}`)).body.state).toBe('active');
      expect(consoleErrors).toEqual([]);
      await page.close();
    } finally {
      await own.close();
      await gone.close();
    }
  });
});
