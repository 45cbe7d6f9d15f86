/**
 * Payouts: runs of items, one per referrer and currency, each holding the rewards it
 * pays. A reward is in at most one open payout item: a partial unique index on
 * `payout_item_rewards (reward_id)` over the rows not released, so two concurrent
 * runs can never take the same reward (a failed item releases its rewards).
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('participants', (t) => {
    /** How and where they want to be paid: { method, email?, stripeAccount? } (domain/payoutDetails.ts). */
    t.jsonb('payout');
  });
  // A rule pays once per conversion and beneficiary: grants only. Reversing entries
  // (refund adjustments, clawbacks) refer to their grant through `reverses` instead.
  await knex.raw('alter table rewards drop constraint rewards_once_unique');
  await knex.raw('create unique index rewards_once_unique on rewards (conversion_id, rule_id, beneficiary_id) where reverses is null');
  await knex.schema.createTable('payouts', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    /** created (items pending) → paid (no item pending, some paid) | failed (every item failed). */
    t.text('status').notNullable().defaultTo('created');
    /** The currency the run was limited to, if any. */
    t.string('currency', 3);
    t.text('actor').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['program_id', 'created_at']);
  });
  await knex.schema.createTable('payout_items', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    t.uuid('payout_id').notNullable().references('payouts.id');
    t.uuid('participant_id').notNullable().references('participants.id');
    t.string('currency', 3).notNullable();
    /** Minor units: approved cash rewards less unrecovered clawbacks. */
    t.bigInteger('amount').notNullable();
    /** manual | paypal | wise | stripe_connect */
    t.text('method').notNullable();
    /** Where the money goes, as it was when the run was made (email, Stripe account). */
    t.jsonb('destination').notNullable();
    /** pending → paid | failed */
    t.text('status').notNullable().defaultTo('pending');
    t.text('reference');
    /** Stripe Connect: the transfer id. */
    t.text('transfer_id');
    t.text('failure');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['payout_id', 'participant_id', 'currency']);
    t.index(['program_id', 'participant_id']);
  });
  await knex.schema.createTable('payout_item_rewards', (t) => {
    t.uuid('item_id').notNullable().references('payout_items.id');
    t.uuid('reward_id').notNullable().references('rewards.id');
    /** True once the item failed: the reward is free for the next run. */
    t.boolean('released').notNullable().defaultTo(false);
    t.primary(['item_id', 'reward_id']);
  });
  await knex.raw('create unique index payout_item_rewards_one_open on payout_item_rewards (reward_id) where not released');
  await knex.schema.alterTable('rewards', (t) => {
    /** The payout that paid this reward. */
    t.uuid('payout_id').references('payouts.id');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('rewards', (t) => t.dropColumn('payout_id'));
  await knex.schema.dropTableIfExists('payout_item_rewards');
  await knex.schema.dropTableIfExists('payout_items');
  await knex.schema.dropTableIfExists('payouts');
  await knex.raw('drop index if exists rewards_once_unique');
  await knex.raw('alter table rewards add constraint rewards_once_unique unique (conversion_id, rule_id, beneficiary_id)');
  await knex.schema.alterTable('participants', (t) => t.dropColumn('payout'));
}
