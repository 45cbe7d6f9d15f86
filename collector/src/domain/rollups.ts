/**
 * Keeping the daily rollups current. Callers pass increments; rows for the same
 * (referrer, day) are merged first, so a batch costs one upsert per row touched.
 */
import type { Knex } from 'knex';

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

export async function bumpStats(trx: Knex, deltas: StatsDelta[]): Promise<void> {
  const sink = deferred.get(trx);
  if (sink) {
    sink.push(...deltas);
    return;
  }
  const stats = new Map<string, { program_id: string; participant_id: string; day: string; clicks: number; visitors: number; signups: number; purchases: number }>();
  const revenue = new Map<string, { program_id: string; participant_id: string; day: string; currency: string; amount: number }>();
  for (const delta of deltas) {
    const day = dayOf(delta.at);
    const key = `${delta.programId}|${delta.participantId}|${day}`;
    const row = stats.get(key) ?? { program_id: delta.programId, participant_id: delta.participantId, day, clicks: 0, visitors: 0, signups: 0, purchases: 0 };
    row.clicks += delta.clicks ?? 0;
    row.visitors += delta.visitors ?? 0;
    row.signups += delta.signups ?? 0;
    row.purchases += delta.purchases ?? 0;
    stats.set(key, row);
    if (delta.revenue && delta.revenue.amount !== 0) {
      const revenueKey = `${key}|${delta.revenue.currency}`;
      const money = revenue.get(revenueKey) ?? { program_id: delta.programId, participant_id: delta.participantId, day, currency: delta.revenue.currency, amount: 0 };
      money.amount += delta.revenue.amount;
      revenue.set(revenueKey, money);
    }
  }
  // A stable order keeps concurrent batches from deadlocking on each other's rows.
  const statRows = [...stats.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, row]) => row);
  if (statRows.some((row) => row.clicks || row.visitors || row.signups || row.purchases)) {
    await trx('daily_stats')
      .insert(statRows)
      .onConflict(['program_id', 'participant_id', 'day'])
      .merge({
        clicks: trx.raw('daily_stats.clicks + excluded.clicks'),
        visitors: trx.raw('daily_stats.visitors + excluded.visitors'),
        signups: trx.raw('daily_stats.signups + excluded.signups'),
        purchases: trx.raw('daily_stats.purchases + excluded.purchases'),
      });
  }
  const revenueRows = [...revenue.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, row]) => row);
  if (revenueRows.length) {
    await trx('daily_revenue')
      .insert(revenueRows)
      .onConflict(['program_id', 'participant_id', 'day', 'currency'])
      .merge({ amount: trx.raw('daily_revenue.amount + excluded.amount') });
  }
}
