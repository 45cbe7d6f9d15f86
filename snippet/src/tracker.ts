/**
 * The tracker: keeps the referral record, captures `?ref=CODE` on load and on SPA
 * navigations (pushState), reports the click, and sends signup and purchase events.
 * Both builds (the script tag and the ES module) drive it as `tracker(name, data)`
 * and `tracker.get()`.
 *
 * Written for /r.js's gzip budget: one closure per entry point (the tracker call,
 * the pushState wrapper, the start), each with one try/catch, and the cookie and
 * localStorage read and written inline, once each (a helper function costs more
 * gzip bytes than the code it would hold).
 */
import Cookies from 'js-cookie';
import type { ClickCreate, EventCreate } from '../../shared/schemas.ts';
import type { ReferralState } from '../../shared/types.ts';
import { CODE_MAX, COOKIE_DAYS, COOKIE_NAME, DAY_MS, isOn, OPTOUT_KEY, URL_MAX, type Options } from './config.ts';
import { flushQueue } from './queue.ts';

export interface SignupData {
  /** The host app's own user id. */
  userId: string;
  email?: string;
}

export interface PurchaseData {
  userId: string;
  orderId: string;
  /** Integer minor units (cents). */
  amount: number;
  /** ISO 4217, e.g. `EUR`. */
  currency: string;
}

export interface Tracker {
  /** `('signup', SignupData)`, `('purchase', PurchaseData)` or `('ready', callback)`. Never throws. */
  (name: string, data?: unknown): void;
  /** The current referral, for passing to the host's own backend; null when none. */
  get(): ReferralState | null;
}

/**
 * The record kept in the first-party cookie (COOKIE_NAME, through js-cookie) and
 * mirrored in localStorage under the same name, so either copy restores the other.
 */
export interface StoredReferral {
  /** The captured code; absent until the visitor lands with one, and after it expires. */
  code?: string | undefined;
  /** Random visitor id, created once and kept. */
  vid: string;
  /** When the code was captured (ms since the epoch); the record expires a lifetime later. */
  ts: number;
}

/**
 * A fresh id from the CSPRNG: 96 bits written as three decimal numbers joined by
 * `-`, about 31 characters of `[0-9-]` (the collector takes 8–64 of `[A-Za-z0-9_-]`;
 * fewer than 8 needs all three below 1,000: about one id in 10^14). Every click
 * stores its visitor id twice (row and index): five numbers cost 45 bytes more a click.
 */
export const randomId = (): string => crypto.getRandomValues(new Uint32Array(3)).join('-');

/**
 * Starts tracking: captures the current URL, retries queued sends, watches SPA
 * navigations. `base` is the URL endpoints resolve against when `options.api` is unset.
 */
export function startTracker(options: Options, base: string): Tracker {
  const params = (options.param || 'ref').split(',');
  const lifetime = (+options.cookieDays! || COOKIE_DAYS) * DAY_MS;
  // Stays undefined when silenced (no key, a bot, opted out, GPC when respected, or
  // storage we may not touch): nothing stored, nothing sent; calls stay harmless
  // and 'ready' still fires.
  let record: StoredReferral | undefined;

  // Clicks and events take the same path: through the retry queue (queue.ts).
  const send = (path: string, payload: ClickCreate | EventCreate) =>
    flushQueue([new URL('v1/' + path, options.api || base), JSON.stringify(payload), Date.now(), 0]);

  /** Reads the address bar: a code there is recorded (first or last touch) and reported; then saves the record. */
  const capture = () => {
    try {
      const url = new URL(location as unknown as string);
      const code = params.map((name) => url.searchParams.get(name)).find((value) => value && !value[CODE_MAX]);
      if (code) {
        // First touch keeps an unexpired code (an expired one is gone by now).
        if (options.attribution == 'last' || !record!.code) {
          record!.code = code;
          record!.ts = Date.now();
        }
        send('clicks', {
          key: options.key!,
          code,
          vid: record!.vid,
          url: url.href.slice(0, URL_MAX),
          referrer: document.referrer.slice(0, URL_MAX),
        });
        if (isOn(options.cleanUrl)) {
          params.map((name) => url.searchParams.delete(name));
          history.replaceState(history.state, '', url);
        }
      }
      // Saved on every load, which is what lets each copy restore the other. The
      // cookie expires with the record; Secure when the page is on https.
      Cookies.set(COOKIE_NAME, (localStorage[COOKIE_NAME] = JSON.stringify(record)), {
        expires: new Date(record!.ts + lifetime),
        sameSite: 'Lax',
        secure: /^https:/.test(url as unknown as string),
        domain: options.domain,
      });
    } catch {} // e.g. storage full: the pushState wrapper must not throw into the host
  };

  // `data` is whatever the page passed: read inside the try.
  const tracker = ((name: string, data: SignupData & PurchaseData & (() => void)) => {
    try {
      name == 'ready'
        ? data()
        : record &&
          send('events', {
            key: options.key!,
            code: record.code,
            vid: record.vid,
            type: name as EventCreate['type'],
            eventId: randomId(),
            user: { id: data.userId, email: data.email },
            // Only a purchase carries an order.
            order: data.orderId ? { id: data.orderId, amount: data.amount, currency: data.currency } : undefined,
          });
    } catch {}
  }) as Tracker;
  tracker.get = () => (record && record.code ? { code: record.code, vid: record.vid } : null);

  try {
    if (
      options.key &&
      !(
        navigator.webdriver ||
        localStorage[OPTOUT_KEY] == '1' ||
        (isOn(options.respectGpc) && (navigator as { globalPrivacyControl?: boolean }).globalPrivacyControl)
      )
    ) {
      // Not silenced: from here on a record exists, if only a fresh one when the
      // stored one is unreadable (JSON.parse throws into the catch below).
      record = {} as StoredReferral;
      // The cookie first (it may be shared across subdomains), else its mirror.
      record = JSON.parse(Cookies.get(COOKIE_NAME) || localStorage[COOKIE_NAME]) || record;
    }
  } catch {}
  if (record) {
    // An expired record keeps its visitor id but loses its code. NaN (no ts) compares false.
    if (!(record.ts + lifetime > Date.now())) record = { vid: record.vid || randomId(), ts: Date.now() };
    capture();
    flushQueue();
    addEventListener('online', flushQueue as () => void);
    const pushState = history.pushState.bind(history);
    history.pushState = (...args) => {
      pushState(...args);
      capture();
    };
  }
  return tracker;
}
