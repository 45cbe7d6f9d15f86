/**
 * Reports through the real app, on every database: a small program built through
 * the API (clicks with the publishable key, server signups and purchases in two
 * currencies, refunds, rewards by rules), then the summary, the leaderboard and the
 * time series checked against numbers worked out by hand. The rollups are bumped
 * for "today" at write time, so the API fixture is asserted on today's bucket and
 * its zero-filled neighbours; multi-day ranges and week buckets use a second
 * program whose rollup rows are inserted directly for fixed past days.
 */
import { randomBytes } from 'node:crypto';
import { applyStats, compactRewardDaily, type StatsDelta } from '../../collector/src/domain/rollups.ts';
import { beforeAll, describe, expect, it } from 'vitest';
import type {
  LeaderboardRowResponse,
  ReportReferrersResponse,
  ReportTimeseriesResponse,
  RewardBalances,
  TimeseriesPointResponse,
} from '../../shared/responses.ts';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES, type TestDb } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';
import { buildParticipant, buildProgram, type ProgramFixture } from '../helpers/factories.ts';
import { DAY_MS } from '../helpers/rows.ts';
import { click, conversion, expectError, expectOk, refund, summary, transition } from '../helpers/steps.ts';
import { clicksOf } from '../../collector/src/domain/clicks.ts';
import * as reportRollups from '../../collector/src/storage/migrations/20261207000000_report_rollups.ts';

const today = () => new Date().toISOString().slice(0, 10);
const addDays = (day: string, days: number) => new Date(Date.parse(`${day}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);
/** The Monday on or before `day` (weeks start on Monday). */
const mondayOf = (day: string) => addDays(day, -((new Date(`${day}T00:00:00Z`).getUTCDay() + 6) % 7));

const NO_REWARDS: RewardBalances = { pending: {}, approved: {}, paid: {} };
/** Rewards apart by kind (here no coupons). */
const byKind = (cash: RewardBalances, credit: RewardBalances) => ({ cash, credit, coupon: { pending: 0, approved: 0, paid: 0 } });
const zeroPoint = (date: string): TimeseriesPointResponse => ({ date, clicks: 0, visitors: 0, signups: 0, purchases: 0, revenue: {} });

const RULES = [
  // Pending for two weeks: shows up under rewards.pending.
  { id: 'signup-cash', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 500, currency: 'USD' }, holdDays: 14 },
  // Approved at once, in the purchase currency.
  { id: 'purchase-pct', on: 'purchase', to: 'referrer', reward: { kind: 'credit', percent: 10 } },
];

describe.each(DATABASES)('reports (%s)', (kind) => {
  let t: TestDb;
  let api: TestApp;
  const run = randomBytes(4).toString('hex');
  const vid = (name: string) => `vis${run}${name}`;

  useTestApp(kind, (suite) => ({ testDb: t, api } = suite));

  const get = <T>(program: ProgramFixture, path: string) => api.get<T>(path, { auth: program.secret });
  const leaderboard = async (program: ProgramFixture, query = '') =>
    expectOk(await get<ReportReferrersResponse>(program, `/v1/reports/referrers${query}`));
  const series = async (program: ProgramFixture, query = '') =>
    expectOk(await get<ReportTimeseriesResponse>(program, `/v1/reports/timeseries${query}`));

  /**
   * The hand-built fixture. Referrers A, B, D (and C, who does nothing):
   *   clicks   A: v1 v1(dup) v2 v3 → 3 clicks, 3 visitors
   *            B: v4 v4(dup) v5 v7 v8 v1(returning) → 5 clicks, 4 visitors
   *            D: v6 → 1 click, 1 visitor;  an unknown code → not counted
   *   signups  u1 (code A, v1), u2 (v2 only → A by first touch), u4 (code B, v4);
   *            not counted: a retry of u1, u3 (no referral), A referring itself, an unknown code
   *   purchases u1 10000 USD (sent twice), u2 5000 EUR, u4 2000 USD; u3 9999 USD (not referred)
   *   refunds  2500 of u1's (sent twice), all of u4's (after its reward was paid), 1000 of u3's
   *   rewards  A: 2 × 500 USD pending, 1000 USD approved − 250 refund, 500 EUR paid
   *            B: 500 USD pending, 200 USD paid, −200 USD clawback (approved)
   */
  async function buildFixture() {
    const program = await buildProgram(api, { settings: { rewardRules: RULES } });
    const A = await buildParticipant(api, program, { externalId: `alice-${run}`, email: `alice-${run}@example.com`, name: 'Alice Adams' });
    const B = await buildParticipant(api, program, { externalId: `bob-${run}`, email: `bob-${run}@example.com`, name: 'Bob Brown' });
    const C = await buildParticipant(api, program, { externalId: `carol-${run}`, name: 'Carol Idle' });
    const D = await buildParticipant(api, program, { externalId: `dave-${run}`, email: `dave-${run}@example.com` });
    const day = today();

    await click(api, program, { code: A.code, vid: vid('1') });
    await click(api, program, { code: A.code, vid: vid('1') }); // same visitor, same code, same hour: stored once
    await click(api, program, { code: A.code, vid: vid('2') });
    await click(api, program, { code: A.code, vid: vid('3') });
    await click(api, program, { code: B.code, vid: vid('4') });
    await click(api, program, { code: B.code, vid: vid('4') });
    await click(api, program, { code: B.code, vid: vid('5') });
    await click(api, program, { code: B.code, vid: vid('7') });
    await click(api, program, { code: B.code, vid: vid('8') });
    await click(api, program, { code: B.code, vid: vid('1') }); // a new click, but not a new visitor
    await click(api, program, { code: D.code, vid: vid('6') });
    await click(api, program, { code: `NOPE${run}`, vid: vid('9') }, { valid: false });

    const u1 = `u1-${run}`;
    const u2 = `u2-${run}`;
    const u3 = `u3-${run}`;
    const u4 = `u4-${run}`;
    const s1 = await conversion(api, program, {
      type: 'signup',
      eventId: `s1-${run}`,
      externalId: u1,
      referral: { code: A.code, vid: vid('1') },
    });
    expect(s1.attribution).toMatchObject({ status: 'attributed', referrer: A.externalId });
    expect(
      (await conversion(api, program, { type: 'signup', eventId: `s1-${run}`, externalId: u1, referral: { code: A.code, vid: vid('1') } }))
        .attribution.status,
    ).toBe('attributed');
    const s2 = await conversion(api, program, { type: 'signup', eventId: `s2-${run}`, externalId: u2, referral: { vid: vid('2') } });
    expect(s2.attribution).toMatchObject({ status: 'attributed', referrer: A.externalId });
    const s4 = await conversion(api, program, {
      type: 'signup',
      eventId: `s4-${run}`,
      externalId: u4,
      referral: { code: B.code, vid: vid('4') },
    });
    expect(s4.attribution).toMatchObject({ status: 'attributed', referrer: B.externalId });
    expect((await conversion(api, program, { type: 'signup', eventId: `s3-${run}`, externalId: u3 })).attribution.status).toBe('none');
    expect(
      (await conversion(api, program, { type: 'signup', eventId: `sa-${run}`, externalId: A.externalId, referral: { code: A.code } }))
        .attribution,
    ).toMatchObject({
      status: 'rejected',
      reason: 'self_referral',
    });
    expect(
      (await conversion(api, program, { type: 'signup', eventId: `s5-${run}`, externalId: `u5-${run}`, referral: { code: `NOPE${run}` } }))
        .attribution,
    ).toMatchObject({
      status: 'rejected',
      reason: 'unknown_code',
    });

    const p1 = await conversion(api, program, { type: 'purchase', eventId: `p1-${run}`, externalId: u1, amount: 10_000, currency: 'USD' });
    expect(p1.attribution.status).toBe('existing');
    expect(p1.rewards.map((r) => [r.rule, r.amount, r.currency, r.status])).toEqual([['purchase-pct', 1000, 'USD', 'approved']]);
    await conversion(api, program, { type: 'purchase', eventId: `p1-${run}`, externalId: u1, amount: 10_000, currency: 'USD' }); // retried
    const p2 = await conversion(api, program, { type: 'purchase', eventId: `p2-${run}`, externalId: u2, amount: 5000, currency: 'eur' });
    expect(p2.rewards.map((r) => [r.amount, r.currency, r.status])).toEqual([[500, 'EUR', 'approved']]);
    const p3 = await conversion(api, program, { type: 'purchase', eventId: `p3-${run}`, externalId: u4, amount: 2000, currency: 'USD' });
    expect(p3.rewards.map((r) => [r.amount, r.currency, r.status])).toEqual([[200, 'USD', 'approved']]);
    const p4 = await conversion(api, program, { type: 'purchase', eventId: `p4-${run}`, externalId: u3, amount: 9999, currency: 'USD' });
    expect(p4.rewards).toEqual([]);

    expect(expectOk(await transition(api, program, p2.rewards[0]!.id, 'pay')).reward.status).toBe('paid');
    expect(expectOk(await transition(api, program, p3.rewards[0]!.id, 'pay')).reward.status).toBe('paid');
    await refund(api, program, { eventId: `r1-${run}`, purchaseEventId: `p1-${run}`, amount: 2500 });
    await refund(api, program, { eventId: `r1-${run}`, purchaseEventId: `p1-${run}`, amount: 2500 }); // retried
    await refund(api, program, { eventId: `r2-${run}`, purchaseEventId: `p3-${run}` });
    await refund(api, program, { eventId: `r3-${run}`, purchaseEventId: `p4-${run}`, amount: 1000 });

    // The whole fixture must sit in one UTC day for the "today" assertions below.
    expect(today(), 'the fixture straddled midnight UTC; run again').toBe(day);
    return { program, A, B, C, D, day };
  }

  let fx: Awaited<ReturnType<typeof buildFixture>>;
  let expected: { A: LeaderboardRowResponse; B: LeaderboardRowResponse; D: LeaderboardRowResponse };

  beforeAll(async () => {
    fx = await buildFixture();
    const { A, B, D } = fx;
    expected = {
      A: {
        participant: A.externalId,
        email: `alice-${run}@example.com`,
        name: 'Alice Adams',
        code: A.code,
        clicks: 3,
        visitors: 3,
        signups: 2,
        clickedSignups: 2,
        purchases: 2,
        revenue: { USD: 7500, EUR: 5000 },
        conversionRate: 0.6667,
        rewards: { pending: { USD: 1000 }, approved: { USD: 750 }, paid: { EUR: 500 } },
        rewardsByKind: byKind({ ...NO_REWARDS, pending: { USD: 1000 } }, { pending: {}, approved: { USD: 750 }, paid: { EUR: 500 } }),
      },
      B: {
        participant: B.externalId,
        email: `bob-${run}@example.com`,
        name: 'Bob Brown',
        code: B.code,
        clicks: 5,
        visitors: 4,
        signups: 1,
        clickedSignups: 1,
        purchases: 1,
        revenue: {}, // 2000 bought, 2000 refunded
        conversionRate: 0.25,
        rewards: { pending: { USD: 500 }, approved: { USD: -200 }, paid: { USD: 200 } },
        rewardsByKind: byKind({ ...NO_REWARDS, pending: { USD: 500 } }, { pending: {}, approved: { USD: -200 }, paid: { USD: 200 } }),
      },
      D: {
        participant: D.externalId,
        email: `dave-${run}@example.com`,
        name: null,
        code: D.code,
        clicks: 1,
        visitors: 1,
        signups: 0,
        clickedSignups: 0,
        purchases: 0,
        revenue: {},
        conversionRate: 0,
        rewards: NO_REWARDS,
        rewardsByKind: byKind(NO_REWARDS, NO_REWARDS),
      },
    };
  });

  const TODAY_TOTALS = { clicks: 9, visitors: 8, signups: 3, purchases: 3, revenue: { USD: 7500, EUR: 5000 } };

  describe('GET /v1/reports/summary', () => {
    it('adds up clicks, visitors, attributed signups, purchases, net revenue per currency and rewards by status', async () => {
      const body = await summary(api, fx.program, `?from=${fx.day}&to=${fx.day}`);
      expect(body).toEqual({
        from: fx.day,
        to: fx.day,
        ...TODAY_TOTALS,
        clickedSignups: 3, // every attributed signup came from a visitor who clicked
        conversionRate: 0.375, // 3 attributed signups / 8 unique clicking visitors
        rewards: { pending: { USD: 1500 }, approved: { USD: 550 }, paid: { USD: 200, EUR: 500 } },
        rewardsByKind: byKind(
          { ...NO_REWARDS, pending: { USD: 1500 } },
          { pending: {}, approved: { USD: 550 }, paid: { USD: 200, EUR: 500 } },
        ),
      });
    });

    it('defaults to the last 30 days (UTC), today included', async () => {
      const body = await summary(api, fx.program);
      expect(body.to).toBe(today());
      expect(body.from).toBe(addDays(today(), -29));
      expect(body).toMatchObject({ ...TODAY_TOTALS, conversionRate: 0.375 });
      // Only `to`: the 30 days before it. Only `from`: up to today.
      expect(await summary(api, fx.program, `?to=${fx.day}`)).toMatchObject({ from: addDays(fx.day, -29), to: fx.day, clicks: 9 });
      expect(await summary(api, fx.program, `?from=${addDays(fx.day, -3)}`)).toMatchObject({
        from: addDays(fx.day, -3),
        to: today(),
        clicks: 9,
      });
    });

    it('counts nothing for ranges that leave today out', async () => {
      for (const query of [
        `?from=${addDays(fx.day, -10)}&to=${addDays(fx.day, -1)}`,
        `?from=${addDays(fx.day, 1)}&to=${addDays(fx.day, 5)}`,
        '?from=2020-01-01&to=2020-01-31',
      ]) {
        const body = await summary(api, fx.program, query);
        expect(body, query).toMatchObject({
          clicks: 0,
          visitors: 0,
          signups: 0,
          purchases: 0,
          revenue: {},
          conversionRate: 0,
          rewards: NO_REWARDS,
        });
      }
    });

    it('keeps the rollups equal to the raw tables they summarise', async () => {
      const db = t.db;
      const id = fx.program.id;
      const [stats] = await db('daily_stats')
        .where({ program_id: id })
        .sum({ clicks: 'clicks', visitors: 'visitors', signups: 'signups', purchases: 'purchases' });
      const [raw] = (
        await db.raw(
          `select (select count(*) from clicks k join codes kc on kc.id = k.code_id where kc.program_id = :id)::int as clicks,
                  (select count(distinct vid) from clicks k join codes kc on kc.id = k.code_id where kc.program_id = :id)::int as visitors,
                  (select count(*) from referrals where program_id = :id)::int as signups,
                  (select count(*) from conversions c join referrals r on r.referred_id = c.participant_id
                     where c.program_id = :id and c.type = 'purchase')::int as purchases`,
          { id },
        )
      ).rows;
      expect(Object.fromEntries(Object.entries(stats ?? {}).map(([k, v]) => [k, Number(v)]))).toEqual(raw);
      expect(raw).toEqual({ clicks: 9, visitors: 8, signups: 3, purchases: 3 });

      const revenue = await db('daily_revenue').where({ program_id: id }).select('currency').sum({ total: 'amount' }).groupBy('currency');
      const rawRevenue = (
        await db.raw(
          `select c.currency, sum(case when c.type = 'refund' then -c.amount else c.amount end)::int as total
             from conversions c join referrals r on r.referred_id = c.participant_id
            where c.program_id = ? and c.type in ('purchase', 'refund') group by c.currency`,
          [id],
        )
      ).rows as Array<{ currency: string; total: number }>;
      const asMap = (rows: Array<{ currency: string; total: unknown }>) =>
        Object.fromEntries(rows.map((r) => [r.currency, Number(r.total)]));
      expect(asMap(revenue as Array<{ currency: string; total: unknown }>)).toEqual(asMap(rawRevenue));
      expect(asMap(rawRevenue)).toEqual({ USD: 7500, EUR: 5000 });
    });

    it("keeps the program's revenue and reward rollups equal to the referrers' revenue and the reward ledger, through changes and merges", async () => {
      const db = t.db;
      const id = fx.program.id;
      const sums = async (sql: string) =>
        Object.fromEntries(
          ((await db.raw(sql, [id])).rows as Array<{ key: string; amount: unknown; grants: unknown }>).map((r) => [
            r.key,
            [Number(r.amount), Number(r.grants)],
          ]),
        );
      const ledger = () =>
        sums(`select concat_ws('/', (created_at at time zone 'UTC')::date, status, kind, currency) as key, sum(amount) as amount,
                     count(*) filter (where reverses is null) as grants
                from rewards where program_id = ? group by 1 having sum(amount) <> 0 or count(*) filter (where reverses is null) <> 0`);
      const rollup = () =>
        sums(`select concat_ws('/', day, status, kind, currency) as key, sum(amount) as amount, sum(grants) as grants
                from reward_daily where program_id = ? group by 1 having sum(amount) <> 0 or sum(grants) <> 0`);
      const rewardsNow = await ledger();
      expect(Object.keys(rewardsNow).length).toBeGreaterThan(2);
      expect(await rollup()).toEqual(rewardsNow);

      // Merged, one row per key and the same sums.
      await compactRewardDaily(db);
      const perKey = await db('reward_daily')
        .where({ program_id: id })
        .groupBy('day', 'status', 'kind', 'currency')
        .select(db.raw('count(*)::int as n'));
      expect(perKey.every((row: { n: number }) => row.n === 1)).toBe(true);
      expect(await rollup()).toEqual(rewardsNow);

      // Changes after the merge: a pending reward approved, its amount changed, then revoked.
      const pending = (await db('rewards').where({ program_id: id, status: 'pending' }).first('id')) as { id: string };
      for (const change of [{ status: 'approved' }, { amount: 123 }, { status: 'revoked' }, { amount: 500 }]) {
        await db('rewards').where({ id: pending.id }).update(change);
        expect(await rollup()).toEqual(await ledger());
      }
      expect(await ledger()).not.toEqual(rewardsNow);
      // ...and back, for the tests after this one.
      await db('rewards').where({ id: pending.id }).update({ status: 'pending' });
      expect(await rollup()).toEqual(rewardsNow);

      const revenue = async (table: string) =>
        Object.fromEntries(
          (
            (await db(table).where({ program_id: id }).select('currency').sum({ total: 'amount' }).groupBy('currency')) as Array<{
              currency: string;
              total: unknown;
            }>
          ).map((r) => [r.currency, Number(r.total)]),
        );
      expect(await revenue('program_revenue')).toEqual(await revenue('daily_revenue'));
      expect(await revenue('program_revenue')).toEqual({ USD: 7500, EUR: 5000 });

      // An installation upgrading: the migration fills both from what there is.
      const before = await summary(api, fx.program, `?from=${fx.day}&to=${fx.day}`);
      await reportRollups.down(db);
      await reportRollups.up(db);
      expect(await summary(api, fx.program, `?from=${fx.day}&to=${fx.day}`)).toEqual(before);
      expect(await rollup()).toEqual(rewardsNow);
    });

    it('refuses bad dates with invalid_query and field messages', async () => {
      for (const [query, field] of [
        ['?from=2026-13-01', 'from'],
        ['?from=abc', 'from'],
        ['?to=2026-02-30', 'to'],
        ['?to=20260201', 'to'],
        ['?from=2026-00-10&to=2026-01-10', 'from'],
      ] as const) {
        const error = expectError(await get(fx.program, `/v1/reports/summary${query}`), 400, 'invalid_query');
        expect(Object.keys(error.fields ?? {}), query).toContain(field);
      }
    });

    it('refuses a reversed range and one over 1100 days with invalid_range', async () => {
      expectError(await get(fx.program, '/v1/reports/summary?from=2026-03-10&to=2026-03-01'), 400, 'invalid_range');
      const to = '2026-06-30';
      // 1100 days, both ends included: the longest range allowed.
      expect(await summary(api, fx.program, `?from=${addDays(to, -1099)}&to=${to}`)).toMatchObject({ from: addDays(to, -1099), to });
      expectError(await get(fx.program, `/v1/reports/summary?from=${addDays(to, -1100)}&to=${to}`), 400, 'invalid_range');
      expectError(await get(fx.program, '/v1/reports/summary?from=2020-01-01&to=2026-01-01'), 400, 'invalid_range');
      // The same rules hold on the other reports.
      expectError(await get(fx.program, '/v1/reports/referrers?from=2026-03-10&to=2026-03-01'), 400, 'invalid_range');
      expectError(await get(fx.program, `/v1/reports/timeseries?from=${addDays(to, -1100)}&to=${to}`), 400, 'invalid_range');
      expectError(await get(fx.program, '/v1/reports/timeseries?from=abc'), 400, 'invalid_query');
    });

    it('needs a secret key', async () => {
      expectError(await api.get('/v1/reports/summary'), 401, 'unauthorized');
      expectError(await api.get('/v1/reports/summary', { auth: fx.program.publishable }), 401, 'unauthorized');
      expectError(await api.get('/v1/reports/referrers', { auth: 'sk_not_a_real_key' }), 401, 'unauthorized');
    });
  });

  describe('GET /v1/reports/referrers', () => {
    const range = () => `from=${fx.day}&to=${fx.day}`;

    it('lists each active referrer with their numbers, signups first by default', async () => {
      const body = await leaderboard(fx.program, `?${range()}`);
      expect(body).toEqual({ from: fx.day, to: fx.day, data: [expected.A, expected.B, expected.D], nextOffset: null, rankedAt: null });
      // Carol never did anything, and referred customers are not referrers.
      expect(body.data.map((row) => row.participant)).not.toContain(fx.C.externalId);
    });

    it('sorts by each column, both ways', async () => {
      const { A, B, D } = expected;
      const order = (rows: LeaderboardRowResponse[]) => rows.map((row) => row.participant);
      const cases: Array<[string, LeaderboardRowResponse[]]> = [
        ['clicks', [B, A, D]],
        ['visitors', [B, A, D]],
        ['signups', [A, B, D]],
        ['purchases', [A, B, D]],
        ['conversionRate', [A, B, D]],
      ];
      for (const [sort, desc] of cases) {
        expect(order((await leaderboard(fx.program, `?${range()}&sort=${sort}&order=desc`)).data), `${sort} desc`).toEqual(order(desc));
        expect(order((await leaderboard(fx.program, `?${range()}&sort=${sort}&order=asc`)).data), `${sort} asc`).toEqual(
          order([...desc].reverse()),
        );
      }
      // The default order is descending.
      expect(order((await leaderboard(fx.program, `?${range()}&sort=clicks`)).data)).toEqual(order([B, A, D]));
    });

    it('pages with limit and offset', async () => {
      const first = await leaderboard(fx.program, `?${range()}&sort=clicks&limit=2`);
      expect(first.data).toEqual([expected.B, expected.A]);
      expect(first.nextOffset).toBe(2);
      const second = await leaderboard(fx.program, `?${range()}&sort=clicks&limit=2&offset=${first.nextOffset}`);
      expect(second.data).toEqual([expected.D]);
      expect(second.nextOffset).toBeNull();
      const middle = await leaderboard(fx.program, `?${range()}&sort=clicks&limit=1&offset=1`);
      expect(middle).toMatchObject({ data: [expected.A], nextOffset: 2 });
      const exact = await leaderboard(fx.program, `?${range()}&sort=clicks&limit=3`);
      expect(exact.data).toHaveLength(3);
      expect(exact.nextOffset).toBeNull();
      expect(await leaderboard(fx.program, `?${range()}&offset=3`)).toMatchObject({ data: [], nextOffset: null });
    });

    it('is empty for a range without activity', async () => {
      expect(await leaderboard(fx.program, `?from=${addDays(fx.day, -7)}&to=${addDays(fx.day, -1)}`)).toMatchObject({
        data: [],
        nextOffset: null,
      });
    });

    it('refuses unknown sorts, orders and bad paging', async () => {
      for (const [query, field] of [
        ['sort=revenue', 'sort'],
        ['order=up', 'order'],
        ['limit=0', 'limit'],
        ['limit=501', 'limit'],
        ['limit=abc', 'limit'],
        ['offset=-1', 'offset'],
        ['from=2026-02-29', 'from'],
      ] as const) {
        const error = expectError(await get(fx.program, `/v1/reports/referrers?${query}`), 400, 'invalid_query');
        expect(Object.keys(error.fields ?? {}), query).toContain(field);
      }
    });
  });

  describe('GET /v1/reports/timeseries', () => {
    it('zero-fills the days around today', async () => {
      const from = addDays(fx.day, -6);
      const to = addDays(fx.day, 2);
      const body = await series(fx.program, `?interval=day&from=${from}&to=${to}`);
      const expectedPoints = Array.from({ length: 9 }, (_, i) => zeroPoint(addDays(from, i)));
      expectedPoints[6] = { date: fx.day, ...TODAY_TOTALS };
      expect(body).toEqual({ interval: 'day', from, to, points: expectedPoints });
    });

    it('defaults to days over the last 30 days', async () => {
      const body = await series(fx.program);
      expect(body.interval).toBe('day');
      expect(body.points).toHaveLength(30);
      expect(body.points[0]?.date).toBe(addDays(today(), -29));
      expect(body.points.at(-1)).toEqual({ date: today(), ...TODAY_TOTALS });
      expect(body.points.slice(0, -1).every((p) => p.clicks === 0 && p.signups === 0 && Object.keys(p.revenue).length === 0)).toBe(true);
    });

    it('buckets weeks from Monday', async () => {
      const from = addDays(fx.day, -20);
      const body = await series(fx.program, `?interval=week&from=${from}&to=${fx.day}`);
      const first = mondayOf(from);
      const weeks = (Date.parse(mondayOf(fx.day)) - Date.parse(first)) / (7 * DAY_MS) + 1;
      const expectedPoints = Array.from({ length: weeks }, (_, i) => zeroPoint(addDays(first, 7 * i)));
      expectedPoints[weeks - 1] = { date: mondayOf(fx.day), ...TODAY_TOTALS };
      expect(body.points).toEqual(expectedPoints);
      for (const point of body.points) expect(new Date(`${point.date}T00:00:00Z`).getUTCDay(), point.date).toBe(1);
    });

    it('refuses an unknown interval', async () => {
      const error = expectError(await get(fx.program, '/v1/reports/timeseries?interval=month'), 400, 'invalid_query');
      expect(error.fields).toHaveProperty('interval');
    });
  });

  describe('tenant isolation', () => {
    it("another program's key sees none of this program's numbers", async () => {
      const other = await buildProgram(api, { settings: { rewardRules: RULES } });
      await buildParticipant(api, other);
      const range = `?from=${fx.day}&to=${fx.day}`;
      expect(await summary(api, other, range)).toEqual({
        from: fx.day,
        to: fx.day,
        clicks: 0,
        visitors: 0,
        signups: 0,
        clickedSignups: 0,
        purchases: 0,
        revenue: {},
        conversionRate: 0,
        rewards: NO_REWARDS,
        rewardsByKind: byKind(NO_REWARDS, NO_REWARDS),
      });
      expect(await leaderboard(other, range)).toEqual({ from: fx.day, to: fx.day, data: [], nextOffset: null, rankedAt: null });
      expect((await series(other, range)).points).toEqual([zeroPoint(fx.day)]);
      // Clicking this program's code with the other program's key counts nowhere.
      const before = await summary(api, fx.program, range);
      const reply = await api.post('/v1/clicks', { key: other.publishable, code: fx.A.code, vid: vid('x1') });
      expect(expectOk(reply, 202)).toEqual({ valid: false });
      expect(await summary(api, fx.program, range)).toEqual(before);
      expect((await summary(api, other, range)).clicks).toBe(0);
    });
  });

  describe('over several days (rollup rows inserted directly)', () => {
    let program: ProgramFixture;
    let X: { id: string; externalId: string; code: string };
    let Y: { id: string; externalId: string; code: string };

    beforeAll(async () => {
      program = await buildProgram(api);
      X = await buildParticipant(api, program, { externalId: `x-${run}`, name: 'Xavier' });
      Y = await buildParticipant(api, program, { externalId: `y-${run}`, name: 'Yvonne' });
      // 2025-03-02 and 2025-03-09 are Sundays, 2025-03-03 and 2025-03-10 Mondays.
      expect(new Date('2025-03-02T00:00:00Z').getUTCDay()).toBe(0);
      expect(new Date('2025-03-10T00:00:00Z').getUTCDay()).toBe(1);
      // Through applyStats, the one writer of every rollup table, with the events' days.
      const at = (day: string) => new Date(`${day}T12:00:00Z`);
      const stat = (
        participant: { id: string },
        day: string,
        clicks: number,
        visitors: number,
        signups: number,
        purchases: number,
      ): StatsDelta => ({
        programId: program.id,
        participantId: participant.id,
        at: at(day),
        clicks,
        visitors,
        signups,
        // Every signup here from a visitor who clicked: the conversion rate's numerator.
        clickedSignups: signups,
        purchases,
      });
      const money = (participant: { id: string }, day: string, currency: string, amount: number): StatsDelta => ({
        programId: program.id,
        participantId: participant.id,
        at: at(day),
        revenue: { currency, amount },
      });
      await applyStats(t.db, [
        stat(X, '2025-02-28', 100, 100, 100, 100), // same week as 03-02, outside the ranges below
        stat(X, '2025-03-02', 10, 8, 2, 1),
        stat(X, '2025-03-03', 5, 5, 1, 0),
        stat(Y, '2025-03-09', 7, 7, 0, 0),
        stat(Y, '2025-03-10', 1, 1, 1, 1),
        stat(Y, '2025-03-11', 50, 50, 50, 50), // after the ranges below
        money(X, '2025-02-28', 'USD', 99_999),
        money(X, '2025-03-02', 'USD', 1000),
        money(X, '2025-03-03', 'USD', -200), // a refund on the next day
        money(Y, '2025-03-10', 'EUR', 300),
        money(Y, '2025-03-11', 'EUR', 77_777),
      ]);
    });

    it('leaderboard: whole months come from the monthly rollup, the edges from the daily one', async () => {
      const clicksOf = async (query: string) =>
        Object.fromEntries((await leaderboard(program, `${query}&sort=clicks`)).data.map((row) => [row.participant, row.clicks]));
      // Two whole months.
      expect(await clicksOf('?from=2025-02-01&to=2025-03-31')).toEqual({ [X.externalId]: 115, [Y.externalId]: 58 });
      // A partial month at each edge, a whole one between.
      expect(await clicksOf('?from=2025-01-15&to=2025-03-10')).toEqual({ [X.externalId]: 115, [Y.externalId]: 8 });
      // Inside one month.
      expect(await clicksOf('?from=2025-03-03&to=2025-03-09')).toEqual({ [X.externalId]: 5, [Y.externalId]: 7 });
      // A month ending exactly on `to`.
      expect(await clicksOf('?from=2025-02-28&to=2025-02-28')).toEqual({ [X.externalId]: 100 });
      // Most of a month: its total less the few days outside (X's March days all fall
      // outside, so X nets to nothing and is not listed).
      expect(await clicksOf('?from=2025-03-05&to=2025-03-30')).toEqual({ [Y.externalId]: 58 });
      expect(await clicksOf('?from=2025-02-02&to=2025-02-28')).toEqual({ [X.externalId]: 100 });
      expect(await clicksOf('?from=2025-01-02&to=2025-03-29')).toEqual({ [X.externalId]: 115, [Y.externalId]: 58 });
    });

    it('sums the days of the range, both ends included', async () => {
      expect(await summary(api, program, '?from=2025-03-02&to=2025-03-10')).toEqual({
        from: '2025-03-02',
        to: '2025-03-10',
        clicks: 23,
        visitors: 21,
        signups: 4,
        clickedSignups: 4,
        purchases: 2,
        revenue: { USD: 800, EUR: 300 },
        conversionRate: 0.1905, // 4 / 21
        rewards: NO_REWARDS,
        rewardsByKind: byKind(NO_REWARDS, NO_REWARDS),
      });
      expect(await summary(api, program, '?from=2025-03-03&to=2025-03-09')).toMatchObject({
        clicks: 12,
        visitors: 12,
        signups: 1,
        purchases: 0,
        revenue: { USD: -200 },
        conversionRate: 0.0833,
      });
      expect(await summary(api, program, '?from=2025-03-10&to=2025-03-10')).toMatchObject({
        clicks: 1,
        visitors: 1,
        signups: 1,
        purchases: 1,
        revenue: { EUR: 300 },
        conversionRate: 1,
      });
    });

    it('ranks referrers over the range', async () => {
      const body = await leaderboard(program, '?from=2025-03-02&to=2025-03-10&sort=clicks&order=asc');
      expect(
        body.data.map((row) => [row.participant, row.clicks, row.visitors, row.signups, row.purchases, row.revenue, row.conversionRate]),
      ).toEqual([
        [Y.externalId, 8, 8, 1, 1, { EUR: 300 }, 0.125],
        [X.externalId, 15, 13, 3, 1, { USD: 800 }, 0.2308],
      ]);
      expect(body.data.map((row) => [row.name, row.code])).toEqual([
        ['Yvonne', Y.code],
        ['Xavier', X.code],
      ]);
    });

    it('zero-fills days between and around the data', async () => {
      const body = await series(program, '?interval=day&from=2025-03-01&to=2025-03-04');
      expect(body.points).toEqual([
        zeroPoint('2025-03-01'),
        { date: '2025-03-02', clicks: 10, visitors: 8, signups: 2, purchases: 1, revenue: { USD: 1000 } },
        { date: '2025-03-03', clicks: 5, visitors: 5, signups: 1, purchases: 0, revenue: { USD: -200 } },
        zeroPoint('2025-03-04'),
      ]);
    });

    it('buckets weeks starting on Monday, counting only days inside the range', async () => {
      const body = await series(program, '?interval=week&from=2025-03-02&to=2025-03-10');
      expect(body).toEqual({
        interval: 'week',
        from: '2025-03-02',
        to: '2025-03-10',
        points: [
          // Sunday 03-02 belongs to the week of Monday 02-24; 02-28 is outside the range.
          { date: '2025-02-24', clicks: 10, visitors: 8, signups: 2, purchases: 1, revenue: { USD: 1000 } },
          // Monday 03-03 to Sunday 03-09.
          { date: '2025-03-03', clicks: 12, visitors: 12, signups: 1, purchases: 0, revenue: { USD: -200 } },
          // Monday 03-10 only; 03-11 is outside the range.
          { date: '2025-03-10', clicks: 1, visitors: 1, signups: 1, purchases: 1, revenue: { EUR: 300 } },
        ],
      });
      const quiet = await series(program, '?interval=week&from=2025-04-01&to=2025-04-20');
      expect(quiet.points).toEqual([zeroPoint('2025-03-31'), zeroPoint('2025-04-07'), zeroPoint('2025-04-14')]);
    });

    it('keeps these numbers away from other programs', async () => {
      expect(await summary(api, fx.program, '?from=2025-02-01&to=2025-03-31')).toMatchObject({ clicks: 0, visitors: 0, revenue: {} });
      expect((await leaderboard(fx.program, '?from=2025-02-01&to=2025-03-31')).data).toEqual([]);
    });
  });

  describe('ranking by signups or purchases (only the rollup rows that move them are read)', () => {
    // Nine referrers over two months, most with some signups and purchases, some with
    // none, one whose only signup moved away (a day of -1); ranges that take a month
    // whole, a month less its edge days, and days alone. Every page is compared with
    // the ranking worked out from the same rows.
    let program: ProgramFixture;
    const people: Array<{ id: string; externalId: string }> = [];
    const rows: Array<{ who: number; day: string; clicks: number; signups: number; purchases: number }> = [];

    beforeAll(async () => {
      program = await buildProgram(api);
      for (let i = 0; i < 9; i++) people.push(await buildParticipant(api, program, { externalId: `rank-${i}-${run}` }));
      const days = ['2025-05-01', '2025-05-02', '2025-05-15', '2025-05-30', '2025-05-31', '2025-06-01', '2025-06-03', '2025-06-20'];
      let seed = 7;
      const next = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed % n;
      };
      for (let who = 0; who < 9; who++)
        for (const day of days) {
          if (next(3) === 0) continue;
          const quiet = who >= 7; // 7 and 8: clicks only
          rows.push({ who, day, clicks: 1 + next(9), signups: quiet ? 0 : next(3), purchases: quiet ? 0 : next(2) });
        }
      rows.push(
        { who: 6, day: '2025-05-15', clicks: 0, signups: 1, purchases: 0 },
        { who: 6, day: '2025-05-16', clicks: 0, signups: -1, purchases: 0 },
      );
      await applyStats(
        t.db,
        rows.map((row) => ({
          programId: program.id,
          participantId: (people[row.who] as { id: string }).id,
          at: new Date(`${row.day}T12:00:00Z`),
          clicks: row.clicks,
          visitors: row.clicks,
          signups: row.signups,
          clickedSignups: Math.max(0, row.signups),
          purchases: row.purchases,
        })),
      );
    });

    const expected = (from: string, to: string, sort: 'signups' | 'purchases') => {
      const totals = new Map<number, { clicks: number; signups: number; purchases: number }>();
      for (const row of rows.filter((r) => r.day >= from && r.day <= to)) {
        const total = totals.get(row.who) ?? { clicks: 0, signups: 0, purchases: 0 };
        totals.set(row.who, {
          clicks: total.clicks + row.clicks,
          signups: total.signups + row.signups,
          purchases: total.purchases + row.purchases,
        });
      }
      return [...totals.entries()]
        .filter(([, total]) => total.clicks || total.signups || total.purchases)
        .map(([who, total]) => ({
          participant: (people[who] as { externalId: string }).externalId,
          id: (people[who] as { id: string }).id,
          ...total,
        }))
        .sort((a, b) => b[sort] - a[sort] || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .map(({ participant, clicks, signups, purchases }) => ({ participant, clicks, signups, purchases }));
    };

    it.each([
      ['2025-05-01', '2025-06-30'],
      ['2025-05-02', '2025-06-19'],
      ['2025-05-03', '2025-05-31'],
      ['2025-05-15', '2025-05-16'],
      ['2025-06-03', '2025-06-03'],
    ])('from %s to %s, page by page', async (from, to) => {
      for (const sort of ['signups', 'purchases'] as const) {
        const want = expected(from, to, sort);
        for (const limit of [1, 2, 3, 4, 9]) {
          const got: unknown[] = [];
          for (let offset = 0; ; offset += limit) {
            const body = await leaderboard(program, `?from=${from}&to=${to}&sort=${sort}&limit=${limit}&offset=${offset}`);
            got.push(...body.data.map(({ participant, clicks, signups, purchases }) => ({ participant, clicks, signups, purchases })));
            if (body.nextOffset === null) break;
            expect(body.nextOffset).toBe(offset + limit);
          }
          expect(got, `${sort}, limit ${limit}`).toEqual(want);
        }
      }
    });
  });

  describe('revenue', () => {
    it('does not take a refund off a referrer for a purchase that was never counted as theirs', async () => {
      // The customer buys first (no referral data), is referred by G on signing up later,
      // then the early purchase is refunded: G never had that revenue.
      const program = await buildProgram(api);
      const G = await buildParticipant(api, program);
      const customer = `early-${run}`;
      expect(
        (await conversion(api, program, { type: 'purchase', eventId: `pe-${run}`, externalId: customer, amount: 10_000, currency: 'USD' }))
          .attribution.status,
      ).toBe('none');
      expect(
        (await conversion(api, program, { type: 'signup', eventId: `se-${run}`, externalId: customer, referral: { code: G.code } }))
          .attribution,
      ).toMatchObject({
        status: 'attributed',
        referrer: G.externalId,
      });
      await refund(api, program, { eventId: `re-${run}`, purchaseEventId: `pe-${run}` });
      const day = today();
      const body = await summary(api, program, `?from=${day}&to=${day}`);
      expect({ signups: body.signups, purchases: body.purchases, revenue: body.revenue }).toEqual({
        signups: 1,
        purchases: 0,
        revenue: {},
      });
      const [row] = (await leaderboard(program, `?from=${day}&to=${day}`)).data;
      expect(row?.revenue).toEqual({});
    });

    it('takes a refund off the referrer whose purchase it was', async () => {
      const program = await buildProgram(api);
      const G = await buildParticipant(api, program);
      const customer = `later-${run}`;
      await conversion(api, program, { type: 'signup', eventId: `sl-${run}`, externalId: customer, referral: { code: G.code } });
      await conversion(api, program, { type: 'purchase', eventId: `pl-${run}`, externalId: customer, amount: 4200, currency: 'GBP' });
      await refund(api, program, { eventId: `rl1-${run}`, purchaseEventId: `pl-${run}`, amount: 1000 });
      await refund(api, program, { eventId: `rl2-${run}`, purchaseEventId: `pl-${run}`, amount: 200 });
      const day = today();
      const body = await summary(api, program, `?from=${day}&to=${day}`);
      expect({ signups: body.signups, purchases: body.purchases, revenue: body.revenue }).toEqual({
        signups: 1,
        purchases: 1,
        revenue: { GBP: 3000 },
      });
      expect((await series(program, `?from=${day}&to=${day}`)).points).toEqual([
        { date: day, clicks: 0, visitors: 0, signups: 1, purchases: 1, revenue: { GBP: 3000 } },
      ]);
    });
  });

  describe('visitors', () => {
    it('does not count a returning visitor again when they come back through a redirect link', async () => {
      // v first clicks E's code (a new visitor), then follows F's /r/ link: that click has no
      // visitor id yet, and the snippet's click on landing (same code, same IP) claims it.
      const program = await buildProgram(api);
      const E = await buildParticipant(api, program);
      const F = await buildParticipant(api, program);
      const visitor = vid('rv');
      await click(api, program, { code: E.code, vid: visitor });
      const redirect = await api.get(`/r/${F.code}`);
      expect(redirect.status).toBe(302);
      await click(api, program, { code: F.code, vid: visitor });
      const raw = await clicksOf(t.db, program.id).orderBy('k.id').select('k.vid');
      expect(raw.map((row) => row.vid)).toEqual([visitor, visitor]); // two clicks, one visitor
      const body = await summary(api, program, `?from=${today()}&to=${today()}`);
      expect({ clicks: body.clicks, visitors: body.visitors }).toEqual({ clicks: 2, visitors: 1 });
    });

    it('counts one visitor and one click per code when the same visitor clicks concurrently', async () => {
      // On PGlite requests run one at a time; on PostgreSQL they race.
      const program = await buildProgram(api);
      const E = await buildParticipant(api, program);
      const F = await buildParticipant(api, program);
      const rounds = 4;
      for (let round = 0; round < rounds; round++) {
        const visitor = vid(`cc${round}`);
        const replies = await Promise.all(
          [E.code, F.code, E.code, F.code, E.code, F.code].map((code) =>
            api.post('/v1/clicks', { key: program.publishable, code, vid: visitor }),
          ),
        );
        for (const reply of replies) expect(reply.status, reply.text).toBe(202);
      }
      const [raw] = await clicksOf(t.db, program.id).count({ clicks: '*' }).countDistinct({ visitors: 'k.vid' });
      const body = await summary(api, program, `?from=${today()}&to=${today()}`);
      expect({
        raw: { clicks: Number(raw?.clicks), visitors: Number(raw?.visitors) },
        rollup: { clicks: body.clicks, visitors: body.visitors },
      }).toEqual({
        raw: { clicks: 2 * rounds, visitors: rounds },
        rollup: { clicks: 2 * rounds, visitors: rounds },
      });
    });

    it('counts a browser signup once when the server confirms it', async () => {
      const program = await buildProgram(api);
      const E = await buildParticipant(api, program);
      const visitor = vid('bs');
      const customer = `bs-${run}`;
      await click(api, program, { code: E.code, vid: visitor });
      const event = await api.post('/v1/events', {
        key: program.publishable,
        type: 'signup',
        eventId: `bs-${run}`,
        vid: visitor,
        code: E.code,
        user: { id: customer },
      });
      expect(event.status, event.text).toBe(202);
      const confirmed = await conversion(api, program, {
        type: 'signup',
        eventId: `bs-${run}`,
        externalId: customer,
        referral: { code: E.code, vid: visitor },
      });
      expect(confirmed.attribution).toMatchObject({ status: 'attributed', referrer: E.externalId });
      const body = await summary(api, program, `?from=${today()}&to=${today()}`);
      expect({ clicks: body.clicks, visitors: body.visitors, signups: body.signups, conversionRate: body.conversionRate }).toEqual({
        clicks: 1,
        visitors: 1,
        signups: 1,
        conversionRate: 1,
      });
    });

    it('counts a first visit through a redirect link once', async () => {
      const program = await buildProgram(api);
      const E = await buildParticipant(api, program);
      expect((await api.get(`/r/${E.code}`)).status).toBe(302);
      await click(api, program, { code: E.code, vid: vid('rw') });
      const body = await summary(api, program, `?from=${today()}&to=${today()}`);
      expect({ clicks: body.clicks, visitors: body.visitors }).toEqual({ clicks: 1, visitors: 1 });
    });
  });
});
