/**
 * A page for the snippet tests (happy-dom): runs the real /r.js bundle, as built
 * for the collector, against a stubbed network that records every request.
 * Only the browser's edges are stubbed (fetch, document.currentScript, the
 * webdriver flag); the snippet itself runs as shipped.
 */
import { vi } from 'vitest';
import { buildSnippetBundle } from '../../collector/src/snippet-bundle.ts';

export const COLLECTOR = 'https://collector.example';
export const SCRIPT_SRC = `${COLLECTOR}/r.js`;
export const KEY = 'pk_test_0123456789';
/** The loader stub exactly as DESIGN.md gives it. */
export const LOADER_STUB = 'window.referral=window.referral||function(){(referral.q=referral.q||[]).push(arguments)}';
export const DAY = 864e5;

/** What the stubbed collector answers: an HTTP status, or a failed connection. */
export type Answer = number | 'network-error';

export interface SentRequest {
  url: string;
  body: Record<string, any>;
  /** The raw body, to check that retries resend the very same bytes. */
  raw: string;
  init: RequestInit;
}

export type ReferralApi = ((name: string, data?: unknown) => void) & { get(): { code: string; vid: string } | null; q?: unknown[] };

let bundle: string | undefined;

/** The IIFE served as /r.js, built once per test file. */
export async function snippetCode(): Promise<string> {
  bundle ??= (await buildSnippetBundle()).code;
  return bundle;
}

function cookieDescriptor(): PropertyDescriptor {
  for (let proto = Object.getPrototypeOf(document); proto; proto = Object.getPrototypeOf(proto)) {
    const descriptor = Object.getOwnPropertyDescriptor(proto, 'cookie');
    if (descriptor) return descriptor;
  }
  throw new Error('document.cookie has no accessor');
}

export interface Page {
  requests: SentRequest[];
  /** Every string the page assigned to document.cookie (to read attributes the getter hides). */
  cookieWrites: string[];
  /** Decides the collector's answer per request; 202 unless a test changes it. */
  answer: (url: string) => Answer;
  /** Moves the page to another URL, keeping cookies and localStorage, and drops the previous snippet instance. */
  navigate(url: string): void;
  /** Runs the loader stub (the first tag a site pastes). */
  stub(): ReferralApi;
  /** Runs /r.js as the second tag with these data-* attributes, then lets its sends settle. */
  load(attributes?: Record<string, string>, src?: string): Promise<ReferralApi>;
  referral(): ReferralApi;
  cookie(): Record<string, string>;
  stored(): { code?: string; vid: string; ts: number } | null;
  settle(): Promise<void>;
  close(): void;
}

/** Opens a clean page at `url`: no cookies, empty localStorage, a human visitor (no webdriver). */
export function openPage(url: string): Page {
  const requests: SentRequest[] = [];
  const cookieWrites: string[] = [];
  const onlineListeners: EventListenerOrEventListenerObject[] = [];
  const originalPushState = history.pushState;
  const originalAddEventListener = window.addEventListener;
  const cookie = cookieDescriptor();

  (window as any).happyDOM.setURL(url);
  // Cookies written under a faked clock may be hidden (expired) now yet come back
  // when a test fakes that clock again: delete by name, on every domain variant.
  const parent = location.hostname.split('.').slice(1).join('.');
  for (const name of new Set([...Object.keys(readCookies()), '_referral'])) {
    for (const domain of ['', location.hostname, parent]) {
      document.cookie = `${name}=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT${domain ? `; domain=${domain}` : ''}`;
    }
  }
  localStorage.clear();
  delete (window as any).referral;
  Object.defineProperty(navigator, 'webdriver', { configurable: true, value: false });
  Object.defineProperty(navigator, 'globalPrivacyControl', { configurable: true, value: undefined });
  Object.defineProperty(document, 'cookie', {
    configurable: true,
    get: () => cookie.get!.call(document),
    set: (value: string) => {
      cookieWrites.push(value);
      cookie.set!.call(document, value);
    },
  });
  window.addEventListener = function (this: Window, type: string, listener: any, options?: any) {
    if (type === 'online') onlineListeners.push(listener);
    return originalAddEventListener.call(this, type, listener, options);
  } as typeof window.addEventListener;

  const page: Page = {
    requests,
    cookieWrites,
    answer: () => 202,
    navigate(next) {
      history.pushState = originalPushState;
      delete (window as any).referral;
      (window as any).happyDOM.setURL(next);
    },
    stub() {
      new Function(LOADER_STUB)();
      return page.referral();
    },
    async load(attributes = { key: KEY }, src = SCRIPT_SRC) {
      const script = document.createElement('script');
      script.src = src;
      for (const [name, value] of Object.entries(attributes)) script.setAttribute(`data-${name}`, value);
      Object.defineProperty(document, 'currentScript', { configurable: true, get: () => script });
      try {
        new Function(await snippetCode())();
      } finally {
        delete (document as any).currentScript;
      }
      await page.settle();
      return page.referral();
    },
    referral: () => (window as any).referral as ReferralApi,
    cookie: readCookies,
    stored() {
      const value = readCookies()._referral;
      return value ? JSON.parse(value) : null;
    },
    async settle() {
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 0));
    },
    close() {
      history.pushState = originalPushState;
      for (const listener of onlineListeners) window.removeEventListener('online', listener);
      window.addEventListener = originalAddEventListener;
      delete (document as any).cookie;
      vi.unstubAllGlobals();
      vi.useRealTimers();
    },
  };

  vi.stubGlobal('fetch', async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const raw = String(init.body);
    const request = { url: String(input), body: JSON.parse(raw), raw, init };
    requests.push(request);
    const answer = page.answer(request.url);
    if (answer === 'network-error') throw new TypeError('Failed to fetch');
    return { status: answer, ok: answer < 300 } as Response;
  });
  return page;
}

function readCookies(): Record<string, string> {
  const jar: Record<string, string> = {};
  for (const pair of document.cookie ? document.cookie.split('; ') : []) {
    const index = pair.indexOf('=');
    jar[decodeURIComponent(pair.slice(0, index))] = decodeURIComponent(pair.slice(index + 1));
  }
  return jar;
}

/** Freezes Date (only Date: timers keep running) at `time`. */
export function setNow(time: number): void {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(time);
}

/** The cookie attributes of the last write of `name`, lower-cased keys. */
export function lastCookieWrite(page: Page, name = '_referral'): Record<string, string | true> | undefined {
  const write = [...page.cookieWrites].reverse().find((entry) => entry.startsWith(`${name}=`));
  if (!write) return undefined;
  const attributes: Record<string, string | true> = {};
  for (const part of write.split('; ').slice(1)) {
    const [key = '', ...rest] = part.split('=');
    attributes[key.toLowerCase()] = rest.length ? rest.join('=') : true;
  }
  return attributes;
}
