/**
 * The README's demo walkthrough in a real Chromium, against the app as `npm start`
 * makes it on an empty embedded database (the demo seeded, no operator token): the
 * collector's home page, the referral link, sign up, buy, then the dashboard signed in
 * with the demo's secret key showing the attributed referral and the reward.
 *
 * The snippet sends nothing for automated browsers (`navigator.webdriver`), as it
 * should. So the walkthrough runs with `navigator.webdriver` made false by an init
 * script (the snippet has no opt-in of its own), and a separate test keeps Chromium's
 * true value and checks that the demo then says nothing was sent, and nothing was.
 * Screenshots of each step, at desktop and phone width, go to test-results/screens/.
 */
import { mkdir } from 'node:fs/promises';
import type { Knex } from 'knex';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemo, type DemoSeed } from '../../collector/src/demo.ts';
import { createLogger } from '../../collector/src/logger.ts';
import type { RewardResponse } from '../../shared/responses.ts';
import type { TestApp } from '../helpers/app.ts';
import { launchChromium } from '../helpers/chromium.ts';
import { expectOk } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';

const SCREENS = 'test-results/screens';
const VIEWPORTS = {
  desktop: { width: 1280, height: 900 },
  phone: { width: 390, height: 844 },
} as const;
type Viewport = keyof typeof VIEWPORTS;

interface Opened {
  page: Page;
  /** Console errors and uncaught errors. */
  problems: string[];
  /** The JSON bodies the page POSTed to /v1/events. */
  events: Array<Record<string, any>>;
}

describe('the README demo walkthrough (Chromium, pglite)', () => {
  let db: Knex;
  let api: TestApp;
  let seed: DemoSeed;
  let browser: Browser;

  // As `npm start` on an empty ./data: no operator token, the demo program created.
  useTestApp('pglite', (suite) => ({ db, api } = suite), { env: { ADMIN_TOKEN: '' } });
  beforeAll(async () => {
    const terminal = { isTTY: true, write: () => true };
    seed = (await seedDemo(db, api.config, createLogger('silent'), terminal)) as DemoSeed;
    expect(seed.link).toBe(`${api.url}/r/DEMO`);
    browser = await launchChromium();
    await mkdir(SCREENS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
  });

  async function open(viewport: Viewport, { automated }: { automated: boolean }): Promise<Opened> {
    const context = await browser.newContext({ viewport: VIEWPORTS[viewport], locale: 'en-US', timezoneId: 'UTC' });
    if (!automated) await context.addInitScript(() => Object.defineProperty(Navigator.prototype, 'webdriver', { get: () => false }));
    const page = await context.newPage();
    const opened: Opened = { page, problems: [], events: [] };
    page.on('console', (message) => message.type() === 'error' && opened.problems.push(message.text()));
    page.on('pageerror', (error) => opened.problems.push(`pageerror: ${error.message}`));
    page.on('request', (request) => {
      if (request.method() === 'POST' && new URL(request.url()).pathname === '/v1/events') {
        opened.events.push(JSON.parse(request.postData() ?? 'null'));
      }
    });
    return opened;
  }

  const shot = (page: Page, name: string) => page.screenshot({ path: `${SCREENS}/${name}.png`, fullPage: true });
  const result = (page: Page) => page.locator('#result');
  const secret = () => ({ auth: seed.keys.secret });

  it.each(Object.keys(VIEWPORTS) as Viewport[])(
    '%s: home page → /r/DEMO → sign up → buy → the dashboard shows the attributed referral and the reward',
    async (viewport) => {
      const { page, problems, events } = await open(viewport, { automated: false });

      // 1. The collector's home page links the demo and its referral link.
      await page.goto(`${api.url}/`);
      expect(await page.locator('h1').textContent()).toBe('Referral tracker');
      await shot(page, `${viewport}-1-home`);

      // 2. The referral link: recorded, then the demo shop with ?ref=DEMO, and the snippet keeps the code.
      await page.click('a[href="/r/DEMO"]');
      await page.waitForURL(`${api.url}/demo/?ref=DEMO`);
      await expect.poll(() => page.textContent('#referral-state')).toContain('"code": "DEMO"');
      const customer = (await page.locator('.user-id').first().textContent()) as string;
      expect(customer).toMatch(/^visitor-[a-z0-9]+$/);
      await shot(page, `${viewport}-2-landing`);

      // 3. Sign up as this browser's demo customer: the page says the collector recorded it, and it did.
      await page.click('header a[href="signup.html"]');
      await expect.poll(() => page.inputValue('input[name=userId]')).toBe(customer);
      await page.fill('input[name=email]', `friend-${viewport}@example.com`);
      await page.click('button[type=submit]');
      await expect.poll(() => result(page).getAttribute('data-state')).toBe('ok');
      expect(await result(page).textContent()).toContain(
        `Sent referral('signup', { userId: "${customer}" }): the collector recorded the signup (202 Accepted).`,
      );
      expect(await result(page).textContent()).toContain('the collector attributes this user to the referrer');
      await shot(page, `${viewport}-3-signup`);
      const referred = expectOk(await api.get(`/v1/participants/${customer}`, secret()));
      expect(referred.referredBy).toBe('demo-referrer');

      // 4. Buy, as the same customer (one visitor is one customer), following the page's own next step.
      await result(page).locator('a', { hasText: 'buy something' }).click();
      await page.waitForURL(`${api.url}/demo/checkout.html`);
      await expect.poll(() => page.inputValue('input[name=userId]')).toBe(customer);
      expect(await page.inputValue('input[name=amount]')).toBe('4900');
      expect(await page.textContent('#amount-preview')).toBe('= $49.00');
      await expect.poll(() => page.inputValue('input[name=orderId]')).not.toBe('');
      const orderId = await page.inputValue('input[name=orderId]');
      await page.click('button[type=submit]');
      await expect.poll(() => result(page).getAttribute('data-state')).toBe('ok');
      expect(await result(page).textContent()).toContain(
        `Sent referral('purchase', { orderId: "${orderId}", amount: 4900 }): the collector recorded the purchase (202 Accepted).`,
      );
      await shot(page, `${viewport}-4-checkout`);
      const signupEvent = events.find((event) => event.type === 'signup');
      expect(signupEvent).toMatchObject({ code: 'DEMO', user: { id: customer } });
      expect(events.find((event) => event.type === 'purchase')).toMatchObject({ order: { id: orderId, amount: 4900, currency: 'USD' } });

      // The rewards the demo's rules give the referrer: 500 cents of credit for the signup, 20% of 4900 in cash.
      const rewards = expectOk(await api.get('/v1/rewards?participant=demo-referrer&limit=500', secret())).data as RewardResponse[];
      const signupCredit = rewards.find((reward) => reward.eventId === signupEvent?.eventId);
      const purchaseShare = rewards.find((reward) => reward.eventId === orderId);
      expect(signupCredit).toMatchObject({ rule: 'signup-credit', kind: 'credit', amount: 500, currency: 'USD', status: 'pending' });
      expect(purchaseShare).toMatchObject({ rule: 'purchase-share', kind: 'cash', amount: 980, currency: 'USD', status: 'pending' });

      // 5. The dashboard, from the page's link, signed in with the demo's secret key.
      await result(page).locator('a', { hasText: 'the dashboard' }).click();
      await page.waitForURL(`${api.url}/admin`);
      await page.getByTestId('signin-key').fill(seed.keys.secret);
      await page.getByTestId('signin-submit').click();
      await page.getByTestId('app').waitFor({ state: 'visible' });
      await expect.poll(() => page.getByTestId('program-name').textContent()).toBe('Demo shop');
      await page.getByTestId('card-signups-value').waitFor();
      await shot(page, `${viewport}-5-dashboard`);

      await page.getByTestId('tab-referrals').click();
      const referral = page.getByTestId('referral-row').filter({ hasText: customer });
      await referral.waitFor();
      expect(await referral.textContent()).toContain('demo-referrer');
      await shot(page, `${viewport}-6-referrals`);

      await page.getByTestId('tab-rewards').click();
      const share = page.locator(`[data-testid="reward-row"][data-reward-id="${purchaseShare?.id}"]`);
      await share.waitFor();
      expect(await share.getByTestId('reward-amount').textContent()).toContain('$9.80');
      expect(await share.getAttribute('data-status')).toBe('pending');
      const credit = page.locator(`[data-testid="reward-row"][data-reward-id="${signupCredit?.id}"]`);
      expect(await credit.getByTestId('reward-amount').textContent()).toContain('$5.00');
      await shot(page, `${viewport}-7-rewards`);

      expect(problems).toEqual([]);
      await page.context().close();
    },
  );

  it('an automated browser: the demo says nothing was sent and why, and the collector recorded nothing', async () => {
    const { page, problems, events } = await open('desktop', { automated: true });
    expect(await page.evaluate(() => navigator.webdriver)).toBe(true);
    await page.goto(seed.link);
    await page.waitForURL(`${api.url}/demo/?ref=DEMO`);
    await expect.poll(() => page.textContent('#referral-state')).toContain('The snippet is off here: this browser is automated');

    await page.click('header a[href="signup.html"]');
    // The demo fills in the visitor's user id after the page has loaded.
    await expect.poll(() => page.inputValue('input[name=userId]')).not.toBe('');
    const customer = await page.inputValue('input[name=userId]');
    await page.click('button[type=submit]');
    await expect.poll(() => result(page).getAttribute('data-state')).toBe('warn');
    expect(await result(page).textContent()).toBe(
      `Not sent: this browser is automated (navigator.webdriver is true), and the snippet sends nothing for bots. referral('signup', { userId: "${customer}" }) did nothing, and the collector recorded nothing.`,
    );
    await shot(page, 'desktop-automated-signup');

    await page.click('header a[href="checkout.html"]');
    await page.click('button[type=submit]');
    await expect.poll(() => result(page).getAttribute('data-state')).toBe('warn');
    expect(await result(page).textContent()).toContain('Not sent: this browser is automated');

    expect(events).toEqual([]);
    expect((await api.get(`/v1/participants/${customer}`, secret())).status).toBe(404);
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it('an opted-out browser: the demo says so', async () => {
    const { page, events } = await open('phone', { automated: false });
    await page.goto(`${api.url}/demo/`);
    await page.evaluate(() => localStorage.setItem('_referral_optout', '1'));
    await page.goto(`${api.url}/demo/signup.html`);
    await page.click('button[type=submit]');
    await expect.poll(() => result(page).getAttribute('data-state')).toBe('warn');
    expect(await result(page).textContent()).toContain('Not sent: this browser opted out (localStorage._referral_optout is "1")');
    expect(events).toEqual([]);
    await page.context().close();
  });

  it('a refused purchase shows the collector’s reasons; an invalid referral link is a page', async () => {
    const { page, problems } = await open('phone', { automated: false });
    await page.goto(`${api.url}/demo/checkout.html`);
    // What a page gets when it sends an amount with a decimal point (the form's own step=1 forbids it).
    await page.$eval('input[name=amount]', (input: HTMLInputElement) => {
      input.step = 'any';
    });
    await page.fill('input[name=amount]', '49.5');
    expect(await page.textContent('#amount-preview')).toBe('not a whole number of cents');
    await page.click('button[type=submit]');
    await expect.poll(() => result(page).getAttribute('data-state')).toBe('error');
    expect(await result(page).textContent()).toBe(
      'Refused: the collector answered 422: order.amount: must be an integer: amounts are integer minor units, e.g. 4900 = $49.00 (not 49.00).',
    );
    await shot(page, 'phone-refused-purchase');

    const invalid = await page.goto(`${api.url}/r/NOSUCHCODE`);
    expect(invalid?.status()).toBe(404);
    expect(await page.locator('h1').textContent()).toBe('This referral link is not valid');
    await shot(page, 'phone-invalid-link');
    // Chromium logs the 404 and 422 it was given; nothing else.
    expect(problems.filter((text) => !/status of (404|422)/.test(text))).toEqual([]);
    await page.context().close();
  });
});
