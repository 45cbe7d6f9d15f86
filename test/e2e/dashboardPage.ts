/**
 * The dashboard in a real Chromium, for the suites that drive it: a watched page (console
 * errors, page errors, CSP violations, every URL requested), signing in, opening a tab,
 * and screenshots at a desktop and a narrow width.
 */
import { mkdir } from 'node:fs/promises';
import type { Browser, Page } from 'playwright-core';
import { expect } from 'vitest';
import { launchChromium } from '../helpers/chromium.ts';

export const DESKTOP = { width: 1360, height: 1000 };
export const NARROW = { width: 420, height: 900 };
export const SCREENS = 'test-results/screens';

export const launch = launchChromium;

export interface Watched {
  page: Page;
  /** Console errors, uncaught errors and CSP violations, in order. */
  problems: string[];
  /** Every URL the page requested. */
  requests: string[];
}

export async function openPage(browser: Browser, viewport = DESKTOP): Promise<Watched> {
  const context = await browser.newContext({ viewport, locale: 'en-US', timezoneId: 'UTC' });
  const page = await context.newPage();
  const watched: Watched = { page, problems: [], requests: [] };
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI}`);
    });
  });
  page.on('console', (message) => {
    if (message.type() === 'error') watched.problems.push(message.text());
  });
  page.on('pageerror', (error) => watched.problems.push(`pageerror: ${error.message}`));
  page.on('request', (request) => watched.requests.push(request.url()));
  return watched;
}

export async function signIn(page: Page, url: string, secret: string, programName: string) {
  await page.goto(`${url}/admin`);
  await page.getByTestId('signin-key').fill(secret);
  await page.getByTestId('signin-submit').click();
  await page.getByTestId('app').waitFor({ state: 'visible' });
  await expect.poll(() => page.getByTestId('program-name').textContent()).toBe(programName);
}

export async function openTab(page: Page, tab: string) {
  await page.getByTestId(`tab-${tab}`).click();
  await page.getByTestId(`section-${tab}`).waitFor({ state: 'visible' });
}

/** A full-page screenshot under test-results/screens. */
export async function screenshot(page: Page, name: string) {
  await mkdir(SCREENS, { recursive: true });
  await page.screenshot({ path: `${SCREENS}/${name}.png`, fullPage: true });
}

/** Problems other than the HTTP failures a test provoked on purpose (Chromium logs those as "Failed to load resource"). */
export function unexpected(watched: Watched, expectedStatuses: number[] = []): string[] {
  return watched.problems.filter(
    (text) => !expectedStatuses.some((status) => text.includes(`Failed to load resource: the server responded with a status of ${status}`)),
  );
}

/** Every request stays on the app's origin, and the key is never in a URL. */
export function expectCleanRequests(watched: Watched, appUrl: string, secret: string) {
  for (const url of watched.requests) {
    expect(url, 'every request stays on this origin').toMatch(new RegExp(`^(${appUrl.replace(/[.]/g, '\\.')}/|data:|blob:)`));
    expect(url, 'the key is never in a URL').not.toContain(secret);
  }
}
