/**
 * The answer kept with each conversion (replayed when the same event comes again) moves
 * to a table of its own. It is known only once the conversion is recorded, so it was
 * written by a second update of the row just inserted; by then the row's page was
 * usually full, and nine updates in ten were not HOT: each wrote the row again and an
 * entry in every index of `conversions`, and left a dead row for vacuum. An answer is
 * now one insert into a narrow table with one index, and a conversion is written once.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`create table conversion_answers (
    conversion_id uuid primary key references conversions (id) on delete cascade,
    response jsonb not null
  )`);
  await knex.raw(
    'insert into conversion_answers (conversion_id, response) select id, response from conversions where response is not null',
  );
  await knex.raw('alter table conversions drop column response');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('alter table conversions add column response jsonb');
  await knex.raw('update conversions c set response = a.response from conversion_answers a where a.conversion_id = c.id');
  await knex.raw('drop table conversion_answers');
}
