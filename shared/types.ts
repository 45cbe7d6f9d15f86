/**
 * Plain types shared with the snippet. The snippet imports from this file only
 * (types erase at build time), so no zod reaches the browser bundle.
 */

/** What the snippet keeps first-party and hands to the host via `referral.get()`. */
export interface ReferralState {
  code: string;
  vid: string;
}

export type ConversionType = 'signup' | 'purchase';

export type AttributionStatus = 'attributed' | 'existing' | 'none' | 'rejected' | 'held';

export type RewardStatus = 'pending' | 'approved' | 'paid' | 'revoked';

/** Sums of money keyed by ISO 4217 currency, in minor units. */
export type MoneyByCurrency = Record<string, number>;
