/**
 * `clicked_signups` in every count rollup: referred signups whose visitor id had
 * clicked one of the program's codes before signing up. The conversion rate is these
 * over the visitors who clicked (DESIGN: "referred signups among visitors who
 * clicked"); a signup by code alone, with no click behind it, counts as a signup but
 * not here, so the rate stays a share.
 *
 * Existing rows are filled from the referrals and clicks kept so far: a referral
 * counts on the day it was made when its visitor id has a click in the program.
 */
import type { Knex } from 'knex';

const TABLES = ['daily_stats', 'participant_monthly', 'program_daily'] as const;

/** Referrals whose visitor clicked, per program, referrer and UTC day. */
const CLICKED = `select r.program_id, r.referrer_id as participant_id, (r.created_at at time zone 'utc')::date as day, count(*)::int as n
  from referrals r
  where r.vid is not null and exists (select 1 from clicks k where k.program_id = r.program_id and k.vid = r.vid)
  group by 1, 2, 3`;

export async function up(knex: Knex): Promise<void> {
  for (const table of TABLES) {
    await knex.schema.alterTable(table, (t) => {
      t.integer('clicked_signups').notNullable().defaultTo(0);
    });
  }
  await knex.raw(`update daily_stats d set clicked_signups = c.n from (${CLICKED}) c
    where d.program_id = c.program_id and d.participant_id = c.participant_id and d.day = c.day`);
  await knex.raw(`update participant_monthly m set clicked_signups = c.n
    from (select program_id, participant_id, date_trunc('month', day)::date as month, sum(n)::int as n from (${CLICKED}) x group by 1, 2, 3) c
    where m.program_id = c.program_id and m.participant_id = c.participant_id and m.month = c.month`);
  // Readers sum a day's shards: the whole day's count goes on shard 0.
  await knex.raw(`insert into program_daily (program_id, day, shard, clicked_signups)
    select program_id, day, 0, sum(n)::int from (${CLICKED}) c group by 1, 2
    on conflict (program_id, day, shard) do update set clicked_signups = excluded.clicked_signups`);
}

export async function down(knex: Knex): Promise<void> {
  for (const table of TABLES) {
    await knex.schema.alterTable(table, (t) => {
      t.dropColumn('clicked_signups');
    });
  }
}
