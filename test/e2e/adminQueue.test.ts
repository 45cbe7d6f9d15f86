/**
 * The rewards queue in a real Chromium against the real app: selecting rewards and
 * approving or paying them in bulk after a confirmation that says how many and how
 * much, rewards still on hold needing one reason or being skipped, a payment
 * reference recorded with each payment, and the totals per participant.
 */
import type { Browser, Page } from 'playwright-core';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RewardResponse, RewardTotalsResponse } from '../../shared/responses.ts';
import type { TestApp } from '../helpers/app.ts';
import { buildParticipant, buildProgram, type ProgramFixture, vidFor } from '../helpers/factories.ts';
import { makeDue, transitionsOf } from '../helpers/rows.ts';
import { click, conversion, expectOk, listAllRewards } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';
import { expectCleanRequests, launch, NARROW, openPage, openTab, screenshot, signIn, unexpected } from './dashboardPage.ts';

const RULES = [
  { id: 'signup-credit', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 500, currency: 'USD' }, holdDays: 30 },
  { id: 'share', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 }, holdDays: 30 },
];

describe('rewards queue (Chromium, pglite)', () => {
  let api: TestApp;
  let db: Knex;
  let program: ProgramFixture;
  let browser: Browser;

  useTestApp('pglite', (suite) => ({ api, db } = suite));
  beforeAll(async () => {
    program = await buildProgram(api, { name: 'Queue Co', settings: { rewardRules: RULES } });
    const ana = await buildParticipant(api, program, { externalId: 'ana' });
    const ben = await buildParticipant(api, program, { externalId: 'ben' });
    for (const [referrer, customer] of [
      [ana, 'c1'],
      [ana, 'c2'],
      [ben, 'c3'],
    ] as const) {
      await click(api, program, { code: referrer.code, vid: vidFor(customer) });
      await conversion(api, program, { type: 'signup', externalId: customer, referral: { code: referrer.code, vid: vidFor(customer) } });
    }
    await conversion(api, program, { type: 'purchase', externalId: 'c1', amount: 4900, currency: 'USD' });
    await conversion(api, program, { type: 'purchase', externalId: 'c2', amount: 2500, currency: 'EUR' });
    await conversion(api, program, { type: 'purchase', externalId: 'c3', amount: 10_000, currency: 'USD' });
    browser = await launch();
  });

  afterAll(async () => {
    await browser?.close();
  });

  const rewards = (status?: string) => listAllRewards(api, program, status ? { status } : {});
  const rowOf = (page: Page, id: string) => page.locator(`[data-testid="reward-row"][data-reward-id="${id}"]`);

  it('approves the selected rewards after a confirmation with their count and totals; on-hold ones need a reason or are skipped', async () => {
    const pending = await rewards('pending');
    expect(pending).toHaveLength(6);
    const shares = pending.filter((reward) => reward.rule === 'share');
    const credits = pending.filter((reward) => reward.rule === 'signup-credit');
    // Ana's two purchase shares are due; everything else is still on hold.
    const due = shares.filter((reward) => reward.participant === 'ana');
    await makeDue(
      db,
      due.map((reward) => reward.id),
    );
    const held = credits.find((reward) => reward.participant === 'ben') as RewardResponse;

    const watched = await openPage(browser);
    const { page } = watched;
    await signIn(page, api.url, program.secret, 'Queue Co');
    await openTab(page, 'rewards');
    await rowOf(page, held.id).waitFor();
    expect(await page.getByTestId('rewards-bulk').isHidden()).toBe(true);

    for (const reward of [...due, held]) await rowOf(page, reward.id).getByTestId('reward-select').check();
    await expect.poll(() => page.getByTestId('rewards-selected').textContent()).toBe('3 selected');
    await page.getByTestId('rewards-bulk-approve').click();
    const dialog = page.getByTestId('bulk-dialog');
    await dialog.waitFor();
    expect(await page.getByTestId('bulk-title').textContent()).toBe('Approve 3 rewards?');
    // $4.90 and €2.50 of cash, $5.00 of store credit: never one sum.
    expect(await page.getByTestId('bulk-total').textContent()).toBe('Total: Cash $4.90 · €2.50; Store credit $5.00');
    expect(await page.getByTestId('bulk-hold-text').textContent()).toContain('1 of them is still on hold');
    expect(await page.getByTestId('bulk-confirm').textContent()).toBe('Approve 2, skip 1 on hold');
    await screenshot(page, 'queue-bulk-approve-dialog');

    await page.getByTestId('bulk-confirm').click();
    await expect
      .poll(() => page.getByTestId('notice').textContent())
      .toBe('Approved 2 rewards. Skipped 1 still on hold (no reason given).');
    const approved = await rewards('approved');
    expect(approved.map((reward) => reward.id).sort()).toEqual(due.map((reward) => reward.id).sort());
    expect((await rewards('pending')).map((reward) => reward.id)).toContain(held.id);

    // Both of Ben's rewards, on hold: one reason for all.
    const bens = (await rewards('pending')).filter((reward) => reward.participant === 'ben');
    expect(bens).toHaveLength(2);
    await rowOf(page, held.id).waitFor();
    for (const reward of bens) await rowOf(page, reward.id).getByTestId('reward-select').check();
    await page.getByTestId('rewards-bulk-approve').click();
    await dialog.waitFor();
    expect(await page.getByTestId('bulk-confirm').textContent()).toBe('Give a reason to approve them');
    expect(await page.getByTestId('bulk-confirm').isDisabled()).toBe(true);
    await page.getByTestId('bulk-reason').fill('Orders checked by hand');
    expect(await page.getByTestId('bulk-confirm').textContent()).toBe('Approve 2');
    await page.getByTestId('bulk-confirm').click();
    await expect.poll(() => page.getByTestId('notice').textContent()).toBe('Approved 2 rewards.');
    for (const reward of bens) {
      const trail = await transitionsOf(db, reward.id);
      expect(trail.at(-1)).toMatchObject({ from_status: 'pending', to_status: 'approved' });
      expect(trail.at(-1)?.reason).toMatch(/^forced before the hold ended \(.+\): Orders checked by hand$/);
    }

    expectCleanRequests(watched, api.url, program.secret);
    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });

  it('shows each participant’s totals for the filter, and the whole filter’s', async () => {
    const watched = await openPage(browser);
    const { page } = watched;
    await signIn(page, api.url, program.secret, 'Queue Co');
    await openTab(page, 'rewards');
    await page.getByTestId('rewards-status').selectOption('approved');
    const totals = expectOk(await api.get<RewardTotalsResponse>('/v1/rewards/totals?status=approved', { auth: program.secret }));
    expect(totals.data.map((row) => [row.participant, row.rewards])).toEqual([
      ['ana', 2],
      ['ben', 2],
    ]);
    const row = (participant: string) => page.locator(`[data-testid="reward-total-row"][data-participant="${participant}"]`);
    await expect.poll(() => row('ana').locator('[data-col="cash"]').textContent()).toBe('$4.90 · €2.50');
    expect(await row('ana').locator('[data-col="credit"]').textContent()).toBe('—');
    expect(await row('ben').locator('[data-col="cash"]').textContent()).toBe('$10.00');
    expect(await row('ben').locator('[data-col="credit"]').textContent()).toBe('$5.00');
    const all = page.getByTestId('reward-total-all');
    expect(await all.locator('th').textContent()).toBe('All 2 participants');
    expect(await all.locator('[data-col="rewards"]').textContent()).toBe('4');
    expect(await all.locator('[data-col="cash"]').textContent()).toBe('$14.90 · €2.50');
    expect(await all.locator('[data-col="credit"]').textContent()).toBe('$5.00');
    expect(await page.getByTestId('reward-totals-caption').textContent()).toBe('Approved rewards, ready to pay.');
    await screenshot(page, 'queue-totals-desktop');

    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });

  it('marks the selected rewards paid with the payment reference, recorded with each', async () => {
    const approved = await rewards('approved');
    expect(approved).toHaveLength(4);
    const watched = await openPage(browser);
    const { page } = watched;
    await signIn(page, api.url, program.secret, 'Queue Co');
    await openTab(page, 'rewards');
    await page.getByTestId('rewards-status').selectOption('approved');
    await page.getByTestId('reward-row').first().waitFor();
    await expect.poll(() => page.getByTestId('reward-row').count()).toBe(4);
    await page.getByTestId('rewards-select-all').check();
    await page.getByTestId('rewards-bulk-pay').click();
    await page.getByTestId('bulk-dialog').waitFor();
    expect(await page.getByTestId('bulk-title').textContent()).toBe('Mark as paid 4 rewards?');
    expect(await page.getByTestId('bulk-total').textContent()).toBe('Total: Cash $14.90 · €2.50; Store credit $5.00');
    // No reference, no payment.
    expect(await page.getByTestId('bulk-confirm').isDisabled()).toBe(true);
    await page.getByTestId('bulk-reference').fill('PAYPAL-BATCH-7');
    expect(await page.getByTestId('bulk-confirm').textContent()).toBe('Mark 4 paid');
    await page.getByTestId('bulk-confirm').click();
    await expect.poll(() => page.getByTestId('notice').textContent()).toBe('Marked paid 4 rewards.');
    expect(await rewards('approved')).toEqual([]);
    for (const reward of approved) {
      expect((await transitionsOf(db, reward.id)).at(-1)).toMatchObject({
        from_status: 'approved',
        to_status: 'paid',
        reason: 'paid: PAYPAL-BATCH-7',
      });
    }
    await page.getByTestId('rewards-status').selectOption('paid');
    await expect.poll(() => page.getByTestId('reward-total-row').count()).toBe(2);

    expectCleanRequests(watched, api.url, program.secret);
    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });

  it('reads well at a narrow width', async () => {
    const watched = await openPage(browser, NARROW);
    const { page } = watched;
    await signIn(page, api.url, program.secret, 'Queue Co');
    await openTab(page, 'rewards');
    await page.getByTestId('rewards-status').selectOption('paid');
    await page.getByTestId('reward-row').first().waitFor();
    await page.getByTestId('reward-total-all').waitFor();
    await screenshot(page, 'queue-narrow');
    // The tabs sit on a row of their own, beside nothing.
    const tabs = await page.locator('.tabs').boundingBox();
    const signout = await page.getByTestId('signout').boundingBox();
    expect(tabs && signout && tabs.y >= signout.y + signout.height - 1).toBe(true);
    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });
});
