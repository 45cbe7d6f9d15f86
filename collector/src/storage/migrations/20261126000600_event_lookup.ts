/**
 * Conversions are found by their event (every conversion request starts there). The
 * unique key leads with event_id, so that lookup has an index no other one ties with:
 * on a table too new to have statistics, PostgreSQL would otherwise pick any index
 * starting with program_id and, in a cached plan, keep scanning all of a program's
 * conversions until the next ANALYZE. The (program_id, vid) index served nothing
 * (self-referral checks go through the participant) and cost every insert.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('alter table conversions drop constraint conversions_event_unique');
  await knex.raw('alter table conversions add constraint conversions_event_unique unique (event_id, type, program_id)');
  await knex.raw('drop index if exists conversions_program_id_vid_index');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('create index if not exists conversions_program_id_vid_index on conversions (program_id, vid)');
  await knex.raw('alter table conversions drop constraint conversions_event_unique');
  await knex.raw('alter table conversions add constraint conversions_event_unique unique (program_id, type, event_id)');
}
