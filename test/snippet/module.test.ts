// @vitest-environment happy-dom
/**
 * The ES module build's API (package export "./snippet"): init(options),
 * referral(…) before and after init, get().
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KEY, openPage, type Page } from './browser.ts';

type SnippetModule = typeof import('../../snippet/src/module.ts');

let page: Page;
let snippet: SnippetModule;
beforeEach(async () => {
  vi.resetModules();
  snippet = await import('../../snippet/src/module.ts');
});
afterEach(() => page.close());

describe('ES module', () => {
  it('keeps calls made before init and replays them in order', async () => {
    page = openPage('https://shop.example/?ref=ALICE');
    const ready = vi.fn(() => expect(page.requests.map((r) => r.body.type ?? 'click')).toEqual(['click', 'signup']));
    snippet.referral('signup', { userId: 'u1' });
    snippet.referral('ready', ready);
    expect(snippet.get()).toBeNull();
    expect(page.requests).toEqual([]);

    snippet.init({ key: KEY, api: 'https://collector.example' });
    expect(ready).toHaveBeenCalledOnce();
    expect(snippet.get()).toEqual({ code: 'ALICE', vid: expect.any(String) });
    snippet.referral('purchase', { userId: 'u1', orderId: 'o1', amount: 500, currency: 'EUR' });
    expect(page.requests.map((r) => [r.url, r.body.type ?? 'click'])).toEqual([
      ['https://collector.example/v1/clicks', 'click'],
      ['https://collector.example/v1/events', 'signup'],
      ['https://collector.example/v1/events', 'purchase'],
    ]);
  });

  it("sends to the page's own origin when api is not given", () => {
    page = openPage('https://shop.example/deep/page?ref=ALICE');
    snippet.init({ key: KEY });
    expect(page.requests.map((r) => r.url)).toEqual(['https://shop.example/v1/clicks']);
  });

  it('takes the same options as the data-* attributes', () => {
    page = openPage('https://shop.example/?via=BOB');
    snippet.init({ key: KEY, api: 'https://collector.example', param: 'via', cookieDays: 3, cleanUrl: true, attribution: 'last' });
    expect(snippet.get()?.code).toBe('BOB');
    expect(location.href).toBe('https://shop.example/');
  });

  it('starts once: a second init is ignored', () => {
    page = openPage('https://shop.example/?ref=ALICE');
    snippet.init({ key: KEY, api: 'https://collector.example' });
    snippet.init({ key: KEY, api: 'https://elsewhere.example' });
    snippet.track('signup', { userId: 'u1' });
    expect(page.requests.map((r) => r.url)).toEqual(['https://collector.example/v1/clicks', 'https://collector.example/v1/events']);
  });

  it('never throws, even with unusable options', () => {
    page = openPage('https://shop.example/?ref=ALICE');
    expect(() => snippet.init({ key: KEY, api: 'not a url' })).not.toThrow();
    expect(() => snippet.referral('signup', { userId: 'u1' })).not.toThrow();
  });
});
