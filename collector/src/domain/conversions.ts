/**
 * Conversions: signups and purchases, from the browser (unverified) or the host's
 * server (verified). Unique per program on (type, eventId): a retried event
 * replays the first answer and writes nothing; a verified retry of an unverified
 * event confirms it.
 */
import type { Knex } from 'knex';
import { prepared, rowFromJson } from '../storage/db.ts';
import { assignCode, generateCode } from './codes.ts';
import { revokedSecretKey } from './keys.ts';
import type { ConversionResponse } from '../../../shared/responses.ts';
import type { ConversionType } from '../../../shared/types.ts';
import {
  attribute,
  attributableAhead,
  attributeMany,
  type AttributedAhead,
  CODE_WITH_OWNER_SQL,
  codeWithOwnerFrom,
  participantById,
  type Attribution,
  type AttributionHint,
} from './attribution.ts';
import { recordDecision } from './decisions.ts';
import { ensureParticipant, type ParticipantRow } from './participants.ts';
import type { ProgramRow } from './programs.ts';
import { inWork, type Work } from './work.ts';
import { confirmConversion } from './confirmation.ts';
import { revealSelfReferrals } from './fraud.ts';
import { grantRewards, presentReward, type RewardView } from './rewards.ts';
import { applyRefundsSoFar, refundedSoFar } from './ledger.ts';
import type { PromoCodeMatch } from './promoCodes.ts';

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
  vid: string | null;
  ip_hash: string | null;
  created_at: Date;
}

export type ConversionSource = 'browser' | 'server' | 'stripe' | 'paddle' | 'lemonsqueezy';

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
  /** The promo code a verified payment carried (providers/commands.ts): it names the referrer. */
  promoCode?: PromoCodeMatch | undefined;
}

export interface ConversionResult {
  conversion: ReturnType<typeof presentConversion>;
  attribution: Omit<Attribution, 'referral'>;
  rewards: RewardView[];
}

export function presentConversion(row: ConversionRow, externalId: string): ConversionResponse {
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
async function replay(work: Work, program: ProgramRow, stored: ConversionRow, input: ConversionInput): Promise<ConversionResult | null> {
  if (!input.verified || stored.verified) return work.answerOf<ConversionResult>(stored);
  const confirmed = await confirmConversion(work, program, stored, input);
  if (confirmed.mismatch) return null;
  const response: ConversionResult = {
    conversion: presentConversion(confirmed.conversion, confirmed.externalId),
    attribution: confirmed.attribution,
    rewards: confirmed.rewards.map(presentReward),
  };
  work.answer(stored.id, response);
  return response;
}

/** A conversion's columns after program_id and participant_id, and their values, in one order. */
const CONVERSION_COLUMNS = 'type, event_id, amount, currency, verified, source, vid, ip_hash, created_at';
/** A conversion's time: its transaction's, plus its turn in the batch in microseconds (Work.turn). */
const atTurn = (turn: string) => `now() + ${turn} * interval '1 microsecond'`;
const AT_TURN = atTurn('?::int');
const conversionValues = (input: ConversionInput, turn: number) => [
  input.type,
  input.eventId,
  input.amount ?? null,
  input.currency ?? null,
  input.verified,
  input.source,
  input.vid ?? null,
  input.ipHash ?? null,
  turn,
];

async function insertConversion(work: Work, programId: string, participant: ParticipantRow, input: ConversionInput) {
  const result = await prepared(
    work.trx,
    'insert_conversion',
    `insert into conversions (program_id, participant_id, ${CONVERSION_COLUMNS})
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ${AT_TURN}) on conflict do nothing returning *`,
    [programId, participant.id, ...conversionValues(input, work.turn)],
  );
  return result.rows[0] as ConversionRow | undefined;
}

/**
 * A payment provider's later event names the referral of a customer it already signed
 * up unreferred: providers promise no order (Stripe's `invoice.paid` may arrive before
 * the checkout session that carried the code). The customer is attributed as of their
 * signup, so their purchases so far count and earn as they would have, their refunds
 * taken as if they came after (one refunded in full earns nothing; in part, on what was
 * kept). A customer with a referral keeps it. Returns whether this made the referral.
 */
export async function attributeLater(
  db: Knex,
  program: ProgramRow,
  externalId: string,
  hint: Pick<AttributionHint, 'code' | 'vid' | 'promoCode'>,
): Promise<boolean> {
  if (!hint.code && !hint.vid && !hint.promoCode) return false;
  const unreferred = await db('participants')
    .where({ program_id: program.id, external_id: externalId })
    .whereNull('referred_by')
    .first('id');
  if (!unreferred) return false;
  return inWork(db, async (work) => {
    const { trx } = work;
    const participant = (await trx('participants').where({ id: unreferred.id }).forUpdate().first()) as ParticipantRow;
    if (participant.referred_by) return false;
    const conversions = (await trx('conversions')
      .where({ participant_id: participant.id })
      .whereIn('type', ['signup', 'purchase'])
      .orderBy('created_at')) as ConversionRow[];
    const signup = conversions.find((conversion) => conversion.type === 'signup');
    if (!signup) return false;
    const { referral } = await attribute(work, program, participant, { ...hint, verified: true }, signup.id);
    if (!referral) return false;
    for (const conversion of conversions) {
      if (conversion.type !== 'purchase') {
        await grantRewards(trx, program, conversion, referral);
        continue;
      }
      const kept = (conversion.amount ?? 0) - (await refundedSoFar(trx, conversion.id));
      work.count({
        programId: program.id,
        participantId: referral.referrer_id,
        at: conversion.created_at,
        purchases: 1,
        ...(kept > 0 ? { revenue: { currency: conversion.currency ?? 'XXX', amount: kept } } : {}),
      });
      if (kept <= 0) continue;
      await grantRewards(trx, program, conversion, referral);
      await applyRefundsSoFar(trx, program, conversion);
    }
    return true;
  });
}

/** Records a signup or purchase, attributes the customer and grants rewards, in one transaction. */
export async function recordConversion(db: Knex, program: ProgramRow, input: ConversionInput, keyId?: string): Promise<ConversionResult> {
  return inWork(db, async (work) => {
    const now = programNow(await liveKeys(work.trx, keyId ? [keyId] : []), { program, keyId });
    if (!now) throw revokedSecretKey();
    return convert(work, now, input);
  });
}

const LIVE_KEYS = `select p.*, k.id as key_id from api_keys k join programs p on p.id = k.program_id
  where k.id = any(?::uuid[]) and k.kind = 'secret' and k.revoked_at is null`;

/**
 * The batch's secret keys that are live now, each with its program as it is now: the
 * route's lookup may be a few seconds old (http/auth.ts checkedLater), and a key revoked
 * or a setting changed meanwhile, by any process, counts from here.
 */
async function liveKeys(trx: Knex, keyIds: string[]): Promise<Map<string, ProgramRow>> {
  if (!keyIds.length) return new Map();
  const result = await prepared(trx, 'live_keys', LIVE_KEYS, [[...new Set(keyIds)]]);
  return new Map(
    (result.rows as Array<ProgramRow & { key_id: string }>).map(({ key_id: keyId, ...program }) => [keyId, program as ProgramRow]),
  );
}

/** The program to convert with: as read with its key in this transaction, or as given when it came without one. */
const programNow = (programs: Map<string, ProgramRow>, { program, keyId }: Omit<BatchedConversion, 'input'>) =>
  keyId ? programs.get(keyId) : program;

export type BatchedConversion = {
  program: ProgramRow;
  input: ConversionInput;
  /** The secret key it came with, when its lookup was cached: checked again in the batch's transaction. */
  keyId?: string;
};

/**
 * Conversions group-committed (server conversions and browser events alike): one
 * transaction and one Work for the batch, each conversion in turn, rollups and
 * answers written once at the end. No savepoints (two more round trips per
 * conversion): if any conversion fails, the whole batch rolls back and each one is
 * recorded again in its own transaction, where only the bad one fails.
 */
export async function recordConversionBatch(
  db: Knex,
  batch: BatchedConversion[],
  onRetry?: (error: unknown, size: number) => void,
): Promise<BatchOutcome<ConversionResult>[]> {
  const alone = ({ program, input, keyId }: BatchedConversion) =>
    recordConversion(db, program, input, keyId).then(
      (ok): BatchOutcome<ConversionResult> => ({ ok }),
      (error: unknown): BatchOutcome<ConversionResult> => ({ error }),
    );
  if (batch.length === 1) return [await alone(batch[0] as BatchedConversion)];
  try {
    return await inWork(db, async (work) => {
      const programs = await liveKeys(
        work.trx,
        batch.flatMap(({ keyId }) => (keyId ? [keyId] : [])),
      );
      const nows = batch.map((item) => programNow(programs, item));
      const opened = await openConversions(work.trx, batch, nows);
      const outcomes: BatchOutcome<ConversionResult>[] = [];
      for (const [index, item] of batch.entries()) {
        const now = nows[index];
        work.turn = index;
        outcomes.push(now ? { ok: await convert(work, now, item.input, opened.get(index)) } : { error: revokedSecretKey() });
      }
      return outcomes;
    });
  } catch (error) {
    onRetry?.(error, batch.length);
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
    select program_id, id, ?, ?, ?, ?, ?, ?, ?, ?, ${AT_TURN} from participant on conflict do nothing returning *
  ), referrer as (${CODE_WITH_OWNER_SQL}
  ) select (select row_to_json(s) from stored s) as stored, (select row_to_json(p) from participant p) as participant,
      exists (select 1 from code) as coded, (select row_to_json(c) from conversion c) as conversion,
      (select code from referrer) as referrer_code, (select owner from referrer) as referrer`;

type OpenedRow = Record<'stored' | 'participant' | 'conversion' | 'referrer_code' | 'referrer', Record<string, unknown> | null> & {
  coded: boolean;
};
type Opened = ReturnType<typeof fromOpened>;

function fromOpened(row: OpenedRow, input: ConversionInput) {
  return {
    stored: rowFromJson<ConversionRow>(row.stored, ['created_at']),
    participant: rowFromJson<ParticipantRow>(row.participant, ['created_at']),
    coded: row.coded,
    conversion: rowFromJson<ConversionRow>(row.conversion, ['created_at']),
    // The code the customer came with, looked up in the same statement (read before this customer existed).
    codeWithOwner: input.code ? codeWithOwnerFrom({ code: row.referrer_code, owner: row.referrer }) : undefined,
    /** The referral made with others of the batch (attributeMany). */
    attributed: undefined as AttributedAhead | undefined,
  };
}

async function openConversion(work: Work, programId: string, input: ConversionInput): Promise<Opened> {
  const result = await prepared(work.trx, 'open_conversion', OPEN_SQL, [
    programId,
    input.type,
    input.eventId,
    programId,
    input.externalId,
    input.email ?? null,
    input.name ?? null,
    generateCode(),
    ...conversionValues(input, work.turn),
    input.code ?? null,
  ]);
  return fromOpened(result.rows[0] as OpenedRow, input);
}

/**
 * OPEN_SQL for many conversions at once, row `i` of the arrays being conversion `i`:
 * each one's stored event, new customer (with their code and the conversion) and the
 * referrer's code, every referrer code read before any of these customers existed.
 */
const OPEN_MANY_SQL = `with input as (
    select * from unnest(?::int[], ?::uuid[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],
        ?::bigint[], ?::text[], ?::boolean[], ?::text[], ?::text[], ?::text[], ?::text[], ?::int[])
      as t(i, program_id, type, event_id, external_id, email, name, new_code, amount, currency, verified, source, vid, ip_hash, code, turn)
  ), stored as (
    select input.i, row_to_json(s) as row from input
    join lateral (select * from conversions c where c.program_id = input.program_id and c.type = input.type and c.event_id = input.event_id limit 1) s on true
  ), participant as (
    insert into participants (program_id, external_id, email, name)
    select program_id, external_id, email, name from input where i not in (select i from stored) order by i
    on conflict (program_id, external_id) do nothing returning *
  ), opened as (
    select input.*, p.id as participant_id, row_to_json(p) as row from participant p
    join input on input.program_id = p.program_id and input.external_id = p.external_id
  ), code as (
    insert into codes (program_id, participant_id, code) select program_id, participant_id, new_code from opened order by i
    on conflict do nothing returning participant_id
  ), conversion as (
    insert into conversions (program_id, participant_id, ${CONVERSION_COLUMNS})
    select program_id, participant_id, type, event_id, amount, currency, verified, source, vid, ip_hash, ${atTurn('turn')}
    from opened order by i
    on conflict do nothing returning *
  ) select input.i, stored.row as stored, opened.row as participant,
      exists (select 1 from code where code.participant_id = opened.participant_id) as coded,
      (select row_to_json(c) from conversion c where c.participant_id = opened.participant_id) as conversion,
      referrer.code as referrer_code, referrer.owner as referrer
    from input
    left join stored on stored.i = input.i
    left join opened on opened.i = input.i
    left join lateral (${CODE_WITH_OWNER_SQL.replace('lower(?)', 'lower(input.code)')}) referrer on input.code is not null`;

/**
 * Opens, in one statement, the conversions of a batch that nothing earlier in the batch
 * can change and that change nothing an earlier one reads (a round trip each saved:
 * most of a batch is new customers): those whose customer and event are their own in
 * the batch, and that carry no email. Another conversion of the same customer or event
 * waits for its turn; so does a customer with an email, whose key another customer's
 * check for a duplicate identity reads (an existing customer earlier in the batch, with
 * that email stored, would otherwise find them already there). The rest open at their
 * turn (convert). Answers the opened ones by batch index.
 */
async function openConversions(
  trx: Knex,
  batch: BatchedConversion[],
  programs: Array<ProgramRow | undefined>,
): Promise<Map<number, Opened>> {
  const seen = new Map<string, number>();
  const keysOf = ({ input }: BatchedConversion, index: number) => {
    const programId = programs[index]?.id ?? '';
    return [`c ${programId} ${input.externalId}`, `e ${programId} ${input.type} ${input.eventId}`];
  };
  for (const [index, item] of batch.entries()) for (const key of keysOf(item, index)) seen.set(key, (seen.get(key) ?? 0) + 1);
  const own = [...batch.keys()].filter((index) => {
    const item = batch[index] as BatchedConversion;
    return programs[index] && !item.input.email && keysOf(item, index).every((key) => seen.get(key) === 1);
  });
  const opened = new Map<number, Opened>();
  if (own.length < 2) return opened;
  const inputs = own.map((index) => (batch[index] as BatchedConversion).input);
  const column = (pick: (input: ConversionInput) => unknown) => inputs.map((input) => pick(input) ?? null);
  const result = await prepared(trx, 'open_conversions', OPEN_MANY_SQL, [
    inputs.map((_, i) => i),
    own.map((index) => (programs[index] as ProgramRow).id),
    column((input) => input.type),
    column((input) => input.eventId),
    column((input) => input.externalId),
    column((input) => input.email),
    column((input) => input.name),
    inputs.map(() => generateCode()),
    column((input) => input.amount),
    column((input) => input.currency),
    column((input) => input.verified),
    column((input) => input.source),
    column((input) => input.vid),
    column((input) => input.ipHash),
    column((input) => input.code),
    own,
  ]);
  for (const row of result.rows as Array<OpenedRow & { i: number }>) {
    const index = own[row.i] as number;
    opened.set(index, fromOpened(row, (batch[index] as BatchedConversion).input));
  }
  // New customers with nothing but a usable code: their referrals too, in one statement.
  const ahead = [...opened].flatMap(([index, open]) => {
    const { input } = batch[index] as BatchedConversion;
    const hint = { ...input, newParticipant: Boolean(open.participant), codeWithOwner: open.codeWithOwner };
    const found = open.conversion ? attributableAhead(hint, (programs[index] as ProgramRow).id) : undefined;
    return found ? [{ conversionId: (open.conversion as ConversionRow).id, verified: input.verified, found }] : [];
  });
  const attributed = await attributeMany(trx, ahead);
  for (const open of opened.values()) if (open.conversion) open.attributed = attributed.get(open.conversion.id);
  return opened;
}

/** `opened`: the conversion already opened with others of its batch (openConversions). */
async function convert(work: Work, program: ProgramRow, input: ConversionInput, opened?: Opened): Promise<ConversionResult> {
  const { trx } = work;
  opened ??= await openConversion(work, program.id, input);
  if (opened.stored) return (await replay(work, program, opened.stored, input)) ?? convert(work, program, input);

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
    conversion = await insertConversion(work, program.id, participant, input);
    if (input.email || input.name) work.touched.add(participant.id);
  }
  if (!conversion) {
    // Either a concurrent request stored this very event, or the participant already signed up.
    const same = await findConversion(trx, program.id, input.type, input.eventId);
    if (same) return (await replay(work, program, same, input)) ?? convert(work, program, input);
    return duplicateSignup(work, program, participant, input);
  }

  const { referral, ...attribution } = await attribute(
    work,
    program,
    participant,
    {
      code: input.code,
      vid: input.vid,
      ipHash: input.ipHash,
      verified: input.verified,
      newParticipant: created,
      newConversion: true,
      codeWithOwner: await ownerNow(work, opened.codeWithOwner),
      attributed: opened.attributed,
      promoCode: input.promoCode,
    },
    conversion.id,
  );
  // Converting with a visitor id shows it is theirs: customers they referred from it referred themselves.
  if (input.vid && !created) await revealSelfReferrals(trx, program, participant, input.vid);
  if (referral && conversion.type === 'purchase') {
    work.count({
      programId: program.id,
      participantId: referral.referrer_id,
      at: conversion.created_at,
      purchases: 1,
      revenue: { currency: conversion.currency ?? 'XXX', amount: conversion.amount ?? 0 },
    });
  }
  const rewards = referral ? await grantRewards(trx, program, conversion, referral) : [];
  const response: ConversionResult = {
    conversion: presentConversion(conversion, participant.external_id),
    attribution,
    rewards: rewards.map(presentReward),
  };
  work.answer(conversion.id, response);
  return response;
}

/** The code's owner as read with the opening, or read again when a conversion before this one in the work may have changed them. */
async function ownerNow(work: Work, found: Opened['codeWithOwner']): Promise<Opened['codeWithOwner']> {
  if (!found || !work.touched.has(found.owner.id)) return found;
  return { ...found, owner: await participantById(work.trx, found.owner.id) };
}

/**
 * A signup event for a customer who already signed up under another event id. The
 * first answer stands (status `existing`), unless the server now reports a customer
 * only the browser had reported: then it is the confirmation (confirmation.ts), and a
 * retry of it answers the same.
 */
async function duplicateSignup(
  work: Work,
  program: ProgramRow,
  participant: ParticipantRow,
  input: ConversionInput,
): Promise<ConversionResult> {
  const { trx } = work;
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
  const answer = (await replay(work, program, signup, input)) as ConversionResult;
  if (confirms || noted?.details.confirmed) return answer;
  return {
    ...answer,
    attribution: { ...answer.attribution, status: answer.attribution.referrer ? 'existing' : answer.attribution.status },
  };
}
