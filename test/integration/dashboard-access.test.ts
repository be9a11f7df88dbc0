import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_CHROMIUM, launchBrowser, openDashboard } from '../helpers/browser.js';
import { startTestService, type TestService } from '../helpers/service.js';

/**
 * Every page of the dashboard, in Chromium: it renders with no console error, every field has a
 * label, text has readable contrast (WCAG AA: 4.5:1, 3:1 for large text), and at phone width
 * nothing but a table's own wrapper scrolls sideways. Signing in and moving between pages work
 * from the keyboard alone.
 */
let svc: TestService;
let browser: Browser;

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  svc = await startTestService();
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await svc?.close();
});

/** What on the page breaks the basics: unlabelled fields, text below AA contrast, a page wider than the screen. */
function problems(page: Page) {
  return page.evaluate(() => {
    const found: string[] = [];
    const describe = (el: Element) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className ? `.${String(el.className).split(' ').join('.')}` : ''}`;
    for (const field of document.querySelectorAll('input, select, textarea')) {
      const f = field as HTMLInputElement;
      if (f.type === 'hidden' || f.offsetParent === null) continue;
      if (f.labels?.length === 0 && !f.getAttribute('aria-label') && !f.getAttribute('aria-labelledby')) found.push(`no label: ${describe(f)}`);
    }
    const rgb = (c: string) => (c.match(/[\d.]+/g) ?? []).map(Number);
    const luminance = ([r, g, b]: number[]) => {
      const lin = (v: number) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
      return 0.2126 * lin(r!) + 0.7152 * lin(g!) + 0.0722 * lin(b!);
    };
    const background = (el: Element | null): number[] => {
      for (; el; el = el.parentElement) {
        const c = rgb(getComputedStyle(el).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3]! > 0)) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    for (const el of document.querySelectorAll('body *')) {
      const hasText = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent!.trim() !== '');
      if (!hasText || (el as HTMLElement).offsetParent === null) continue;
      const style = getComputedStyle(el);
      if (style.visibility === 'hidden' || Number(style.opacity) < 1) continue;
      const [fg, bg] = [luminance(rgb(style.color).slice(0, 3)), luminance(background(el))];
      const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
      const large = parseFloat(style.fontSize) >= 24 || (parseFloat(style.fontSize) >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) found.push(`contrast ${ratio.toFixed(2)}: ${describe(el)} "${el.textContent!.trim().slice(0, 30)}"`);
    }
    if (document.documentElement.scrollWidth > window.innerWidth + 1) found.push(`the page is ${document.documentElement.scrollWidth}px wide in a ${window.innerWidth}px window`);
    return found;
  });
}

/** Waits until the page's own data has loaded (nothing says "Loading…"). */
async function settled(page: Page) {
  await page.locator('main h1').first().waitFor();
  await page.waitForFunction(() => !document.querySelector('main')?.textContent?.includes('Loading…'));
}

describe.skipIf(!HAVE_CHROMIUM)('the dashboard’s basics on every page', () => {
  it('signs in and moves between pages by keyboard alone', async () => {
    const { page, consoleErrors } = await openDashboard(browser, svc.url);
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('secret');
    await page.keyboard.type(svc.project.secret);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    // The first Tab reaches "Skip to content", the next ones the menu, in order.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Connections');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'New connection' }).waitFor();
    expect(page.url()).toMatch(/#\/connections$/);
    expect(consoleErrors).toEqual([]);
    await page.close();
  });

  for (const [width, height] of [[1280, 800], [390, 844]] as const) {
    it(`every page at ${width}×${height}: no console error, labelled fields, readable contrast, no sideways page`, async () => {
      const { page, consoleErrors } = await openDashboard(browser, svc.url, { secret: svc.project.secret, width, height });
      const links = await page.getByRole('navigation', { name: 'Pages' }).getByRole('link').evaluateAll((as) => as.map((a) => [a.textContent!, (a as HTMLAnchorElement).hash]));
      expect(links.length).toBeGreaterThanOrEqual(11);
      const found: Record<string, string[]> = {};
      for (const [name, hash] of links) {
        await page.evaluate((h) => (location.hash = h), hash!);
        await settled(page);
        // Forms folded away in a disclosure are checked too.
        for (const details of await page.locator('main details:not([open]) > summary').all()) await details.click();
        const p = await problems(page);
        if (p.length) found[name!] = p;
      }
      expect(found).toEqual({});
      expect(consoleErrors).toEqual([]);
      await page.close();
    });
  }
});
