// @vitest-environment happy-dom
/**
 * Options from the script tag's data-* attributes, observed through what the
 * snippet does: where it sends, which parameter it reads, how the cookie is written.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DAY, KEY, lastCookieWrite, openPage, setNow, type Page } from './browser.ts';

const NOW = Date.UTC(2026, 0, 15, 12);

interface Case {
  name: string;
  url: string;
  attributes: Record<string, string>;
  src?: string;
  /** Where the click goes; null: no click at all. */
  clickUrl: string | null;
  code?: string;
  cookieDays?: number;
  domain?: string;
  secure?: boolean;
  /** The address bar after capture. */
  finalUrl?: string;
}

const cases: Case[] = [
  {
    name: 'defaults: the script origin, ?ref, 60 days, no domain, URL kept',
    url: 'https://shop.example/pricing?ref=ALICE',
    attributes: { key: KEY },
    clickUrl: 'https://collector.example/v1/clicks',
    code: 'ALICE',
    cookieDays: 60,
    secure: true,
    finalUrl: 'https://shop.example/pricing?ref=ALICE',
  },
  {
    name: 'data-api replaces the script origin',
    url: 'https://shop.example/?ref=ALICE',
    attributes: { key: KEY, api: 'https://api.example' },
    clickUrl: 'https://api.example/v1/clicks',
    code: 'ALICE',
  },
  {
    name: 'data-api with a path (a first-party proxy) keeps the path',
    url: 'https://shop.example/?ref=ALICE',
    attributes: { key: KEY, api: 'https://shop.example/referral/' },
    clickUrl: 'https://shop.example/referral/v1/clicks',
    code: 'ALICE',
  },
  {
    name: 'data-param: a comma list, the first one present wins',
    url: 'https://shop.example/?ref=ALICE&via=BOB',
    attributes: { key: KEY, param: 'via,ref' },
    clickUrl: 'https://collector.example/v1/clicks',
    code: 'BOB',
  },
  {
    name: 'data-param: another name than ref',
    url: 'https://shop.example/?ref=ALICE',
    attributes: { key: KEY, param: 'aff' },
    clickUrl: null,
  },
  {
    name: 'data-cookie-days sets the lifetime',
    url: 'https://shop.example/?ref=ALICE',
    attributes: { key: KEY, 'cookie-days': '7' },
    clickUrl: 'https://collector.example/v1/clicks',
    code: 'ALICE',
    cookieDays: 7,
  },
  {
    name: 'an unreadable data-cookie-days falls back to 60',
    url: 'https://shop.example/?ref=ALICE',
    attributes: { key: KEY, 'cookie-days': 'soon' },
    clickUrl: 'https://collector.example/v1/clicks',
    code: 'ALICE',
    cookieDays: 60,
  },
  {
    name: 'data-domain shares the cookie across subdomains',
    url: 'https://www.shop.example/?ref=ALICE',
    attributes: { key: KEY, domain: 'shop.example' },
    clickUrl: 'https://collector.example/v1/clicks',
    code: 'ALICE',
    domain: 'shop.example',
  },
  {
    name: 'data-clean-url removes the parameter, keeping the rest',
    url: 'https://shop.example/p?utm=x&ref=ALICE#plans',
    attributes: { key: KEY, 'clean-url': '' },
    clickUrl: 'https://collector.example/v1/clicks',
    code: 'ALICE',
    finalUrl: 'https://shop.example/p?utm=x#plans',
  },
  {
    name: 'data-clean-url="false" leaves the URL alone',
    url: 'https://shop.example/p?ref=ALICE',
    attributes: { key: KEY, 'clean-url': 'false' },
    clickUrl: 'https://collector.example/v1/clicks',
    code: 'ALICE',
    finalUrl: 'https://shop.example/p?ref=ALICE',
  },
  {
    name: 'plain http: no Secure attribute',
    url: 'http://shop.example/?ref=ALICE',
    attributes: { key: KEY },
    clickUrl: 'https://collector.example/v1/clicks',
    code: 'ALICE',
    secure: false,
  },
  {
    name: 'no data-key: nothing is sent',
    url: 'https://shop.example/?ref=ALICE',
    attributes: {},
    clickUrl: null,
  },
  {
    name: 'a code longer than the collector accepts is ignored',
    url: `https://shop.example/?ref=${'x'.repeat(65)}`,
    attributes: { key: KEY },
    clickUrl: null,
  },
];

describe('config from script attributes', () => {
  let page: Page;
  afterEach(() => page.close());

  it.each(cases)('$name', async (test) => {
    page = openPage(test.url);
    setNow(NOW);
    const referral = await page.load(test.attributes, test.src);

    const clicks = page.requests.filter((request) => request.url.endsWith('/v1/clicks'));
    if (test.clickUrl === null) {
      expect(clicks).toEqual([]);
      expect(referral.get()).toBeNull();
      return;
    }
    expect(clicks.map((click) => click.url)).toEqual([test.clickUrl]);
    expect(clicks[0]?.body).toMatchObject({ key: KEY, code: test.code });
    expect(referral.get()?.code).toBe(test.code);

    const cookie = lastCookieWrite(page);
    expect(cookie).toBeDefined();
    expect(cookie?.samesite).toBe('Lax');
    expect(cookie?.path).toBe('/');
    if (test.cookieDays !== undefined)
      expect(Date.parse(String(cookie?.expires))).toBe(Math.floor((NOW + test.cookieDays * DAY) / 1000) * 1000);
    if (test.domain !== undefined) expect(cookie?.domain).toBe(test.domain);
    else expect(cookie?.domain).toBeUndefined();
    if (test.secure !== undefined) expect(cookie?.secure === true).toBe(test.secure);
    if (test.finalUrl !== undefined) expect(location.href).toBe(test.finalUrl);
  });
});
