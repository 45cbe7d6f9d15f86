/**
 * How much each decision reason matters to the person reading the decision log. A
 * decision's `outcome` says what happened (a repeat purchase's `already_attributed`
 * is "rejected": the customer keeps their first referrer); this says whether anyone
 * should look. Plain data, no zod: the dashboard bundles it. Every reason of
 * `DecisionReason` (collector/src/domain/decisions.ts) has its weight here, or the
 * collector does not compile.
 */

/**
 * - `accepted`: a referral made (or remade by the server);
 * - `info`: the system working as designed, nothing to do (a repeat purchase, a
 *   retried event, a server confirming the browser, a cap reached);
 * - `held`: waiting for a person (velocity, duplicate identity, disposable email,
 *   an unconfirmed browser referral);
 * - `problem`: a refusal worth a look (self-referral, a bad or disabled code, an
 *   expired click, a referral loop, the server contradicting the browser).
 */
export type DecisionWeight = 'accepted' | 'info' | 'held' | 'problem';

export const DECISION_WEIGHTS = {
  attributed: 'accepted',
  promo_code: 'accepted',
  server_override: 'accepted',
  already_attributed: 'info',
  duplicate_event: 'info',
  confirmed: 'info',
  cap_reached: 'info',
  no_referral_data: 'info',
  velocity: 'held',
  duplicate_identity: 'held',
  disposable_email: 'held',
  unconfirmed_referral: 'held',
  self_referral: 'problem',
  unknown_code: 'problem',
  code_disabled: 'problem',
  outside_window: 'problem',
  referral_cycle: 'problem',
  mismatch: 'problem',
} as const satisfies Record<string, DecisionWeight>;

/** The weight of a reason; one the dashboard does not know yet (a newer collector) falls back to its outcome. */
export function decisionWeight(reason: string, outcome: 'accepted' | 'rejected' | 'held'): DecisionWeight {
  const known = (DECISION_WEIGHTS as Record<string, DecisionWeight>)[reason];
  if (known) return known;
  return outcome === 'rejected' ? 'problem' : outcome;
}
