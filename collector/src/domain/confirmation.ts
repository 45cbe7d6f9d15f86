/**
 * A server report (secret key or a verified payment webhook) of an event the browser
 * reported first. The server is authoritative (DESIGN, "Trust rules"):
 * - it names another customer: the browser's event stays unverified (a `mismatch`
 *   decision) and steps aside, so the server's own event is recorded in full;
 * - otherwise its amount and currency replace the browser's, the rewards are computed
 *   again from them, and the referral is confirmed only when the server's report
 *   carries the same code or visitor id (attribution.ts `settleReferral`).
 */
import type { Knex } from 'knex';
import { attribute, participantById, type ReferralRow, referralOf, type Attribution } from './attribution.ts';
import type { ConversionInput, ConversionRow } from './conversions.ts';
import { recordDecision } from './decisions.ts';
import { applyRefundsSoFar, refundedSoFar } from './ledger.ts';
import type { ProgramRow } from './programs.ts';
import { confirmRewards, grantRewards, type RewardRow } from './rewards.ts';
import type { Work } from './work.ts';

export type Confirmed =
  | { mismatch: true }
  | { mismatch?: false; conversion: ConversionRow; externalId: string; attribution: Omit<Attribution, 'referral'>; rewards: RewardRow[] };

export async function confirmConversion(
  work: Work,
  program: ProgramRow,
  stored: ConversionRow,
  input: ConversionInput,
): Promise<Confirmed> {
  const { trx } = work;
  const participant = await participantById(trx, stored.participant_id);
  if (participant.external_id !== input.externalId && stored.event_id === input.eventId) {
    await stepAside(trx, program, stored, input);
    return { mismatch: true };
  }
  const before = await referralOf(trx, participant.id);
  // The referral counted this conversion when it dates from no later than it (in SQL: a
  // batch's conversions are microseconds apart, Work.turn, and a JavaScript date keeps milliseconds).
  const counted = Boolean(before && (await datesFrom(trx, before, stored)));
  const conversion = await takeServerFigures(work, program, stored, input, counted ? before?.referrer_id : undefined);

  const { referral, ...settled } = await attribute(
    work,
    program,
    participant,
    { code: input.code, vid: input.vid, ipHash: input.ipHash, verified: true, promoCode: input.promoCode },
    stored.id,
  );
  const attribution = (await sameEventMadeIt(work, stored, input, settled)) ? { ...settled, status: 'attributed' as const } : settled;
  // Refunds recorded before this report: none counted for a referrer yet when this report
  // makes the referral; when it moves the referral, the earlier referrer's grants took them.
  const refunded = conversion.type === 'purchase' ? await refundedSoFar(trx, conversion.id) : 0;
  if (referral && !counted && attribution.status === 'attributed' && conversion.type === 'purchase') {
    // Newly referred by this report: the purchase counts for the referrer now, net of those refunds.
    const revenue = revenueOf(conversion);
    work.count({
      programId: program.id,
      participantId: referral.referrer_id,
      at: conversion.created_at,
      purchases: 1,
      ...(revenue.amount > refunded ? { revenue: { ...revenue, amount: revenue.amount - refunded } } : {}),
    });
  }
  // A referral made after this conversion (by a later event) earns nothing for it, even
  // when this report moves it to another referrer (it keeps its time); one that counted it
  // already, or made by this very report (dating from the conversion), does, as if its
  // refunds came after: a purchase refunded in full earns nothing, one refunded in part
  // earns on what was kept (grants a moved referral makes included).
  const earns = (counted || attribution.status === 'attributed') && (!refunded || refunded < (conversion.amount ?? 0));
  if (referral && earns && (counted || (await datesFrom(trx, referral, conversion)))) {
    await grantRewards(trx, program, conversion, referral, { recompute: true });
    if (refunded) await applyRefundsSoFar(trx, program, conversion);
  }
  const rewards = await confirmRewards(trx, program, conversion.id);
  await recordDecision(trx, {
    programId: program.id,
    subject: 'conversion',
    outcome: 'accepted',
    reason: 'confirmed',
    participantId: participant.id,
    conversionId: conversion.id,
  });
  return { conversion, externalId: participant.external_id, attribution, rewards };
}

/** The referral dates from no later than the conversion (compared in SQL: a JavaScript date drops the microseconds). */
async function datesFrom(trx: Knex, referral: ReferralRow, conversion: ConversionRow): Promise<boolean> {
  const row = await trx('referrals as r')
    .join('conversions as c', 'c.id', trx.raw('?', [conversion.id]))
    .where('r.id', referral.id)
    .whereRaw('r.created_at <= c.created_at')
    .first('r.id');
  return Boolean(row);
}

/** This very event made the referral the server now confirms: its answer stays `attributed`. */
async function sameEventMadeIt(
  work: Work,
  stored: ConversionRow,
  input: ConversionInput,
  settled: Omit<Attribution, 'referral'>,
): Promise<boolean> {
  if (stored.event_id !== input.eventId || settled.status !== 'existing' || settled.reason) return false;
  const first = (await work.answerOf<{ attribution?: Omit<Attribution, 'referral'> } | null>(stored))?.attribution;
  return first?.status === 'attributed' && first.referrer === settled.referrer;
}

const revenueOf = (row: Pick<ConversionRow, 'amount' | 'currency'>) => ({ currency: row.currency ?? 'XXX', amount: row.amount ?? 0 });

/**
 * The conversion becomes verified with the server's amount and currency. When it
 * already counted for a referrer, their revenue is corrected by the difference.
 */
async function takeServerFigures(
  work: Work,
  program: ProgramRow,
  stored: ConversionRow,
  input: ConversionInput,
  countedFor: string | undefined,
): Promise<ConversionRow> {
  const { trx } = work;
  const figures =
    stored.type === 'purchase' && input.amount !== undefined ? { amount: input.amount, currency: input.currency ?? stored.currency } : {};
  const [conversion] = (await trx('conversions')
    .where({ id: stored.id })
    .update({ verified: true, source: input.source, ...figures })
    .returning('*')) as ConversionRow[];
  const changed = conversion as ConversionRow;
  if (countedFor && (changed.amount !== stored.amount || changed.currency !== stored.currency)) {
    const at = stored.created_at;
    work.count(
      { programId: program.id, participantId: countedFor, at, revenue: { ...revenueOf(stored), amount: -(stored.amount ?? 0) } },
      { programId: program.id, participantId: countedFor, at, revenue: revenueOf(changed) },
    );
  }
  return changed;
}

/**
 * The browser claimed this event id for another customer than the server reports:
 * its event keeps its rewards under review, with a `mismatch` decision, and gives the
 * event id up so the server's event is stored under it.
 */
async function stepAside(trx: Knex, program: ProgramRow, stored: ConversionRow, input: ConversionInput): Promise<void> {
  await trx('conversions')
    .where({ id: stored.id })
    .update({ event_id: trx.raw(`'mismatch:' || id::text`) });
  await recordDecision(trx, {
    programId: program.id,
    subject: 'conversion',
    outcome: 'rejected',
    reason: 'mismatch',
    participantId: stored.participant_id,
    conversionId: stored.id,
    details: { eventId: stored.event_id, reportedFor: input.externalId, source: input.source },
  });
}
