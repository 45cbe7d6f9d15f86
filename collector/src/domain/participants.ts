/**
 * Participants: the program's users, known by the host app's own id (externalId).
 */
import type { Knex } from 'knex';
import { prepared } from '../storage/db.ts';
import type { ParticipantCreate } from '../../../shared/schemas.ts';
import type { MoneyByCurrency } from '../../../shared/types.ts';
import { conflict } from '../errors.ts';
import { assignCode, primaryCode, referralLink } from './codes.ts';

export interface ParticipantRow {
  id: string;
  program_id: string;
  external_id: string;
  email: string | null;
  name: string | null;
  referred_by: string | null;
  created_at: Date;
}

export interface ParticipantFields {
  externalId: string;
  email?: string | undefined;
  name?: string | undefined;
}

/**
 * Finds the participant by externalId or creates it with a fresh code. Safe under
 * concurrency: the unique (program, externalId) constraint picks one winner.
 * Missing email or name are filled in when a later call knows them.
 */
export async function ensureParticipant(
  trx: Knex,
  programId: string,
  fields: ParticipantFields,
  vanityCode?: string,
): Promise<{ participant: ParticipantRow; created: boolean }> {
  const inserted = await prepared(
    trx,
    'insert_participant',
    `insert into participants (program_id, external_id, email, name) values (?, ?, ?, ?)
     on conflict (program_id, external_id) do nothing returning *`,
    [programId, fields.externalId, fields.email ?? null, fields.name ?? null],
  );
  const created = inserted.rows[0] as ParticipantRow | undefined;
  if (created) {
    await assignCode(trx, programId, created.id, vanityCode);
    return { participant: created, created: true };
  }
  let participant = (await trx('participants')
    .where({ program_id: programId, external_id: fields.externalId })
    .first()) as ParticipantRow;
  if ((fields.email && !participant.email) || (fields.name && !participant.name)) {
    [participant] = await trx('participants')
      .where({ id: participant.id })
      .update({ email: participant.email ?? fields.email, name: participant.name ?? fields.name })
      .returning('*');
  }
  return { participant: participant as ParticipantRow, created: false };
}

/** POST /v1/participants: idempotent on externalId (same participant, same code). */
export async function createParticipant(db: Knex, programId: string, input: ParticipantCreate, publicUrl: string) {
  return db.transaction(async (trx) => {
    const { participant, created } = await ensureParticipant(trx, programId, input, input.code);
    let code = await primaryCode(trx, participant.id);
    if (!created && input.code && code?.code.toLowerCase() !== input.code.toLowerCase()) {
      if (code) throw conflict('participant_exists', `Participant "${input.externalId}" already has the code "${code.code}"`);
      code = await assignCode(trx, programId, participant.id, input.code);
    }
    code ??= await assignCode(trx, programId, participant.id);
    return { created, body: presentParticipant(participant, code.code, publicUrl) };
  });
}

export function presentParticipant(participant: ParticipantRow, code: string, publicUrl: string) {
  return {
    id: participant.id,
    externalId: participant.external_id,
    email: participant.email,
    name: participant.name,
    code,
    link: referralLink(publicUrl, code),
  };
}

export async function findParticipant(db: Knex, programId: string, externalId: string): Promise<ParticipantRow | undefined> {
  return (await db('participants').where({ program_id: programId, external_id: externalId }).first()) as ParticipantRow | undefined;
}

type SumRow = { currency: string | null; total: number };
const byCurrency = (rows: SumRow[]): MoneyByCurrency =>
  Object.fromEntries(rows.filter((row) => row.currency).map((row) => [row.currency as string, Number(row.total)]));

/**
 * Lifetime figures from the rollups (never raw clicks): clicks on their links, the
 * people they referred (signups), those people's purchases and revenue less refunds
 * since they were referred, and the participant's reward balances.
 */
export async function participantStats(db: Knex, participant: ParticipantRow) {
  const programId = participant.program_id;
  const mine = { program_id: programId, participant_id: participant.id };
  const [totals] = (await db('participant_monthly').where(mine).sum({ clicks: 'clicks', signups: 'signups', purchases: 'purchases' })) as Array<Record<string, number | null>>;
  const revenue = (await db('daily_revenue').where(mine).select('currency').sum({ total: 'amount' }).groupBy('currency')) as SumRow[];
  const rewards = (await db('rewards')
    .where({ program_id: programId, beneficiary_id: participant.id })
    .whereIn('status', ['pending', 'approved', 'paid'])
    .select('status', 'currency')
    .sum({ total: 'amount' })
    .groupBy('status', 'currency')) as Array<SumRow & { status: string }>;
  const count = (key: string) => Number(totals?.[key] ?? 0);
  const rewardSums = (status: string) => byCurrency(rewards.filter((row) => row.status === status));
  return {
    stats: { clicks: count('clicks'), signups: count('signups'), purchases: count('purchases'), revenue: byCurrency(revenue) },
    rewards: { pending: rewardSums('pending'), approved: rewardSums('approved'), paid: rewardSums('paid') },
  };
}
