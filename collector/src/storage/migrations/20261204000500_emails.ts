/**
 * Emails to referrers: an outbox, written in the transaction of the change an email
 * tells about (domain/emails.ts). One row per event and recipient: the unique
 * (program, event key, participant) makes a retried or repeated event queue nothing
 * more. A referrer's choices live in `participants.email_preferences` (the portal
 * migration); the signing secret for unsubscribe links in `server_secrets`.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('email_outbox', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    /** The recipient; their address is read when the email is sent, so an erased one gets nothing. */
    t.uuid('participant_id').notNullable().references('participants.id').onDelete('CASCADE');
    t.text('kind').notNullable(); // referral | rewardApproved | payoutPaid
    /** What the email is about, e.g. `referral:<referral id>`: one email per event and recipient. */
    t.text('event_key').notNullable();
    /** The template's facts (ids, amounts); names are read when sending. */
    t.jsonb('data').notNullable().defaultTo('{}');
    t.text('status').notNullable().defaultTo('pending'); // pending | sent | failed | skipped
    t.integer('attempts').notNullable().defaultTo(0);
    t.text('last_error');
    t.text('message_id');
    t.timestamp('next_attempt_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('sent_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['program_id', 'event_key', 'participant_id']);
    t.index(['program_id', 'created_at']);
  });
  await knex.raw(`alter table email_outbox add constraint email_outbox_kind check (kind in ('referral', 'rewardApproved', 'payoutPaid'))`);
  await knex.raw(`alter table email_outbox add constraint email_outbox_status check (status in ('pending', 'sent', 'failed', 'skipped'))`);
  // The delivery loop reads only what is due.
  await knex.raw(`create index email_outbox_due on email_outbox (next_attempt_at) where status = 'pending'`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('email_outbox');
}
