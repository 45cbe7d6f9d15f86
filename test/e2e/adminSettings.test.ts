/**
 * The settings form and the refused-origin banner in a real Chromium against the real
 * app: origins and a reward rule edited and saved through the form, amounts typed in
 * minor units with what they mean beside them, the rule preview's amounts, a field
 * error next to its field, and a refused origin added with one click.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProgramResponse, RefusedOriginListResponse } from '../../shared/responses.ts';
import type { TestApp } from '../helpers/app.ts';
import { buildParticipant, buildProgram, newVid, type ProgramFixture } from '../helpers/factories.ts';
import { expectError, expectOk, sendClick } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';
import { expectCleanRequests, launch, NARROW, openPage, openTab, screenshot, signIn, unexpected } from './dashboardPage.ts';

const RULES = [
  { id: 'signup-bonus', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 500, currency: 'USD' }, holdDays: 30 },
];
const FOREIGN = 'https://www.acme-preview.example';

describe('settings and refused origins (Chromium, pglite)', () => {
  let api: TestApp;
  let program: ProgramFixture;
  let browser: Browser;

  useTestApp('pglite', (suite) => ({ api } = suite));
  beforeAll(async () => {
    program = await buildProgram(api, { name: 'Settings Co', settings: { rewardRules: RULES } });
    browser = await launch();
  });

  afterAll(async () => {
    await browser?.close();
  });

  const stored = async () => expectOk(await api.get<{ program: ProgramResponse }>('/v1/program', { auth: program.secret })).program;
  const lastRule = (page: Page) => page.getByTestId('rule-card').last();

  it('saves origins and a new rule from the form, previewing what the rule pays for the sample typed', async () => {
    const watched = await openPage(browser);
    const { page } = watched;
    await signIn(page, api.url, program.secret, 'Settings Co');
    await openTab(page, 'settings');
    await expect.poll(() => page.getByTestId('rule-card').count()).toBe(1);
    expect(await page.getByTestId('rule-id').inputValue()).toBe('signup-bonus');
    // The saved rule's amount is in cents, and says what it means.
    expect(await page.getByTestId('rule-amount-hint').textContent()).toBe('= $5.00');

    await page.getByTestId('origin-add').click();
    await page.getByTestId('origin-input').last().fill('https://www.acme.example');
    await page.getByTestId('rule-add').click();
    const rule = lastRule(page);
    await rule.getByTestId('rule-id').fill('vip-order');
    await rule.getByTestId('rule-to').selectOption('both');
    await rule.getByTestId('rule-kind').selectOption('credit');
    await rule.getByTestId('rule-value-type').selectOption('amount');
    await rule.getByTestId('rule-amount').fill('1500');
    await rule.getByTestId('rule-currency').fill('usd');
    expect(await rule.getByTestId('rule-amount-hint').textContent()).toBe('= $15.00');
    await rule.getByTestId('rule-min-amount').fill('5000');
    expect(await rule.getByTestId('rule-min-hint').textContent()).toBe("= 50.00 in the purchase's currency");

    // The preview: a $80.00 purchase pays both sides $15.00; signups pay the referrer $5.00 (held 30 days).
    await page.getByTestId('preview-amount').fill('8000');
    expect(await page.getByTestId('preview-amount-hint').textContent()).toBe('= $80.00');
    const previewRow = (id: string) => page.locator(`[data-testid="preview-row"][data-rule="${id}"]`);
    const paid = (id: string, column: 'preview-signup' | 'preview-purchase') =>
      previewRow(id)
        .getByTestId(column)
        .getByTestId('preview-reward')
        .evaluateAll((nodes) =>
          nodes.map((node) => [node.getAttribute('data-to'), Number(node.getAttribute('data-amount')), node.getAttribute('data-currency')]),
        );
    await expect
      .poll(() => paid('vip-order', 'preview-purchase'))
      .toEqual([
        ['referrer', 1500, 'USD'],
        ['referee', 1500, 'USD'],
      ]);
    expect(await previewRow('vip-order').getByTestId('preview-purchase').textContent()).toBe(
      'Referrer: $15.00 store creditReferred customer: $15.00 store credit',
    );
    expect(await paid('signup-bonus', 'preview-signup')).toEqual([['referrer', 500, 'USD']]);
    expect(await previewRow('signup-bonus').getByTestId('preview-signup').textContent()).toBe(
      'Referrer: $5.00 store credit (pending 30 days)',
    );
    // Below the rule's minimum: nothing, and why.
    await page.getByTestId('preview-amount').fill('4000');
    await expect
      .poll(() => previewRow('vip-order').getByTestId('preview-purchase').textContent())
      .toBe("Nothing: the amount is below the rule's minimum (5000 in minor units)");
    await screenshot(page, 'settings-form-desktop');

    await page.getByTestId('settings-save').click();
    await expect.poll(() => page.getByTestId('settings-status').textContent()).toContain('Saved');
    const saved = await stored();
    expect(saved.settings.origins).toEqual(['https://shop.example', 'https://www.acme.example']);
    expect(saved.settings.rewardRules).toEqual([
      ...RULES,
      { id: 'vip-order', on: 'purchase', to: 'both', reward: { kind: 'credit', amount: 1500, currency: 'USD' }, when: { minAmount: 5000 } },
    ]);

    expectCleanRequests(watched, api.url, program.secret);
    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });

  it('shows a field error next to its field, and keeps the stored settings', async () => {
    const before = await stored();
    const watched = await openPage(browser);
    const { page } = watched;
    await signIn(page, api.url, program.secret, 'Settings Co');
    await openTab(page, 'settings');
    await expect.poll(() => page.getByTestId('rule-card').count()).toBe(2);
    const rule = lastRule(page);
    await rule.getByTestId('rule-currency').fill('');
    // The preview says so first, next to the field …
    const error = rule.locator('[data-error-for="rewardRules.1.reward.currency"]');
    await expect.poll(() => error.textContent()).toBe('a fixed amount needs a currency');
    expect(await page.getByTestId('preview-status').textContent()).toBe('Fix the fields marked above to see what the rules pay.');
    // … and so does the save, which changes nothing.
    await page.getByTestId('origin-input').first().fill('not a url');
    await page.getByTestId('settings-save').click();
    await expect.poll(() => page.locator('[data-error-for="origins.0"]').textContent()).toBe('must be an http(s) URL');
    expect(await error.isVisible()).toBe(true);
    expect(await page.getByTestId('settings-errors').isHidden()).toBe(true);
    await screenshot(page, 'settings-field-error');
    expect((await stored()).settings).toEqual(before.settings);

    // The JSON view stays for power users, with the same copy.
    await page.getByTestId('settings-reset').click();
    await page.getByTestId('settings-mode-json').click();
    const json = JSON.parse(await page.getByTestId('settings-editor').inputValue()) as { rewardRules: unknown[] };
    expect(json.rewardRules).toEqual(before.settings.rewardRules);

    expect(unexpected(watched, [422])).toEqual([]);
    await page.context().close();
  });

  it('reads well at a narrow width', async () => {
    const watched = await openPage(browser, NARROW);
    const { page } = watched;
    await signIn(page, api.url, program.secret, 'Settings Co');
    await openTab(page, 'settings');
    await page.locator('[data-testid="preview-row"]').first().waitFor();
    await screenshot(page, 'settings-form-narrow');
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(width, 'nothing wider than the screen').toBeLessThanOrEqual(NARROW.width);
    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });

  it('warns about events refused from an origin, and adds it with one click', async () => {
    const R = await buildParticipant(api, program);
    for (let i = 0; i < 3; i++) {
      expectError(
        await sendClick(api, program, { code: R.code, vid: newVid() }, { headers: { origin: FOREIGN } }),
        403,
        'origin_not_allowed',
      );
    }
    const watched = await openPage(browser);
    const { page } = watched;
    await signIn(page, api.url, program.secret, 'Settings Co');
    const banner = page.locator(`[data-testid="refused-origin"][data-origin="${FOREIGN}"]`);
    await banner.waitFor();
    // Written once for the three (once a minute at most).
    expect(await banner.textContent()).toMatch(
      new RegExp(`^Events refused from origin ${FOREIGN.replace(/\./g, '\\.')} \\(1 request, last at `),
    );
    await screenshot(page, 'refused-origin-banner');

    await banner.getByTestId('refused-origin-add').click();
    await expect.poll(() => page.getByTestId('refused-origins').isHidden()).toBe(true);
    expect(await page.getByTestId('notice').textContent()).toContain(`${FOREIGN} is now one of the program's origins`);
    expect((await stored()).settings.origins).toContain(FOREIGN);
    expect(expectOk(await api.get<RefusedOriginListResponse>('/v1/program/refused-origins', { auth: program.secret })).data).toEqual([]);
    expectOk(await sendClick(api, program, { code: R.code, vid: newVid() }, { headers: { origin: FOREIGN } }), 202);

    expect(unexpected(watched)).toEqual([]);
    await page.context().close();
  });
});
