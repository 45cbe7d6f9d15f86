/**
 * `npx tsx test/bench/reports.ts`: reports from the daily rollups against the same
 * numbers computed from the raw tables, on PostgreSQL, over a year of data.
 *
 * One program, 1,000 referrers with codes, 1,000,000 clicks (about 600,000 visitors),
 * 100,000 referrals, 30,000 purchases in two currencies and 1,500 refunds, spread
 * over 365 days with generate_series; daily_stats and daily_revenue are filled from
 * them with one INSERT … SELECT … GROUP BY each (the numbers the app keeps: a
 * visitor is counted on the day of their first click in the program, revenue is
 * purchases less refunds on the day of each), then ANALYZE. Each report runs once to
 * warm up, then 5 times; the median is reported. The rollup and raw answers are
 * compared before anything is timed.
 *
 * BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test): the bench
 * works in a fresh schema there and drops it afterwards (BENCH_KEEP=1 keeps it, to
 * look at plans). The last line printed is
 * one JSON object: { summaryMsRollup, summaryMsRaw, leaderboardMsRollup,
 * leaderboardMsRaw, ratioSummary, ratioLeaderboard }. Target: both rollup reports
 * under 100 ms.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Knex } from 'knex';
import { referrersReport, summaryReport, type DayRange } from '../../collector/src/domain/reports.ts';
import { compactRewardDaily } from '../../collector/src/domain/rollups.ts';
import { createDb } from '../../collector/src/storage/db.ts';
import { migrateLatest } from '../../collector/src/storage/migrate.ts';

const URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REFERRERS = 1_000;
const CLICKS = 1_000_000;
const VISITORS = 600_000;
const REFERRALS = 100_000;
const PURCHASES = 30_000;
const REFUNDS = 1_500;
const RUNS = 5;
const TARGET_MS = 100;
const YEAR: DayRange = { from: '2025-01-01', to: '2025-12-31' };
const START = `${YEAR.from}T00:00:00Z`;
const END = '2026-01-01T00:00:00Z';
const PAGE = { sort: 'signups', order: 'desc' as const, limit: 50, offset: 0 };

const log = (...args: unknown[]) => console.log(...args);
const round = (ms: number) => Math.round(ms * 10) / 10;

/** A reproducible number in [0, 1) from a seed text. */
const unit = (seed: string) => `((hashtextextended(${seed}, 42) & 9007199254740991)::float8 / 9007199254740992)`;
/** A point in 2025 from a seed text. */
const inYear = (seed: string) => `timestamptz '${START}' + floor(${unit(seed)} * 365 * 86400) * interval '1 second'`;

async function step<T>(label: string, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await work();
  log(`  ${label.padEnd(44)} ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return result;
}

async function generate(db: Knex): Promise<string> {
  const [program] = (await db('programs')
    .insert({
      slug: `bench-${randomBytes(4).toString('hex')}`,
      name: 'Reports bench',
      settings: JSON.stringify({ origins: [], landingUrl: 'https://shop.example/' }),
    })
    .returning('id')) as Array<{ id: string }>;
  const programId = (program as { id: string }).id;
  const p = { p: programId };

  await step(`${REFERRERS} referrers with codes`, async () => {
    await db.raw(
      `insert into participants (program_id, external_id, email, name)
       select :p, 'ref-' || g, 'ref-' || g || '@example.com', 'Referrer ' || g from generate_series(1, ${REFERRERS}) g`,
      p,
    );
    await db.raw(
      `insert into codes (program_id, participant_id, code)
       select :p, id, 'B' || upper(substr(md5(id::text), 1, 9)) from participants where program_id = :p`,
      p,
    );
    // Referrer n (1..1000) → ids, for the generators below (dropped with the schema).
    await db.raw(
      `create table bench_referrers as
       select row_number() over (order by p.external_id) as n, p.id as participant_id, c.id as code_id
         from participants p join codes c on c.participant_id = p.id where p.program_id = :p`,
      p,
    );
    await db.raw('create unique index on bench_referrers (n)');
  });

  // A few referrers get most of the traffic (the square of a uniform draw).
  const skewed = (seed: string) => `(1 + floor(${REFERRERS} * power(${unit(seed)}, 2)))::int`;

  await step(`${CLICKS.toLocaleString('en')} clicks`, () =>
    db.raw(
      `insert into clicks (code_id, vid, url, created_at)
       select r.code_id, 'v' || (g % ${VISITORS}), 'https://shop.example/?ref=x', ${inYear(`'c' || g`)}
         from generate_series(1, ${CLICKS}) g join bench_referrers r on r.n = ${skewed(`'k' || (g % ${VISITORS})`)}`,
      p,
    ),
  );

  await step(`${REFERRALS.toLocaleString('en')} referred customers and referrals`, async () => {
    await db.raw(`insert into participants (program_id, external_id) select :p, 'cust-' || g from generate_series(1, ${REFERRALS}) g`, p);
    await db.raw(
      `insert into referrals (program_id, referrer_id, referred_id, code_id, status, verified, created_at)
       select :p, r.participant_id, c.id, r.code_id, 'attributed', true, ${inYear(`'s' || c.external_id`)}
         from participants c join bench_referrers r on r.n = ${skewed(`'s' || c.external_id`)}
        where c.program_id = :p and c.external_id like 'cust-%'`,
      p,
    );
    await db.raw(
      `update participants c set referred_by = r.referrer_id from referrals r where r.referred_id = c.id and c.program_id = :p`,
      p,
    );
  });

  await step(`${PURCHASES.toLocaleString('en')} purchases, ${REFUNDS.toLocaleString('en')} refunds`, async () => {
    // Customer g (of the first PURCHASES) buys once, some days after being referred.
    await db.raw(
      `insert into conversions (program_id, participant_id, type, event_id, amount, currency, verified, source, created_at)
       select :p, c.id, 'purchase', 'order-' || c.external_id, 500 + (abs(hashtext(c.external_id)) % 20000),
              case when abs(hashtext('cur' || c.external_id)) % 4 = 0 then 'EUR' else 'USD' end, true, 'server',
              least(r.created_at + (abs(hashtext('d' || c.external_id)) % 30) * interval '1 day', timestamptz '${END}' - interval '1 second')
         from participants c join referrals r on r.referred_id = c.id
        where c.program_id = :p and c.external_id like 'cust-%' and substr(c.external_id, 6)::int <= ${PURCHASES}`,
      p,
    );
    await db.raw(
      `insert into conversions (program_id, participant_id, type, event_id, amount, currency, verified, source, refund_of, created_at)
       select :p, participant_id, 'refund', 'refund-' || event_id, amount, currency, true, 'server', id,
              least(created_at + interval '3 days', timestamptz '${END}' - interval '1 second')
         from conversions where program_id = :p and type = 'purchase' order by event_id limit ${REFUNDS}`,
      p,
    );
  });

  // The rollups, as the app keeps them: a click counts on its day; a visitor on the day
  // of their first click in the program; a signup on the referral's day; a purchase (by a
  // referred customer) on its day; revenue is purchases less refunds, each on its own day.
  await step('daily_stats (one INSERT … SELECT … GROUP BY)', () =>
    db.raw(
      `insert into daily_stats (program_id, participant_id, day, clicks, visitors, signups, purchases)
       select :p::uuid, participant_id, day, sum(clicks), sum(visitors), sum(signups), sum(purchases)
         from (
           select o.participant_id, (k.created_at at time zone 'UTC')::date as day, 1 as clicks,
                  case when row_number() over (partition by k.vid order by k.created_at, k.id) = 1 then 1 else 0 end as visitors, 0 as signups, 0 as purchases
             from clicks k join codes o on o.id = k.code_id where o.program_id = :p
           union all
           select referrer_id, (created_at at time zone 'UTC')::date, 0, 0, 1, 0 from referrals where program_id = :p
           union all
           select r.referrer_id, (c.created_at at time zone 'UTC')::date, 0, 0, 0, 1
             from conversions c join referrals r on r.referred_id = c.participant_id
            where c.program_id = :p and c.type = 'purchase'
         ) events
        group by participant_id, day`,
      p,
    ),
  );
  await step('daily_revenue (one INSERT … SELECT … GROUP BY)', () =>
    db.raw(
      `insert into daily_revenue (program_id, participant_id, day, currency, amount)
       select :p::uuid, r.referrer_id, (c.created_at at time zone 'UTC')::date, c.currency,
              sum(case when c.type = 'refund' then -c.amount else c.amount end)
         from conversions c join referrals r on r.referred_id = c.participant_id
        where c.program_id = :p and c.type in ('purchase', 'refund')
        group by 1, 2, 3, 4`,
      p,
    ),
  );
  await step('program_revenue (from daily_revenue) and reward_daily merged', async () => {
    await db.raw(
      `insert into program_revenue (program_id, day, shard, currency, amount)
       select program_id, day, 0, currency, sum(amount) from daily_revenue where program_id = :p group by 1, 2, 4`,
      p,
    );
    await compactRewardDaily(db);
  });
  // The coarser rollups, derived exactly as migration 20261126000500 backfills them.
  await step('program_daily and participant_monthly (from daily_stats)', async () => {
    await db.raw(
      `insert into program_daily (program_id, day, clicks, visitors, signups, purchases)
       select program_id, day, sum(clicks), sum(visitors), sum(signups), sum(purchases) from daily_stats where program_id = :p group by 1, 2`,
      p,
    );
    await db.raw(
      `insert into participant_monthly (program_id, participant_id, month, clicks, visitors, signups, purchases)
       select program_id, participant_id, date_trunc('month', day)::date, sum(clicks), sum(visitors), sum(signups), sum(purchases)
         from daily_stats where program_id = :p group by 1, 2, 3`,
      p,
    );
  });
  await step('ANALYZE', async () => {
    for (const table of [
      'participants',
      'codes',
      'clicks',
      'referrals',
      'conversions',
      'rewards',
      'daily_stats',
      'daily_revenue',
      'program_daily',
      'participant_monthly',
    ]) {
      await db.raw(`analyze ${table}`);
    }
  });
  return programId;
}

type Money = Record<string, number>;
const money = (rows: Array<{ currency: string; total: unknown }>): Money =>
  Object.fromEntries(rows.filter((row) => Number(row.total) !== 0).map((row) => [row.currency, Number(row.total)]));

/** The summary's counts and revenue straight from clicks, referrals and conversions. */
async function rawSummary(db: Knex, programId: string, range: DayRange) {
  const bounds = {
    p: programId,
    start: `${range.from}T00:00:00Z`,
    end: new Date(Date.parse(`${range.to}T00:00:00Z`) + 86_400_000).toISOString(),
  };
  const [counts, revenue] = await Promise.all([
    db.raw(
      `select (select count(*) from clicks where program_id = :p and created_at >= :start and created_at < :end) as clicks,
              (select count(*) from (select min(created_at) as first from clicks where program_id = :p group by vid) v
                where first >= :start and first < :end) as visitors,
              (select count(*) from referrals where program_id = :p and created_at >= :start and created_at < :end) as signups,
              (select count(*) from conversions c join referrals r on r.referred_id = c.participant_id
                where c.program_id = :p and c.type = 'purchase' and c.created_at >= :start and c.created_at < :end) as purchases`,
      bounds,
    ),
    db.raw(
      `select c.currency, sum(case when c.type = 'refund' then -c.amount else c.amount end) as total
         from conversions c join referrals r on r.referred_id = c.participant_id
        where c.program_id = :p and c.type in ('purchase', 'refund') and c.created_at >= :start and c.created_at < :end
        group by c.currency`,
      bounds,
    ),
  ]);
  const row = counts.rows[0] as Record<string, unknown>;
  const n = (key: string) => Number(row[key]);
  const visitors = n('visitors');
  return {
    clicks: n('clicks'),
    visitors,
    signups: n('signups'),
    purchases: n('purchases'),
    revenue: money(revenue.rows),
    conversionRate: visitors ? Math.round((n('signups') / visitors) * 10_000) / 10_000 : 0,
  };
}

/** The leaderboard's first page (signups desc) grouped by referrer over the raw tables. */
async function rawLeaderboard(db: Knex, programId: string, range: DayRange) {
  const bounds = {
    p: programId,
    start: `${range.from}T00:00:00Z`,
    end: new Date(Date.parse(`${range.to}T00:00:00Z`) + 86_400_000).toISOString(),
    limit: PAGE.limit + 1,
  };
  const result = await db.raw(
    `with c as (
       select o.participant_id, count(*) as clicks from clicks k join codes o on o.id = k.code_id
        where o.program_id = :p and k.created_at >= :start and k.created_at < :end group by o.participant_id
     ), v as (
       select participant_id, count(*) as visitors
         from (select distinct on (k.vid) o.participant_id, k.created_at from clicks k join codes o on o.id = k.code_id
                where o.program_id = :p order by k.vid, k.created_at, k.id) f
        where created_at >= :start and created_at < :end group by participant_id
     ), s as (
       select referrer_id as participant_id, count(*) as signups from referrals
        where program_id = :p and created_at >= :start and created_at < :end group by referrer_id
     ), b as (
       select r.referrer_id as participant_id, count(*) as purchases
         from conversions x join referrals r on r.referred_id = x.participant_id
        where x.program_id = :p and x.type = 'purchase' and x.created_at >= :start and x.created_at < :end group by r.referrer_id
     ), ids as (
       select participant_id from c union select participant_id from v union select participant_id from s union select participant_id from b
     )
     select ids.participant_id, p.external_id, p.email, p.name,
            coalesce(c.clicks, 0) as clicks, coalesce(v.visitors, 0) as visitors, coalesce(s.signups, 0) as signups, coalesce(b.purchases, 0) as purchases
       from ids join participants p on p.id = ids.participant_id
       left join c on c.participant_id = ids.participant_id left join v on v.participant_id = ids.participant_id
       left join s on s.participant_id = ids.participant_id left join b on b.participant_id = ids.participant_id
      order by signups desc, ids.participant_id
      limit :limit`,
    bounds,
  );
  const rows = (result.rows as Array<Record<string, unknown>>).slice(0, PAGE.limit);
  const ids = rows.map((row) => row.participant_id as string);
  const revenue = await db.raw(
    `select r.referrer_id as participant_id, x.currency, sum(case when x.type = 'refund' then -x.amount else x.amount end) as total
       from conversions x join referrals r on r.referred_id = x.participant_id
      where x.program_id = ? and x.type in ('purchase', 'refund') and x.created_at >= ? and x.created_at < ? and r.referrer_id = any(?::uuid[])
      group by 1, 2`,
    [programId, bounds.start, bounds.end, ids],
  );
  return rows.map((row) => ({
    participant: row.external_id as string,
    clicks: Number(row.clicks),
    visitors: Number(row.visitors),
    signups: Number(row.signups),
    purchases: Number(row.purchases),
    revenue: money(
      (revenue.rows as Array<{ participant_id: string; currency: string; total: unknown }>).filter(
        (r) => r.participant_id === row.participant_id,
      ),
    ),
  }));
}

async function time(label: string, work: () => Promise<unknown>) {
  await work(); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const started = performance.now();
    await work();
    samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  return { label, median: samples[Math.floor(RUNS / 2)] as number, min: samples[0] as number, max: samples[RUNS - 1] as number };
}

/** JSON with object keys sorted, so currencies listed in another order still compare equal. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );

function sameJson(label: string, a: unknown, b: unknown) {
  const left = canonical(a);
  const right = canonical(b);
  if (left !== right) throw new Error(`${label}: rollup and raw disagree\n  rollup ${left.slice(0, 600)}\n  raw    ${right.slice(0, 600)}`);
}

async function main() {
  const schema = `bench_reports_${randomBytes(4).toString('hex')}`;
  const admin = createDb({ databaseUrl: URL, poolMax: 1 });
  await admin.raw(`create schema ${schema}`);
  const db = createDb({ databaseUrl: URL, schema, poolMax: 4 });
  try {
    log(`Reports bench on ${URL.replace(/\/\/[^@]*@/, '//…@')} (schema ${schema})`);
    await migrateLatest(db);
    const programId = await generate(db);

    const summary = await summaryReport(db, programId, YEAR);
    const raw = await rawSummary(db, programId, YEAR);
    const { from: _from, to: _to, rewards: _rewards, ...counts } = summary;
    sameJson('summary', counts, raw);
    const board = await referrersReport(db, programId, YEAR, PAGE);
    const rawBoard = await rawLeaderboard(db, programId, YEAR);
    sameJson(
      'leaderboard',
      board.data.map(({ participant, clicks, visitors, signups, purchases, revenue }) => ({
        participant,
        clicks,
        visitors,
        signups,
        purchases,
        revenue,
      })),
      rawBoard,
    );
    log(
      `  checked: rollups and raw tables agree (${summary.clicks.toLocaleString('en')} clicks, ${summary.visitors.toLocaleString('en')} visitors, ${summary.signups.toLocaleString('en')} signups, ${summary.purchases.toLocaleString('en')} purchases, revenue ${JSON.stringify(summary.revenue)}; first page of ${board.data.length} referrers)`,
    );

    const results = [
      await time('summary, rollups (summaryReport)', () => summaryReport(db, programId, YEAR)),
      await time('summary, raw tables', () => rawSummary(db, programId, YEAR)),
      await time('leaderboard, rollups (referrersReport)', () => referrersReport(db, programId, YEAR, PAGE)),
      await time('leaderboard, raw tables', () => rawLeaderboard(db, programId, YEAR)),
    ];
    const [summaryRollup, summaryRaw, leaderRollup, leaderRaw] = results as [
      (typeof results)[0],
      (typeof results)[0],
      (typeof results)[0],
      (typeof results)[0],
    ];

    log('');
    log(`Full year ${YEAR.from}..${YEAR.to}, median of ${RUNS} runs (ms):`);
    log(`  ${'query'.padEnd(40)} ${'median'.padStart(9)} ${'min'.padStart(9)} ${'max'.padStart(9)}`);
    for (const r of results)
      log(`  ${r.label.padEnd(40)} ${r.median.toFixed(1).padStart(9)} ${r.min.toFixed(1).padStart(9)} ${r.max.toFixed(1).padStart(9)}`);
    const verdict = (ms: number) => (ms < TARGET_MS ? `ok (< ${TARGET_MS} ms)` : `OVER the ${TARGET_MS} ms target`);
    log(`  rollup summary: ${verdict(summaryRollup.median)}; rollup leaderboard: ${verdict(leaderRollup.median)}`);
    log('');
    console.log(
      JSON.stringify({
        summaryMsRollup: round(summaryRollup.median),
        summaryMsRaw: round(summaryRaw.median),
        leaderboardMsRollup: round(leaderRollup.median),
        leaderboardMsRaw: round(leaderRaw.median),
        ratioSummary: round(summaryRaw.median / summaryRollup.median),
        ratioLeaderboard: round(leaderRaw.median / leaderRollup.median),
      }),
    );
  } finally {
    await db.destroy();
    if (process.env.BENCH_KEEP === '1') log(`kept schema ${schema} (BENCH_KEEP=1): drop it with "drop schema ${schema} cascade"`);
    else await admin.raw(`drop schema if exists ${schema} cascade`);
    await admin.destroy();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
