/**
 * The program's visitors, one row each: "is this visitor known?" is one probe here
 * instead of one in every month partition of the clicks (at 10M clicks over four
 * months, about half of PostgreSQL's time per click). `seen` is the month of the
 * visitor's latest click, moved at most once a month, so retention drops the visitors
 * whose clicks it dropped. Filled from the clicks there are.
 */
import type { Knex } from 'knex';
import { visitorKeySql } from '../clickPartitions.ts';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('create table visitors (key bigint primary key, seen date not null)');
  await knex.raw(`insert into visitors (key, seen)
    select ${visitorKeySql('c.program_id', 'k.vid')}, max(date_trunc('month', k.created_at at time zone 'utc'))::date
      from clicks k join codes c on c.id = k.code_id
     where k.vid is not null
     group by 1`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table if exists visitors');
}
