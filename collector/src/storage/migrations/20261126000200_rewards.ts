/**
 * Rewards engine: the transition log of the ledger, review flags, and the webhook
 * outbox (delivered at least once, signed with a per-program secret).
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('rewards', (t) => {
    /** True while a person must approve it: an unverified conversion or a held referral. */
    t.boolean('needs_review').notNullable().defaultTo(false);
    /** For percentage rewards: the percent, so refunds can pro-rate. */
    t.double('percent');
  });
  await knex.schema.createTable('reward_transitions', (t) => {
    t.bigIncrements('id').primary();
    t.uuid('program_id').notNullable();
    t.uuid('reward_id').notNullable().references('rewards.id');
    t.text('from_status');
    t.text('to_status').notNullable();
    t.text('actor').notNullable();
    t.text('reason');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['reward_id']);
  });
  await knex.schema.alterTable('programs', (t) => {
    t.text('webhook_secret')
      .notNullable()
      .defaultTo(knex.raw(`'whsec_' || replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '')`));
  });
  await knex.schema.createTable('webhook_outbox', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    t.text('type').notNullable();
    t.text('url').notNullable();
    t.jsonb('payload').notNullable();
    t.text('status').notNullable().defaultTo('pending'); // pending | delivered | failed
    t.integer('attempts').notNullable().defaultTo(0);
    t.integer('last_status');
    t.text('last_error');
    t.timestamp('next_attempt_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('delivered_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['status', 'next_attempt_at']);
    t.index(['program_id', 'created_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('webhook_outbox');
  await knex.schema.alterTable('programs', (t) => t.dropColumn('webhook_secret'));
  await knex.schema.dropTableIfExists('reward_transitions');
  await knex.schema.alterTable('rewards', (t) => {
    t.dropColumn('needs_review');
    t.dropColumn('percent');
  });
}
