import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_CHROMIUM, launchBrowser, openDashboard } from '../helpers/browser.js';
import { startReceiver, type Receiver, type Reply } from '../helpers/receiver.js';
import { startTestService, type TestService } from '../helpers/service.js';

/**
 * The Cohorts and Cohort syncs pages in Chromium, on the database the suite runs against, over a real receiver:
 * a definition that is not JSON, then one the API refuses, each shown at its line; the cohort's
 * count and members, anew after a change; a sync made in the page whose first run reaches the
 * receiver; a refusal from the receiver that pauses it (its message on the page, Run now refused
 * by the button), and Resume that finishes the run.
 */
let svc: TestService;
let receiver: Receiver;
let browser: Browser;
let answer: Reply = { status: 200, body: '{"status":"success"}' };

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  receiver = await startReceiver(() => answer);
  svc = await startTestService((config) => {
    config.delivery.allowHttp = true;
    config.delivery.allowedNetworks = ['127.0.0.0/8'];
    config.delivery.pollIntervalMs = 50;
    config.delivery.cohortSyncSchedule = [0, 10, 20, 30, 40, 50];
    config.delivery.jitter = 0;
    config.scheduler.pollIntervalMs = 50;
  });
  const profiles = ['ann', 'bob', 'cat', 'dan'].map((id, i) => ({ $token: svc.project.token, $distinct_id: id, $set: { plan: i < 3 ? 'pro' : 'free', $email: `${id}@example.com` } }));
  const engage = await fetch(`${svc.url}/engage?verbose=1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(profiles) });
  expect(await engage.json()).toEqual({ status: 1, error: null });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await svc?.close();
  await receiver?.close();
});

/** The distinct ids the receiver was sent with `action`, in order. */
const sent = (action: string) =>
  receiver.received.flatMap((r) => {
    const body = JSON.parse(r.body) as { action: string; parameters: { members: { mixpanel_distinct_id: string }[] } };
    return body.action === action ? body.parameters.members.map((m) => m.mixpanel_distinct_id) : [];
  });

describe.skipIf(!HAVE_CHROMIUM)('the cohorts and cohort syncs pages', () => {
  it('points at a definition’s mistake, shows count and members, and syncs through a pause and a resume', async () => {
    const { page, consoleErrors } = await openDashboard(browser, svc.url, { secret: svc.project.secret, expectedStatuses: [400, 409] });
    await page.getByRole('link', { name: 'Cohorts', exact: true }).click();
    await page.getByRole('heading', { name: 'New cohort' }).waitFor();
    await page.getByLabel('Name').fill('Pros');
    const editor = page.getByLabel('Definition (JSON)');
    const problem = page.locator('.definition-problem');

    // Not JSON: found in the browser, at its line, nothing sent.
    await editor.fill('{\n  "and": [\n    { "property": "plan", "op": "equals", "value": "pro" },\n  ]\n}');
    await page.getByRole('button', { name: 'Create' }).click();
    expect(await problem.locator('p').textContent()).toBe('Line 4: Not valid JSON: expected a value: an object, a list, a string, a number, true, false or null, found "]".');
    expect(await problem.locator('mark').textContent()).toBe('   4    ]');
    expect(await problem.locator('pre').textContent()).toContain(`   4    ]\n${' '.repeat(8)}^\n`);

    // JSON the API refuses: its message, at the pointer it gives, the line naming it marked.
    const wrong = '{\n  "and": [\n    { "property": "plan", "op": "equals", "value": "pro" },\n    { "property": "plan", "op": "is", "value": "pro" }\n  ]\n}';
    await editor.fill(wrong);
    await page.getByRole('button', { name: 'Create' }).click();
    await problem.getByText('at /and/1/op').waitFor();
    const refusal = await svc.json('/api/v1/cohorts', 'POST', { name: 'Pros', definition: JSON.parse(wrong) });
    expect(refusal.body.error.path).toBe('/definition/and/1/op');
    expect(await problem.locator('p').textContent()).toBe(`Line 4, at /and/1/op: ${refusal.body.error.message}`);
    expect(await problem.locator('mark').textContent()).toBe('   4      { "property": "plan", "op": "is", "value": "pro" }');
    // The caret stands under "op" (column 27 of line 4, after the 6 columns of the line number).
    expect(await problem.locator('pre').textContent()).toContain(`\n${' '.repeat(32)}^\n`);
    expect(await editor.getAttribute('aria-invalid')).toBe('true');

    await editor.fill(wrong.replace('"is"', '"equals"'));
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('heading', { name: 'Cohort: Pros' }).waitFor();
    const count = page.getByTestId('cohort-count');
    expect(await count.textContent()).toBe('3');
    const members = page.locator('section[aria-labelledby="members-heading"] tbody tr td:first-child');
    await members.first().waitFor();
    expect(await members.allTextContents()).toEqual(['ann', 'bob', 'cat']);
    const cohortUrl = page.url();

    // A change is saved in place; the count and members are read anew.
    await editor.fill('{ "property": "plan", "op": "set" }');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved.').waitFor();
    await page.getByTestId('cohort-count').getByText('4').waitFor();
    expect(await members.allTextContents()).toEqual(['ann', 'bob', 'cat', 'dan']);

    // A sync made in the page: its first run sends every member.
    const connection = await svc.json('/api/v1/connections', 'POST', { name: 'Receiver', url: receiver.url });
    expect(connection.status).toBe(201);
    await page.getByRole('link', { name: 'Cohort syncs' }).click();
    await page.getByRole('heading', { name: 'New cohort sync' }).waitFor();
    await page.getByLabel('Cohort', { exact: true }).selectOption({ label: 'Pros (1)' });
    await page.getByLabel('Connection').selectOption({ label: 'Receiver (1)' });
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('heading', { name: /^Cohort sync \d+$/ }).waitFor();
    const syncUrl = page.url();
    const newest = page.locator('table.runs tbody tr').first();
    await newest.getByText('succeeded').waitFor({ timeout: 10_000 });
    expect(await newest.textContent()).toMatch(/1 of 1.*4.*0/);
    expect(sent('members')).toEqual(['ann', 'bob', 'cat', 'dan']);

    // The receiver refuses: Run now, the run pauses the sync with the receiver's own message.
    answer = { status: 400, body: '{"status":"failure","error":{"message":"list quota exceeded","code":400}}' };
    await page.getByRole('button', { name: 'Run now' }).click();
    const reason = page.getByTestId('state-reason');
    await reason.waitFor({ timeout: 10_000 });
    expect(await reason.textContent()).toMatch(/list quota exceeded/);
    expect(await page.locator('dl.facts .badge').first().textContent()).toBe('paused');
    await newest.getByText('paused').waitFor();

    // Run now while paused: the API's refusal by the button.
    await page.getByRole('button', { name: 'Run now' }).click();
    const runRefusal = page.locator('.actions', { has: page.getByRole('button', { name: 'Run now' }) }).getByRole('alert');
    expect(await runRefusal.textContent()).toMatch(/is paused .*resume/);

    // The list shows the pause and why.
    await page.getByRole('link', { name: 'All cohort syncs' }).click();
    const row = page.locator('table.syncs tbody tr').first();
    await row.getByText('list quota exceeded', { exact: false }).waitFor();
    expect(await row.locator('.badge').textContent()).toBe('paused');
    expect(await row.getByRole('link', { name: 'Pros' }).count()).toBe(1);

    // The receiver takes it again: Resume finishes the paused run.
    answer = { status: 200, body: '{"status":"success"}' };
    const before = receiver.received.length;
    await page.goto(syncUrl);
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByText('Resumed.').waitFor();
    await newest.getByText('succeeded').waitFor({ timeout: 10_000 });
    await page.locator('dl.facts .badge', { hasText: 'active' }).waitFor();
    expect(await page.getByTestId('state-reason').count()).toBe(0);
    expect(receiver.received.length).toBeGreaterThan(before);

    // The cohort page names the sync that uses it.
    await page.goto(cohortUrl);
    await page.getByRole('link', { name: /^Sync \d+$/ }).waitFor();
    expect(consoleErrors).toEqual([]);
    await page.close();
  });
});
