/**
 * Reports read the daily rollups (never raw clicks): summary, leaderboard and a
 * zero-filled time series. Days are UTC; both ends of a range are included.
 */
import type { Knex } from 'knex';
import type {
  RewardBalances,
  RewardsByKind,
  ReportReferrersResponse,
  ReportSummaryResponse,
  ReportTimeseriesResponse,
} from '../../../shared/responses.ts';
import type { ReportRange } from '../../../shared/schemas.ts';
import type { MoneyByCurrency } from '../../../shared/types.ts';
import { badRequest } from '../errors.ts';

const DAY_MS = 86_400_000;
export const MAX_RANGE_DAYS = 1100;
export const DEFAULT_RANGE_DAYS = 30;

export interface DayRange {
  from: string;
  to: string;
}

/** Fills in defaults (the last 30 days) and refuses reversed or overlong ranges. */
export function resolveRange(range: ReportRange, today = new Date()): DayRange {
  const to = range.to ?? today.toISOString().slice(0, 10);
  const from = range.from ?? new Date(Date.parse(`${to}T00:00:00Z`) - (DEFAULT_RANGE_DAYS - 1) * DAY_MS).toISOString().slice(0, 10);
  const days = (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY_MS;
  if (days < 0) throw badRequest('invalid_range', '"from" must not be after "to"', { from: 'must be on or before "to"' });
  if (days >= MAX_RANGE_DAYS)
    throw badRequest('invalid_range', `A range covers at most ${MAX_RANGE_DAYS} days`, {
      from: `at most ${MAX_RANGE_DAYS} days before "to"`,
    });
  return { from, to };
}

/** [from 00:00, to + 1 day 00:00) as timestamps, for tables keyed by time rather than day. */
const timeBounds = (range: DayRange) =>
  [new Date(`${range.from}T00:00:00Z`), new Date(Date.parse(`${range.to}T00:00:00Z`) + DAY_MS)] as const;

/**
 * The conversion rate (DESIGN): referred signups whose visitor had clicked, over the
 * visitors who clicked, a share 0–1. A visitor who clicked before the range and
 * signed up inside it counts above and not below: hence the cap.
 */
const rate = (clickedSignups: number, visitors: number) =>
  visitors > 0 ? Math.min(1, Math.round((clickedSignups / visitors) * 10_000) / 10_000) : 0;

/** The same rate in SQL, for sorting the leaderboard. */
const RATE_SQL = 'case when sum(visitors) > 0 then least(1, sum(clicked_signups)::float8 / sum(visitors)) else 0 end';

type MoneyRow = { currency: string | null; total: number };
const toMoney = (rows: MoneyRow[]): MoneyByCurrency => {
  const sums: MoneyByCurrency = {};
  for (const row of rows) if (row.currency) sums[row.currency] = (sums[row.currency] ?? 0) + Number(row.total);
  return Object.fromEntries(Object.entries(sums).filter(([, total]) => total !== 0));
};

/** Reward sums per status, kind and currency; `grants` counts entries that are not clawbacks. */
type RewardRow = MoneyRow & { status: string; kind: string; grants: number };
const STATUSES = ['pending', 'approved', 'paid'] as const;

function rewardSums(rows: RewardRow[]): RewardBalances {
  const pick = (status: string) => toMoney(rows.filter((row) => row.status === status));
  return { pending: pick('pending'), approved: pick('approved'), paid: pick('paid') };
}

/** Cash and store credit apart, per currency; coupons as counts (a coupon is no sum of money). */
function rewardsByKind(rows: RewardRow[]): RewardsByKind {
  const ofKind = (kind: string) => rows.filter((row) => row.kind === kind);
  const coupons = ofKind('coupon');
  const count = (status: string) => coupons.filter((row) => row.status === status).reduce((n, row) => n + Number(row.grants), 0);
  return {
    cash: rewardSums(ofKind('cash')),
    credit: rewardSums(ofKind('credit')),
    coupon: Object.fromEntries(STATUSES.map((status) => [status, count(status)])) as RewardsByKind['coupon'],
  };
}

/** Groups a rewards query by status, kind and currency. */
const rewardTotals = (db: Knex, query: Knex.QueryBuilder, ...groupBy: string[]) =>
  query
    .select(...groupBy, 'status', 'kind', 'currency')
    .sum({ total: 'amount' })
    .select(db.raw('(count(*) filter (where reverses is null))::int as grants'))
    .groupBy(...groupBy, 'status', 'kind', 'currency');

/**
 * Program-wide totals from rollups only: counts (program_daily), revenue
 * (program_revenue) and rewards by status (reward_daily, kept by a trigger on rewards):
 * at 200k referrals the reward ledger alone took ~100 ms to sum over 90 days.
 */
export async function summaryReport(db: Knex, programId: string, range: DayRange): Promise<ReportSummaryResponse> {
  const inRange = (table: string) => db(table).where({ program_id: programId }).whereBetween('day', [range.from, range.to]);
  // Side by side on PostgreSQL's pool (one after another on PGlite's one connection).
  const [[totals], revenue, rewards] = (await Promise.all([
    inRange('program_daily').sum({
      clicks: 'clicks',
      visitors: 'visitors',
      signups: 'signups',
      clicked_signups: 'clicked_signups',
      purchases: 'purchases',
    }),
    inRange('program_revenue').select('currency').sum({ total: 'amount' }).groupBy('currency'),
    inRange('reward_daily')
      .select('status', 'kind', 'currency')
      .sum({ total: 'amount' })
      .select(db.raw('sum(grants)::int as grants'))
      .groupBy('status', 'kind', 'currency'),
  ])) as [Array<Record<string, number | null>>, MoneyRow[], RewardRow[]];
  const n = (key: string) => Number(totals?.[key] ?? 0);
  return {
    from: range.from,
    to: range.to,
    clicks: n('clicks'),
    visitors: n('visitors'),
    signups: n('signups'),
    clickedSignups: n('clicked_signups'),
    purchases: n('purchases'),
    revenue: toMoney(revenue),
    conversionRate: rate(n('clicked_signups'), n('visitors')),
    rewards: rewardSums(rewards),
    rewardsByKind: rewardsByKind(rewards),
  };
}

const addDays = (day: string, days: number) => new Date(Date.parse(`${day}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);
const firstOfMonth = (day: string) => `${day.slice(0, 7)}-01`;
const nextMonth = (day: string) => {
  const date = new Date(`${firstOfMonth(day)}T00:00:00Z`);
  date.setUTCMonth(date.getUTCMonth() + 1);
  return date.toISOString().slice(0, 10);
};

const lastOfMonth = (day: string) => addDays(nextMonth(day), -1);
/** The earlier and the later of two ISO days (they compare as text). */
const earlier = (a: string, b: string) => [a, b].sort()[0] as string;
const later = (a: string, b: string) => [a, b].sort()[1] as string;
const daysFrom = (from: string, to: string) =>
  from > to ? 0 : (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY_MS + 1;

/**
 * Which rollup rows to read: those where a count is not zero (see SPARSE_SORTS), or
 * those of some referrers.
 */
interface Only {
  nonZero?: (typeof SPARSE_SORTS)[number];
  participants?: string[];
}

/**
 * Counts per referrer over a range, reading as few rollup rows as it can: each month
 * the range covers whole comes from participant_monthly; a month it covers in part
 * comes from daily_stats for its days in the range, or, when fewer, from the month's
 * total less its days outside the range (days after today hold nothing, so a range
 * ending today takes its last month whole). With thousands of referrers active each
 * day, the edges are most of the work (10M clicks, 50,000 referrers: a 90-day
 * leaderboard read a million daily rows).
 */
function perReferrerCounts(db: Knex, programId: string, range: DayRange, only: Only = {}, today = new Date().toISOString().slice(0, 10)) {
  const columns = ['participant_id', 'clicks', 'visitors', 'signups', 'clicked_signups', 'purchases'];
  const months: string[] = [];
  const plus: Array<[string, string]> = [];
  const minus: Array<[string, string]> = [];
  for (let month = firstOfMonth(range.from); month <= range.to; month = nextMonth(month)) {
    const last = lastOfMonth(month);
    const from = later(range.from, month);
    const to = earlier(range.to, last);
    // Days of this month outside the range that may hold counts (none after today).
    const before: [string, string] = [month, addDays(from, -1)];
    const after: [string, string] = [addDays(to, 1), earlier(last, today)];
    const outside = daysFrom(...before) + daysFrom(...after);
    if (outside < daysFrom(from, to)) {
      months.push(month);
      for (const days of [before, after]) if (daysFrom(...days) > 0) minus.push(days);
    } else {
      plus.push([from, to]);
    }
  }
  const narrowed = (query: Knex.QueryBuilder) => {
    if (only.nonZero) query.whereRaw(`${only.nonZero} <> 0`);
    if (only.participants) query.whereIn('participant_id', only.participants);
    return query;
  };
  const daily = (ranges: Array<[string, string]>, sign: 1 | -1) =>
    narrowed(
      db('daily_stats')
        .select(sign === 1 ? columns : ['participant_id', ...columns.slice(1).map((column) => db.raw(`-${column} as ${column}`))])
        .where({ program_id: programId })
        .where((q) => {
          for (const [from, to] of ranges) q.orWhereBetween('day', [from, to]);
        }),
    );
  const parts = [
    ...(months.length
      ? [narrowed(db('participant_monthly').select(columns).where({ program_id: programId }).whereIn('month', months))]
      : []),
    ...(plus.length ? [daily(plus, 1)] : []),
    ...(minus.length ? [daily(minus, -1)] : []),
  ];
  const [first, ...rest] = parts as [Knex.QueryBuilder, ...Knex.QueryBuilder[]];
  return rest.length ? first.unionAll(rest, true) : first;
}

/**
 * Runs a query that groups a few hundred thousand rollup rows by referrer (50,000
 * referrers active daily: one row each per period read) with room to hash them in
 * memory: at the default 4 MB work_mem the hash spilled to disk in five batches, and
 * the planner, which cannot estimate groups over a UNION ALL (it assumes 200), chose a
 * parallel plan that sorted the spilled groups again (10M clicks: 275 ms, 155 ms with
 * neither). SET LOCAL ends with the transaction.
 */
async function aggregating<T>(db: Knex, query: (trx: Knex.Transaction) => Knex.QueryBuilder): Promise<T> {
  return db.transaction(async (trx) => {
    await trx.raw(`set local work_mem = '32MB'`);
    await trx.raw('set local max_parallel_workers_per_gather = 0');
    return (await query(trx)) as T;
  });
}

const SORT_SQL: Record<string, string> = {
  clicks: 'clicks',
  visitors: 'visitors',
  signups: 'signups',
  purchases: 'purchases',
  conversionRate: 'conversion_rate',
};

type LeaderRow = {
  participant_id: string;
  clicks: number;
  visitors: number;
  signups: number;
  clicked_signups: number;
  purchases: number;
  conversion_rate: number;
};

const SUMS = { clicks: 'clicks', visitors: 'visitors', signups: 'signups', clicked_signups: 'clicked_signups', purchases: 'purchases' };

/** Per-referrer sums of `only`'s rows over the range, as the leaderboard's rows. */
const grouped = (trx: Knex, programId: string, range: DayRange, only: Only = {}) =>
  trx
    .from(perReferrerCounts(trx, programId, range, only).as('t'))
    .groupBy('participant_id')
    .select('participant_id')
    .sum(SUMS)
    .select(trx.raw(`${RATE_SQL} as conversion_rate`));

/**
 * Counts that most rollup rows hold at zero (most days of most referrers bring clicks
 * and nothing else), each with a partial index on its non-zero rows.
 */
const SPARSE_SORTS = ['signups', 'purchases'] as const;
type PageQuery = { sort: string; order: 'asc' | 'desc'; limit: number; offset: number };

/** The figures of these referrers over the range, in this order (one that has none is left out). */
async function rowsOf(db: Knex, programId: string, range: DayRange, ids: string[]): Promise<LeaderRow[]> {
  if (!ids.length) return [];
  const rows = (await grouped(db, programId, range, { participants: ids })) as LeaderRow[];
  const byId = new Map(rows.map((row) => [row.participant_id, row]));
  return ids.flatMap((id) => byId.get(id) ?? []);
}

/**
 * The page's rows (one more than the limit when another page follows), ranked by the
 * sort column, then participant id. From a ranking kept ahead when there is one (see
 * rankedPage); otherwise ranked now. Ranked by signups or purchases, highest first, the
 * referrers whose count in the range is above zero come first, in the same order
 * whether every row or only the non-zero ones are read: when the page and the row
 * after it are all such referrers (the usual case), only the non-zero rows are ranked
 * (10M clicks, 50,000 referrers: a fifth of the rows) and the page's referrers read
 * whole; otherwise every row.
 */
async function leaderRows(
  db: Knex,
  programId: string,
  range: DayRange,
  page: PageQuery,
  now: Date,
): Promise<{ rows: LeaderRow[]; rankedAt: Date | null }> {
  const kept = await rankedPage(db, programId, range, page, now);
  if (kept) return { rows: await rowsOf(db, programId, range, kept.ids), rankedAt: kept.rankedAt };
  const sparse = SPARSE_SORTS.find((sort) => sort === page.sort && page.order === 'desc');
  if (sparse) {
    const ranked = await aggregating<Array<{ participant_id: string }>>(db, (trx) =>
      trx
        .from(perReferrerCounts(trx, programId, range, { nonZero: sparse }).as('t'))
        .groupBy('participant_id')
        .select('participant_id')
        .havingRaw(`sum(${sparse}) > 0`)
        .orderByRaw(`sum(${sparse}) desc, participant_id`)
        .limit(page.limit + 1)
        .offset(page.offset),
    );
    if (ranked.length > page.limit)
      return {
        rows: await rowsOf(
          db,
          programId,
          range,
          ranked.map((row) => row.participant_id),
        ),
        rankedAt: null,
      };
  }
  const rows = await aggregating<LeaderRow[]>(db, (trx) =>
    active(grouped(trx, programId, range))
      .orderByRaw(`${SORT_SQL[page.sort] ?? 'signups'} ${page.order === 'asc' ? 'asc' : 'desc'}, participant_id`)
      .limit(page.limit + 1)
      .offset(page.offset),
  );
  return { rows, rankedAt: null };
}

/** Referrers with a figure in the range (a month's total less its days outside the range nets to zero for someone idle in it). */
const active = (query: Knex.QueryBuilder) =>
  query.havingRaw('sum(clicks) <> 0 or sum(visitors) <> 0 or sum(signups) <> 0 or sum(clicked_signups) <> 0 or sum(purchases) <> 0');

/** The ranges whose order is kept ahead: the last 7, 30 and 90 days, today included. */
export const RANKED_DAYS = [7, 30, 90] as const;
/** How many referrers a kept ranking holds: the largest page and the row after it. */
export const RANKED_TOP = 501;
/** A ranking older than this is not served (the worker that keeps it has stopped). */
export const RANKING_MAX_AGE_MS = 5 * 60_000;
const utcDay = (at: Date) => at.toISOString().slice(0, 10);

/**
 * The page's participant ids from a kept ranking (leaderboard_rankings): for a range of
 * RANKED_DAYS ending today, highest first, while the ranking is of today and fresh, and
 * the page lies within it (or it holds every referrer).
 */
async function rankedPage(
  db: Knex,
  programId: string,
  range: DayRange,
  page: PageQuery,
  now: Date,
): Promise<{ ids: string[]; rankedAt: Date } | null> {
  const days = daysFrom(range.from, range.to);
  if (page.order !== 'desc' || range.to !== utcDay(now) || !(RANKED_DAYS as readonly number[]).includes(days)) return null;
  const kept = (await db('leaderboard_rankings')
    .where({ program_id: programId, days, sort: page.sort, day: range.to })
    .where('ranked_at', '>', new Date(now.getTime() - RANKING_MAX_AGE_MS))
    .first('participant_ids', 'ranked_at')) as { participant_ids: string[]; ranked_at: Date } | undefined;
  if (!kept) return null;
  const end = page.offset + page.limit + 1;
  if (end > kept.participant_ids.length && kept.participant_ids.length >= RANKED_TOP) return null;
  return { ids: kept.participant_ids.slice(page.offset, end), rankedAt: new Date(kept.ranked_at) };
}

/**
 * Ranks, for every program with at least `minReferrers` referrers active over the last
 * 90 days, the standard ranges ending today by every sort (the top RANKED_TOP, one
 * statement per range), and forgets the rankings of the others. The worker runs it every
 * minute; a program below the threshold is ranked at each request, which is cheap there.
 * A program ranked today within `skipWithinMs` is left as it is: with several collector
 * processes, each one's worker passes, and the first to come ranks for all. Answers the
 * programs it ranked.
 */
export async function refreshRankings(db: Knex, minReferrers: number, now = new Date(), skipWithinMs = 0): Promise<string[]> {
  const today = utcDay(now);
  const longest = { from: addDays(today, -(Math.max(...RANKED_DAYS) - 1)), to: today };
  const programs = (
    (await db('participant_monthly')
      .where('month', '>=', firstOfMonth(longest.from))
      .groupBy('program_id')
      .havingRaw('count(distinct participant_id) >= ?', [minReferrers])
      .select('program_id')) as Array<{ program_id: string }>
  ).map((row) => row.program_id);
  await db('leaderboard_rankings').whereNotIn('program_id', programs).delete();
  const fresh = new Set(
    skipWithinMs > 0 && programs.length
      ? (
          (await db('leaderboard_rankings')
            .whereIn('program_id', programs)
            .where({ day: today })
            .where('ranked_at', '>', new Date(now.getTime() - skipWithinMs))
            .distinct('program_id')) as Array<{ program_id: string }>
        ).map((row) => row.program_id)
      : [],
  );
  const due = programs.filter((programId) => !fresh.has(programId));
  const sorts = Object.keys(SORT_SQL);
  for (const programId of due)
    for (const days of RANKED_DAYS) {
      const range = { from: addDays(today, -(days - 1)), to: today };
      const [tops] = await aggregating<Array<Record<string, string[] | null>>>(db, (trx) =>
        trx
          .with('t', active(grouped(trx, programId, range)))
          .from('t')
          .select(
            sorts.map((sort) =>
              trx.raw(`(array_agg(participant_id order by ${SORT_SQL[sort]} desc, participant_id))[1:${RANKED_TOP}] as ??`, [sort]),
            ),
          ),
      );
      await db('leaderboard_rankings')
        .insert(
          sorts.map((sort) => ({
            program_id: programId,
            days,
            sort,
            day: today,
            ranked_at: now,
            participant_ids: tops?.[sort] ?? [],
          })),
        )
        .onConflict(['program_id', 'days', 'sort'])
        .merge();
    }
  return due;
}

export async function referrersReport(
  db: Knex,
  programId: string,
  range: DayRange,
  page: PageQuery,
  now = new Date(),
): Promise<ReportReferrersResponse> {
  const { rows, rankedAt } = await leaderRows(db, programId, range, page, now);
  const more = rows.length > page.limit;
  const pageRows = rows.slice(0, page.limit);
  const ids = pageRows.map((row) => row.participant_id);
  const [people, revenue, rewards] = await Promise.all([
    db('participants as p')
      .leftJoin(
        db('codes')
          .distinctOn('participant_id')
          .select('participant_id', 'code')
          .whereIn('participant_id', ids)
          .whereNull('disabled_at')
          .orderBy([{ column: 'participant_id' }, { column: 'created_at', order: 'desc' }])
          .as('c'),
        'c.participant_id',
        'p.id',
      )
      .whereIn('p.id', ids)
      .select('p.id', 'p.external_id', 'p.email', 'p.name', 'c.code') as Promise<
      Array<{ id: string; external_id: string; email: string | null; name: string | null; code: string | null }>
    >,
    db('daily_revenue')
      .where({ program_id: programId })
      .whereBetween('day', [range.from, range.to])
      .whereIn('participant_id', ids)
      .select('participant_id', 'currency')
      .sum({ total: 'amount' })
      .groupBy('participant_id', 'currency') as Promise<Array<MoneyRow & { participant_id: string }>>,
    rewardTotals(
      db,
      db('rewards')
        .where({ program_id: programId })
        .whereIn('beneficiary_id', ids)
        .where('created_at', '>=', timeBounds(range)[0])
        .where('created_at', '<', timeBounds(range)[1]),
      'beneficiary_id',
    ) as Promise<Array<RewardRow & { beneficiary_id: string }>>,
  ]);
  return {
    from: range.from,
    to: range.to,
    data: pageRows.map((row) => {
      const person = people.find((p) => p.id === row.participant_id);
      const theirs = rewards.filter((r) => r.beneficiary_id === row.participant_id);
      return {
        participant: person?.external_id ?? null,
        email: person?.email ?? null,
        name: person?.name ?? null,
        code: person?.code ?? null,
        clicks: Number(row.clicks),
        visitors: Number(row.visitors),
        signups: Number(row.signups),
        clickedSignups: Number(row.clicked_signups),
        purchases: Number(row.purchases),
        revenue: toMoney(revenue.filter((r) => r.participant_id === row.participant_id)),
        conversionRate: rate(Number(row.clicked_signups), Number(row.visitors)),
        rewards: rewardSums(theirs),
        rewardsByKind: rewardsByKind(theirs),
      };
    }),
    nextOffset: more ? page.offset + page.limit : null,
    rankedAt: rankedAt?.toISOString() ?? null,
  };
}

export async function timeseriesReport(
  db: Knex,
  programId: string,
  range: DayRange,
  interval: ReportTimeseriesResponse['interval'],
): Promise<ReportTimeseriesResponse> {
  const step = interval === 'week' ? '1 week' : '1 day';
  const bucket = `date_trunc('${interval}', day)::date`;
  const result = await db.raw(
    `with buckets as (
       select generate_series(date_trunc('${interval}', ?::date), ?::date, interval '${step}')::date as bucket
     ), stats as (
       select ${bucket} as bucket, sum(clicks) as clicks, sum(visitors) as visitors, sum(signups) as signups, sum(purchases) as purchases
       from program_daily where program_id = ? and day between ? and ? group by 1
     )
     select to_char(b.bucket, 'YYYY-MM-DD') as date, coalesce(s.clicks, 0) as clicks, coalesce(s.visitors, 0) as visitors,
            coalesce(s.signups, 0) as signups, coalesce(s.purchases, 0) as purchases
     from buckets b left join stats s on s.bucket = b.bucket order by b.bucket`,
    [range.from, range.to, programId, range.from, range.to],
  );
  const revenue = (await db('program_revenue')
    .where({ program_id: programId })
    .whereBetween('day', [range.from, range.to])
    .select(db.raw(`to_char(${bucket}, 'YYYY-MM-DD') as date`), 'currency')
    .sum({ total: 'amount' })
    .groupByRaw(`1, currency`)) as Array<MoneyRow & { date: string }>;
  return {
    interval,
    from: range.from,
    to: range.to,
    points: (result.rows as Array<{ date: string; clicks: number; visitors: number; signups: number; purchases: number }>).map((row) => ({
      date: row.date,
      clicks: Number(row.clicks),
      visitors: Number(row.visitors),
      signups: Number(row.signups),
      purchases: Number(row.purchases),
      revenue: toMoney(revenue.filter((r) => r.date === row.date)),
    })),
  };
}
