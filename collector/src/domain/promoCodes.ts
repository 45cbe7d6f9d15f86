/**
 * Promo codes: a payment provider's discount (its id and/or the code text a customer
 * types at checkout) owned by a participant. A paid event carrying it is attributed
 * to the owner (decision `promo_code`) with no cookie or metadata at all: a creator
 * can read the code aloud. Unique per program and provider, by id and by code text
 * (case-insensitively).
 */
import type { Knex } from 'knex';
import type { PromoCodeResponse } from '../../../shared/responses.ts';
import type { PaymentProvider, PromoCodeCreate } from '../../../shared/schemas.ts';
import { conflict, notFound } from '../errors.ts';
import { rowFromJson } from '../storage/db.ts';
import type { ParticipantRow } from './participants.ts';

export interface PromoCodeRow {
  id: string;
  program_id: string;
  participant_id: string;
  provider: PaymentProvider;
  discount_id: string | null;
  code: string | null;
  created_at: Date;
}

/** A discount as a provider's event names it: its id, its code text, or both. */
export interface Discount {
  id?: string | undefined;
  code?: string | undefined;
}

/** The promo code a paid event carried, with its owner: the referrer it names. */
export interface PromoCodeMatch {
  promo: PromoCodeRow;
  owner: ParticipantRow;
}

export function presentPromoCode(row: PromoCodeRow, participant: string): PromoCodeResponse {
  return {
    id: row.id,
    participant,
    provider: row.provider,
    discountId: row.discount_id,
    code: row.code,
    createdAt: row.created_at.toISOString(),
  };
}

async function ownerOf(db: Knex, programId: string, externalId: string): Promise<ParticipantRow> {
  const owner = (await db('participants').where({ program_id: programId, external_id: externalId }).whereNull('erased_at').first()) as
    | ParticipantRow
    | undefined;
  if (!owner) throw notFound('Participant');
  return owner;
}

/** Stores the mapping; 409 when the provider's id or code text is already someone's in this program. */
export async function addPromoCode(
  db: Knex,
  programId: string,
  externalId: string,
  input: Pick<PromoCodeCreate, 'provider' | 'code'> & { id?: string | undefined },
): Promise<PromoCodeResponse> {
  const owner = await ownerOf(db, programId, externalId);
  const result = await db.raw(
    `insert into promo_codes (program_id, participant_id, provider, discount_id, code) values (?, ?, ?, ?, ?)
     on conflict do nothing returning *`,
    [programId, owner.id, input.provider, input.id ?? null, input.code],
  );
  const row = result.rows[0] as PromoCodeRow | undefined;
  if (!row) {
    throw conflict(
      'promo_code_taken',
      `The ${input.provider} discount ${input.id ? `"${input.id}" or ` : ''}code "${input.code}" already belongs to a participant of this program`,
    );
  }
  return presentPromoCode(row, owner.external_id);
}

/** The participant's promo codes, oldest first. */
export async function listPromoCodes(db: Knex, programId: string, participantId: string, externalId: string): Promise<PromoCodeResponse[]> {
  const rows = (await db('promo_codes')
    .where({ program_id: programId, participant_id: participantId })
    .orderBy('created_at')
    .orderBy('id')) as PromoCodeRow[];
  return rows.map((row) => presentPromoCode(row, externalId));
}

/** GET /v1/participants/:externalId/promo-codes. */
export async function promoCodesOf(db: Knex, programId: string, externalId: string): Promise<PromoCodeResponse[]> {
  const owner = await ownerOf(db, programId, externalId);
  return listPromoCodes(db, programId, owner.id, owner.external_id);
}

/** DELETE /v1/participants/:externalId/promo-codes/:id; false when there is no such promo code of theirs. */
export async function removePromoCode(db: Knex, programId: string, externalId: string, id: string): Promise<boolean> {
  const owner = await ownerOf(db, programId, externalId);
  if (!/^[0-9a-f-]{36}$/i.test(id)) return false;
  return (await db('promo_codes').where({ program_id: programId, participant_id: owner.id, id }).del()) > 0;
}

/**
 * The promo code among `discounts` (the first one known), matched by the provider's
 * id or by code text, case-insensitively, with its owner. Erased owners refer nobody.
 */
export async function findPromoCode(
  db: Knex,
  programId: string,
  provider: PaymentProvider,
  discounts: Discount[],
): Promise<PromoCodeMatch | undefined> {
  const ids = [...new Set(discounts.map((discount) => discount.id).filter((id): id is string => Boolean(id)))];
  const codes = [...new Set(discounts.map((discount) => discount.code?.toLowerCase()).filter((code): code is string => Boolean(code)))];
  if (!ids.length && !codes.length) return undefined;
  const row = (await db('promo_codes as m')
    .join('participants as p', 'p.id', 'm.participant_id')
    .where({ 'm.program_id': programId, 'm.provider': provider })
    .whereNull('p.erased_at')
    .where((where) => {
      if (ids.length) where.orWhereIn('m.discount_id', ids);
      if (codes.length) where.orWhereRaw(`lower(m.code) in (${codes.map(() => '?').join(', ')})`, codes);
    })
    .orderBy('m.created_at')
    .select(db.raw('row_to_json(m.*) as promo'), db.raw('row_to_json(p.*) as owner'))
    .first()) as { promo: Record<string, unknown>; owner: Record<string, unknown> } | undefined;
  const promo = rowFromJson<PromoCodeRow>(row?.promo, ['created_at']);
  const owner = rowFromJson<ParticipantRow>(row?.owner, ['created_at']);
  return promo && owner ? { promo, owner } : undefined;
}
