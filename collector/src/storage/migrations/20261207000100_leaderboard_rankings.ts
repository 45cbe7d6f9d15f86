/**
 * The leaderboard's order for the standard ranges (the last 7, 30 and 90 days),
 * kept ahead for programs with many referrers: ranking 50,000 referrers active every
 * day reads a few hundred thousand rollup rows (10M clicks: 75–165 ms), too much for
 * every page view. The worker ranks each such program every minute; a request reads
 * the page's ids from here and their figures live (domain/rankings.ts).
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('leaderboard_rankings', (t) => {
    t.uuid('program_id').notNullable().references('id').inTable('programs').onDelete('CASCADE');
    /** The range's length in days, ending on `day`. */
    t.smallint('days').notNullable();
    /** The figure ranked by, highest first (the API's sort names). */
    t.text('sort').notNullable();
    /** The range's last day (UTC): the ranking serves only while it is today. */
    t.date('day').notNullable();
    t.timestamp('ranked_at', { useTz: true }).notNullable();
    /** The top referrers in order, ties by participant id. */
    t.specificType('participant_ids', 'uuid[]').notNullable();
    t.primary(['program_id', 'days', 'sort']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('leaderboard_rankings');
}
