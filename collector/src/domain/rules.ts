/**
 * Reward rules as pure functions over the facts of a conversion: does a rule apply,
 * and what does it pay. The one home of that logic: `grantRewards` (rewards.ts) reads
 * the facts from the database, the settings preview (`previewRules`) takes them from
 * a sample the operator types, so the preview always says what a grant would do.
 */
import type { RulePreviewOutcome, RulePreviewResponse } from '../../../shared/responses.ts';
import type { RewardRule, RulePreview } from '../../../shared/schemas.ts';
import type { ConversionType } from '../../../shared/types.ts';

const DAY_MS = 86_400_000;

/** What a rule looks at. Facts left undefined are not checked (see `factsNeeded`). */
export interface RuleFacts {
  type: ConversionType | 'refund';
  /** The conversion's amount in minor units (a signup usually has none). */
  amount: number | null;
  currency: string | null;
  /** From the referral to the conversion, in milliseconds. */
  sinceReferralMs: number;
  /** The customer bought nothing before this purchase. */
  firstPurchase?: boolean;
  /** Which of the referrer's referrals this one is: 1 for their first. */
  referralNumber?: number;
  /** This milestone rule already paid for another conversion through the same referrer. */
  milestonePaid?: boolean;
}

/** Why a rule does not apply: stable codes, each with its sentence in RULE_MISSES. */
export type RuleMiss =
  | 'other_event'
  | 'below_min_amount'
  | 'outside_window'
  | 'not_first_purchase'
  | 'not_repeat_purchase'
  | 'before_tier'
  | 'not_milestone'
  | 'milestone_paid';

const RULE_MISSES: Record<RuleMiss, (rule: RewardRule) => string> = {
  other_event: (rule) => `pays on ${rule.on === 'signup' ? 'signups' : 'purchases'} only`,
  below_min_amount: (rule) => `the amount is below the rule's minimum (${rule.when?.minAmount} in minor units)`,
  outside_window: (rule) => `only purchases within ${rule.when?.withinDays} days of the referral`,
  not_first_purchase: () => 'first purchases only',
  not_repeat_purchase: () => 'repeat purchases only (not the first)',
  before_tier: (rule) => `from the referrer's referral #${rule.when?.afterReferrals} on`,
  not_milestone: (rule) => `once, at the referrer's referral #${rule.when?.atReferrals}`,
  milestone_paid: () => 'this milestone was paid already',
};

/** The facts a rule needs beyond the conversion and its referral (each costs a query in grantRewards). */
export function factsNeeded(rule: RewardRule): { purchaseHistory: boolean; referralNumber: boolean } {
  const when = rule.when ?? {};
  return {
    purchaseHistory: Boolean(when.firstPurchaseOnly || when.repeatPurchasesOnly),
    referralNumber: when.afterReferrals !== undefined || when.atReferrals !== undefined,
  };
}

/** Why `rule` does not apply to a conversion with these facts; null when it applies. (Caps are counted apart.) */
export function ruleMiss(rule: RewardRule, facts: RuleFacts): RuleMiss | null {
  if (rule.on !== facts.type) return 'other_event';
  const when = rule.when ?? {};
  if (when.minAmount !== undefined && (facts.amount ?? 0) < when.minAmount) return 'below_min_amount';
  if (when.withinDays !== undefined && facts.sinceReferralMs > when.withinDays * DAY_MS) return 'outside_window';
  if (facts.firstPurchase !== undefined) {
    if (when.firstPurchaseOnly && !facts.firstPurchase) return 'not_first_purchase';
    if (when.repeatPurchasesOnly && facts.firstPurchase) return 'not_repeat_purchase';
  }
  if (facts.referralNumber !== undefined) {
    if (when.afterReferrals !== undefined && facts.referralNumber < when.afterReferrals) return 'before_tier';
    // A milestone pays once: at the Nth referral, for its first conversion the rule applies to.
    if (when.atReferrals !== undefined && facts.referralNumber !== when.atReferrals) return 'not_milestone';
    if (when.atReferrals !== undefined && facts.milestonePaid) return 'milestone_paid';
  }
  return null;
}

/** What the rule pays for a conversion: a fixed amount in its currency, or a percent of the amount (floored). */
export function rewardValue(
  rule: RewardRule,
  conversion: { amount: number | null; currency: string | null },
): { amount: number; currency: string | null } {
  if (rule.reward.percent !== undefined) {
    return { amount: Math.floor(((conversion.amount ?? 0) * rule.reward.percent) / 100), currency: conversion.currency };
  }
  return { amount: rule.reward.amount ?? 0, currency: rule.reward.currency ?? conversion.currency ?? null };
}

/** Who the rule rewards. */
export const beneficiariesOf = (rule: RewardRule): Array<'referrer' | 'referee'> =>
  rule.to === 'both' ? ['referrer', 'referee'] : [rule.to];

/** A rule's outcome for one conversion with these facts, as the preview shows it. */
function outcome(rule: RewardRule, facts: RuleFacts): RulePreviewOutcome {
  const miss = ruleMiss(rule, facts);
  if (miss) return { applies: false, reason: miss, message: RULE_MISSES[miss](rule), rewards: [] };
  const { amount, currency } = rewardValue(rule, facts);
  const holdDays = rule.holdDays ?? 0;
  return {
    applies: true,
    rewards: beneficiariesOf(rule).map((to) => ({
      to,
      kind: rule.reward.kind,
      amount,
      currency,
      ...(rule.reward.coupon ? { coupon: rule.reward.coupon } : {}),
      holdDays,
      // For a conversion the host's server reported (a browser-only one waits for review).
      status: holdDays === 0 ? 'approved' : 'pending',
    })),
  };
}

/**
 * What each rule pays for a sample signup and a sample purchase, both by the same
 * referral (the referrer's `referralNumber`th), the purchase `daysSinceReferral` days
 * after it. Caps are not applied: they depend on the referrer's history.
 */
export function previewRules(rules: RewardRule[], sample: RulePreview['sample']): RulePreviewResponse {
  const shared = {
    sinceReferralMs: sample.daysSinceReferral * DAY_MS,
    referralNumber: sample.referralNumber,
    milestonePaid: false,
  };
  const signup: RuleFacts = { ...shared, type: 'signup', amount: null, currency: null, sinceReferralMs: 0 };
  const purchase: RuleFacts = {
    ...shared,
    type: 'purchase',
    amount: sample.purchaseAmount,
    currency: sample.currency,
    firstPurchase: sample.firstPurchase,
  };
  return {
    sample,
    rules: rules.map((rule) => ({
      rule: rule.id,
      signup: outcome(rule, signup),
      purchase: outcome(rule, purchase),
      ...(rule.cap?.perReferrer !== undefined ? { capPerReferrer: rule.cap.perReferrer } : {}),
    })),
  };
}
