/**
 * `refused_origins`: pages whose origin is not in their program's `origins` and whose
 * clicks and events were therefore refused (http/cors.ts). The browser only shows a
 * generic CORS error and the snippet keeps retrying, so the dashboard lists them with
 * a one-click "add this origin". Written at most once a minute per program and origin
 * (counts gather in memory in between), so a flood of refused requests is not a flood
 * of writes.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('refused_origins', (t) => {
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    /** The Origin header as the browser sent it, e.g. `https://www.shop.example`. */
    t.string('origin', 255).notNullable();
    /** Requests refused (as of the last write: up to a minute's worth may still be in memory). */
    t.bigInteger('count').notNullable().defaultTo(0);
    t.timestamp('first_seen', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_seen', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['program_id', 'origin']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('refused_origins');
}
