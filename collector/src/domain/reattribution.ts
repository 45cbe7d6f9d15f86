/**
 * Replacing a referral only the browser made with the one the host's server reported
 * (DESIGN, "Trust rules": what the browser says never wins the attribution). The
 * referral row keeps its id and time, so the customer is still referred once; the
 * earlier referrer's unpaid rewards are revoked and the customer's counts move over.
 */
import type { Knex } from 'knex';
import type { ReferralRow } from './attribution.ts';
import { hasClicked } from './clicks.ts';
import type { DecisionReason } from './decisions.ts';
import type { ParticipantRow } from './participants.ts';
import type { ProgramRow } from './programs.ts';
import { revokeRewardsOf } from './rewards.ts';
import type { StatsDelta } from './rollups.ts';
import type { Work } from './work.ts';

export interface NextReferrer {
  referrerId: string;
  codeId: string | null;
  vid?: string | undefined;
  holdReason?: DecisionReason | undefined;
}

export async function reattribute(
  work: Work,
  program: ProgramRow,
  participant: ParticipantRow,
  current: ReferralRow,
  next: NextReferrer,
  /** The conversion being recorded, when it is new: counted for nobody yet, it does not move. */
  uncounted?: string,
): Promise<ReferralRow> {
  const { trx } = work;
  const [referral] = (await trx('referrals')
    .where({ id: current.id })
    .update({
      referrer_id: next.referrerId,
      code_id: next.codeId,
      vid: next.vid ?? current.vid,
      status: next.holdReason ? 'held' : 'attributed',
      reason: next.holdReason ?? null,
      verified: true,
    })
    .returning('*')) as ReferralRow[];
  await trx('participants').where({ id: participant.id }).update({ referred_by: next.referrerId });
  await revokeRewardsOf(trx, program, current.id, current.referrer_id, 'the server reported another referrer');
  work.count(...(await movedCounts(trx, program.id, participant.id, current, next.referrerId, uncounted)));
  return referral as ReferralRow;
}

/**
 * The rollups credited the earlier referrer with this customer's signup and with the
 * purchases (less refunds) made since; they move to the new referrer, day by day.
 */
async function movedCounts(
  trx: Knex,
  programId: string,
  participantId: string,
  current: ReferralRow,
  referrerId: string,
  uncounted: string | undefined,
): Promise<StatsDelta[]> {
  const purchases = (await trx('conversions')
    .where({ program_id: programId, participant_id: participantId, type: 'purchase' })
    .modify((query) => (uncounted ? query.whereNot({ id: uncounted }) : query))
    .where('created_at', '>=', trx('referrals').select('created_at').where({ id: current.id }))
    .select('id', 'amount', 'currency', 'created_at')) as Array<{
    id: string;
    amount: number | null;
    currency: string | null;
    created_at: Date;
  }>;
  const refunds = purchases.length
    ? ((await trx('conversions')
        .whereIn(
          'refund_of',
          purchases.map((row) => row.id),
        )
        .where({ type: 'refund' })
        .select('amount', 'currency', 'created_at')) as Array<{
        amount: number | null;
        currency: string | null;
        created_at: Date;
      }>)
    : [];
  // Counted as a clicked signup when it was made if its visitor had clicked (attribution.ts); the same test moves it.
  const clicked = current.vid ? await hasClicked(trx, programId, current.vid) : false;
  const moved: Array<Omit<StatsDelta, 'programId' | 'participantId'>> = [
    { at: current.created_at, signups: 1, clickedSignups: clicked ? 1 : 0 },
    ...purchases.map((row) => ({
      at: row.created_at,
      purchases: 1,
      revenue: { currency: row.currency ?? 'XXX', amount: row.amount ?? 0 },
    })),
    ...refunds.map((row) => ({ at: row.created_at, revenue: { currency: row.currency ?? 'XXX', amount: -(row.amount ?? 0) } })),
  ];
  const negate = (delta: (typeof moved)[number]) => ({
    ...delta,
    signups: -(delta.signups ?? 0),
    clickedSignups: -(delta.clickedSignups ?? 0),
    purchases: -(delta.purchases ?? 0),
    ...(delta.revenue ? { revenue: { ...delta.revenue, amount: -delta.revenue.amount } } : {}),
  });
  return [
    ...moved.map((delta) => ({ programId, participantId: current.referrer_id, ...negate(delta) })),
    ...moved.map((delta) => ({ programId, participantId: referrerId, ...delta })),
  ];
}
