/**
 * Keeping the daily rollups current. Callers pass increments; rows for the same
 * (referrer, day) are merged first, so a batch costs one upsert per row touched.
 */
import { randomInt } from 'node:crypto';
import type { Knex } from 'knex';

/** Rows per program and day that writers spread over (see the program_daily migration). */
export const PROGRAM_DAILY_SHARDS = 16;

export interface StatsDelta {
  programId: string;
  participantId: string;
  at?: Date;
  clicks?: number;
  visitors?: number;
  signups?: number;
  purchases?: number;
  revenue?: { currency: string; amount: number };
}

/** The UTC day of a timestamp, as YYYY-MM-DD. */
export const dayOf = (at: Date = new Date()) => at.toISOString().slice(0, 10);

/** Transactions whose increments are collected for the caller instead of written now. */
const deferred = new WeakMap<Knex, StatsDelta[]>();

/** Collect this transaction's increments into `sink` (the batch applies them once, sorted). */
export function deferStats(trx: Knex, sink: StatsDelta[]): void {
  deferred.set(trx, sink);
}

type Counts = { clicks: number; visitors: number; signups: number; purchases: number };
const COUNT_COLUMNS = ['clicks', 'visitors', 'signups', 'purchases'] as const;

/** Adds `delta` into the row under `key`, creating it from `base`. */
function accumulate<R extends Counts>(into: Map<string, R>, key: string, base: () => R, delta: StatsDelta) {
  const row = into.get(key) ?? base();
  row.clicks += delta.clicks ?? 0;
  row.visitors += delta.visitors ?? 0;
  row.signups += delta.signups ?? 0;
  row.purchases += delta.purchases ?? 0;
  into.set(key, row);
}

/** An upsert adding to what is there (rows sorted by key: concurrent writers lock rows in one order). */
function upsertAdding(db: Knex, table: string, conflict: string[], rows: Map<string, Record<string, unknown>>, columns: readonly string[]) {
  const sorted = [...rows.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, row]) => row);
  if (!sorted.length) return undefined;
  return db(table)
    .insert(sorted)
    .onConflict(conflict)
    .merge(Object.fromEntries(columns.map((column) => [column, db.raw(`${table}.${column} + excluded.${column}`)])));
}

/**
 * The statements that apply increments to every rollup (per referrer and day, per
 * program and day, per referrer and month, revenue). Callers run them, or fold them
 * into one statement as CTEs (the click batch).
 */
export function rollupStatements(db: Knex, deltas: StatsDelta[]): Knex.QueryBuilder[] {
  const daily = new Map<string, Counts & { program_id: string; participant_id: string; day: string }>();
  const programDaily = new Map<string, Counts & { program_id: string; day: string; shard: number }>();
  const shard = randomInt(PROGRAM_DAILY_SHARDS);
  const monthly = new Map<string, Counts & { program_id: string; participant_id: string; month: string }>();
  const revenue = new Map<string, { program_id: string; participant_id: string; day: string; currency: string; amount: number }>();
  const zero = () => ({ clicks: 0, visitors: 0, signups: 0, purchases: 0 });
  for (const delta of deltas) {
    const day = dayOf(delta.at);
    const month = `${day.slice(0, 7)}-01`;
    const { programId: program_id, participantId: participant_id } = delta;
    if (delta.clicks || delta.visitors || delta.signups || delta.purchases) {
      accumulate(daily, `${program_id}|${participant_id}|${day}`, () => ({ program_id, participant_id, day, ...zero() }), delta);
      accumulate(programDaily, `${program_id}|${day}`, () => ({ program_id, day, shard, ...zero() }), delta);
      accumulate(monthly, `${program_id}|${participant_id}|${month}`, () => ({ program_id, participant_id, month, ...zero() }), delta);
    }
    if (delta.revenue && delta.revenue.amount !== 0) {
      const key = `${program_id}|${participant_id}|${day}|${delta.revenue.currency}`;
      const money = revenue.get(key) ?? { program_id, participant_id, day, currency: delta.revenue.currency, amount: 0 };
      money.amount += delta.revenue.amount;
      revenue.set(key, money);
    }
  }
  // The most shared rows last: their locks are then held for the shortest time.
  return [
    upsertAdding(db, 'daily_revenue', ['program_id', 'participant_id', 'day', 'currency'], revenue, ['amount']),
    upsertAdding(db, 'daily_stats', ['program_id', 'participant_id', 'day'], daily, COUNT_COLUMNS),
    upsertAdding(db, 'participant_monthly', ['program_id', 'participant_id', 'month'], monthly, COUNT_COLUMNS),
    upsertAdding(db, 'program_daily', ['program_id', 'day', 'shard'], programDaily, COUNT_COLUMNS),
  ].filter((statement): statement is Knex.QueryBuilder => statement !== undefined);
}

/** Applies increments to every rollup, now (or into the transaction's sink, see deferStats). */
export async function bumpStats(trx: Knex, deltas: StatsDelta[]): Promise<void> {
  const sink = deferred.get(trx);
  if (sink) {
    sink.push(...deltas);
    return;
  }
  await applyStats(trx, deltas);
}

/** Writes increments now, whatever sink the transaction has. */
export async function applyStats(trx: Knex, deltas: StatsDelta[]): Promise<void> {
  await writeTogether(trx, rollupStatements(trx, deltas));
}

/** Runs several writes as one statement (data-modifying CTEs): one round trip, atomic. */
export async function writeTogether(db: Knex, statements: Knex.QueryBuilder[]): Promise<void> {
  if (statements.length <= 1) {
    if (statements[0]) await statements[0];
    return;
  }
  const parts = statements.map((statement) => statement.toSQL());
  const last = parts.pop() as Knex.Sql;
  await db.raw(`with ${parts.map((part, i) => `w${i} as (${part.sql})`).join(', ')} ${last.sql}`, [
    ...parts.flatMap((part) => part.bindings as Knex.Value[]),
    ...(last.bindings as Knex.Value[]),
  ]);
}
