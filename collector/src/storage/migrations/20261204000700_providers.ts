/**
 * Payment providers (Stripe, Paddle, Lemon Squeezy) behind one adapter shape:
 * - provider_customers: which provider customer is which participant (renewals carry
 *   no metadata of ours), generalizing stripe_customers;
 * - provider_payments: which payment belongs to which purchase (for refunds),
 *   generalizing stripe_payments;
 * - promo_codes: a provider's discount (its id and/or code text) owned by a participant.
 *
 * The Stripe rows move over; `stripe_customers` and `stripe_payments` stay readable
 * and writable as views of the Stripe rows (a view column default names the provider),
 * so nothing that still says the old names breaks.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('provider_customers', (t) => {
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    /** stripe | paddle | lemonsqueezy */
    t.text('provider').notNullable();
    t.text('customer_id').notNullable();
    t.uuid('participant_id').notNullable().references('participants.id');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['program_id', 'provider', 'customer_id']);
  });
  await knex.schema.createTable('provider_payments', (t) => {
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    t.text('provider').notNullable();
    /** A payment intent, charge, transaction or order id. */
    t.text('payment_id').notNullable();
    t.text('purchase_event_id').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['program_id', 'provider', 'payment_id']);
  });
  await knex.raw(`insert into provider_customers (program_id, provider, customer_id, participant_id, created_at)
    select program_id, 'stripe', customer_id, participant_id, created_at from stripe_customers`);
  await knex.raw(`insert into provider_payments (program_id, provider, payment_id, purchase_event_id, created_at)
    select program_id, 'stripe', payment_id, purchase_event_id, created_at from stripe_payments`);
  await knex.schema.dropTable('stripe_payments');
  await knex.schema.dropTable('stripe_customers');
  for (const [view, table, columns] of [
    ['stripe_customers', 'provider_customers', 'customer_id, participant_id'],
    ['stripe_payments', 'provider_payments', 'payment_id, purchase_event_id'],
  ] as const) {
    await knex.raw(`create view ${view} as select program_id, provider, ${columns}, created_at from ${table}
      where provider = 'stripe' with check option`);
    await knex.raw(`alter view ${view} alter column provider set default 'stripe'`);
  }

  await knex.schema.createTable('promo_codes', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    t.uuid('participant_id').notNullable().references('participants.id').onDelete('CASCADE');
    t.text('provider').notNullable();
    /** The provider's id of the discount (promo_…, dsc_…, or a Lemon Squeezy discount id). */
    t.text('discount_id');
    /** The text a customer types at checkout; matched case-insensitively. */
    t.text('code');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['participant_id']);
  });
  await knex.raw(`alter table promo_codes add constraint promo_codes_named check (discount_id is not null or code is not null)`);
  await knex.raw(
    `create unique index promo_codes_discount on promo_codes (program_id, provider, discount_id) where discount_id is not null`,
  );
  await knex.raw(`create unique index promo_codes_code on promo_codes (program_id, provider, lower(code)) where code is not null`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('promo_codes');
  await knex.raw('drop view if exists stripe_payments');
  await knex.raw('drop view if exists stripe_customers');
  await knex.schema.createTable('stripe_customers', (t) => {
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    t.text('customer_id').notNullable();
    t.uuid('participant_id').notNullable().references('participants.id');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['program_id', 'customer_id']);
  });
  await knex.schema.createTable('stripe_payments', (t) => {
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    t.text('payment_id').notNullable();
    t.text('purchase_event_id').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['program_id', 'payment_id']);
  });
  await knex.raw(`insert into stripe_customers (program_id, customer_id, participant_id, created_at)
    select program_id, customer_id, participant_id, created_at from provider_customers where provider = 'stripe'`);
  await knex.raw(`insert into stripe_payments (program_id, payment_id, purchase_event_id, created_at)
    select program_id, payment_id, purchase_event_id, created_at from provider_payments where provider = 'stripe'`);
  await knex.schema.dropTable('provider_payments');
  await knex.schema.dropTable('provider_customers');
}
