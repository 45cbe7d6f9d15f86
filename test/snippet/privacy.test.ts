// @vitest-environment happy-dom
/**
 * Bots and opt-outs: the snippet sends nothing and stores nothing, yet the page's
 * calls stay harmless and 'ready' callbacks still run.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { KEY, openPage, type Page } from './browser.ts';

let page: Page;
afterEach(() => page.close());

interface Case {
  name: string;
  setup: () => void;
  attributes?: Record<string, string>;
  tracked: boolean;
}

const setNavigator = (name: string, value: unknown) => Object.defineProperty(navigator, name, { configurable: true, value });

const cases: Case[] = [
  { name: 'a human visitor is tracked', setup: () => {}, tracked: true },
  { name: 'a bot (navigator.webdriver) is not', setup: () => setNavigator('webdriver', true), tracked: false },
  { name: 'opted out (localStorage._referral_optout = "1")', setup: () => localStorage.setItem('_referral_optout', '1'), tracked: false },
  { name: 'an opt-out flag of "0" is no opt-out', setup: () => localStorage.setItem('_referral_optout', '0'), tracked: true },
  {
    name: 'GPC with data-respect-gpc',
    setup: () => setNavigator('globalPrivacyControl', true),
    attributes: { key: KEY, 'respect-gpc': '' },
    tracked: false,
  },
  { name: 'GPC without data-respect-gpc', setup: () => setNavigator('globalPrivacyControl', true), tracked: true },
  {
    name: 'data-respect-gpc without GPC',
    setup: () => setNavigator('globalPrivacyControl', false),
    attributes: { key: KEY, 'respect-gpc': '' },
    tracked: true,
  },
  {
    name: 'data-respect-gpc="false" ignores GPC',
    setup: () => setNavigator('globalPrivacyControl', true),
    attributes: { key: KEY, 'respect-gpc': 'false' },
    tracked: true,
  },
];

describe('bots and opt-outs', () => {
  it.each(cases)('$name', async (test) => {
    page = openPage('https://shop.example/?ref=ALICE');
    test.setup();
    const ready = vi.fn();
    const stub = page.stub();
    stub('ready', ready);
    stub('signup', { userId: 'u1' });
    const referral = await page.load(test.attributes ?? { key: KEY });
    referral('purchase', { userId: 'u1', orderId: 'o1', amount: 100, currency: 'USD' });
    history.pushState({}, '', '/next?ref=BOB');
    await page.settle();

    expect(ready).toHaveBeenCalledOnce();
    if (test.tracked) {
      expect(page.requests.map((r) => r.body.type ?? 'click')).toEqual(['click', 'signup', 'purchase', 'click']);
      expect(referral.get()?.code).toBe('ALICE');
    } else {
      expect(page.requests).toEqual([]);
      expect(page.cookieWrites).toEqual([]);
      expect(localStorage.getItem('_referral')).toBeNull();
      expect(referral.get()).toBeNull();
    }
  });
});
