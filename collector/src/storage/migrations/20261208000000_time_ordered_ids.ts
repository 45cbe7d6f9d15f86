/**
 * New rows take time-ordered ids (UUID version 7: 48 bits of milliseconds, then 74
 * random bits). A random id (version 4) lands on a random page of its primary key and
 * of every index that names it (a conversion's participant, a referral's customer…):
 * past a million participants those pages are no longer in memory, and each signup
 * reads and dirties a dozen of them. Time-ordered, a new row's entries go where the
 * last ones went. Rows already stored keep their ids; ids stay as hard to guess as
 * they need to be (74 random bits), and say when the row was made, which its
 * `created_at` says anyway.
 */
import type { Knex } from 'knex';

const TABLES = [
  'programs',
  'api_keys',
  'participants',
  'codes',
  'referrals',
  'conversions',
  'rewards',
  'webhook_outbox',
  'email_outbox',
  'payouts',
  'payout_items',
  'promo_codes',
];

/**
 * A random UUID with its first 48 bits replaced by the Unix time in milliseconds (now,
 * or `at`) and its version set to 7 (RFC 9562). PostgreSQL 18 has uuidv7(); 15–17 do not.
 */
const UUID_V7 = `create or replace function uuid_v7(at timestamptz default clock_timestamp()) returns uuid
  language sql volatile parallel safe as $$
  select encode(
    set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
      placing substring(int8send(floor(extract(epoch from at) * 1000)::bigint) from 3) from 1 for 6),
    52, 1), 53, 1), 'hex')::uuid
$$`;

export async function up(knex: Knex): Promise<void> {
  await knex.raw(UUID_V7);
  for (const table of TABLES) await knex.raw('alter table ?? alter column id set default uuid_v7()', [table]);
}

export async function down(knex: Knex): Promise<void> {
  for (const table of TABLES) await knex.raw('alter table ?? alter column id set default gen_random_uuid()', [table]);
  await knex.raw('drop function if exists uuid_v7(timestamptz)');
}
