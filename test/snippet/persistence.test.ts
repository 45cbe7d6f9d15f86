// @vitest-environment happy-dom
/**
 * Persistence rules: first vs last touch, expiry, the visitor id, and the cookie
 * and its localStorage mirror restoring each other.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DAY, KEY, openPage, setNow, type Page } from './browser.ts';

const T0 = Date.UTC(2026, 0, 15, 12);
const SHOP = 'https://shop.example/';

let page: Page;
afterEach(() => page.close());

/** Lands at `url` at `time` and runs /r.js; returns `referral.get()`. */
async function visit(url: string, time: number, attributes: Record<string, string> = { key: KEY }) {
  if (page) page.navigate(url);
  setNow(time);
  return (await page.load(attributes)).get();
}

interface TouchCase {
  name: string;
  attribution?: 'first' | 'last';
  cookieDays?: string;
  /** Days between the first landing (with ALICE) and the second (with BOB). */
  laterDays: number;
  expected: 'ALICE' | 'BOB';
  /** When the kept record was captured. */
  expectedTs: 'first' | 'second';
}

const touches: TouchCase[] = [
  { name: 'first touch keeps an unexpired code', laterDays: 10, expected: 'ALICE', expectedTs: 'first' },
  { name: 'first touch, said explicitly', attribution: 'first', laterDays: 59, expected: 'ALICE', expectedTs: 'first' },
  { name: 'first touch replaces an expired code', laterDays: 61, expected: 'BOB', expectedTs: 'second' },
  { name: 'a shorter lifetime expires sooner', cookieDays: '7', laterDays: 8, expected: 'BOB', expectedTs: 'second' },
  { name: 'last touch overwrites', attribution: 'last', laterDays: 1, expected: 'BOB', expectedTs: 'second' },
  { name: 'last touch overwrites an expired code too', attribution: 'last', laterDays: 90, expected: 'BOB', expectedTs: 'second' },
];

describe('first and last touch', () => {
  it.each(touches)('$name', async (test) => {
    const attributes: Record<string, string> = { key: KEY };
    if (test.attribution) attributes.attribution = test.attribution;
    if (test.cookieDays) attributes['cookie-days'] = test.cookieDays;
    page = openPage(`${SHOP}?ref=ALICE`);
    const first = await visit(`${SHOP}?ref=ALICE`, T0, attributes);
    const second = await visit(`${SHOP}landing?ref=BOB`, T0 + test.laterDays * DAY, attributes);

    expect(second).toEqual({ code: test.expected, vid: first?.vid });
    expect(page.stored()).toEqual({
      code: test.expected,
      vid: first?.vid,
      ts: test.expectedTs === 'first' ? T0 : T0 + test.laterDays * DAY,
    });
    // Both landings are clicks, whichever code is kept.
    expect(page.requests.filter((r) => r.url.endsWith('/v1/clicks')).map((r) => r.body.code)).toEqual(['ALICE', 'BOB']);
  });
});

describe('expiry and the visitor id', () => {
  it('forgets the code after its lifetime but keeps the visitor id', async () => {
    page = openPage(`${SHOP}?ref=ALICE`);
    const first = await visit(`${SHOP}?ref=ALICE`, T0);
    expect(await visit(SHOP, T0 + 59 * DAY)).toEqual(first);
    const expired = await visit(SHOP, T0 + 61 * DAY);
    expect(expired).toBeNull();
    expect(page.stored()).toEqual({ vid: first?.vid, ts: T0 + 61 * DAY });
  });

  it('creates a visitor id once, without a referral, and keeps it', async () => {
    page = openPage(SHOP);
    expect(await visit(SHOP, T0)).toBeNull();
    const vid = page.stored()?.vid;
    expect(vid).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
    await visit(`${SHOP}?ref=ALICE`, T0 + DAY);
    expect(page.stored()).toEqual({ code: 'ALICE', vid, ts: T0 + DAY });
  });

  it('gives different visitors different ids', async () => {
    const vids = new Set<string>();
    for (let i = 0; i < 20; i++) {
      page?.close();
      page = openPage(`${SHOP}?ref=ALICE`);
      vids.add((await page.load())!.get()!.vid);
    }
    expect(vids.size).toBe(20);
  });
});

interface RestoreCase {
  name: string;
  clear: () => void;
}

const restores: RestoreCase[] = [
  {
    name: 'the cookie is restored from localStorage',
    clear: () => (document.cookie = '_referral=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT'),
  },
  { name: 'localStorage is restored from the cookie', clear: () => localStorage.removeItem('_referral') },
];

describe('cookie and localStorage mirror', () => {
  it('writes the same record to both', async () => {
    page = openPage(`${SHOP}?ref=ALICE`);
    await visit(`${SHOP}?ref=ALICE`, T0);
    expect(JSON.parse(localStorage.getItem('_referral') ?? 'null')).toEqual(page.stored());
  });

  it.each(restores)('$name', async (test) => {
    page = openPage(`${SHOP}?ref=ALICE`);
    const first = await visit(`${SHOP}?ref=ALICE`, T0);
    test.clear();
    expect(await visit(SHOP, T0 + DAY)).toEqual(first);
    const record = { code: 'ALICE', vid: first?.vid, ts: T0 };
    expect(page.stored()).toEqual(record);
    expect(JSON.parse(localStorage.getItem('_referral') ?? 'null')).toEqual(record);
  });

  it('starts afresh when both are gone', async () => {
    page = openPage(`${SHOP}?ref=ALICE`);
    const first = await visit(`${SHOP}?ref=ALICE`, T0);
    localStorage.clear();
    document.cookie = '_referral=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT';
    expect(await visit(SHOP, T0 + DAY)).toBeNull();
    expect(page.stored()?.vid).not.toBe(first?.vid);
  });

  it('ignores an unreadable record (another script using the name)', async () => {
    page = openPage(`${SHOP}?ref=ALICE`);
    document.cookie = '_referral=not-json; path=/';
    localStorage.setItem('_referral', '{oops');
    setNow(T0);
    expect((await page.load())!.get()).toEqual({ code: 'ALICE', vid: expect.stringMatching(/^[\w-]{8,64}$/) });
  });
});
