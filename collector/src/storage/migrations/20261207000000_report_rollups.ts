/**
 * The summary and the time series without reading every referrer's rows. At 10M
 * clicks and 200k referrals the summary spent its time in two places: the reward
 * ledger (every reward created in the range, 260k rows over 90 days: ~100 ms) and
 * the revenue per referrer (58k rows: ~40 ms).
 *
 * - program_revenue: revenue per program, day and currency, kept by the same
 *   statement as daily_revenue, spread over shards like program_daily.
 * - reward_daily: reward totals per program, UTC day of creation, status, kind and
 *   currency (amount, and grants: entries that are not clawbacks). A trigger on
 *   rewards appends a row for every change (minus the old row, plus the new), so no
 *   code path can forget it and no two writers wait on the same row; the worker
 *   merges a key's rows into one (compactRewardDaily). No foreign key: a program's
 *   deletion cascading to its rewards must not trip over its own rows here.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('program_revenue', (t) => {
    t.uuid('program_id').notNullable().references('programs.id').onDelete('CASCADE');
    t.date('day').notNullable();
    t.integer('shard').notNullable().defaultTo(0);
    t.string('currency', 3).notNullable();
    t.bigInteger('amount').notNullable().defaultTo(0);
    t.primary(['program_id', 'day', 'shard', 'currency']);
  });
  await knex.raw(`insert into program_revenue (program_id, day, shard, currency, amount)
    select program_id, day, 0, currency, sum(amount) from daily_revenue group by program_id, day, currency`);

  await knex.schema.createTable('reward_daily', (t) => {
    t.uuid('program_id').notNullable();
    t.date('day').notNullable();
    t.text('status').notNullable();
    t.text('kind').notNullable();
    t.string('currency', 3);
    t.bigInteger('amount').notNullable();
    t.integer('grants').notNullable();
    t.index(['program_id', 'day']);
  });
  await knex.raw(`create function reward_daily_change() returns trigger language plpgsql as $$
    begin
      if tg_op = 'UPDATE' and (old.program_id, old.created_at, old.status, old.kind, old.currency, old.amount, old.reverses is null)
          is not distinct from (new.program_id, new.created_at, new.status, new.kind, new.currency, new.amount, new.reverses is null) then
        return null;
      end if;
      if tg_op <> 'INSERT' then
        insert into reward_daily (program_id, day, status, kind, currency, amount, grants)
        values (old.program_id, (old.created_at at time zone 'UTC')::date, old.status, old.kind, old.currency, -old.amount,
                case when old.reverses is null then -1 else 0 end);
      end if;
      if tg_op <> 'DELETE' then
        insert into reward_daily (program_id, day, status, kind, currency, amount, grants)
        values (new.program_id, (new.created_at at time zone 'UTC')::date, new.status, new.kind, new.currency, new.amount,
                case when new.reverses is null then 1 else 0 end);
      end if;
      return null;
    end $$`);
  await knex.raw(`create trigger reward_daily_change after insert or update or delete on rewards
    for each row execute function reward_daily_change()`);
  await knex.raw(`insert into reward_daily (program_id, day, status, kind, currency, amount, grants)
    select program_id, (created_at at time zone 'UTC')::date, status, kind, currency, sum(amount), count(*) filter (where reverses is null)
    from rewards group by 1, 2, 3, 4, 5`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop trigger if exists reward_daily_change on rewards');
  await knex.raw('drop function if exists reward_daily_change()');
  await knex.schema.dropTableIfExists('reward_daily');
  await knex.schema.dropTableIfExists('program_revenue');
}
