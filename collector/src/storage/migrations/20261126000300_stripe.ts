/**
 * Stripe: which Stripe customer is which participant (so renewals with no metadata
 * of ours still count), and which payment belongs to which purchase (for refunds).
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('stripe_customers', (t) => {
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    t.text('customer_id').notNullable();
    t.uuid('participant_id').notNullable().references('participants.id');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['program_id', 'customer_id']);
  });
  await knex.schema.createTable('stripe_payments', (t) => {
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    /** A payment_intent or charge id. */
    t.text('payment_id').notNullable();
    t.text('purchase_event_id').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['program_id', 'payment_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('stripe_payments');
  await knex.schema.dropTableIfExists('stripe_customers');
}
