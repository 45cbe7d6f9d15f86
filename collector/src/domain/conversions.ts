/**
 * Conversions: signups and purchases, from the browser (unverified) or the host's
 * server (verified). Unique per program on (type, eventId): a retried event
 * replays the first answer and writes nothing; a verified retry of an unverified
 * event confirms it.
 */
import type { Knex } from 'knex';
import { prepared } from '../storage/db.ts';
import type { ConversionType } from '../../../shared/types.ts';
import { attribute, referralOf, type Attribution } from './attribution.ts';
import { recordDecision } from './decisions.ts';
import { ensureParticipant, type ParticipantRow } from './participants.ts';
import type { ProgramRow } from './programs.ts';
import { applyStats, bumpStats, deferStats, type StatsDelta } from './rollups.ts';
import { confirmRewards, grantRewards, presentReward, type RewardView } from './rewards.ts';

export interface ConversionRow {
  id: string;
  program_id: string;
  participant_id: string;
  type: ConversionType | 'refund';
  event_id: string;
  amount: number | null;
  currency: string | null;
  verified: boolean;
  source: ConversionSource;
  refund_of: string | null;
  response: ConversionResult | null;
  vid: string | null;
  ip_hash: string | null;
  created_at: Date;
}

export type ConversionSource = 'browser' | 'server' | 'stripe';

export interface ConversionInput {
  type: ConversionType;
  eventId: string;
  externalId: string;
  email?: string | undefined;
  name?: string | undefined;
  code?: string | undefined;
  vid?: string | undefined;
  amount?: number | undefined;
  currency?: string | undefined;
  verified: boolean;
  source: ConversionSource;
  ipHash?: string | undefined;
  userAgent?: string | undefined;
}

export interface ConversionResult {
  conversion: ReturnType<typeof presentConversion>;
  attribution: Omit<Attribution, 'referral'>;
  rewards: RewardView[];
}

export function presentConversion(row: ConversionRow, externalId: string) {
  return {
    id: row.id,
    type: row.type,
    eventId: row.event_id,
    externalId,
    amount: row.amount,
    currency: row.currency,
    verified: row.verified,
    source: row.source,
    createdAt: row.created_at.toISOString(),
  };
}

async function findConversion(trx: Knex, programId: string, type: string, eventId: string): Promise<ConversionRow | undefined> {
  const result = await prepared(trx, 'find_conversion', `select * from conversions where program_id = ? and type = ? and event_id = ? limit 1`, [programId, type, eventId]);
  return result.rows[0] as ConversionRow | undefined;
}

/**
 * The answer for a conversion that is already stored. A verified report of an
 * unverified conversion confirms it (and the referral and rewards it backs).
 */
async function replay(trx: Knex, program: ProgramRow, stored: ConversionRow, verified: boolean): Promise<ConversionResult> {
  if (!verified || stored.verified) return stored.response as ConversionResult;
  await trx('conversions').where({ id: stored.id }).update({ verified: true });
  const referral = await referralOf(trx, stored.participant_id);
  if (referral && !referral.verified) await trx('referrals').where({ id: referral.id }).update({ verified: true });
  const rewards = await confirmRewards(trx, program, stored.id);
  await recordDecision(trx, {
    programId: program.id,
    subject: 'conversion',
    outcome: 'accepted',
    reason: 'confirmed',
    participantId: stored.participant_id,
    conversionId: stored.id,
  });
  const previous = stored.response as ConversionResult;
  const response: ConversionResult = {
    ...previous,
    conversion: { ...previous.conversion, verified: true },
    rewards: rewards.map(presentReward),
  };
  await trx('conversions').where({ id: stored.id }).update({ response: JSON.stringify(response) });
  return response;
}

async function insertConversion(trx: Knex, programId: string, participant: ParticipantRow, input: ConversionInput) {
  const result = await prepared(
    trx,
    'insert_conversion',
    `insert into conversions (program_id, participant_id, type, event_id, amount, currency, verified, source, vid, ip_hash)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict do nothing returning *`,
    [programId, participant.id, input.type, input.eventId, input.amount ?? null, input.currency ?? null, input.verified, input.source, input.vid ?? null, input.ipHash ?? null],
  );
  return result.rows[0] as ConversionRow | undefined;
}

/** Records a signup or purchase, attributes the customer and grants rewards, in one transaction. */
export async function recordConversion(db: Knex, program: ProgramRow, input: ConversionInput): Promise<ConversionResult> {
  return db.transaction(async (trx) => {
    // Rollup rows are shared by every conversion of the day: touch them last, just
    // before commit, so their row locks are held as briefly as possible.
    const deltas: StatsDelta[] = [];
    deferStats(trx, deltas);
    const result = await convert(trx, program, input);
    await applyStats(trx, deltas);
    return result;
  });
}

export type BatchedConversion = { program: ProgramRow; input: ConversionInput };
export type BatchOutcome<R> = { ok: R } | { error: unknown };

/**
 * A batch of conversions in one transaction (browser events, group-committed). Each
 * runs in its own savepoint, so one bad event fails alone; rollup increments are
 * applied once at the end, in a stable order.
 */
export async function recordConversions(db: Knex, batch: BatchedConversion[]): Promise<BatchOutcome<ConversionResult>[]> {
  return db.transaction(async (trx) => {
    const outcomes: BatchOutcome<ConversionResult>[] = [];
    const deltas: StatsDelta[] = [];
    for (const { program, input } of batch) {
      const local: StatsDelta[] = [];
      try {
        const result = await trx.transaction((savepoint) => {
          deferStats(savepoint, local);
          return convert(savepoint, program, input);
        });
        deltas.push(...local);
        outcomes.push({ ok: result });
      } catch (error) {
        outcomes.push({ error });
      }
    }
    await applyStats(trx, deltas);
    return outcomes;
  });
}

async function convert(trx: Knex, program: ProgramRow, input: ConversionInput): Promise<ConversionResult> {
  const stored = await findConversion(trx, program.id, input.type, input.eventId);
  if (stored) return replay(trx, program, stored, input.verified);

  const { participant, created } = await ensureParticipant(trx, program.id, { externalId: input.externalId, email: input.email, name: input.name });
  const conversion = await insertConversion(trx, program.id, participant, input);
  if (!conversion) {
    // Either a concurrent request stored this very event, or the participant already signed up.
    const same = await findConversion(trx, program.id, input.type, input.eventId);
    if (same) return replay(trx, program, same, input.verified);
    const signup = (await trx('conversions').where({ participant_id: participant.id, type: 'signup' }).first()) as ConversionRow;
    // A retry of this duplicate writes nothing new: its decision is recorded once.
    const noted = await trx('decisions')
      .where({ conversion_id: signup.id, reason: 'duplicate_event' })
      .whereRaw(`details->>'eventId' = ?`, [input.eventId])
      .first('id');
    if (!noted) await recordDecision(trx, {
      programId: program.id,
      subject: 'conversion',
      outcome: 'rejected',
      reason: 'duplicate_event',
      participantId: participant.id,
      conversionId: signup.id,
      details: { eventId: input.eventId },
    });
    const answer = await replay(trx, program, signup, input.verified);
    return { ...answer, attribution: { ...answer.attribution, status: answer.attribution.referrer ? 'existing' : answer.attribution.status } };
  }

  const { referral, ...attribution } = await attribute(
    trx,
    program,
    participant,
    { code: input.code, vid: input.vid, ipHash: input.ipHash, verified: input.verified, newParticipant: created },
    conversion.id,
  );
  if (referral && conversion.type === 'purchase') {
    await bumpStats(trx, [
      { programId: program.id, participantId: referral.referrer_id, purchases: 1, revenue: { currency: conversion.currency ?? 'XXX', amount: conversion.amount ?? 0 } },
    ]);
  }
  const rewards = referral ? await grantRewards(trx, program, conversion, referral) : [];
  const response: ConversionResult = {
    conversion: presentConversion(conversion, participant.external_id),
    attribution,
    rewards: rewards.map(presentReward),
  };
  await prepared(trx, 'conversion_response', `update conversions set response = ? where id = ?`, [JSON.stringify(response), conversion.id]);
  return response;
}
