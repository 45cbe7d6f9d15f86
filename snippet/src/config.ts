/**
 * Named constants, and the options: the script tag's data-* attributes (or the
 * object passed to `init()` in the ES module build). Options are read where they
 * are used rather than copied into a config object: every property name costs
 * bytes in /r.js.
 */

/** The first-party cookie, and the localStorage key mirroring it, holding `{code, vid, ts}`. */
export const COOKIE_NAME = '_referral';
/** How long a captured referral lasts unless `data-cookie-days` says otherwise. */
export const COOKIE_DAYS = 60;
export const DAY_MS = 864e5;
/** `localStorage._referral_optout === '1'` turns the snippet off in this browser. */
export const OPTOUT_KEY = '_referral_optout';
/** Sends whose delivery failed, waiting for a retry. */
export const QUEUE_KEY = '_referral_queue';
export const QUEUE_MAX = 20;
export const QUEUE_MAX_AGE_MS = 7 * DAY_MS;
/** The wait before the first retry; later waits grow with the send's age (see queue.ts). */
export const RETRY_BASE_MS = 3e4;
/** The collector refuses longer urls and codes (shared/schemas.ts: LIMITS.url, CodeLookupSchema). */
export const URL_MAX = 2048;
export const CODE_MAX = 64;

/**
 * Options as the script tag's data-* attributes spell them once camel-cased by
 * `dataset` (`data-cookie-days` → `cookieDays`); `init()` takes the same names.
 */
export interface Options {
  /** The program's publishable key (`pk_…`). Required: without it nothing is sent. */
  key?: string | undefined;
  /**
   * The collector's base URL. Endpoints resolve against it (`v1/clicks`), so a base
   * with a path must end in `/`. Default: the script's URL, i.e. the collector that
   * served /r.js (the page's origin for the ES module).
   */
  api?: string | undefined;
  /** Query parameter(s) carrying the code: `ref` by default; a comma list. */
  param?: string | undefined;
  /** Days a captured referral lasts (default COOKIE_DAYS). */
  cookieDays?: string | number | undefined;
  /** `first` (default) keeps an unexpired code; `last` lets a newer code replace it. */
  attribution?: string | undefined;
  /** Cookie domain, e.g. `.example.com` to share the referral across subdomains. */
  domain?: string | undefined;
  /** Remove the parameter from the address bar once captured. */
  cleanUrl?: string | boolean | undefined;
  /** Honour `navigator.globalPrivacyControl`. */
  respectGpc?: string | boolean | undefined;
}

/**
 * A boolean option: on when present as an attribute (`data-clean-url`, value ``),
 * `1` or `true` (string or boolean); off when absent or anything else.
 */
export const isOn = (value: string | boolean | undefined): boolean => /^(|1|true)$/.test(value as string);
