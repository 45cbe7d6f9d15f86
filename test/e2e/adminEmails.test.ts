/**
 * The dashboard's Emails panel in a real Chromium: each email's preview, with the
 * program's name, rendered in an empty-sandbox srcdoc iframe whose inline styles the
 * dashboard's CSP allows (by hash) without a single CSP violation; which emails are
 * on, and that the server has no SMTP_URL. The unsubscribe page asks first, then its
 * button unsubscribes (its CSP lets the form post here, and nothing else). Screenshots
 * are kept in test-results/.
 */
import { mkdir } from 'node:fs/promises';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { createUnsubscribeTokens } from '../../collector/src/domain/unsubscribeTokens.ts';
import type { TestApp } from '../helpers/app.ts';
import { launchChromium } from '../helpers/chromium.ts';
import { buildParticipant, buildProgram, type ProgramFixture } from '../helpers/factories.ts';
import { expectOk } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';

describe('emails in Chromium: the dashboard previews and the unsubscribe page (pglite)', () => {
  let api: TestApp;
  let db: Knex;
  let program: ProgramFixture;
  let browser: Browser;

  useTestApp('pglite', (suite) => ({ api, db } = suite));
  beforeAll(async () => {
    program = await buildProgram(api, {
      name: 'Acme <Referrals> & Co',
      settings: { emails: { from: 'Acme <rewards@acme.example>', on: { referral: true, payoutPaid: true } } },
    });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('previews each email in a sandboxed iframe, styled, with no CSP violation', async () => {
    const context = await browser.newContext({ viewport: { width: 1360, height: 1000 }, locale: 'en-US' });
    const page = await context.newPage();
    const problems: string[] = [];
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (event) => {
        console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI}`);
      });
    });
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));

    await page.goto(`${api.url}/admin#emails`);
    await page.getByTestId('signin-key').fill(program.secret);
    await page.getByTestId('signin-submit').click();
    await page.getByTestId('section-emails').waitFor({ state: 'visible' });
    await page.getByTestId('email-payoutPaid').waitFor();

    expect(await page.getByTestId('emails-no-smtp').textContent()).toContain('SMTP_URL is not set');
    expect(await page.getByTestId('email-referral').getAttribute('data-on')).toBe('true');
    expect(await page.getByTestId('email-rewardApproved').getAttribute('data-on')).toBe('false');
    expect(await page.getByTestId('email-payoutPaid').getAttribute('data-on')).toBe('true');

    for (const template of ['referral', 'rewardApproved', 'payoutPaid']) {
      const preview = expectOk(await api.get(`/v1/emails/preview/${template}`, { auth: program.secret }));
      expect(await page.getByTestId(`email-subject-${template}`).textContent()).toBe(preview.subject);
      const frame = page.getByTestId(`email-frame-${template}`);
      expect(await frame.getAttribute('sandbox')).toBe('');
      expect(await frame.getAttribute('srcdoc')).toBe(preview.html);
      const inside = page.frameLocator(`[data-testid="email-frame-${template}"]`);
      // The program's name, escaped in the HTML, reads as itself.
      expect(await inside.locator('p').first().textContent()).toBe('Acme <Referrals> & Co');
      // The emails' inline styles apply: the CSP allowed them.
      expect(await inside.locator('body').evaluate((body) => getComputedStyle(body).backgroundColor)).toBe('rgb(244, 244, 246)');
      // The empty sandbox: no script, an opaque origin.
      expect(await inside.locator('body').evaluate(() => window.origin)).toBe('null');
    }
    expect(await page.getByTestId('email-text-referral').textContent()).toContain('Ann joined through your referral link');

    await mkdir('test-results', { recursive: true });
    await page.screenshot({ path: 'test-results/admin-emails.png', fullPage: true });
    expect(problems).toEqual([]);
    await context.close();
  });
  it('the unsubscribe page: a button that posts back here, styled, no CSP violation', async () => {
    const alice = await buildParticipant(api, program, { email: 'alice@people.example' });
    const token = await createUnsubscribeTokens(db).sign({ participantId: alice.id, scope: 'referral' });
    const page = await browser.newPage({ viewport: { width: 420, height: 700 } });
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    await page.goto(`${api.url}/v1/emails/unsubscribe?token=${token}`);
    expect(await page.locator('h1').textContent()).toBe('Unsubscribe from Acme <Referrals> & Co');
    expect(await page.locator('main').evaluate((main) => getComputedStyle(main).maxWidth)).toBe('512px');
    await page.screenshot({ path: 'test-results/unsubscribe.png' });
    const preferences = async () =>
      ((await db('participants').where({ id: alice.id }).first('email_preferences')) as any).email_preferences;
    expect(await preferences()).toBeNull();
    await page.getByRole('button', { name: 'Unsubscribe', exact: true }).click();
    await page.waitForURL(/unsubscribe/);
    expect(await page.locator('h1').textContent()).toBe('You are unsubscribed');
    expect(await preferences()).toEqual({ referral: false });
    expect(problems).toEqual([]);
    await page.close();
  });
});
