/**
 * The tracker: captures `?ref=CODE` on load and on SPA navigations (pushState),
 * reports the click, and sends signup and purchase events. Both builds (the script
 * tag and the ES module) drive it as `tracker(name, data)` and `tracker.get()`.
 */
import type { ClickCreate, EventCreate } from '../../shared/schemas.ts';
import type { ReferralState } from '../../shared/types.ts';
import { CODE_MAX, COOKIE_DAYS, DAY_MS, isOn, OPTOUT_KEY, URL_MAX, type Options } from './config.ts';
import { deliver, flushQueue } from './queue.ts';
import { loadReferral, randomId, saveReferral, type StoredReferral } from './storage.ts';

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

/** Bots (navigator.webdriver), the opt-out flag, Global Privacy Control when respected, or storage we may not touch. */
export function isSilenced(options: Options): boolean | undefined {
  try {
    return (
      navigator.webdriver ||
      localStorage[OPTOUT_KEY] == '1' ||
      (isOn(options.respectGpc) && (navigator as { globalPrivacyControl?: boolean }).globalPrivacyControl)
    );
  } catch {
    return true;
  }
}

/**
 * Starts tracking: captures the current URL, retries queued sends, watches SPA
 * navigations. `base` is the URL endpoints resolve against when `options.api` is unset.
 */
export function startTracker(options: Options, base: string): Tracker {
  const { key, domain } = options;
  const params = (options.param || 'ref').split(',');
  const lifetime = (+options.cookieDays! || COOKIE_DAYS) * DAY_MS;
  const send = (path: string, payload: ClickCreate | EventCreate) => deliver(new URL('v1/' + path, options.api || base), JSON.stringify(payload));
  // Silenced, or no key: no storage and no sends; calls stay harmless and 'ready' still fires.
  const record: StoredReferral | null = key && !isSilenced(options) ? loadReferral(lifetime) : null;

  function capture(record: StoredReferral): void {
    try {
      const url = new URL(location.href);
      const code = params.map((name) => url.searchParams.get(name)).find((value) => value && value.length <= CODE_MAX);
      if (code) {
        // First touch keeps an unexpired code (loadReferral has dropped an expired one).
        if (options.attribution == 'last' || !record.code) {
          record.code = code;
          record.ts = Date.now();
        }
        send('clicks', { key: key!, code, vid: record.vid, url: location.href.slice(0, URL_MAX), referrer: document.referrer.slice(0, URL_MAX) });
        if (isOn(options.cleanUrl)) {
          params.map((name) => url.searchParams.delete(name));
          history.replaceState(history.state, '', url);
        }
      }
      saveReferral(record, lifetime, domain);
    } catch {}
  }

  const tracker: Tracker = (name, data) => {
    try {
      if (name == 'ready') (data as () => void)();
      else if (record) {
        const { userId, email, orderId, amount, currency } = data as SignupData & PurchaseData;
        send('events', {
          key: key!,
          type: name as EventCreate['type'],
          eventId: randomId(),
          vid: record.vid,
          code: record.code,
          user: { id: userId, email },
          // Only a purchase carries an order.
          order: orderId ? { id: orderId, amount, currency } : undefined,
        });
      }
    } catch {}
  };
  tracker.get = () => (record && record.code ? { code: record.code, vid: record.vid } : null);

  if (record) {
    capture(record);
    flushQueue();
    addEventListener('online', flushQueue);
    const pushState = history.pushState;
    history.pushState = function (this: History, ...args: Parameters<History['pushState']>) {
      pushState.apply(this, args);
      capture(record);
    };
  }
  return tracker;
}
