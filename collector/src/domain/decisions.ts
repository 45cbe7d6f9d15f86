/**
 * Decisions: why each click, attribution or reward was accepted, rejected or held,
 * so every outcome can be explained.
 */
import type { Knex } from 'knex';
import { prepared } from '../storage/db.ts';
import { DECISION_WEIGHTS, type DecisionWeight } from '../../../shared/decisions.ts';

export type DecisionSubject = 'click' | 'attribution' | 'conversion' | 'reward';
export type DecisionOutcome = 'accepted' | 'rejected' | 'held';

/**
 * Reasons, stable strings that clients may switch on. Each names the function that
 * decides it, so an outcome leads straight to its rule.
 */
export type DecisionReason =
  /** A referral was made (attribution.ts `attribute`). */
  | 'attributed'
  /** A referral was made by a promo code the customer paid with: a provider's discount mapped to the referrer (attribution.ts `findCandidate`, promoCodes.ts `findPromoCode`). */
  | 'promo_code'
  /** The referrer is the customer: same participant, normalized email or visitor id (fraud.ts `isSelfReferral`, `revealSelfReferrals`). */
  | 'self_referral'
  /** The customer already has a referrer: one-time attribution (attribution.ts `attribute`). */
  | 'already_attributed'
  /** No such code in this program (attribution.ts `findCandidate`; clicks.ts BATCH_SQL for clicks). */
  | 'unknown_code'
  /** The code exists but is disabled (attribution.ts `findCandidate`; clicks.ts BATCH_SQL). */
  | 'code_disabled'
  /** The visitor's click is older than the program's window (attribution.ts `findCandidate`). */
  | 'outside_window'
  /** Nothing to attribute with: no code and no clicks for the visitor (attribution.ts `findCandidate`; not recorded). */
  | 'no_referral_data'
  /** The referrer is below the customer in their own chain (attribution.ts `wouldCycle`). */
  | 'referral_cycle'
  /** A second signup event for a customer who already signed up (conversions.ts `convert`). */
  | 'duplicate_event'
  /** Too many referrals for one referrer from one address (fraud.ts `reviewReason`). */
  | 'velocity'
  /** The customer's email domain is disposable (fraud.ts `isDisposableEmail`, through `reviewReason`). */
  | 'disposable_email'
  /** One normalized email or visitor id behind several new customers (fraud.ts `reviewReason`). */
  | 'duplicate_identity'
  /** The server reported an event first seen from the browser (confirmation.ts `confirmConversion`). */
  | 'confirmed'
  /** The server reported a browser event's id for another customer (confirmation.ts `confirmConversion`). */
  | 'mismatch'
  /** A server report named no referral, or another one that could not be made or came after the browser's referrer was paid, for a browser-made referral (attribution.ts `settleReferral`). */
  | 'unconfirmed_referral'
  /** A server report named another referrer than a browser-made referral: the server's wins (confirmation.ts `settleReferral`). */
  | 'server_override'
  /** A rule's per-referrer cap was reached (rewards.ts `grantRewards`). */
  | 'cap_reached';

/**
 * What each reason weighs for a person reading the log (shared/decisions.ts, where the
 * dashboard reads it): a reason added above without its weight there fails to compile.
 */
export const DECISION_WEIGHT: Record<DecisionReason, DecisionWeight> = DECISION_WEIGHTS;

export interface DecisionInput {
  programId: string;
  subject: DecisionSubject;
  outcome: DecisionOutcome;
  reason: DecisionReason;
  participantId?: string | null;
  referrerId?: string | null;
  code?: string | null;
  conversionId?: string | null;
  details?: Record<string, unknown>;
}

/** One text for every decision: PostgreSQL parses and plans it once per connection. */
const INSERT_DECISION_SQL = `insert into decisions (program_id, subject, outcome, reason, participant_id, referrer_id, code, conversion_id, details)
  values (?, ?, ?, ?, ?, ?, ?, ?, ?::jsonb)`;

export async function recordDecision(trx: Knex, input: DecisionInput): Promise<void> {
  await prepared(trx, 'insert_decision', INSERT_DECISION_SQL, [
    input.programId,
    input.subject,
    input.outcome,
    input.reason,
    input.participantId ?? null,
    input.referrerId ?? null,
    input.code ?? null,
    input.conversionId ?? null,
    input.details ? JSON.stringify(input.details) : null,
  ]);
}
