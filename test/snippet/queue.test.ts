// @vitest-environment happy-dom
/**
 * Reliable delivery: which answers are retried, the queue's bounds (20 sends,
 * 7 days), backoff, and retries on later loads and on `online` that resend the
 * same body (same eventId).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { QUEUE_KEY, QUEUE_MAX, QUEUE_MAX_AGE_MS, RETRY_BASE_MS } from '../../snippet/src/config.ts';
import { deliver, flushQueue, type PendingSend } from '../../snippet/src/queue.ts';
import { DAY, KEY, openPage, setNow, type Answer, type Page } from './browser.ts';

const T0 = Date.UTC(2026, 0, 15, 12);
const URL_EVENTS = 'https://collector.example/v1/events';
let page: Page;
afterEach(() => page.close());

const queued = (): PendingSend[] => JSON.parse(localStorage.getItem(QUEUE_KEY) ?? '[]');
const body = (n: number) => JSON.stringify({ key: KEY, type: 'signup', eventId: `event-${n}`, vid: 'visitor-1', user: { id: `u${n}` } });

describe('which answers are retried', () => {
  const answers: Array<[Answer, boolean]> = [
    [202, false],
    [200, false],
    [400, false],
    [403, false],
    [404, false],
    [413, false],
    [422, false],
    [429, true],
    [500, true],
    [502, true],
    [503, true],
    ['network-error', true],
  ];

  it.each(answers)('%s → queued: %s', async (answer, retried) => {
    page = openPage('https://shop.example/');
    setNow(T0);
    page.answer = () => answer;
    deliver(URL_EVENTS, body(1));
    await page.settle();
    expect(page.requests).toHaveLength(1);
    expect(queued()).toEqual(retried ? [[URL_EVENTS, body(1), T0, T0 + RETRY_BASE_MS]] : []);
  });
});

describe('queue bounds', () => {
  it(`keeps the newest ${QUEUE_MAX} sends`, async () => {
    page = openPage('https://shop.example/');
    setNow(T0);
    page.answer = () => 503;
    for (let n = 1; n <= QUEUE_MAX + 5; n++) {
      deliver(URL_EVENTS, body(n));
      await page.settle();
    }
    expect(queued().map((send) => send[1])).toEqual(Array.from({ length: QUEUE_MAX }, (_, i) => body(i + 6)));
  });

  it('drops sends older than 7 days', async () => {
    page = openPage('https://shop.example/');
    page.answer = () => 503;
    setNow(T0);
    deliver(URL_EVENTS, body(1));
    await page.settle();
    setNow(T0 + QUEUE_MAX_AGE_MS - 1);
    deliver(URL_EVENTS, body(2));
    await page.settle();
    expect(queued().map((send) => send[1])).toEqual([body(1), body(2)]);
    setNow(T0 + QUEUE_MAX_AGE_MS + 1);
    deliver(URL_EVENTS, body(3));
    await page.settle();
    expect(queued().map((send) => send[1])).toEqual([body(2), body(3)]);
  });

  it('never retries a send past 7 days, even when it is due', async () => {
    page = openPage('https://shop.example/');
    page.answer = () => 503;
    setNow(T0);
    deliver(URL_EVENTS, body(1));
    await page.settle();
    setNow(T0 + 8 * DAY);
    page.requests.length = 0;
    flushQueue();
    await page.settle();
    expect(page.requests).toEqual([]);
    expect(queued()).toEqual([]);
  });

  it.each(['{not json', '{"a":1}', '42'])('treats a corrupt queue (%s) as empty, and repairs it', async (corrupt) => {
    page = openPage('https://shop.example/');
    setNow(T0);
    localStorage.setItem(QUEUE_KEY, corrupt);
    expect(() => flushQueue()).not.toThrow();
    page.answer = () => 503;
    deliver(URL_EVENTS, body(1));
    await page.settle();
    expect(page.requests).toHaveLength(1);
    expect(queued()).toEqual([[URL_EVENTS, body(1), T0, T0 + RETRY_BASE_MS]]);
  });
});

describe('backoff', () => {
  it('waits longer after each failure and resends the same bytes', async () => {
    page = openPage('https://shop.example/');
    page.answer = () => 503;
    setNow(T0);
    deliver(URL_EVENTS, body(1));
    await page.settle();

    // [seconds after T0, sent?, due afterwards (seconds after T0)]
    const steps: Array<[number, boolean, number]> = [
      [10, false, 30], // not due yet
      [31, true, 92], // waited 31 s: next wait 31 + 30
      [60, false, 92],
      [93, true, 216], // waited 93 s: next wait 93 + 30
      [216, true, 462],
    ];
    for (const [seconds, sent, due] of steps) {
      setNow(T0 + seconds * 1000);
      const before = page.requests.length;
      flushQueue();
      await page.settle();
      expect(page.requests.length - before, `at +${seconds}s`).toBe(sent ? 1 : 0);
      expect(queued(), `at +${seconds}s`).toEqual([[URL_EVENTS, body(1), T0, T0 + due * 1000]]);
    }
    expect(new Set(page.requests.map((request) => request.raw))).toEqual(new Set([body(1)]));
  });

  it('retries the queued sends that are due along with a new send, and keeps the others', async () => {
    page = openPage('https://shop.example/');
    page.answer = () => 503;
    setNow(T0);
    deliver(URL_EVENTS, body(1));
    await page.settle();
    setNow(T0 + 20_000);
    deliver(URL_EVENTS, body(2));
    await page.settle();
    page.answer = () => 202;
    setNow(T0 + RETRY_BASE_MS);
    page.requests.length = 0;
    deliver(URL_EVENTS, body(3));
    await page.settle();
    // body(1) was due (T0 + 30 s), body(2) is not (T0 + 20 s + 30 s).
    expect(page.requests.map((request) => request.raw)).toEqual([body(1), body(3)]);
    expect(queued()).toEqual([[URL_EVENTS, body(2), T0 + 20_000, T0 + 20_000 + RETRY_BASE_MS]]);
  });

  it('empties the queue once a retry succeeds', async () => {
    page = openPage('https://shop.example/');
    page.answer = () => 'network-error';
    setNow(T0);
    deliver(URL_EVENTS, body(1));
    await page.settle();
    page.answer = () => 202;
    setNow(T0 + RETRY_BASE_MS);
    flushQueue();
    await page.settle();
    expect(queued()).toEqual([]);
    expect(page.requests.map((request) => request.raw)).toEqual([body(1), body(1)]);
  });
});

describe('retries through the snippet', () => {
  async function failSignup() {
    page = openPage('https://shop.example/?ref=ALICE');
    setNow(T0);
    page.answer = (url) => (url.endsWith('/v1/events') ? 'network-error' : 202);
    const referral = await page.load();
    referral('signup', { userId: 'u1' });
    await page.settle();
    const [event] = page.requests.filter((request) => request.url === URL_EVENTS);
    expect(queued()).toHaveLength(1);
    page.answer = () => 202;
    return event!;
  }

  it('retries on a later page load, with the same eventId', async () => {
    const event = await failSignup();
    page.navigate('https://shop.example/welcome');
    setNow(T0 + RETRY_BASE_MS + 1);
    await page.load();
    const resent = page.requests.filter((request) => request.url === URL_EVENTS);
    expect(resent.map((request) => request.raw)).toEqual([event.raw, event.raw]);
    expect(resent[1]?.body.eventId).toBe(event.body.eventId);
    expect(queued()).toEqual([]);
  });

  it('retries when the browser comes back online', async () => {
    const event = await failSignup();
    setNow(T0 + RETRY_BASE_MS + 1);
    window.dispatchEvent(new Event('online'));
    await page.settle();
    expect(page.requests.filter((request) => request.url === URL_EVENTS).map((request) => request.raw)).toEqual([event.raw, event.raw]);
    expect(queued()).toEqual([]);
  });

  it('does not resend before the backoff has passed', async () => {
    await failSignup();
    page.navigate('https://shop.example/welcome');
    setNow(T0 + 1000);
    await page.load();
    window.dispatchEvent(new Event('online'));
    await page.settle();
    expect(page.requests.filter((request) => request.url === URL_EVENTS)).toHaveLength(1);
    expect(queued()).toHaveLength(1);
  });
});
