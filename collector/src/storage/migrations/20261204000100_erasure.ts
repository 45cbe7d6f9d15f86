/**
 * Erasure (GDPR): `participants.erased_at` marks a person erased by
 * `DELETE /v1/participants/:externalId`. The row stays (referrals, conversions and
 * the reward ledger point at it) under a pseudonymous externalId, `erased:<id>`.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('participants', (t) => {
    t.timestamp('erased_at', { useTz: true });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('participants', (t) => {
    t.dropColumn('erased_at');
  });
}
