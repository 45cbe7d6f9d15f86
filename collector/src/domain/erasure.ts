/**
 * Erasure (GDPR art. 17): `DELETE /v1/participants/:externalId` forgets a person
 * while the program's books stay whole. In one transaction:
 * - the participant keeps its row (referrals, conversions and the reward ledger point
 *   at it) under a pseudonym, `erased:<id>`, with no email (nor, through the
 *   generated column, email key) and no name: the host's user id is gone too;
 * - their codes are disabled and their Stripe customer links removed;
 * - hashed IPs and user agents go from their conversions, the referral that brought
 *   them in, and the clicks of the visitor ids they converted with (and redirect
 *   clicks no visitor id claimed, from the addresses they converted from);
 * - answers stored for replay (idempotency keys, conversion responses), queued
 *   webhook payloads and decision details that name them are rewritten without them.
 * Referrals, conversions and rewards are not deleted, so reports and balances do not
 * change.
 */
import type { Knex } from 'knex';
import { ipKeySql } from '../storage/clickPartitions.ts';

export const ERASED_PREFIX = 'erased:';

interface Person {
  id: string;
  externalId: string;
  email: string | null;
  pseudonym: string;
}

/**
 * Erases the program's participant known by `externalId`. False when the program has
 * no such participant (or only an erased one: erasing twice is a 404 to the caller).
 */
export async function eraseParticipant(db: Knex, programId: string, externalId: string): Promise<boolean> {
  return db.transaction(async (trx) => {
    const row = (await trx('participants')
      .where({ program_id: programId, external_id: externalId })
      .whereNull('erased_at')
      .forUpdate()
      .first('id', 'email')) as { id: string; email: string | null } | undefined;
    if (!row) return false;
    const person: Person = { id: row.id, externalId, email: row.email, pseudonym: `${ERASED_PREFIX}${row.id}` };
    await forgetNetworkTraces(trx, programId, person.id);
    await trx('participants')
      .where({ id: person.id })
      .update({ external_id: person.pseudonym, email: null, name: null, erased_at: trx.fn.now() });
    await trx('codes').where({ participant_id: person.id }).whereNull('disabled_at').update({ disabled_at: trx.fn.now() });
    await trx('provider_customers').where({ program_id: programId, participant_id: person.id }).del();
    await trx('promo_codes').where({ program_id: programId, participant_id: person.id }).del();
    await rewriteStoredJson(trx, programId, person);
    return true;
  });
}

/** Hashed IPs and user agents tied to the person; run before their own rows lose theirs. */
async function forgetNetworkTraces(trx: Knex, programId: string, participantId: string): Promise<void> {
  const theirs = `select vid, ip_hash from conversions where program_id = :programId and participant_id = :participantId
    union all select vid, ip_hash from referrals where program_id = :programId and referred_id = :participantId`;
  const params = { programId, participantId };
  // Each on its own index: clicks by visitor id, unclaimed clicks by address.
  const programCodes = 'code_id in (select id from codes where program_id = :programId)';
  const clicks = [
    `vid in (select vid from (${theirs}) t where vid is not null) and ${programCodes}
       and (ip_hash is not null or user_agent_id is not null)`,
    `vid is null and ip_hash in (select ${ipKeySql('ip_hash')} from (${theirs}) t where ip_hash is not null) and ${programCodes}`,
  ];
  const userAgents = new Set<number>();
  for (const where of clicks) {
    const result = await trx.raw(`select distinct user_agent_id from clicks where ${where} and user_agent_id is not null`, params);
    for (const row of result.rows as Array<{ user_agent_id: number }>) userAgents.add(row.user_agent_id);
    await trx.raw(`update clicks set ip_hash = null, user_agent_id = null where ${where}`, params);
  }
  // Their user agents leave the dictionary when no other click has them (a rare one can say who someone is).
  if (userAgents.size)
    await trx.raw(
      `delete from user_agents u where u.id = any(?::int[]) and not exists (select 1 from clicks k where k.user_agent_id = u.id)`,
      [[...userAgents]],
    );
  await trx('conversions')
    .where({ program_id: programId, participant_id: participantId })
    .whereNotNull('ip_hash')
    .update({ ip_hash: null });
  await trx('referrals').where({ program_id: programId, referred_id: participantId }).whereNotNull('ip_hash').update({ ip_hash: null });
}

/** JSON keys whose string value names a participant by externalId. */
const PERSON_KEYS = new Set(['externalId', 'participant', 'referrer', 'referred', 'referredBy', 'reportedFor']);

/**
 * The JSON value without the person: their externalId under a person key becomes the
 * pseudonym, an object that is them (its externalId is theirs) loses email and name,
 * and their email anywhere becomes null.
 */
export function withoutPerson(value: unknown, person: Omit<Person, 'id'>): unknown {
  if (Array.isArray(value)) return value.map((item) => withoutPerson(item, person));
  if (!value || typeof value !== 'object') return value;
  const isThem = (value as Record<string, unknown>).externalId === person.externalId;
  const email = person.email?.toLowerCase();
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => {
      if (PERSON_KEYS.has(key) && item === person.externalId) return [key, person.pseudonym];
      if (isThem && (key === 'email' || key === 'name')) return [key, null];
      if (email && typeof item === 'string' && item.toLowerCase() === email) return [key, null];
      return [key, withoutPerson(item, person)];
    }),
  );
}

/** Where JSON naming people is kept: the table, its key, the JSON column, and which rows to look at. */
const STORED_JSON: Array<{
  table: string;
  key: string[];
  column: string;
  scope: (q: Knex.QueryBuilder, programId: string, person: Person) => void;
}> = [
  // Replayed answers of POST /v1/participants, /v1/conversions, /v1/refunds.
  {
    table: 'idempotency_keys',
    key: ['program_id', 'key'],
    column: 'response',
    scope: (q, programId) => void q.where({ program_id: programId }),
  },
  // A conversion's stored answer names its customer and its referrer.
  {
    table: 'conversion_answers',
    key: ['conversion_id'],
    column: 'response',
    scope: (q, programId, person) =>
      void q.whereIn('conversion_id', (conversions) =>
        conversions
          .from('conversions')
          .select('id')
          .where({ program_id: programId })
          .where((or) =>
            or
              .where({ participant_id: person.id })
              .orWhereIn('participant_id', (sub) =>
                sub.from('referrals').where({ program_id: programId, referrer_id: person.id }).select('referred_id'),
              ),
          ),
      ),
  },
  { table: 'webhook_outbox', key: ['id'], column: 'payload', scope: (q, programId) => void q.where({ program_id: programId }) },
  {
    table: 'decisions',
    key: ['id'],
    column: 'details',
    scope: (q, programId) => void q.where({ program_id: programId }).whereNotNull('details'),
  },
];

async function rewriteStoredJson(trx: Knex, programId: string, person: Person): Promise<void> {
  // Matched on the JSON spelling of the values, so only rows that hold them are read.
  const needles = [person.externalId, person.email].filter((text): text is string => Boolean(text));
  const mentions = needles.map(() => `strpos(??::text, to_json(?::text)::text) > 0`).join(' or ');
  for (const { table, key, column, scope } of STORED_JSON) {
    const query = trx(table).select(...key, column);
    scope(query, programId, person);
    const rows = (await query.whereRaw(
      `(${mentions})`,
      needles.flatMap((needle) => [column, needle]),
    )) as Array<Record<string, unknown>>;
    for (const row of rows) {
      const where = Object.fromEntries(key.map((name) => [name, row[name]]));
      await trx(table)
        .where(where)
        .update({ [column]: JSON.stringify(withoutPerson(row[column], person)) });
    }
  }
}
