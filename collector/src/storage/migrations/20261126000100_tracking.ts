/**
 * Tracking and attribution: idempotency keys for server POSTs, the visitor and
 * hashed IP on conversions and referrals (self-referral and velocity checks),
 * and one signup per participant.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('idempotency_keys', (t) => {
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    t.string('key', 255).notNullable();
    t.text('method').notNullable();
    t.text('path').notNullable();
    /** SHA-256 of method, path and body: the same key with another body is a 409. */
    t.text('request_hash').notNullable();
    t.integer('status');
    t.jsonb('response');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['program_id', 'key']);
    t.index(['created_at']);
  });
  await knex.schema.alterTable('conversions', (t) => {
    t.text('vid');
    t.text('ip_hash');
    t.index(['program_id', 'vid']);
  });
  // A participant signs up once: a second signup event (another eventId) is a duplicate.
  await knex.raw(`create unique index conversions_one_signup on conversions (participant_id) where type = 'signup'`);
  await knex.schema.alterTable('referrals', (t) => {
    t.text('ip_hash');
    t.text('reason'); // why a referral is held
    t.index(['program_id', 'referrer_id', 'ip_hash', 'created_at']);
  });
  await knex.schema.alterTable('clicks', (t) => {
    t.index(['program_id', 'code_id', 'ip_hash', 'created_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('clicks', (t) => {
    t.dropIndex(['program_id', 'code_id', 'ip_hash', 'created_at']);
  });
  await knex.schema.alterTable('referrals', (t) => {
    t.dropIndex(['program_id', 'referrer_id', 'ip_hash', 'created_at']);
    t.dropColumn('ip_hash');
    t.dropColumn('reason');
  });
  await knex.raw('drop index if exists conversions_one_signup');
  await knex.schema.alterTable('conversions', (t) => {
    t.dropIndex(['program_id', 'vid']);
    t.dropColumn('vid');
    t.dropColumn('ip_hash');
  });
  await knex.schema.dropTableIfExists('idempotency_keys');
}
