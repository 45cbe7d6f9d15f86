/**
 * The visitor index as a hash on the visitor id alone. Every click probes it ("is this
 * visitor known?") in every month partition; a btree on (vid, code_id, created_at) took
 * ~80 bytes a click and no longer stayed in memory past a few million clicks, a hash
 * entry takes ~30 whatever the id's length. Every lookup by visitor is an equality
 * (a visitor has few clicks: the rest of the condition is read from those rows).
 */
import type { Knex } from 'knex';
import { VISITOR_INDEX } from '../clickPartitions.ts';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists clicks_visitor');
  await knex.raw(VISITOR_INDEX);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists clicks_visitor');
  await knex.raw('create index clicks_visitor on clicks (vid, code_id, created_at)');
}
