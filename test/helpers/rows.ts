/**
 * Straight to the database, for what the API does not say or cannot do: the audit
 * trail of reward transitions, a program's key id, and moving time by backdating rows.
 */
import type { Knex } from 'knex';
import { expect } from 'vitest';

export const DAY_MS = 86_400_000;

/** How many rows of `table` match `where`. */
export async function countRows(db: Knex, table: string, where: Record<string, unknown> = {}): Promise<number> {
  return Number((await db(table).where(where).count({ n: '*' }))[0]?.n);
}

/** The program's secret key id, as recorded in `reward_transitions.actor` (`key:<id>`). */
export async function secretKeyId(db: Knex, programId: string): Promise<string> {
  const row = (await db('api_keys').where({ program_id: programId, kind: 'secret' }).first('id')) as { id: string } | undefined;
  if (!row) throw new Error('no secret key');
  return row.id;
}

export async function transitionsOf(db: Knex, rewardId: string) {
  return (await db('reward_transitions')
    .where({ reward_id: rewardId })
    .orderBy('id')
    .select('from_status', 'to_status', 'actor', 'reason', 'created_at')) as Array<{
    from_status: string | null;
    to_status: string;
    actor: string;
    reason: string | null;
    created_at: Date;
  }>;
}

/** Moves a referral (by the referred participant's externalId) `days` into the past. */
export async function backdateReferral(db: Knex, programId: string, referredExternalId: string, days: number) {
  const referred = db('participants').select('id').where({ program_id: programId, external_id: referredExternalId });
  const count = await db('referrals')
    .where({ program_id: programId })
    .whereIn('referred_id', referred)
    .update({ created_at: db.raw(`created_at - make_interval(days => ?)`, [days]) });
  expect(count).toBe(1);
}

/** Makes the given rewards due now (their hold is over). */
export async function makeDue(db: Knex, rewardIds: string[]) {
  if (rewardIds.length)
    await db('rewards')
      .whereIn('id', rewardIds)
      .update({ available_at: new Date(Date.now() - 1000) });
}

/**
 * Clicks as the API speaks of them: the code's owner as participant_id, the user agent
 * from its dictionary, the 16-byte IP key as hex text. Narrow it with `where` on `k.`
 * (the click) or `c.` (its code: `c.program_id`).
 */
export interface ClickDetail {
  id: number;
  program_id: string;
  code_id: string;
  code: string;
  participant_id: string;
  vid: string | null;
  url: string | null;
  referrer: string | null;
  user_agent_id: number | null;
  user_agent: string | null;
  ip_hash: string | null;
  created_at: Date;
}

export function clickDetails(db: Knex): Knex.QueryBuilder<ClickDetail, ClickDetail[]> {
  return db('clicks as k')
    .join('codes as c', 'c.id', 'k.code_id')
    .leftJoin('user_agents as u', 'u.id', 'k.user_agent_id')
    .select('k.*', 'c.program_id', 'c.participant_id', 'c.code', 'u.user_agent', db.raw(`encode(k.ip_hash, 'hex') as ip_hash`))
    .orderBy('k.id') as unknown as Knex.QueryBuilder<ClickDetail, ClickDetail[]>;
}

/**
 * `FROM …` text that keeps `table`'s rows of one program, ending in the program id
 * column to compare (`… = ?`): clicks have none of their own, their codes say.
 */
export const ofProgramSql = (table: string) =>
  table === 'clicks' ? 'clicks k join codes kc on kc.id = k.code_id where kc.program_id' : `${table} where program_id`;
