/**
 * Decisions: why each click, attribution or reward was accepted, rejected or held,
 * so every outcome can be explained.
 */
import type { Knex } from 'knex';

export type DecisionSubject = 'click' | 'attribution' | 'conversion' | 'reward';
export type DecisionOutcome = 'accepted' | 'rejected' | 'held';

/** Reasons, stable strings that clients may switch on. */
export type DecisionReason =
  | 'attributed'
  | 'self_referral'
  | 'already_attributed'
  | 'unknown_code'
  | 'code_disabled'
  | 'outside_window'
  | 'no_referral_data'
  | 'referral_cycle'
  | 'duplicate_event'
  | 'velocity'
  | 'disposable_email'
  | 'confirmed'
  | (string & {});

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

const toRow = (input: DecisionInput) => ({
  program_id: input.programId,
  subject: input.subject,
  outcome: input.outcome,
  reason: input.reason,
  participant_id: input.participantId ?? null,
  referrer_id: input.referrerId ?? null,
  code: input.code ?? null,
  conversion_id: input.conversionId ?? null,
  details: input.details ? JSON.stringify(input.details) : null,
});

export async function recordDecision(trx: Knex, input: DecisionInput): Promise<void> {
  await trx('decisions').insert(toRow(input));
}
