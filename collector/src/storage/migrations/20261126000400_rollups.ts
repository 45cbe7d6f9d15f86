/**
 * Daily rollups (program × referrer × day), kept up to date in the same transaction
 * as the events they count, so reports never scan raw clicks.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('daily_stats', (t) => {
    t.uuid('program_id').notNullable();
    /** The referrer these numbers belong to. */
    t.uuid('participant_id').notNullable();
    t.date('day').notNullable();
    t.integer('clicks').notNullable().defaultTo(0);
    /** Visitors clicking for the first time in this program. */
    t.integer('visitors').notNullable().defaultTo(0);
    /** Referrals attributed (held ones included). */
    t.integer('signups').notNullable().defaultTo(0);
    /** Purchases by the people referred. */
    t.integer('purchases').notNullable().defaultTo(0);
    t.primary(['program_id', 'participant_id', 'day']);
    t.index(['program_id', 'day']);
  });
  await knex.schema.createTable('daily_revenue', (t) => {
    t.uuid('program_id').notNullable();
    t.uuid('participant_id').notNullable();
    t.date('day').notNullable();
    t.string('currency', 3).notNullable();
    /** Purchases less refunds, in minor units. */
    t.bigInteger('amount').notNullable().defaultTo(0);
    t.primary(['program_id', 'participant_id', 'day', 'currency']);
    t.index(['program_id', 'day']);
  });
  await knex.schema.alterTable('rewards', (t) => {
    t.index(['program_id', 'created_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('rewards', (t) => t.dropIndex(['program_id', 'created_at']));
  await knex.schema.dropTableIfExists('daily_revenue');
  await knex.schema.dropTableIfExists('daily_stats');
}
