/**
 * The core schema. Every table is keyed by program_id so it can be distributed
 * by program (Citus) once one PostgreSQL is not enough.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('server_secrets', (t) => {
    t.text('name').primary();
    t.text('value').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('programs', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('slug').notNullable().unique();
    t.text('name').notNullable();
    t.jsonb('settings').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('api_keys', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    t.enu('kind', ['publishable', 'secret']).notNullable();
    /** SHA-256 of the whole key, hex; the key itself is never stored. */
    t.text('hash').notNullable().unique();
    /** The first characters, so an operator can tell keys apart. */
    t.text('prefix').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('revoked_at', { useTz: true });
    t.index(['program_id', 'kind']);
  });

  await knex.schema.createTable('participants', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    t.string('external_id', 255).notNullable();
    t.text('email');
    t.text('name');
    t.uuid('referred_by').references('participants.id');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['program_id', 'external_id']);
    t.index(['program_id', 'email']);
  });

  await knex.schema.createTable('codes', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    t.uuid('participant_id').notNullable().references('participants.id').onDelete('CASCADE');
    t.text('code').notNullable();
    t.timestamp('disabled_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['participant_id']);
  });
  // Unique across the whole collector, case-insensitively: /r/CODE names its program.
  await knex.raw('create unique index codes_code_ci_unique on codes (lower(code))');

  await knex.schema.createTable('clicks', (t) => {
    t.bigIncrements('id').primary();
    t.uuid('program_id').notNullable();
    t.uuid('code_id').notNullable();
    t.uuid('participant_id').notNullable();
    t.text('vid');
    t.text('url');
    t.text('referrer');
    t.text('ip_hash');
    t.text('user_agent');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['program_id', 'vid', 'created_at']);
    t.index(['program_id', 'participant_id', 'created_at']);
    t.index(['program_id', 'created_at']);
  });

  await knex.schema.createTable('referrals', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    t.uuid('referrer_id').notNullable().references('participants.id');
    t.uuid('referred_id').notNullable().references('participants.id');
    t.uuid('code_id').references('codes.id');
    t.text('vid');
    /** attributed, or held for review (velocity, disposable email). */
    t.text('status').notNullable();
    /** False while only an unverified browser event backs it. */
    t.boolean('verified').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    // One-time attribution: at most one referral per referred participant.
    t.unique(['referred_id'], { indexName: 'referrals_referred_unique' });
    t.index(['program_id', 'referrer_id', 'created_at']);
    t.index(['program_id', 'created_at']);
  });

  await knex.schema.createTable('conversions', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    t.uuid('participant_id').notNullable().references('participants.id');
    t.text('type').notNullable(); // signup | purchase | refund
    t.string('event_id', 255).notNullable();
    t.bigInteger('amount');
    t.string('currency', 3);
    t.boolean('verified').notNullable();
    t.text('source').notNullable(); // browser | server | stripe
    /** For refunds: the purchase being refunded. */
    t.uuid('refund_of').references('conversions.id');
    /** The first answer given for this event, replayed on retries. */
    t.jsonb('response');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    // A retried event is stored once.
    t.unique(['program_id', 'type', 'event_id'], { indexName: 'conversions_event_unique' });
    t.index(['program_id', 'participant_id', 'type']);
    t.index(['program_id', 'created_at']);
  });

  await knex.schema.createTable('rewards', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    t.uuid('conversion_id').notNullable().references('conversions.id');
    t.text('rule_id').notNullable();
    t.uuid('beneficiary_id').notNullable().references('participants.id');
    t.uuid('referral_id').references('referrals.id');
    t.text('kind').notNullable();
    t.bigInteger('amount').notNullable(); // negative for a clawback
    t.string('currency', 3);
    t.text('coupon');
    t.text('status').notNullable(); // pending | approved | paid | revoked
    t.timestamp('available_at', { useTz: true }).notNullable();
    /** For a clawback: the reward it reverses. */
    t.uuid('reverses').references('rewards.id');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    // A rule pays once per conversion and beneficiary.
    t.unique(['conversion_id', 'rule_id', 'beneficiary_id'], { indexName: 'rewards_once_unique' });
    t.index(['program_id', 'status', 'available_at']);
    t.index(['program_id', 'beneficiary_id']);
  });

  await knex.schema.createTable('decisions', (t) => {
    t.bigIncrements('id').primary();
    t.uuid('program_id').notNullable();
    t.text('subject').notNullable(); // click | attribution | reward | conversion
    t.text('outcome').notNullable(); // accepted | rejected | held
    t.text('reason').notNullable();
    t.uuid('participant_id');
    t.uuid('referrer_id');
    t.text('code');
    t.uuid('conversion_id');
    t.jsonb('details');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['program_id', 'reason', 'created_at']);
    t.index(['program_id', 'participant_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [
    'decisions',
    'rewards',
    'conversions',
    'referrals',
    'clicks',
    'codes',
    'participants',
    'api_keys',
    'programs',
    'server_secrets',
  ]) {
    await knex.schema.dropTableIfExists(table);
  }
}
