// @vitest-environment happy-dom
/**
 * The JS API: referral('signup' | 'purchase' | 'ready', …) and referral.get(),
 * before and after load, SPA navigations, and no throwing into the host page.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ClickCreateSchema, EventCreateSchema } from '../../shared/schemas.ts';
import { KEY, openPage, snippetCode, type Page } from './browser.ts';

const SHOP = 'https://shop.example/';
let page: Page;
afterEach(() => page.close());

const events = () => page.requests.filter((request) => request.url === 'https://collector.example/v1/events');
const clicks = () => page.requests.filter((request) => request.url === 'https://collector.example/v1/clicks');

describe('calls queued by the loader stub', () => {
  it('replays them in order once loaded, after capturing the referral', async () => {
    page = openPage(`${SHOP}?ref=ALICE`);
    const log: string[] = [];
    const referral = page.stub();
    referral('signup', { userId: 'u1' });
    referral('ready', () => log.push('ready 1'));
    referral('purchase', { userId: 'u1', orderId: 'o1', amount: 1999, currency: 'EUR' });
    referral('ready', () => log.push('ready 2'));
    const answer = page.answer;
    page.answer = (url) => {
      log.push(url.endsWith('/v1/clicks') ? 'click' : 'event');
      return answer(url);
    };
    expect(log).toEqual([]);

    await page.load();
    // fetch is called synchronously by each call, so the log shows the true order.
    expect(log).toEqual(['click', 'event', 'ready 1', 'event', 'ready 2']);
    expect(events().map((r) => [r.body.type, r.body.code])).toEqual([
      ['signup', 'ALICE'],
      ['purchase', 'ALICE'],
    ]);
  });

  it('runs calls made after load at once', async () => {
    page = openPage(`${SHOP}?ref=ALICE`);
    page.stub();
    const referral = await page.load();
    const ready = vi.fn();
    referral('ready', ready);
    expect(ready).toHaveBeenCalledOnce();
    referral('signup', { userId: 'u2', email: 'u2@example.com' });
    expect(events()).toHaveLength(1);
  });

  it('works without the stub too', async () => {
    page = openPage(`${SHOP}?ref=ALICE`);
    const referral = await page.load();
    referral('signup', { userId: 'u3' });
    expect(events()).toHaveLength(1);
  });
});

describe('events', () => {
  interface EventCase {
    name: string;
    url: string;
    call: [string, Record<string, unknown>];
    expected: Record<string, unknown>;
  }
  const cases: EventCase[] = [
    {
      name: 'signup with a referral',
      url: `${SHOP}?ref=ALICE`,
      call: ['signup', { userId: 'u1', email: 'u1@example.com' }],
      expected: { key: KEY, type: 'signup', code: 'ALICE', user: { id: 'u1', email: 'u1@example.com' } },
    },
    {
      name: 'signup without a referral (no code)',
      url: SHOP,
      call: ['signup', { userId: 'u1' }],
      expected: { key: KEY, type: 'signup', user: { id: 'u1' } },
    },
    {
      name: 'purchase',
      url: `${SHOP}?ref=ALICE`,
      call: ['purchase', { userId: 'u1', orderId: 'o-9', amount: 4900, currency: 'USD' }],
      expected: { key: KEY, type: 'purchase', code: 'ALICE', user: { id: 'u1' }, order: { id: 'o-9', amount: 4900, currency: 'USD' } },
    },
  ];

  it.each(cases)('$name', async (test) => {
    page = openPage(test.url);
    const referral = await page.load();
    referral(...test.call);
    const [event] = events();
    expect(event?.body).toEqual({ ...test.expected, eventId: expect.any(String), vid: referral.get()?.vid ?? page.stored()?.vid });
    expect(EventCreateSchema.safeParse(event?.body).success).toBe(true);
    // text/plain (a string body), keepalive: no preflight, survives unload.
    expect(typeof event?.init.body).toBe('string');
    expect(event?.init).toMatchObject({ method: 'POST', keepalive: true });
    expect(event?.init.headers).toBeUndefined();
  });

  it('gives every event its own id', async () => {
    page = openPage(`${SHOP}?ref=ALICE`);
    const referral = await page.load();
    for (let i = 0; i < 10; i++) referral('signup', { userId: `u${i}` });
    const ids = events().map((r) => r.body.eventId);
    expect(new Set(ids).size).toBe(10);
    for (const id of ids) expect(id).toMatch(/^[\w-]{8,64}$/);
  });

  it('reports a click the collector accepts', async () => {
    page = openPage(`${SHOP}p?ref=ALICE`);
    Object.defineProperty(document, 'referrer', { configurable: true, value: 'https://news.example/post' });
    const referral = await page.load();
    delete (document as any).referrer;
    expect(clicks().map((r) => r.body)).toEqual([
      { key: KEY, code: 'ALICE', vid: referral.get()?.vid, url: `${SHOP}p?ref=ALICE`, referrer: 'https://news.example/post' },
    ]);
    expect(ClickCreateSchema.safeParse(clicks()[0]?.body).success).toBe(true);
  });
});

describe('referral.get()', () => {
  it('returns the code and visitor id only, as a copy', async () => {
    page = openPage(`${SHOP}?ref=ALICE`);
    const referral = await page.load();
    const state = referral.get();
    expect(state).toEqual({ code: 'ALICE', vid: expect.any(String) });
    (state as { code: string }).code = 'MALLORY';
    expect(referral.get()?.code).toBe('ALICE');
  });

  it('returns null when there is no referral', async () => {
    page = openPage(SHOP);
    expect((await page.load()).get()).toBeNull();
  });
});

describe('SPA navigations', () => {
  it('captures a code arriving through history.pushState', async () => {
    page = openPage(SHOP);
    const referral = await page.load();
    history.pushState({}, '', '/pricing');
    expect(clicks()).toEqual([]);
    history.pushState({ page: 2 }, '', '/promo?ref=SPA');
    expect(location.pathname + location.search).toBe('/promo?ref=SPA');
    expect(history.state).toEqual({ page: 2 });
    expect(referral.get()?.code).toBe('SPA');
    expect(clicks().map((r) => r.body.url)).toEqual(['https://shop.example/promo?ref=SPA']);
  });

  it('cleans the URL after an SPA capture when asked', async () => {
    page = openPage(SHOP);
    await page.load({ key: KEY, 'clean-url': '' });
    history.pushState({}, '', '/promo?ref=SPA&x=1');
    expect(location.href).toBe('https://shop.example/promo?x=1');
  });
});

describe('never throws into the host page', () => {
  const badCalls: Array<[string, unknown[]]> = [
    ['signup without data', ['signup']],
    ['purchase with null', ['purchase', null]],
    ['ready without a function', ['ready', 'nope']],
    [
      'a ready callback that throws',
      [
        'ready',
        () => {
          throw new Error('host bug');
        },
      ],
    ],
    ['an unknown call', ['refund', { userId: 'u1' }]],
    ['no arguments', []],
  ];

  it.each(badCalls)('%s', async (_name, args) => {
    page = openPage(`${SHOP}?ref=ALICE`);
    const referral = await page.load();
    expect(() => (referral as (...a: unknown[]) => void)(...args)).not.toThrow();
    // …and a later, good call still works.
    referral('signup', { userId: 'u1' });
    expect(events().filter((r) => r.body.type === 'signup')).toHaveLength(1);
  });

  it('survives fetch throwing synchronously', async () => {
    page = openPage(`${SHOP}?ref=ALICE`);
    const referral = await page.load();
    vi.stubGlobal('fetch', () => {
      throw new TypeError('fetch is broken');
    });
    expect(() => referral('signup', { userId: 'u1' })).not.toThrow();
  });

  it('survives localStorage throwing (blocked storage): silent, ready still fires', async () => {
    page = openPage(`${SHOP}?ref=ALICE`);
    const storage = Object.getOwnPropertyDescriptor(window, 'localStorage');
    Object.defineProperty(window, 'localStorage', {
      configurable: true,
      get: () => {
        throw new DOMException('The operation is insecure.', 'SecurityError');
      },
    });
    try {
      page.stub();
      const ready = vi.fn();
      window.referral && (window.referral as (...a: unknown[]) => void)('ready', ready);
      const referral = await page.load();
      expect(ready).toHaveBeenCalledOnce();
      expect(() => referral('signup', { userId: 'u1' })).not.toThrow();
      expect(referral.get()).toBeNull();
      expect(page.requests).toEqual([]);
    } finally {
      if (storage) Object.defineProperty(window, 'localStorage', storage);
      else delete (window as any).localStorage;
    }
  });

  it('survives a missing currentScript (no tag to read): the stub stays', async () => {
    page = openPage(`${SHOP}?ref=ALICE`);
    const stub = page.stub();
    const code = await snippetCode();
    expect(document.currentScript).toBeNull();
    expect(() => new Function(code)()).not.toThrow();
    expect(window.referral).toBe(stub);
    expect(page.requests).toEqual([]);
  });
});
