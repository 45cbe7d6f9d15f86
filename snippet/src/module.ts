/**
 * The ES module build (`referral-tracker/snippet`) for apps that bundle their code:
 * the same tracker as /r.js, configured by `init()` instead of data-* attributes.
 * Calls made before `init()` are kept and replayed in order.
 */
import type { ReferralState } from '../../shared/types.ts';
import type { Options } from './config.ts';
import { startTracker, type PurchaseData, type SignupData, type Tracker } from './tracker.ts';

export type { Options, PurchaseData, ReferralState, SignupData };

let tracker: Tracker | undefined;
const pending: Array<[string, unknown]> = [];

/** Starts tracking, once (later calls are ignored). `api` defaults to the page's origin. */
export function init(options: Options): void {
  if (tracker) return;
  try {
    tracker = startTracker(options, location.origin);
  } catch {
    return;
  }
  for (const [name, data] of pending.splice(0)) tracker(name, data);
}

/** `referral('signup', …)`, `referral('purchase', …)`, `referral('ready', fn)`. Never throws. */
export function referral(name: 'signup', data: SignupData): void;
export function referral(name: 'purchase', data: PurchaseData): void;
export function referral(name: 'ready', callback: () => void): void;
export function referral(name: string, data?: unknown): void {
  if (tracker) tracker(name, data);
  else pending.push([name, data]);
}

/** An alias of `referral`, for code that reads better as `track('purchase', …)`. */
export const track = referral;

/** The current referral `{code, vid}`, or null (none captured, not started yet, or silenced). */
export function get(): ReferralState | null {
  return tracker ? tracker.get() : null;
}
