/**
 * Referrer portal: `participants.email_preferences`, the emails a referrer chose to
 * get or not, `{ referral?, rewardApproved?, payoutPaid? }` booleans set in their
 * portal (domain/emailPreferences.ts). Null or a missing key means "not turned off".
 * Portal tokens themselves are stateless (signed; see domain/portalTokens.ts), so
 * they need no table.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('participants', (t) => {
    t.jsonb('email_preferences');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('participants', (t) => {
    t.dropColumn('email_preferences');
  });
}
