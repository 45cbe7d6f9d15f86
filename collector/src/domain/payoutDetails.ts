/**
 * A participant's payout details: how and where they want to be paid. Set with the
 * secret key (`PATCH /v1/participants/:externalId { payout }`) or by the referrer in
 * their portal; read by payout runs (payouts.ts), which copy them into each item.
 */
import type { Knex } from 'knex';
import type { PayoutDetails } from '../../../shared/schemas.ts';
import { notFound } from '../errors.ts';

/** The participant's payout details, or null when they gave none. */
export async function payoutDetailsOf(db: Knex, participantId: string): Promise<PayoutDetails | null> {
  const row = (await db('participants').where({ id: participantId }).first('payout')) as { payout: PayoutDetails | null } | undefined;
  return row?.payout ?? null;
}

/** Replaces the participant's payout details (validated by PayoutDetailsSchema); null clears them. */
export async function setPayoutDetails(
  db: Knex,
  programId: string,
  externalId: string,
  details: PayoutDetails | null,
): Promise<PayoutDetails | null> {
  const updated = await db('participants')
    .where({ program_id: programId, external_id: externalId })
    .whereNull('erased_at')
    .update({ payout: details ? JSON.stringify(details) : null });
  if (!updated) throw notFound('Participant');
  return details;
}
