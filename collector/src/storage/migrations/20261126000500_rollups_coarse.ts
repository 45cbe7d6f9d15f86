/**
 * Coarser rollups so a year of reports reads a few hundred rows, not one per
 * referrer per day: per program and day (summary, time series) and per referrer and
 * month (leaderboard; the partial months at a range's edges come from daily_stats).
 */
import type { Knex } from 'knex';

const COUNTS = ['clicks', 'visitors', 'signups', 'purchases'] as const;

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('program_daily', (t) => {
    t.uuid('program_id').notNullable();
    t.date('day').notNullable();
    /**
     * Every conversion of the day adds to its program's row: writers spread over a
     * few rows (readers sum them) so concurrent transactions do not queue on one lock.
     */
    t.smallint('shard').notNullable().defaultTo(0);
    for (const column of COUNTS) t.integer(column).notNullable().defaultTo(0);
    t.primary(['program_id', 'day', 'shard']);
  });
  await knex.raw(`create index program_daily_day on program_daily (program_id, day)`);
  // Finding a redirect click still waiting for its visitor id must not scan the clicks that have one.
  await knex.raw(`create index clicks_unclaimed on clicks (program_id, code_id, ip_hash, created_at) where vid is null`);
  // "Did this visitor click this code within the hour?" as an index range, not a filter.
  await knex.raw(`create index clicks_visitor_code on clicks (program_id, vid, code_id, created_at)`);
  await knex.raw(`drop index if exists clicks_program_id_vid_created_at_index`);
  // Per-referrer click counts come from the rollups now; one index less on the hottest insert.
  await knex.raw(`drop index if exists clicks_program_id_participant_id_created_at_index`);
  await knex.schema.createTable('participant_monthly', (t) => {
    t.uuid('program_id').notNullable();
    t.uuid('participant_id').notNullable();
    /** The first day of the month. */
    t.date('month').notNullable();
    for (const column of COUNTS) t.integer(column).notNullable().defaultTo(0);
    t.primary(['program_id', 'participant_id', 'month']);
    t.index(['program_id', 'month']);
  });
  const sums = COUNTS.map((column) => `sum(${column})`).join(', ');
  await knex.raw(`insert into program_daily (program_id, day, ${COUNTS.join(', ')})
    select program_id, day, ${sums} from daily_stats group by program_id, day`);
  await knex.raw(`insert into participant_monthly (program_id, participant_id, month, ${COUNTS.join(', ')})
    select program_id, participant_id, date_trunc('month', day)::date, ${sums} from daily_stats group by 1, 2, 3`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists clicks_unclaimed');
  await knex.raw('create index if not exists clicks_program_id_vid_created_at_index on clicks (program_id, vid, created_at)');
  await knex.raw(
    'create index if not exists clicks_program_id_participant_id_created_at_index on clicks (program_id, participant_id, created_at)',
  );
  await knex.raw('drop index if exists clicks_visitor_code');
  await knex.schema.dropTableIfExists('participant_monthly');
  await knex.schema.dropTableIfExists('program_daily');
}
