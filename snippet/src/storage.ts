/**
 * The referral record `{code, vid, ts}`: a first-party cookie (js-cookie) mirrored in
 * localStorage, so either one restores the other when it is cleared. Storage can
 * throw (sandboxed frames, blocked storage, full quota): every access is guarded.
 */
import Cookies from 'js-cookie';
import { COOKIE_NAME } from './config.ts';

export interface StoredReferral {
  /** The captured code; absent until the visitor lands with one, and after it expires. */
  code?: string | undefined;
  /** Random visitor id, created once and kept. */
  vid: string;
  /** When the code was captured (ms since the epoch); the record expires a lifetime later. */
  ts: number;
}

/**
 * A fresh id from the CSPRNG: 160 bits written as five decimal numbers joined by
 * `-`, 9 to 54 characters of `[0-9-]` (the collector takes 8–64 of `[A-Za-z0-9_-]`).
 * Shorter to write than a base64 encoder, which matters in a 1.3 KB budget.
 */
export function randomId(): string {
  return crypto.getRandomValues(new Uint32Array(5)).join('-');
}

/**
 * The stored record, from the cookie first (it may be shared across subdomains),
 * else from localStorage. An expired record keeps its visitor id but loses its code;
 * a missing or unreadable one starts afresh.
 */
export function loadReferral(lifetime: number): StoredReferral {
  let stored: Partial<StoredReferral> = {};
  try {
    stored = JSON.parse(Cookies.get(COOKIE_NAME) || localStorage[COOKIE_NAME]) || stored;
  } catch {}
  // NaN (no ts) compares false: a record without a timestamp counts as expired.
  return (stored.ts! + lifetime > Date.now() ? stored : { vid: stored.vid || randomId(), ts: Date.now() }) as StoredReferral;
}

/**
 * Writes the record to localStorage and to the cookie, which expires with the record.
 * Saving on every page load is what restores one copy from the other.
 */
export function saveReferral(record: StoredReferral, lifetime: number, domain: string | undefined): void {
  try {
    Cookies.set(COOKIE_NAME, (localStorage[COOKIE_NAME] = JSON.stringify(record)), {
      expires: new Date(record.ts + lifetime),
      sameSite: 'Lax',
      secure: location.protocol == 'https:',
      domain,
    });
  } catch {}
}
