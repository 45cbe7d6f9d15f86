/**
 * A purchase's refunds found by index: what has been refunded of a purchase is read
 * whenever the server confirms it, a refund arrives, or a referral made later takes it
 * (domain/ledger.ts refundedSoFar), and the foreign key on `refund_of` is checked when a
 * conversion is erased. Without an index each of those read the whole conversions
 * table. Refunds are few: the index holds only them.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('create index conversions_refund_of on conversions (refund_of) where refund_of is not null');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists conversions_refund_of');
}
