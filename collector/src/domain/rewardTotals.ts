/**
 * Reward totals per participant for a queue filter (GET /v1/rewards/totals): what the
 * rewards queue owes each person, cash and store credit apart per currency, coupons
 * counted, and the whole filter's total. The dashboard shows it beside the queue, so
 * a person paying out sees each referrer's sum, not just the rows loaded so far.
 */
import type { Knex } from 'knex';
import type { RewardTotalsResponse, RewardTotalsRow } from '../../../shared/responses.ts';
import type { RewardTotalsQuery } from '../../../shared/schemas.ts';

/** Participants listed at most, those with the most rewards first. */
export const MAX_TOTALS_ROWS = 500;

type SumRow = { kind: string; currency: string | null; total: number; grants: number; n: number };

/** Folds sums per kind and currency into one row's figures. */
function figures(rows: SumRow[]): Omit<RewardTotalsRow, 'participant'> {
  const out: Omit<RewardTotalsRow, 'participant'> = { rewards: 0, cash: {}, credit: {}, coupons: 0 };
  for (const row of rows) {
    out.rewards += Number(row.n);
    if (row.kind === 'coupon') out.coupons += Number(row.grants);
    else if ((row.kind === 'cash' || row.kind === 'credit') && row.currency) {
      const sums = out[row.kind];
      sums[row.currency] = (sums[row.currency] ?? 0) + Number(row.total);
    }
  }
  for (const sums of [out.cash, out.credit]) for (const [currency, total] of Object.entries(sums)) if (total === 0) delete sums[currency];
  return out;
}

export async function rewardTotals(db: Knex, programId: string, query: RewardTotalsQuery): Promise<RewardTotalsResponse> {
  const filtered = (alias: string) => {
    const rows = db(`rewards as ${alias}`).where(`${alias}.program_id`, programId);
    if (query.status) rows.where(`${alias}.status`, query.status);
    if (query.participant)
      rows.whereIn(
        `${alias}.beneficiary_id`,
        db('participants').select('id').where({ program_id: programId, external_id: query.participant }),
      );
    return rows;
  };
  const sums = (rows: Knex.QueryBuilder) =>
    rows
      .select(`w.kind`, `w.currency`)
      .sum({ total: 'w.amount' })
      .select(db.raw('(count(*) filter (where w.reverses is null))::int as grants'), db.raw('count(*)::int as n'))
      .groupBy('w.kind', 'w.currency');

  const who = filtered('x')
    .select('x.beneficiary_id')
    .count({ n: '*' })
    .groupBy('x.beneficiary_id')
    .orderBy([{ column: 'n', order: 'desc' }, { column: 'x.beneficiary_id' }])
    .limit(MAX_TOTALS_ROWS + 1)
    .as('who');
  const [perParticipant, overall, [people]] = await Promise.all([
    sums(filtered('w').join(who, 'who.beneficiary_id', 'w.beneficiary_id').join('participants as p', 'p.id', 'w.beneficiary_id'))
      .select('p.external_id as participant', db.raw('max(who.n) as rank'))
      .groupBy('p.external_id') as Promise<Array<SumRow & { participant: string; rank: number }>>,
    sums(filtered('w')) as Promise<SumRow[]>,
    filtered('c').countDistinct({ n: 'c.beneficiary_id' }) as Promise<Array<{ n: number | string }>>,
  ]);
  const byParticipant = new Map<string, { rank: number; rows: SumRow[] }>();
  for (const row of perParticipant) {
    const entry = byParticipant.get(row.participant) ?? { rank: Number(row.rank), rows: [] };
    entry.rows.push(row);
    byParticipant.set(row.participant, entry);
  }
  const data = [...byParticipant.entries()]
    .sort(([a, x], [b, y]) => y.rank - x.rank || (a < b ? -1 : a > b ? 1 : 0))
    .map(([participant, entry]) => ({ participant, ...figures(entry.rows) }));
  return {
    status: query.status ?? null,
    data: data.slice(0, MAX_TOTALS_ROWS),
    total: { participants: Number(people?.n ?? 0), ...figures(overall) },
    truncated: data.length > MAX_TOTALS_ROWS,
  };
}
