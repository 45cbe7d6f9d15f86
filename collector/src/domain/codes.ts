/**
 * Referral codes. Generated ones are 8 characters from an alphabet without look-alikes
 * (no 0/O/1/I/L), drawn from the CSPRNG. Every code is unique across the collector,
 * case-insensitively, so `/r/CODE` alone names its program.
 */
import { randomInt } from 'node:crypto';
import type { Knex } from 'knex';
import { prepared } from '../storage/db.ts';
import { conflict } from '../errors.ts';

export const CODE_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
export const CODE_LENGTH = 8;
const MAX_ATTEMPTS = 8;

export function generateCode(): string {
  let code = '';
  for (let i = 0; i < CODE_LENGTH; i++) code += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
  return code;
}

export interface CodeRow {
  id: string;
  program_id: string;
  participant_id: string;
  code: string;
  disabled_at: Date | null;
  created_at: Date;
}

/** Inserts a code unless any code equal to it (ignoring case) exists; returns the row or undefined. */
async function insertCode(trx: Knex, programId: string, participantId: string, code: string): Promise<CodeRow | undefined> {
  const result = await prepared(
    trx,
    'insert_code',
    `insert into codes (program_id, participant_id, code) values (?, ?, ?) on conflict do nothing returning *`,
    [programId, participantId, code],
  );
  return result.rows[0] as CodeRow | undefined;
}

/** Gives a participant a code: the vanity one asked for (409 if taken) or a fresh random one. */
export async function assignCode(trx: Knex, programId: string, participantId: string, vanity?: string): Promise<CodeRow> {
  if (vanity) {
    const row = await insertCode(trx, programId, participantId, vanity);
    if (!row) throw conflict('code_taken', `The code "${vanity}" is already taken`);
    return row;
  }
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const row = await insertCode(trx, programId, participantId, generateCode());
    if (row) return row;
  }
  throw new Error('Could not generate a unique referral code');
}

/** Looks a code up anywhere in the collector, ignoring case. */
export async function findCode(db: Knex, code: string): Promise<CodeRow | undefined> {
  return (await db('codes').whereRaw('lower(code) = lower(?)', [code]).first()) as CodeRow | undefined;
}

/** The participant's current code: the newest enabled one. */
export async function primaryCode(db: Knex, participantId: string): Promise<CodeRow | undefined> {
  return (await db('codes').where({ participant_id: participantId }).whereNull('disabled_at').orderBy('created_at', 'desc').first()) as
    | CodeRow
    | undefined;
}

/** Why a code cannot count: it is not this program's (or does not exist), or it is disabled. */
export type CodeRefusal = 'unknown_code' | 'code_disabled';

/**
 * The one rule for "is this code usable": it exists, belongs to `programId` (a link
 * `/r/CODE` names its own program, so there the owner's program is taken), and is
 * not disabled. The click batch applies the same rule in SQL (`codeRefusalSql`);
 * test/api/codeRule.test.ts holds the two to the same answers.
 */
export function codeRefusal(
  code: Pick<CodeRow, 'program_id' | 'disabled_at'> | undefined,
  programId = code?.program_id,
): CodeRefusal | null {
  if (!code || code.program_id !== programId) return 'unknown_code';
  if (code.disabled_at) return 'code_disabled';
  return null;
}

/** `codeRefusal` in SQL, for a codes row aliased `c` (all nulls when no code matched) and a program id expression. */
export const codeRefusalSql = (c: string, programId: string) =>
  `(case when ${c}.id is null or ${c}.program_id is distinct from ${programId} then 'unknown_code' when ${c}.disabled_at is not null then 'code_disabled' end)`;

export function referralLink(publicUrl: string, code: string): string {
  return `${publicUrl}/r/${encodeURIComponent(code)}`;
}
