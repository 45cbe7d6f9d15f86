/**
 * Conversions: signups and purchases, from the browser (unverified) or the host's
 * server (verified). Unique per program on (type, eventId): a retried event
 * replays the first answer and writes nothing; a verified retry of an unverified
 * event confirms it.
 */
import type { Knex } from 'knex';
import { prepared, rowFromJson } from '../storage/db.ts';
import { assignCode, generateCode } from './codes.ts';
import type { ConversionType } from '../../../shared/types.ts';
import { attribute, CODE_WITH_OWNER_SQL, codeWithOwnerFrom, type Attribution } from './attribution.ts';
import { recordDecision } from './decisions.ts';
import { ensureParticipant, type ParticipantRow } from './participants.ts';
import type { ProgramRow } from './programs.ts';
import { applyStats, bumpStats, deferStats, ROLLUP_CTES, rollupParams, type StatsDelta } from './rollups.ts';
import { confirmConversion } from './confirmation.ts';
import { revealSelfReferrals } from './fraud.ts';
import { grantRewards, presentReward, type RewardView } from './rewards.ts';

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
  const result = await prepared(
    trx,
    'find_conversion',
    `select * from conversions where program_id = ? and type = ? and event_id = ? limit 1`,
    [programId, type, eventId],
  );
  return result.rows[0] as ConversionRow | undefined;
}

/**
 * The answer for a conversion that is already stored: its first answer, unless the
 * server now reports what only the browser had (confirmation.ts). Null when the
 * browser's event stepped aside for the server's (another customer): record it anew.
 */
async function replay(trx: Knex, program: ProgramRow, stored: ConversionRow, input: ConversionInput): Promise<ConversionResult | null> {
  if (!input.verified || stored.verified) return stored.response as ConversionResult;
  const confirmed = await confirmConversion(trx, program, stored, input);
  if (confirmed.mismatch) return null;
  const response: ConversionResult = {
    conversion: presentConversion(confirmed.conversion, confirmed.externalId),
    attribution: confirmed.attribution,
    rewards: confirmed.rewards.map(presentReward),
  };
  await trx('conversions')
    .where({ id: stored.id })
    .update({ response: JSON.stringify(response) });
  return response;
}

/** A conversion's columns after program_id and participant_id, and their values, in one order. */
const CONVERSION_COLUMNS = 'type, event_id, amount, currency, verified, source, vid, ip_hash';
const conversionValues = (input: ConversionInput) => [
  input.type,
  input.eventId,
  input.amount ?? null,
  input.currency ?? null,
  input.verified,
  input.source,
  input.vid ?? null,
  input.ipHash ?? null,
];

async function insertConversion(trx: Knex, programId: string, participant: ParticipantRow, input: ConversionInput) {
  const result = await prepared(
    trx,
    'insert_conversion',
    `insert into conversions (program_id, participant_id, ${CONVERSION_COLUMNS})
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict do nothing returning *`,
    [programId, participant.id, ...conversionValues(input)],
  );
  return result.rows[0] as ConversionRow | undefined;
}

type PendingResponse = { id?: string; response?: string };

/** A transaction's answer, stored with its closing statement instead of on its own. */
const pendingResponses = new WeakMap<Knex, PendingResponse>();

async function storeResponse(trx: Knex, conversionId: string, response: ConversionResult): Promise<void> {
  const pending = pendingResponses.get(trx);
  if (pending && !pending.id) Object.assign(pending, { id: conversionId, response: JSON.stringify(response) });
  else
    await prepared(trx, 'conversion_response', `update conversions set response = ? where id = ?`, [
      JSON.stringify(response),
      conversionId,
    ]);
}

/** The rollup increments and the stored answer, in the transaction's last statement. */
const FINISH_SQL = `with ${ROLLUP_CTES},
  response as (update conversions set response = ?::jsonb where id = ?::uuid)
  select 1`;

/** Records a signup or purchase, attributes the customer and grants rewards, in one transaction. */
export async function recordConversion(db: Knex, program: ProgramRow, input: ConversionInput): Promise<ConversionResult> {
  return db.transaction(async (trx) => {
    // Rollup rows are shared by every conversion of the day: touch them last, just
    // before commit, so their row locks are held as briefly as possible.
    const deltas: StatsDelta[] = [];
    const pending: PendingResponse = {};
    deferStats(trx, deltas);
    pendingResponses.set(trx, pending);
    const result = await convert(trx, program, input);
    if (deltas.length || pending.id) {
      await prepared(trx, 'conversion_finish', FINISH_SQL, [...rollupParams(deltas), pending.response ?? null, pending.id ?? null]);
    }
    return result;
  });
}

export type BatchedConversion = { program: ProgramRow; input: ConversionInput };

/**
 * Conversions group-committed (server conversions and browser events alike): one
 * transaction for the batch, each conversion
 * in turn, rollups applied once at the end. No savepoints (two more round trips per
 * conversion): if any conversion fails, the whole batch rolls back and each one is
 * recorded again in its own transaction, where only the bad one fails.
 */
export async function recordConversionBatch(db: Knex, batch: BatchedConversion[]): Promise<BatchOutcome<ConversionResult>[]> {
  const alone = ({ program, input }: BatchedConversion) =>
    recordConversion(db, program, input).then(
      (ok): BatchOutcome<ConversionResult> => ({ ok }),
      (error: unknown): BatchOutcome<ConversionResult> => ({ error }),
    );
  if (batch.length === 1) return [await alone(batch[0] as BatchedConversion)];
  try {
    return await db.transaction(async (trx) => {
      const deltas: StatsDelta[] = [];
      deferStats(trx, deltas);
      const outcomes: BatchOutcome<ConversionResult>[] = [];
      for (const { program, input } of batch) outcomes.push({ ok: await convert(trx, program, input) });
      await applyStats(trx, deltas);
      return outcomes;
    });
  } catch {
    const outcomes: BatchOutcome<ConversionResult>[] = [];
    for (const item of batch) outcomes.push(await alone(item));
    return outcomes;
  }
}
export type BatchOutcome<R> = { ok: R } | { error: unknown };

/**
 * The common case in one statement: the event is new and so is the customer. Reads
 * the stored event, else creates the participant, their code and the conversion. A
 * participant who already exists comes back as null (the caller takes the long way).
 */
const OPEN_SQL = `with stored as (
    select * from conversions where program_id = ? and type = ? and event_id = ? limit 1
  ), participant as (
    insert into participants (program_id, external_id, email, name) select ?, ?, ?, ? where not exists (select 1 from stored)
    on conflict (program_id, external_id) do nothing returning *
  ), code as (
    insert into codes (program_id, participant_id, code) select program_id, id, ? from participant on conflict do nothing returning id
  ), conversion as (
    insert into conversions (program_id, participant_id, ${CONVERSION_COLUMNS})
    select program_id, id, ?, ?, ?, ?, ?, ?, ?, ? from participant on conflict do nothing returning *
  ), referrer as (${CODE_WITH_OWNER_SQL}
  ) select (select row_to_json(s) from stored s) as stored, (select row_to_json(p) from participant p) as participant,
      exists (select 1 from code) as coded, (select row_to_json(c) from conversion c) as conversion,
      (select code from referrer) as referrer_code, (select owner from referrer) as referrer`;

async function openConversion(trx: Knex, programId: string, input: ConversionInput) {
  const result = await prepared(trx, 'open_conversion', OPEN_SQL, [
    programId,
    input.type,
    input.eventId,
    programId,
    input.externalId,
    input.email ?? null,
    input.name ?? null,
    generateCode(),
    ...conversionValues(input),
    input.code ?? null,
  ]);
  const row = result.rows[0] as Record<
    'stored' | 'participant' | 'conversion' | 'referrer_code' | 'referrer',
    Record<string, unknown> | null
  > & { coded: boolean };
  return {
    stored: rowFromJson<ConversionRow>(row.stored, ['created_at']),
    participant: rowFromJson<ParticipantRow>(row.participant, ['created_at']),
    coded: row.coded,
    conversion: rowFromJson<ConversionRow>(row.conversion, ['created_at']),
    // The code the customer came with, looked up in the same statement (read before this customer existed).
    codeWithOwner: input.code ? codeWithOwnerFrom({ code: row.referrer_code, owner: row.referrer }) : undefined,
  };
}

async function convert(trx: Knex, program: ProgramRow, input: ConversionInput): Promise<ConversionResult> {
  const opened = await openConversion(trx, program.id, input);
  if (opened.stored) return (await replay(trx, program, opened.stored, input)) ?? convert(trx, program, input);

  let participant: ParticipantRow;
  let created: boolean;
  let conversion: ConversionRow | undefined;
  if (opened.participant) {
    ({ participant, conversion } = opened as { participant: ParticipantRow; conversion: ConversionRow | undefined });
    created = true;
    // The drawn code was taken (rare): draw again until one is free.
    if (!opened.coded) await assignCode(trx, program.id, participant.id);
  } else {
    ({ participant, created } = await ensureParticipant(trx, program.id, {
      externalId: input.externalId,
      email: input.email,
      name: input.name,
    }));
    conversion = await insertConversion(trx, program.id, participant, input);
  }
  if (!conversion) {
    // Either a concurrent request stored this very event, or the participant already signed up.
    const same = await findConversion(trx, program.id, input.type, input.eventId);
    if (same) return (await replay(trx, program, same, input)) ?? convert(trx, program, input);
    return duplicateSignup(trx, program, participant, input);
  }

  const { referral, ...attribution } = await attribute(
    trx,
    program,
    participant,
    {
      code: input.code,
      vid: input.vid,
      ipHash: input.ipHash,
      verified: input.verified,
      newParticipant: created,
      codeWithOwner: opened.codeWithOwner,
    },
    conversion.id,
  );
  // Converting with a visitor id shows it is theirs: customers they referred from it referred themselves.
  if (input.vid && !created) await revealSelfReferrals(trx, program, participant, input.vid);
  if (referral && conversion.type === 'purchase') {
    await bumpStats(trx, [
      {
        programId: program.id,
        participantId: referral.referrer_id,
        purchases: 1,
        revenue: { currency: conversion.currency ?? 'XXX', amount: conversion.amount ?? 0 },
      },
    ]);
  }
  const rewards = referral ? await grantRewards(trx, program, conversion, referral) : [];
  const response: ConversionResult = {
    conversion: presentConversion(conversion, participant.external_id),
    attribution,
    rewards: rewards.map(presentReward),
  };
  await storeResponse(trx, conversion.id, response);
  return response;
}

/**
 * A signup event for a customer who already signed up under another event id. The
 * first answer stands (status `existing`), unless the server now reports a customer
 * only the browser had reported: then it is the confirmation (confirmation.ts), and a
 * retry of it answers the same.
 */
async function duplicateSignup(
  trx: Knex,
  program: ProgramRow,
  participant: ParticipantRow,
  input: ConversionInput,
): Promise<ConversionResult> {
  const signup = (await trx('conversions').where({ participant_id: participant.id, type: 'signup' }).first()) as ConversionRow;
  // A retry of this duplicate writes nothing new: its decision is recorded once.
  const noted = (await trx('decisions')
    .where({ conversion_id: signup.id, reason: 'duplicate_event' })
    .whereRaw(`details->>'eventId' = ?`, [input.eventId])
    .first('details')) as { details: { confirmed?: boolean } } | undefined;
  const confirms = input.verified && !signup.verified;
  if (!noted) {
    await recordDecision(trx, {
      programId: program.id,
      subject: 'conversion',
      outcome: confirms ? 'accepted' : 'rejected',
      reason: 'duplicate_event',
      participantId: participant.id,
      conversionId: signup.id,
      details: { eventId: input.eventId, ...(confirms ? { confirmed: true } : {}) },
    });
  }
  const answer = (await replay(trx, program, signup, input)) as ConversionResult;
  if (confirms || noted?.details.confirmed) return answer;
  return {
    ...answer,
    attribution: { ...answer.attribution, status: answer.attribution.referrer ? 'existing' : answer.attribution.status },
  };
}
