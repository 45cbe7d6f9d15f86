/**
 * The operator dashboard in a real Chromium against the real app: data seeded
 * through the API, then signed in with the secret key and driven like a person.
 * Every page records console errors, page errors and CSP violations; each test
 * ends by asserting there were none beyond the failures it provoked itself.
 */
import { mkdir, readFile } from 'node:fs/promises';
import type { Browser, Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_CSP } from '../../collector/src/routes/admin.ts';
import { EMAIL_STYLE_SOURCES, EMAIL_STYLES } from '../../collector/src/domain/emailTemplates.ts';
import type { TestApp } from '../helpers/app.ts';
import { launchChromium } from '../helpers/chromium.ts';
import { buildParticipant, buildProgram, type ProgramFixture, vidFor } from '../helpers/factories.ts';
import { click, conversion, expectOk, serverPurchase, serverSignup } from '../helpers/steps.ts';
import { transitionsOf } from '../helpers/rows.ts';
import { NARROW, screenshot } from './dashboardPage.ts';
import { refreshRankings } from '../../collector/src/domain/reports.ts';
import type { Knex } from 'knex';
import type { ProgramResponse, ReportSummaryResponse, RewardResponse } from '../../shared/responses.ts';
import { useTestApp } from '../helpers/suite.ts';

const SCREENSHOT = 'test-results/admin-overview.png';

const RULES = [
  { id: 'signup-bonus', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 500, currency: 'USD' }, holdDays: 30 },
  { id: 'purchase-share', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 }, holdDays: 30 },
];

interface Watched {
  page: Page;
  /** Console errors, uncaught errors and CSP violations, in order. */
  problems: string[];
  /** Every URL the page requested. */
  requests: string[];
  /** Requests sent and not yet finished or failed. */
  inFlight: Set<Request>;
}

describe('admin dashboard (Chromium, pglite)', () => {
  let api: TestApp;
  let db: Knex;
  let program: ProgramFixture;
  let browser: Browser;
  let alice: { externalId: string; code: string };
  let dave: { externalId: string; code: string };

  useTestApp('pglite', (suite) => ({ api, db } = suite));
  beforeAll(async () => {
    program = await buildProgram(api, { name: 'Acme Referrals', settings: { rewardRules: RULES } });
    alice = await buildParticipant(api, program, { externalId: 'alice', email: 'alice@example.com', name: 'Alice Archer' });
    dave = await buildParticipant(api, program, { externalId: 'dave', email: 'dave@example.com', name: 'Dave Dunn' });

    for (const visitor of ['bob', 'carol', 'frank', 'gina']) await click(api, program, { code: alice.code, vid: vidFor(visitor) });
    for (const visitor of ['erin', 'hank']) await click(api, program, { code: dave.code, vid: vidFor(visitor) });

    // Bob with the code and his visitor id, Carol with her visitor id only (first touch), Erin by code alone.
    await conversion(api, program, {
      type: 'signup',
      eventId: 'signup-bob',
      externalId: 'bob',
      referral: { code: alice.code, vid: vidFor('bob') },
    });
    await conversion(api, program, { type: 'signup', eventId: 'signup-carol', externalId: 'carol', referral: { vid: vidFor('carol') } });
    await serverSignup(api, program, 'erin', dave.code);
    await serverPurchase(api, program, 'bob', 'order-bob-1', 4900, 'USD');
    await serverPurchase(api, program, 'carol', 'order-carol-1', 2500, 'EUR');
    // A repeat purchase still naming the code: Carol keeps her referrer (an informational already_attributed).
    await serverPurchase(api, program, 'carol', 'order-carol-2', 1000, 'EUR', alice.code);
    // Alice using her own code: rejected as a self-referral, recorded as a decision.
    await serverSignup(api, program, 'alice', alice.code);

    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
  });

  async function openPage(): Promise<Watched> {
    const context = await browser.newContext({
      viewport: { width: 1360, height: 1000 },
      acceptDownloads: true,
      locale: 'en-US',
      timezoneId: 'UTC',
    });
    const page = await context.newPage();
    const watched: Watched = { page, problems: [], requests: [], inFlight: new Set() };
    // Chromium reports CSP violations on the console too; the event catches report-only ones as well.
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (event) => {
        console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI}`);
      });
    });
    page.on('console', (message) => {
      if (message.type() === 'error') watched.problems.push(message.text());
    });
    page.on('pageerror', (error) => watched.problems.push(`pageerror: ${error.message}`));
    page.on('request', (request) => {
      watched.requests.push(request.url());
      watched.inFlight.add(request);
    });
    page.on('requestfinished', (request) => watched.inFlight.delete(request));
    page.on('requestfailed', (request) => watched.inFlight.delete(request));
    return watched;
  }

  /**
   * Until the page has had no request open for two looks 250 ms apart. Unlike waitForLoadState('networkidle'),
   * which is about the last navigation, this follows the requests a tab sends after it.
   */
  async function settled(watched: Watched) {
    let quiet = 0;
    await expect
      .poll(
        () => {
          quiet = watched.inFlight.size === 0 ? quiet + 1 : 0;
          return quiet;
        },
        { interval: 250, timeout: 30_000 },
      )
      .toBeGreaterThanOrEqual(2);
  }

  /** Problems other than the HTTP failures a test provoked on purpose (Chromium logs those as "Failed to load resource"). */
  function unexpected(watched: Watched, expectedStatuses: number[] = []): string[] {
    return watched.problems.filter(
      (text) =>
        !expectedStatuses.some((status) => text.includes(`Failed to load resource: the server responded with a status of ${status}`)),
    );
  }

  function expectCleanRequests(watched: Watched) {
    for (const url of watched.requests) {
      expect(url, 'every request stays on this origin').toMatch(new RegExp(`^(${api.url.replace(/[.]/g, '\\.')}/|data:|blob:)`));
      expect(url, 'the key is never in a URL').not.toContain(program.secret);
    }
  }

  async function signIn(watched: Watched) {
    const { page } = watched;
    await page.goto(`${api.url}/admin`);
    await page.getByTestId('signin-key').fill(program.secret);
    await page.getByTestId('signin-submit').click();
    await page.getByTestId('app').waitFor({ state: 'visible' });
    await expect.poll(() => page.getByTestId('program-name').textContent()).toBe('Acme Referrals');
  }

  async function openTab(page: Page, tab: string) {
    await page.getByTestId(`tab-${tab}`).click();
    await page.getByTestId(`section-${tab}`).waitFor({ state: 'visible' });
  }

  const apiGet = (path: string) => api.get(path, { auth: program.secret });

  it('serves the page, script and styles with a strict CSP and no inline code', async () => {
    for (const path of ['/admin', '/admin/', '/admin/app.js', '/admin/app.css', '/admin/missing']) {
      const reply = await api.get(path);
      expect(reply.headers.get('content-security-policy'), path).toBe(ADMIN_CSP);
      expect(reply.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(reply.headers.get('referrer-policy'), path).toBe('no-referrer');
      expect(reply.headers.get('x-frame-options'), path).toBe('DENY');
    }
    // Inline styles only as the emails' previews use them, each by its hash (EMAIL_STYLE_SOURCES).
    expect(ADMIN_CSP).toBe(
      `default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-hashes' ${EMAIL_STYLE_SOURCES.join(' ')}; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'`,
    );
    expect(EMAIL_STYLE_SOURCES).toHaveLength(Object.keys(EMAIL_STYLES).length);

    const html = await api.get('/admin');
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    expect(html.headers.get('cache-control')).toBe('no-store');
    expect(html.text, 'no inline script').not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/i);
    expect(html.text, 'no inline style attribute').not.toMatch(/\sstyle\s*=/i);
    expect(html.text, 'no inline style element').not.toMatch(/<style/i);
    expect(html.text, 'no inline event handler').not.toMatch(/\son[a-z]+\s*=/i);
    expect(html.text, 'no external resource').not.toMatch(/(src|href)="(https?:)?\/\//i);

    const script = await api.get('/admin/app.js');
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(script.text.length).toBeGreaterThan(10_000); // uPlot is bundled in
    const etag = script.headers.get('etag');
    expect(etag).toBeTruthy();
    // fetch adds "Cache-Control: no-cache" to a conditional request unless one is given, and no-cache forbids a 304.
    const revalidated = await api.get('/admin/app.js', { headers: { 'if-none-match': etag as string, 'cache-control': 'max-age=0' } });
    expect(revalidated.status).toBe(304);

    const css = await api.get('/admin/app.css');
    expect(css.headers.get('content-type')).toMatch(/^text\/css/);
    expect(css.text).toContain('.uplot'); // uPlot's stylesheet
    expect(css.text).toContain('.card-value'); // ours

    const missing = await api.get('/admin/missing');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('not_found');
  });

  it('refuses a wrong key, then signs in with the secret key kept in sessionStorage only', async () => {
    const watched = await openPage();
    const { page } = watched;
    const response = await page.goto(`${api.url}/admin`);
    expect(response?.headers()['content-security-policy']).toBe(ADMIN_CSP);
    await page.getByTestId('signin').waitFor({ state: 'visible' });

    await page.getByTestId('signin-key').fill(program.publishable);
    await page.getByTestId('signin-submit').click();
    await expect.poll(() => page.getByTestId('signin-error').textContent()).toContain('publishable key');

    await page.getByTestId('signin-key').fill('sk_not_a_real_key_0123456789');
    await page.getByTestId('signin-submit').click();
    await expect.poll(() => page.getByTestId('signin-error').textContent()).toContain('Your key was not accepted');
    expect(await page.getByTestId('app').isHidden()).toBe(true);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await mkdir('test-results', { recursive: true });
    await page.screenshot({ path: 'test-results/admin-signin.png' });

    await page.getByTestId('signin-key').fill(program.secret);
    await page.getByTestId('signin-submit').click();
    await page.getByTestId('app').waitFor({ state: 'visible' });
    const stored = await page.evaluate(() => Object.keys(sessionStorage).map((key) => sessionStorage.getItem(key)));
    expect(stored).toEqual([program.secret]);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    expect(page.url()).not.toContain(program.secret);

    // A reload keeps the session (same tab); signing out forgets the key.
    await page.reload();
    await page.getByTestId('app').waitFor({ state: 'visible' });
    await page.getByTestId('signout').click();
    await page.getByTestId('signin').waitFor({ state: 'visible' });
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

    expectCleanRequests(watched);
    expect(unexpected(watched, [401])).toEqual([]);
    await page.context().close();
  });

  it('shows overview numbers that match GET /v1/reports/summary, with a chart', async () => {
    const watched = await openPage();
    const { page } = watched;
    await signIn(watched);
    await page.getByTestId('card-clicks-value').waitFor();
    await page.locator('#chart canvas').first().waitFor();

    const from = await page.getByTestId('range-from').inputValue();
    const to = await page.getByTestId('range-to').inputValue();
    const summary = expectOk(await apiGet(`/v1/reports/summary?from=${from}&to=${to}`)) as ReportSummaryResponse;
    // The seed is visible in the report, so the comparison below compares something.
    expect(summary.clicks).toBe(6);
    expect(summary.signups).toBe(3);
    expect(summary.purchases).toBe(3);

    const value = (id: string) => page.getByTestId(`card-${id}-value`);
    expect(await value('clicks').getAttribute('data-value')).toBe(String(summary.clicks));
    expect(await value('clicks').textContent()).toBe(summary.clicks.toLocaleString('en-US'));
    expect(await value('signups').textContent()).toBe(summary.signups.toLocaleString('en-US'));
    expect(await value('purchases').textContent()).toBe(summary.purchases.toLocaleString('en-US'));
    expect(await page.getByTestId('card-clicks').textContent()).toContain(`${summary.visitors} unique visitors`);
    // Bob and Carol signed up after clicking; Erin by code alone: 2 of the 6 visitors who clicked.
    expect(summary).toMatchObject({ visitors: 6, clickedSignups: 2, conversionRate: 0.3333 });
    expect(await value('conversion').textContent()).toBe('33.3%');
    expect(await page.getByTestId('card-conversion-note').textContent()).toContain('Visitors who clicked and then signed up: 2 of 6');
    expect(await page.getByTestId('card-signups-note').textContent()).toBe('referred customers, 1 by code without a click');

    const money = async (id: string) =>
      Object.fromEntries(
        await value(id)
          .locator('[data-currency]')
          .evaluateAll((nodes) => nodes.map((node) => [node.getAttribute('data-currency'), Number(node.getAttribute('data-amount'))])),
      );
    expect(await money('revenue')).toEqual(summary.revenue);
    expect(summary.revenue).toEqual({ USD: 4900, EUR: 3500 });
    expect(await value('revenue').textContent()).toContain('$49.00');
    expect(await value('revenue').textContent()).toContain('€35.00');

    // Rewards: cash and store credit apart, per currency, never one sum.
    const byKind = async (id: string, kind: string) =>
      Object.fromEntries(
        await value(id)
          .locator(`[data-kind="${kind}"][data-currency]`)
          .evaluateAll((nodes) => nodes.map((node) => [node.getAttribute('data-currency'), Number(node.getAttribute('data-amount'))])),
      );
    for (const stage of ['pending', 'approved', 'paid'] as const) {
      for (const kind of ['cash', 'credit'] as const) {
        expect(await byKind(`rewards-${stage}`, kind), `${kind} ${stage}`).toEqual(summary.rewardsByKind[kind][stage]);
      }
    }
    expect(summary.rewardsByKind.cash.pending).toEqual({ USD: 490, EUR: 350 });
    expect(summary.rewardsByKind.credit.pending).toEqual({ USD: 1500 });
    expect(await value('rewards-pending').locator('.kind-line').allTextContents()).toEqual(['Cash$4.90', 'Cash€3.50', 'Credit$15.00']);

    // Both charts' legends show the range's totals without hovering.
    const legendValue = (chart: string, key: string) => page.getByTestId(`${chart}-legend-${key}`).getByTestId(`${chart}-legend-value`);
    for (const key of ['clicks', 'signups', 'purchases'] as const) {
      expect(await legendValue('chart', key).getAttribute('data-value'), key).toBe(String(summary[key]));
      expect(await legendValue('chart', key).isVisible()).toBe(true);
    }
    expect(await legendValue('revenue-chart', 'revenue-USD').textContent()).toBe('$49.00');
    expect(await legendValue('revenue-chart', 'revenue-EUR').textContent()).toBe('€35.00');
    expect(await page.getByTestId('chart-legend-title').textContent()).toMatch(/^Total, /);
    await page.locator('#revenue-chart canvas').first().waitFor();

    await mkdir('test-results', { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    await screenshot(page, 'overview-desktop');

    expectCleanRequests(watched);
    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });

  it('sorts the leaderboard by the clicked column', async () => {
    const watched = await openPage();
    const { page } = watched;
    await signIn(watched);
    await openTab(page, 'leaderboard');
    const rows = page.getByTestId('leaderboard-row');
    await rows.first().waitFor();
    const participants = () => rows.evaluateAll((nodes) => nodes.map((node) => node.getAttribute('data-participant')));
    expect(await participants()).toEqual(['alice', 'dave']);

    const sorted = page.waitForRequest(
      (request) => request.url().includes('/v1/reports/referrers') && request.url().includes('sort=conversionRate'),
    );
    await page.getByTestId('sort-conversionRate').click();
    await sorted;
    expect(await page.getByTestId('sort-conversionRate').getAttribute('aria-sort')).toBe('descending');
    // alice: 2 of her 4 visitors signed up (50%); dave's one signup came by code alone, without a click (0%).
    await expect.poll(participants).toEqual(['alice', 'dave']);
    const rate = (who: string) => page.locator(`[data-testid="leaderboard-row"][data-participant="${who}"] [data-col="conversionRate"]`);
    expect(await rate('alice').textContent()).toBe('50.0%');
    expect(await rate('dave').textContent()).toBe('0.0%');

    const aliceRow = page.locator('[data-testid="leaderboard-row"][data-participant="alice"]');
    expect(await aliceRow.locator('[data-col="clicks"]').textContent()).toBe('4');
    expect(await aliceRow.locator('[data-col="signups"]').textContent()).toBe('2');
    expect(await aliceRow.textContent()).toContain('Alice Archer');

    expectCleanRequests(watched);
    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });

  it("says when a large program's order was ranked ahead, and not for one ranked at the request", async () => {
    const watched = await openPage();
    const { page } = watched;
    await signIn(watched);
    await openTab(page, 'leaderboard');
    await page.getByTestId('leaderboard-row').first().waitFor();
    expect(await page.getByTestId('leaderboard-ranked').isHidden()).toBe(true);

    // As the worker does for programs with LEADERBOARD_RANKING_MIN_REFERRERS active referrers (here two).
    expect(await refreshRankings(db, 2)).toEqual([program.id]);
    try {
      const reloaded = page.waitForResponse((response) => response.url().includes('/v1/reports/referrers'));
      await page.getByTestId('range-apply').click();
      await reloaded;
      await page.getByTestId('leaderboard-ranked').waitFor({ state: 'visible' });
      expect(await page.getByTestId('leaderboard-ranked').textContent()).toMatch(/^Order as of .+, figures live\.$/);
      expect(
        await page.getByTestId('leaderboard-row').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-participant'))),
      ).toEqual(['alice', 'dave']);
      await page.screenshot({ path: 'test-results/admin-leaderboard-ranked.png' });
    } finally {
      expect(await refreshRankings(db, 3)).toEqual([]);
    }
    expectCleanRequests(watched);
    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });

  it('lists referrals and explains decisions, filtered by reason', async () => {
    const watched = await openPage();
    const { page } = watched;
    await signIn(watched);
    await openTab(page, 'referrals');
    await page.getByTestId('referral-row').first().waitFor();
    expect(await page.getByTestId('referral-row').count()).toBe(3);
    await page.getByTestId('decision-row').first().waitFor();
    // A repeat purchase keeping its referrer is information, not a red rejection; a self-referral is.
    const decision = (reason: string) => page.locator(`[data-testid="decision-row"][data-reason="${reason}"]`);
    expect(await decision('already_attributed').getAttribute('data-outcome')).toBe('rejected');
    expect(await decision('already_attributed').getAttribute('data-weight')).toBe('info');
    expect(await decision('already_attributed').getByTestId('decision-outcome').textContent()).toBe('info');
    expect(await decision('already_attributed').locator('.badge').getAttribute('class')).toBe('badge badge-gray');
    expect(await decision('self_referral').getByTestId('decision-outcome').textContent()).toBe('rejected');
    expect(await decision('self_referral').locator('.badge').getAttribute('class')).toBe('badge badge-red');
    expect(await decision('attributed').first().locator('.badge').getAttribute('class')).toBe('badge badge-green');
    await screenshot(page, 'decisions-desktop');

    await page.getByTestId('decisions-reason').fill('self_referral');
    const filtered = page.waitForResponse(
      (response) => response.url().includes('/v1/decisions?') && response.url().includes('reason=self_referral'),
    );
    await page.getByTestId('decisions-apply').click();
    await filtered;
    await expect
      .poll(() => page.getByTestId('decision-row').evaluateAll((nodes) => nodes.map((node) => node.getAttribute('data-reason'))))
      .toEqual(['self_referral']);
    expect(await page.getByTestId('decision-row').first().textContent()).toContain('alice');

    expectCleanRequests(watched);
    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });

  it('approves a pending reward with its button, then marks it paid', async () => {
    const pending = (expectOk(await apiGet('/v1/rewards?status=pending')) as { data: RewardResponse[] }).data;
    expect(pending.length).toBeGreaterThanOrEqual(3);
    const target = pending.find((reward) => reward.rule === 'purchase-share' && reward.currency === 'USD');
    expect(target, 'the 10% share of bob’s $49.00').toBeDefined();
    const id = (target as RewardResponse).id;

    const watched = await openPage();
    const { page } = watched;
    await signIn(watched);
    await openTab(page, 'rewards');
    const row = page.locator(`[data-testid="reward-row"][data-reward-id="${id}"]`);
    await row.waitFor();
    expect(await row.getByTestId('reward-amount').textContent()).toBe('$4.90');
    expect(await row.getByTestId('reward-status').textContent()).toContain('pending');

    // Still on hold (30 days): approving now asks for a reason, and an empty one is refused.
    await row.getByTestId('reward-approve').click();
    await row.getByTestId('reward-force-approve').click();
    expect(await row.getAttribute('data-status')).toBe('pending');
    await row.getByTestId('reward-force-reason').fill('Verified the order by phone');
    await row.getByTestId('reward-force-approve').click();
    await expect.poll(() => row.getAttribute('data-status')).toBe('approved');
    expect(await row.getByTestId('reward-status').textContent()).toContain('approved');
    const approved = (expectOk(await apiGet('/v1/rewards?status=approved')) as { data: RewardResponse[] }).data;
    expect(approved.map((reward) => reward.id)).toContain(id);

    // Paying asks for the payment reference, recorded with the transition.
    await row.getByTestId('reward-pay').click();
    await row.getByTestId('reward-pay-confirm').click();
    expect(await row.getAttribute('data-status')).toBe('approved');
    await row.getByTestId('reward-pay-reference').fill('Wise transfer 48213');
    await row.getByTestId('reward-pay-confirm').click();
    await expect.poll(() => row.getAttribute('data-status')).toBe('paid');
    expect((await transitionsOf(db, id)).at(-1)).toMatchObject({ to_status: 'paid', reason: 'paid: Wise transfer 48213' });
    const paid = (expectOk(await apiGet('/v1/rewards?status=paid')) as { data: RewardResponse[] }).data;
    expect(paid.map((reward) => reward.id)).toEqual([id]);
    expect(await row.getByRole('button').count()).toBe(0);

    expectCleanRequests(watched);
    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });

  it('shows the field error of a bad reward rule next to the settings editor, and saves a good one', async () => {
    const watched = await openPage();
    const { page } = watched;
    await signIn(watched);
    await openTab(page, 'settings');
    // The JSON view, for power users (the form is the default).
    await page.getByTestId('settings-mode-json').click();
    const editor = page.getByTestId('settings-editor');
    await expect.poll(() => editor.inputValue()).toContain('signup-bonus');
    const settings = JSON.parse(await editor.inputValue()) as Record<string, unknown>;
    expect(settings.rewardRules).toEqual(RULES);

    const bad = { ...settings, rewardRules: [{ id: 'bad', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 100 } }] };
    await editor.fill(JSON.stringify(bad, null, 2));
    await page.getByTestId('settings-save').click();
    const error = page.getByTestId('settings-field-error');
    await error.first().waitFor();
    expect(await error.allTextContents()).toContain('settings.rewardRules.0.reward.currency: a fixed amount needs a currency');
    const stored = expectOk(await apiGet('/v1/program')) as { program: ProgramResponse };
    expect(stored.program.settings.rewardRules).toEqual(RULES);

    // Not JSON at all: refused in the page, nothing sent.
    await editor.fill('{ "rewardRules": [');
    await page.getByTestId('settings-save').click();
    await expect.poll(() => page.getByTestId('settings-errors').textContent()).toContain('not valid JSON');

    await editor.fill(JSON.stringify({ ...settings, cookieDays: 45 }, null, 2));
    await page.getByTestId('settings-save').click();
    await expect.poll(() => page.getByTestId('settings-status').textContent()).toContain('Saved');
    expect(await page.getByTestId('settings-errors').isHidden()).toBe(true);
    const saved = expectOk(await apiGet('/v1/program')) as { program: ProgramResponse };
    expect(saved.program.settings.cookieDays).toBe(45);
    expect(saved.program.settings.rewardRules).toEqual(RULES);

    expectCleanRequests(watched);
    expect(unexpected(watched, [422])).toEqual([]);
    await page.context().close();
  });

  it('downloads a CSV export with the key in a header, not in a URL', async () => {
    const watched = await openPage();
    const { page } = watched;
    await signIn(watched);
    await openTab(page, 'exports');
    const [request, download] = await Promise.all([
      page.waitForRequest((r) => r.url().endsWith('/v1/exports/referrals.csv')),
      page.waitForEvent('download'),
      page.getByTestId('export-referrals').click(),
    ]);
    expect(await request.headerValue('authorization')).toBe(`Bearer ${program.secret}`);
    expect(download.suggestedFilename()).toBe('referrals.csv');
    const csv = await readFile(await download.path(), 'utf8');
    expect(csv.split('\n').length).toBeGreaterThanOrEqual(4); // a header and the three referrals
    expect(csv).toContain('alice');
    await expect.poll(() => page.getByTestId('export-status').textContent()).toContain('Downloaded referrals.csv');

    expectCleanRequests(watched);
    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });

  it('visits every section without a console error or CSP violation', async () => {
    const watched = await openPage();
    const { page } = watched;
    await signIn(watched);
    await mkdir('test-results', { recursive: true });
    // Every tab the page has (a new one is visited without being listed here), then back to the overview.
    const tabs = await page
      .locator('[role=tab][data-tab]')
      .evaluateAll((buttons) => buttons.map((button) => (button as HTMLElement).dataset.tab));
    expect(tabs).toEqual(expect.arrayContaining(['overview', 'rewards', 'payouts', 'settings', 'emails', 'exports']));
    for (const tab of [...tabs, 'overview'] as string[]) {
      await openTab(page, tab);
      await settled(watched);
      if (tab !== 'overview') await page.screenshot({ path: `test-results/admin-${tab}.png`, fullPage: true });
    }
    await page.getByTestId('chart-interval').selectOption('week');
    await settled(watched);
    await page.locator('#chart canvas').first().waitFor();
    expect(await page.getByTestId('notice').isHidden()).toBe(true);
    // Weeks are labelled as weeks: the legend names the week under the cursor, and the range's total without it.
    const title = page.getByTestId('chart-legend-title');
    await expect.poll(() => title.textContent()).toMatch(/^Total, /);
    const plot = page.locator('#chart .u-over');
    const box = await plot.boundingBox();
    if (!box) throw new Error('the chart has no plot area');
    await page.mouse.move(box.x + box.width - 2, box.y + box.height / 2);
    const now = new Date();
    const monday = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - ((now.getUTCDay() + 6) % 7)));
    const week = new Intl.DateTimeFormat('en-US', { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' }).format(monday);
    await expect.poll(() => title.textContent()).toBe(`Week of ${week}`);
    await page.locator('#chart').screenshot({ path: 'test-results/screens/chart-week-hover.png' });
    await page.mouse.move(0, 0);
    await expect.poll(() => title.textContent()).toMatch(/^Total, /);
    await screenshot(page, 'overview-week');
    expectCleanRequests(watched);
    expect(watched.problems).toEqual([]);
    await page.context().close();
  }, 90_000);

  it('reads well at a narrow width: cards, both charts and their legends inside the screen', async () => {
    const watched = await openPage();
    const { page } = watched;
    await page.setViewportSize(NARROW);
    await signIn(watched);
    await page.locator('#revenue-chart canvas').first().waitFor();
    await screenshot(page, 'overview-narrow');
    expect(await page.evaluate(() => document.documentElement.scrollWidth), 'nothing wider than the screen').toBeLessThanOrEqual(
      NARROW.width,
    );
    expect(await page.getByTestId('chart-legend-clicks').isVisible()).toBe(true);
    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });
});
