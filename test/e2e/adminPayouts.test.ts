/**
 * The Payouts tab in a real Chromium against the real app: the preview equals the
 * API's dry run (items, and who is left out and why), a run made after a confirmation
 * with its count and totals per currency, its PayPal file downloaded with the key in
 * a header (byte for byte the API's), items marked paid with a reference (their
 * rewards become paid) or failed with a reason (their rewards go to the next run), and
 * the API's refusals shown as messages. Screenshots at desktop and phone width.
 */
import { readFile } from 'node:fs/promises';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page as ApiPage, PayoutPreviewResponse, PayoutResponse } from '../../shared/responses.ts';
import type { TestApp } from '../helpers/app.ts';
import { buildParticipant, buildProgram, type ProgramFixture } from '../helpers/factories.ts';
import { conversion, expectOk, listAllRewards } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';
import { expectCleanRequests, launch, NARROW, openPage, openTab, screenshot as fullPage, signIn, unexpected } from './dashboardPage.ts';

const RULES = [
  { id: 'signup-cash', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 1000, currency: 'USD' } },
  { id: 'share', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 } },
];
const MINIMUM = { USD: 2500, EUR: 1000 };

/** Money as the dashboard writes it (en-US, as the test browser is). */
const money = (amount: number, currency: string) => new Intl.NumberFormat('en-US', { style: 'currency', currency }).format(amount / 100);

/** From the top: a full-page shot taken scrolled down draws the sticky top bar mid-page. */
async function screenshot(page: Page, name: string) {
  await page.evaluate(() => window.scrollTo({ top: 0, behavior: 'instant' }));
  await fullPage(page, name);
}

describe('payouts tab (Chromium, pglite)', () => {
  let api: TestApp;
  let program: ProgramFixture;
  let browser: Browser;
  let firstRun: string;

  useTestApp('pglite', (suite) => ({ api } = suite));

  /** A referred signup per customer (and, with `purchase`, one purchase by the first) for the referrer with this code. */
  async function referrals(code: string, customers: string[], purchase?: { amount: number; currency: string }) {
    for (const customer of customers) await conversion(api, program, { type: 'signup', externalId: customer, referral: { code } });
    const buyer = customers[0];
    if (purchase && buyer) await conversion(api, program, { type: 'purchase', externalId: buyer, ...purchase });
  }
  const payoutDetails = async (externalId: string, payout: Record<string, string>) =>
    expectOk(await api.patch(`/v1/participants/${externalId}`, { payout }, { auth: program.secret }));

  beforeAll(async () => {
    program = await buildProgram(api, { name: 'Payout Co', settings: { rewardRules: RULES, payouts: { minimum: MINIMUM } } });
    const ana = await buildParticipant(api, program, { externalId: 'ana' });
    const ben = await buildParticipant(api, program, { externalId: 'ben' });
    const cy = await buildParticipant(api, program, { externalId: 'cy' });
    await payoutDetails('ana', { method: 'paypal', email: 'ana@example.com' });
    await payoutDetails('ben', { method: 'wise', email: 'ben@example.com' });
    await payoutDetails('cy', { method: 'paypal', email: 'cy@example.com' });
    await referrals(ana.code, ['a1', 'a2', 'a3']); // $30 by PayPal
    await referrals(ben.code, ['b1', 'b2', 'b3'], { amount: 30_000, currency: 'EUR' }); // $30 and €30 by Wise
    await referrals(cy.code, ['c1']); // $10: under the $25 minimum
    browser = await launch();
  });

  afterAll(async () => {
    await browser?.close();
  });

  const dryRun = async () => expectOk(await api.post<PayoutPreviewResponse>('/v1/payouts', { dryRun: true }, { auth: program.secret }));
  const runs = async () => expectOk(await api.get<ApiPage<PayoutResponse>>('/v1/payouts', { auth: program.secret })).data;
  const rewardsOf = (participant: string) => listAllRewards(api, program, { participant });
  const itemRow = (page: Page, participant: string, currency: string, run: PayoutResponse) => {
    const item = run.items.find((i) => i.participant === participant && i.currency === currency);
    if (!item) throw new Error(`no ${participant} ${currency} item`);
    return page.locator(`[data-testid="payout-item"][data-item-id="${item.id}"]`);
  };

  it('previews the next payout as the API’s dry run, then creates it after a confirmation', async () => {
    const expected = await dryRun();
    expect(expected.items.map((i) => [i.participant, i.currency, i.amount, i.method]).sort()).toEqual([
      ['ana', 'USD', 3000, 'paypal'],
      ['ben', 'EUR', 3000, 'wise'],
      ['ben', 'USD', 3000, 'wise'],
    ]);
    expect(expected.skipped).toEqual([{ participant: 'cy', currency: 'USD', amount: 1000, reason: 'below_minimum' }]);

    const watched = await openPage(browser);
    const { page } = watched;
    await signIn(page, api.url, program.secret, 'Payout Co');
    await openTab(page, 'payouts');
    const rows = page.getByTestId('payouts-preview-item');
    await expect.poll(() => rows.count()).toBe(expected.items.length);
    for (const item of expected.items) {
      const row = page.locator(
        `[data-testid="payouts-preview-item"][data-participant="${item.participant}"][data-currency="${item.currency}"]`,
      );
      expect(await row.getByTestId('preview-amount').textContent()).toBe(money(item.amount, item.currency));
      expect(await row.getByTestId('preview-method').textContent()).toBe(item.method === 'paypal' ? 'PayPal' : 'Wise');
      expect(await row.textContent()).toContain(item.destination.email);
    }
    expect(await page.getByTestId('payouts-preview-total').textContent()).toBe('$60.00 · €30.00');
    expect(await page.getByTestId('payouts-preview-summary').getAttribute('data-items')).toBe('3');
    const skipped = page.getByTestId('payouts-skipped-item');
    expect(await skipped.count()).toBe(1);
    expect(await skipped.getAttribute('data-participant')).toBe('cy');
    expect(await skipped.getAttribute('data-reason')).toBe('below_minimum');
    expect(await skipped.getByTestId('skipped-amount').textContent()).toBe('$10.00');
    expect(await skipped.getByTestId('skipped-reason').textContent()).toBe('Below the $25.00 minimum');
    expect(await page.getByTestId('payouts-rules').textContent()).toContain('Minimum per payout: €10.00 · $25.00.');
    expect(await page.getByTestId('payouts-empty').isVisible()).toBe(true);
    await screenshot(page, 'payouts-preview-desktop');

    await page.getByTestId('payouts-create').click();
    await page.getByTestId('payout-dialog').waitFor();
    expect(await page.getByTestId('payout-dialog-title').textContent()).toBe('Create a payout of 3 items?');
    const totals = page.getByTestId('payout-dialog-totals').locator('li');
    expect(await totals.allTextContents()).toEqual(['€30.00 in 1 item', '$60.00 in 2 items']);
    expect(await page.getByTestId('payout-dialog-summary').textContent()).toContain('Left out for a later run: 1 (listed in the preview).');
    await screenshot(page, 'payouts-create-dialog');
    // Cancelling makes nothing.
    await page.getByTestId('payout-dialog-cancel').click();
    expect(await runs()).toEqual([]);

    await page.getByTestId('payouts-create').click();
    await page.getByTestId('payout-dialog-confirm').click();
    await page.getByTestId('payout-run').waitFor();
    const [made] = await runs();
    if (!made) throw new Error('no payout run was made');
    firstRun = made.id;
    expect(made).toMatchObject({ status: 'created', totals: { USD: 6000, EUR: 3000 } });
    expect(made.items.map((i) => [i.participant, i.currency, i.amount, i.status]).sort()).toEqual(
      expected.items.map((i) => [i.participant, i.currency, i.amount, 'pending']).sort(),
    );
    expect(await page.getByTestId('payout-run').getAttribute('data-payout-id')).toBe(made.id);
    expect(await page.getByTestId('payout-run-title').textContent()).toBe(`Payout ${made.id.slice(0, 8)}`);
    expect(await page.getByTestId('payout-run-total').textContent()).toBe('$60.00 · €30.00');
    expect(await page.getByTestId('payout-item').count()).toBe(3);
    await expect.poll(() => page.getByTestId('payouts-preview-message').textContent()).toContain(`Created payout ${made.id.slice(0, 8)}`);
    // The run is listed; the preview now has nothing to pay but Cy's $10.
    await expect.poll(() => page.getByTestId('payout-row').count()).toBe(1);
    expect(await page.getByTestId('payout-row').getAttribute('data-payout-id')).toBe(made.id);
    expect(await page.getByTestId('payout-row-total').textContent()).toBe('$60.00 · €30.00');
    await page.getByTestId('payouts-preview-nothing').waitFor();
    expect(await page.getByTestId('payouts-create').isDisabled()).toBe(true);
    expect(await page.getByTestId('payouts-skipped-item').count()).toBe(1);
    await screenshot(page, 'payouts-run-desktop');

    expectCleanRequests(watched, api.url, program.secret);
    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });

  it('downloads the PayPal file with the key in a header: the API’s file, byte for byte', async () => {
    const watched = await openPage(browser);
    const { page } = watched;
    await signIn(page, api.url, program.secret, 'Payout Co');
    await openTab(page, 'payouts');
    await page.locator(`[data-testid="payout-row"][data-payout-id="${firstRun}"]`).getByTestId('payout-open').click();
    await page.getByTestId('payout-item').first().waitFor();
    expect(await page.getByTestId('payout-file-wise').isVisible()).toBe(true);
    expect(await page.getByTestId('payout-file-generic').isVisible()).toBe(true);

    const [request, download] = await Promise.all([
      page.waitForRequest((r) => r.url().includes(`/v1/payouts/${firstRun}/export.csv`)),
      page.waitForEvent('download'),
      page.getByTestId('payout-file-paypal').click(),
    ]);
    expect(await request.headerValue('authorization')).toBe(`Bearer ${program.secret}`);
    expect(new URL(request.url()).searchParams.get('format')).toBe('paypal');
    expect(download.suggestedFilename()).toBe(`payout-${firstRun.slice(0, 8)}-paypal.csv`);
    const file = await readFile(await download.path(), 'utf8');
    const reply = await api.get(`/v1/payouts/${firstRun}/export.csv?format=paypal`, { auth: program.secret });
    expect(reply.status).toBe(200);
    expect(file).toBe(reply.text);
    expect(file).toContain('ana@example.com,30.00,USD,');
    await expect
      .poll(() => page.getByTestId('payout-run-message').textContent())
      .toBe(`Downloaded payout-${firstRun.slice(0, 8)}-paypal.csv.`);

    expectCleanRequests(watched, api.url, program.secret);
    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });

  it('marks an item paid with a reference, and one failed with a reason: its rewards go to the next run', async () => {
    const watched = await openPage(browser);
    const { page } = watched;
    await signIn(page, api.url, program.secret, 'Payout Co');
    await openTab(page, 'payouts');
    await page.locator(`[data-testid="payout-row"][data-payout-id="${firstRun}"]`).getByTestId('payout-open').click();
    await page.getByTestId('payout-item').first().waitFor();
    let run = expectOk(await api.get<PayoutResponse>(`/v1/payouts/${firstRun}`, { auth: program.secret }));

    // Ana's item, paid.
    expect(await page.getByTestId('payout-mark-paid').textContent()).toBe('Mark all paid…');
    await itemRow(page, 'ana', 'USD', run).getByTestId('payout-item-select').check();
    expect(await page.getByTestId('payout-selected').textContent()).toBe('1 item selected');
    await page.getByTestId('payout-mark-paid').click();
    await page.getByTestId('payout-dialog').waitFor();
    expect(await page.getByTestId('payout-dialog-title').textContent()).toBe('Mark 1 item paid?');
    expect(await page.getByTestId('payout-dialog-total').textContent()).toBe('Total: $30.00');
    // No reference, no payment.
    expect(await page.getByTestId('payout-dialog-confirm').isDisabled()).toBe(true);
    await page.getByTestId('payout-dialog-input').fill('PAYPAL-BATCH-42');
    await screenshot(page, 'payouts-mark-paid-dialog');
    await page.getByTestId('payout-dialog-confirm').click();
    await expect.poll(() => itemRow(page, 'ana', 'USD', run).getAttribute('data-status')).toBe('paid');
    expect(await itemRow(page, 'ana', 'USD', run).getByTestId('payout-item-note').textContent()).toBe('PAYPAL-BATCH-42');
    expect(await page.getByTestId('payout-run-message').textContent()).toBe('Marked 1 item paid (reference: PAYPAL-BATCH-42).');
    const anas = await rewardsOf('ana');
    expect(anas.map((reward) => reward.status)).toEqual(['paid', 'paid', 'paid']);
    run = expectOk(await api.get<PayoutResponse>(`/v1/payouts/${firstRun}`, { auth: program.secret }));
    expect(run.status).toBe('created');
    expect(run.items.find((i) => i.participant === 'ana')).toMatchObject({ status: 'paid', reference: 'PAYPAL-BATCH-42' });

    // Ben's euros bounced.
    await itemRow(page, 'ben', 'EUR', run).getByTestId('payout-item-select').check();
    await page.getByTestId('payout-mark-failed').click();
    expect(await page.getByTestId('payout-dialog-title').textContent()).toBe('Mark 1 item failed?');
    expect(await page.getByTestId('payout-dialog-confirm').isDisabled()).toBe(true);
    await page.getByTestId('payout-dialog-input').fill('Wise: recipient email bounced');
    await page.getByTestId('payout-dialog-confirm').click();
    await expect.poll(() => itemRow(page, 'ben', 'EUR', run).getAttribute('data-status')).toBe('failed');
    expect(await itemRow(page, 'ben', 'EUR', run).getByTestId('payout-item-note').textContent()).toBe('Wise: recipient email bounced');
    expect(await page.getByTestId('payout-run-message').textContent()).toBe(
      'Marked 1 item failed: the rewards are free again, in the preview of the next payout.',
    );
    // The failed item's reward is free again: approved, and in the next run's preview (API and dashboard).
    const euros = (await rewardsOf('ben')).filter((reward) => reward.currency === 'EUR');
    expect(euros.map((reward) => reward.status)).toEqual(['approved']);
    expect((await dryRun()).items.map((i) => [i.participant, i.currency, i.amount])).toEqual([['ben', 'EUR', 3000]]);
    await expect.poll(() => page.getByTestId('payouts-preview-item').count()).toBe(1);
    expect(await page.getByTestId('payouts-preview-total').textContent()).toBe('€30.00');
    await expect.poll(() => page.getByTestId('payout-row-total').textContent()).toBe('$60.00');
    await screenshot(page, 'payouts-failed-desktop');

    // The rest (Ben's dollars), with nothing selected: all pending.
    expect(await page.getByTestId('payout-mark-paid').textContent()).toBe('Mark all paid…');
    await page.getByTestId('payout-mark-paid').click();
    expect(await page.getByTestId('payout-dialog-title').textContent()).toBe('Mark 1 item paid?');
    await page.getByTestId('payout-dialog-input').fill('WISE-7781');
    await page.getByTestId('payout-dialog-confirm').click();
    await expect.poll(() => page.getByTestId('payout-run').getAttribute('data-status')).toBe('paid');
    expect(await page.getByTestId('payout-selected').textContent()).toBe('Every item is settled');
    expect(await page.getByTestId('payout-mark-paid').isHidden()).toBe(true);
    expect((await rewardsOf('ben')).map((reward) => [reward.currency, reward.status]).sort()).toEqual([
      ['EUR', 'approved'],
      ['USD', 'paid'],
      ['USD', 'paid'],
      ['USD', 'paid'],
    ]);
    await expect.poll(() => page.getByTestId('payout-row-status').textContent()).toBe('paid');

    // A second run pays the freed euros.
    await page.getByTestId('payouts-create').click();
    expect(await page.getByTestId('payout-dialog-title').textContent()).toBe('Create a payout of 1 item?');
    await page.getByTestId('payout-dialog-confirm').click();
    await expect.poll(() => page.getByTestId('payout-row').count()).toBe(2);
    const [second] = await runs();
    expect(second?.id).not.toBe(firstRun);
    expect(second?.items.map((i) => [i.participant, i.currency, i.amount, i.rewards])).toEqual([
      ['ben', 'EUR', 3000, euros.map((reward) => reward.id)],
    ]);
    await expect.poll(() => page.getByTestId('payout-run').getAttribute('data-payout-id')).toBe(second?.id);

    expectCleanRequests(watched, api.url, program.secret);
    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });

  it('shows the API’s refusal (422 nothing_to_pay) as a message when another run took the rewards first', async () => {
    // Cy reaches the minimum.
    const cy = expectOk(await api.get<{ code: string }>('/v1/participants/cy', { auth: program.secret }));
    await referrals(cy.code, ['c2', 'c3']);
    const watched = await openPage(browser);
    const { page } = watched;
    await signIn(page, api.url, program.secret, 'Payout Co');
    await openTab(page, 'payouts');
    await page.locator('[data-testid="payouts-preview-item"][data-participant="cy"]').waitFor();
    // Meanwhile a run is made elsewhere (another operator, a script).
    expectOk(await api.post('/v1/payouts', {}, { auth: program.secret }), 201);

    await page.getByTestId('payouts-create').click();
    await page.getByTestId('payout-dialog-confirm').click();
    const message = page.getByTestId('payouts-preview-message');
    await expect.poll(() => message.getAttribute('data-kind')).toBe('error');
    expect(await message.textContent()).toBe(
      'The payout was not created: No referrer has approved cash rewards at or above the minimum to pay now (nothing is due).',
    );
    expect(await message.isVisible()).toBe(true);
    // The page shows what changed meanwhile: nothing left to pay, and the other run listed.
    await page.getByTestId('payouts-preview-nothing').waitFor();
    expect(await page.getByTestId('payouts-create').isDisabled()).toBe(true);
    await expect.poll(() => page.getByTestId('payout-row').count()).toBe(3);
    expect(await message.textContent()).toContain('No referrer has approved cash rewards');
    await screenshot(page, 'payouts-nothing-to-pay');

    expectCleanRequests(watched, api.url, program.secret);
    expect(unexpected(watched, [422])).toEqual([]);
    await page.context().close();
  });

  it('reads well at a narrow width', async () => {
    const watched = await openPage(browser, NARROW);
    const { page } = watched;
    await signIn(page, api.url, program.secret, 'Payout Co');
    await openTab(page, 'payouts');
    await page.locator(`[data-testid="payout-row"][data-payout-id="${firstRun}"]`).getByTestId('payout-open').click();
    await page.getByTestId('payout-item').first().waitFor();
    await screenshot(page, 'payouts-narrow');
    // Nothing wider than the screen: no sideways scrolling.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    for (const testid of ['payouts-table', 'payout-items-table', 'payouts-skipped-table']) {
      const table = page.getByTestId(testid);
      if (!(await table.isVisible())) continue;
      const box = await table.boundingBox();
      expect(box && box.x >= 0 && box.x + box.width <= NARROW.width, testid).toBe(true);
    }
    // A run with an item to pay: its checkbox beside the referrer, and the dialog inside the screen.
    const [newest] = await runs();
    await page.locator(`[data-testid="payout-row"][data-payout-id="${newest?.id}"]`).getByTestId('payout-open').click();
    await expect.poll(() => page.getByTestId('payout-run').getAttribute('data-payout-id')).toBe(newest?.id);
    await page.getByTestId('payout-item-select').check();
    await screenshot(page, 'payouts-narrow-pending');
    await page.getByTestId('payout-mark-paid').click();
    await page.getByTestId('payout-dialog-input').fill('PAYPAL-BATCH-43');
    const dialog = await page.getByTestId('payout-dialog').boundingBox();
    expect(dialog && dialog.x >= 0 && dialog.x + dialog.width <= NARROW.width).toBe(true);
    await page.screenshot({ path: 'test-results/screens/payouts-narrow-dialog.png' });
    await page.getByTestId('payout-dialog-cancel').click();
    expect(await page.getByTestId('payout-item').getAttribute('data-status')).toBe('pending');
    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });
});
