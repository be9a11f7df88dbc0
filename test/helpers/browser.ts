import fs from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

/**
 * Debian's Chromium (headless) driven by playwright-core, for the dashboard's tests. Without a
 * Chromium the tests skip with a warning naming what to install, unless COHORTCAST_TEST_REQUIRE_CHROMIUM=1.
 */
export const CHROMIUM = process.env.COHORTCAST_TEST_CHROMIUM ?? '/usr/bin/chromium';
export const HAVE_CHROMIUM = fs.existsSync(CHROMIUM) || process.env.COHORTCAST_TEST_REQUIRE_CHROMIUM === '1';
if (!HAVE_CHROMIUM) console.warn(`dashboard tests skipped: no Chromium at ${CHROMIUM}. Install it with \`apt-get install chromium\` (Debian) or point COHORTCAST_TEST_CHROMIUM at one.`);

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export interface DashboardPage {
  page: Page;
  /** Errors the page logged or threw; the browser's own line for an HTTP status in `expectedStatuses` is left out. */
  consoleErrors: string[];
}

/**
 * A new tab on the dashboard at `url`, signed in with `secret` through the sign-in form when given.
 * `expectedStatuses` are the 4xx answers the test provokes on purpose (the browser logs each one).
 */
export async function openDashboard(browser: Browser, url: string, { secret, expectedStatuses = [], width = 1280, height = 800 }: { secret?: string; expectedStatuses?: number[]; width?: number; height?: number } = {}): Promise<DashboardPage> {
  const page = await browser.newPage({ viewport: { width, height } });
  const consoleErrors: string[] = [];
  const expected = new RegExp(`Failed to load resource: the server responded with a status of (${expectedStatuses.join('|') || 'none'}) `);
  page.on('pageerror', (err) => consoleErrors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !expected.test(msg.text())) consoleErrors.push(msg.text());
  });
  await page.goto(`${url}/`);
  if (secret !== undefined) {
    await page.getByLabel('Project secret').fill(secret);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('navigation', { name: 'Pages' }).waitFor();
  }
  return { page, consoleErrors };
}
