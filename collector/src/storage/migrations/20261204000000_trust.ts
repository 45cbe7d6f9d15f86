/**
 * Trust rules (DESIGN, "Trust rules"):
 * - `participants.email_key`: the email in the form identities are compared in (lower
 *   case, `+tag` dropped; for gmail.com/googlemail.com dots dropped and googlemail →
 *   gmail). A generated column, so the rule has one home and can never drift from
 *   `email`: erasing the email erases the key. Self-referral and duplicate-identity
 *   checks look it up per program.
 * - `referrals (program_id, vid)`: several customers from one visitor id are held as
 *   `duplicate_identity`, and a referrer later seen converting with a referred
 *   customer's visitor id turns that referral into a self-referral.
 */
import type { Knex } from 'knex';

const LOCAL = `split_part(lower(email), '@', 1)`;
const DOMAIN = `split_part(lower(email), '@', 2)`;
const EMAIL_KEY = `case
    when email is null then null
    when ${DOMAIN} in ('gmail.com', 'googlemail.com') then replace(split_part(${LOCAL}, '+', 1), '.', '') || '@gmail.com'
    else split_part(${LOCAL}, '+', 1) || '@' || ${DOMAIN}
  end`;

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`alter table participants add column email_key text generated always as (${EMAIL_KEY}) stored`);
  await knex.raw('drop index if exists participants_program_id_email_index');
  await knex.raw('create index participants_email_key on participants (program_id, email_key) where email_key is not null');
  await knex.raw('create index referrals_vid on referrals (program_id, vid) where vid is not null');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists referrals_vid');
  await knex.raw('drop index if exists participants_email_key');
  await knex.raw('alter table participants drop column email_key');
  await knex.raw('create index participants_program_id_email_index on participants (program_id, email)');
}
