/**
 * Keeping the daily rollups current. Callers pass increments; rows for the same
 * (referrer, day) are merged first, so a batch costs one upsert per row touched.
 */
import { randomInt } from 'node:crypto';
import type { Knex } from 'knex';
import { prepared } from '../storage/db.ts';

/** Rows per program and day that writers spread over (see the program_daily migration). */
export const PROGRAM_DAILY_SHARDS = 16;

export interface StatsDelta {
  programId: string;
  participantId: string;
  /**
   * When it happened, as the database recorded it (a row's created_at, or now()
   * read back from a statement): every rollup day comes from the database's clock.
   */
  at: Date;
  clicks?: number;
  visitors?: number;
  signups?: number;
  /** Of `signups`, those whose visitor id had clicked one of the program's codes (the conversion rate's numerator). */
  clickedSignups?: number;
  purchases?: number;
  revenue?: { currency: string; amount: number };
}

/** The UTC day of a timestamp, as YYYY-MM-DD. */
export const dayOf = (at: Date) => at.toISOString().slice(0, 10);

type Counts = { clicks: number; visitors: number; signups: number; purchases: number; clicked_signups: number };
/** What a click batch adds (clicks.ts writes these through `addCounts`). */
const CLICK_COLUMNS = ['clicks', 'visitors', 'signups', 'purchases'] as const;
const COUNT_COLUMNS = [...CLICK_COLUMNS, 'clicked_signups'] as const;
type CountColumn = (typeof COUNT_COLUMNS)[number];

/** Adds `delta` into the row under `key`, creating it from `base`. */
function accumulate<R extends Counts>(into: Map<string, R>, key: string, base: () => R, delta: StatsDelta) {
  const row = into.get(key) ?? base();
  row.clicks += delta.clicks ?? 0;
  row.visitors += delta.visitors ?? 0;
  row.signups += delta.signups ?? 0;
  row.purchases += delta.purchases ?? 0;
  row.clicked_signups += delta.clickedSignups ?? 0;
  into.set(key, row);
}

/** Rows sorted by key: concurrent writers then lock rollup rows in one order. */
const sortedRows = <R>(rows: Map<string, R>) => [...rows.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, row]) => row);

/** `column = table.column + excluded.column` for each column: an upsert that adds. */
const adding = (table: string, columns: readonly string[]) =>
  columns.map((column) => `${column} = ${table}.${column} + excluded.${column}`).join(', ');

const ROLLUP_KEYS = {
  daily_stats: ['program_id', 'participant_id', 'day'],
  participant_monthly: ['program_id', 'participant_id', 'month'],
  program_daily: ['program_id', 'day', 'shard'],
} as const;

/**
 * An upsert adding the counts that `source` selects: the table's key columns, then
 * `columns` (clicks, visitors, signups and purchases unless told), ordered by key
 * (lock order).
 */
export const addCounts = (
  table: keyof typeof ROLLUP_KEYS,
  source: string,
  columns: readonly CountColumn[] = CLICK_COLUMNS,
) => `insert into ${table} (${[...ROLLUP_KEYS[table], ...columns].join(', ')})
    ${source}
    on conflict (${ROLLUP_KEYS[table].join(', ')}) do update set ${adding(table, columns)}`;

const countsUpsert = (table: keyof typeof ROLLUP_KEYS, keyTypes: string[]) =>
  addCounts(
    table,
    `select * from unnest(${[...keyTypes, ...COUNT_COLUMNS.map(() => 'int[]')].map((type) => `?::${type}`).join(', ')})`,
    COUNT_COLUMNS,
  );

/**
 * Every rollup's upsert as CTEs of one statement whose text never changes (arrays, not
 * row lists, carry the rows), so PostgreSQL parses and plans it once per connection.
 * Empty arrays insert nothing. The most shared rows come last: their locks are then
 * held for the shortest time. Parameters: `rollupParams`.
 */
export const ROLLUP_CTES = `rollup_revenue as (insert into daily_revenue (program_id, participant_id, day, currency, amount)
    select * from unnest(?::uuid[], ?::uuid[], ?::date[], ?::text[], ?::bigint[])
    on conflict (program_id, participant_id, day, currency) do update set ${adding('daily_revenue', ['amount'])}),
  rollup_program_revenue as (insert into program_revenue (program_id, day, shard, currency, amount)
    select * from unnest(?::uuid[], ?::date[], ?::int[], ?::text[], ?::bigint[])
    on conflict (program_id, day, shard, currency) do update set ${adding('program_revenue', ['amount'])}),
  rollup_daily as (${countsUpsert('daily_stats', ['uuid[]', 'uuid[]', 'date[]'])}),
  rollup_monthly as (${countsUpsert('participant_monthly', ['uuid[]', 'uuid[]', 'date[]'])}),
  rollup_program as (${countsUpsert('program_daily', ['uuid[]', 'date[]', 'int[]'])})`;

/** Column arrays of `rows`, in `columns` order (for `unnest`). */
function columnsOf<R>(rows: R[], columns: readonly (keyof R)[]): unknown[][] {
  return columns.map((column) => rows.map((row) => row[column] ?? null));
}

/** The parameters of ROLLUP_CTES for these increments; rows for the same key are merged first. */
export function rollupParams(deltas: StatsDelta[]): unknown[][] {
  const daily = new Map<string, Counts & { program_id: string; participant_id: string; day: string }>();
  const programDaily = new Map<string, Counts & { program_id: string; day: string; shard: number }>();
  const shard = randomInt(PROGRAM_DAILY_SHARDS);
  const monthly = new Map<string, Counts & { program_id: string; participant_id: string; month: string }>();
  const revenue = new Map<string, { program_id: string; participant_id: string; day: string; currency: string; amount: number }>();
  const programRevenue = new Map<string, { program_id: string; day: string; shard: number; currency: string; amount: number }>();
  const zero = () => ({ clicks: 0, visitors: 0, signups: 0, purchases: 0, clicked_signups: 0 });
  for (const delta of deltas) {
    const day = dayOf(delta.at);
    const month = `${day.slice(0, 7)}-01`;
    const { programId: program_id, participantId: participant_id } = delta;
    if (delta.clicks || delta.visitors || delta.signups || delta.purchases || delta.clickedSignups) {
      accumulate(daily, `${program_id}|${participant_id}|${day}`, () => ({ program_id, participant_id, day, ...zero() }), delta);
      accumulate(programDaily, `${program_id}|${day}`, () => ({ program_id, day, shard, ...zero() }), delta);
      accumulate(monthly, `${program_id}|${participant_id}|${month}`, () => ({ program_id, participant_id, month, ...zero() }), delta);
    }
    if (delta.revenue && delta.revenue.amount !== 0) {
      const { currency, amount } = delta.revenue;
      const key = `${program_id}|${participant_id}|${day}|${currency}`;
      const money = revenue.get(key) ?? { program_id, participant_id, day, currency, amount: 0 };
      money.amount += amount;
      revenue.set(key, money);
      const programKey = `${program_id}|${day}|${currency}`;
      const programMoney = programRevenue.get(programKey) ?? { program_id, day, shard, currency, amount: 0 };
      programMoney.amount += amount;
      programRevenue.set(programKey, programMoney);
    }
  }
  return [
    ...columnsOf(sortedRows(revenue), ['program_id', 'participant_id', 'day', 'currency', 'amount']),
    ...columnsOf(sortedRows(programRevenue), ['program_id', 'day', 'shard', 'currency', 'amount']),
    ...columnsOf(sortedRows(daily), ['program_id', 'participant_id', 'day', ...COUNT_COLUMNS]),
    ...columnsOf(sortedRows(monthly), ['program_id', 'participant_id', 'month', ...COUNT_COLUMNS]),
    ...columnsOf(sortedRows(programDaily), ['program_id', 'day', 'shard', ...COUNT_COLUMNS]),
  ];
}

/**
 * Applies increments to every rollup now, in one statement. Conversions collect
 * theirs in a Work (work.ts) instead, written just before commit.
 */
export async function applyStats(trx: Knex, deltas: StatsDelta[]): Promise<void> {
  if (deltas.length) await prepared(trx, 'rollups', `with ${ROLLUP_CTES} select 1`, rollupParams(deltas));
}

/**
 * Merges reward_daily's rows (the trigger on rewards appends one per change) into one
 * per key, so the summary reads about one row per day, status, kind and currency. Rows
 * appended meanwhile are not seen by the delete and stay for the next pass; two passes
 * at once each merge only the rows they deleted. Answers how many rows went (`gone`).
 */
export const REWARD_DAILY_MERGE = `with keys as (
    select program_id, day, status, kind, currency from reward_daily
    group by program_id, day, status, kind, currency having count(*) > 1
  ), gone as (
    delete from reward_daily r using keys k
    where r.program_id = k.program_id and r.day = k.day and r.status = k.status and r.kind = k.kind
      and r.currency is not distinct from k.currency
    returning r.*
  ), merged as (
    insert into reward_daily (program_id, day, status, kind, currency, amount, grants)
    select program_id, day, status, kind, currency, sum(amount), sum(grants) from gone
    group by program_id, day, status, kind, currency having sum(amount) <> 0 or sum(grants) <> 0
  ) select count(*)::int as gone from gone`;

/** One pass of REWARD_DAILY_MERGE (the worker runs it every minute); how many rows went. */
export async function compactRewardDaily(db: Knex): Promise<number> {
  const result = await db.raw(REWARD_DAILY_MERGE);
  return (result.rows[0] as { gone: number }).gone;
}
