/**
 * The numbers the dashboard shows, through the real app on both databases: a
 * conversion rate that stays a share, rewards apart by kind, the rule preview giving
 * what grantRewards grants, and refused origins recorded, listed and cleared.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { OriginRefusals, REFUSAL_WRITE_INTERVAL_MS } from '../../collector/src/domain/refusedOrigins.ts';
import type {
  ConversionResultResponse,
  RefusedOriginListResponse,
  ReportReferrersResponse,
  RewardResponse,
  RewardTotalsResponse,
  RulePreviewResponse,
} from '../../shared/responses.ts';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, newVid, type ProgramFixture, uniq } from '../helpers/factories.ts';
import { countRows } from '../helpers/rows.ts';
import {
  click,
  conversion,
  expectError,
  expectOk,
  expectValidation,
  listAllRewards,
  sendClick,
  summary,
  transition,
} from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';
import type { Knex } from 'knex';

const today = () => new Date().toISOString().slice(0, 10);

describe.each(DATABASES)('dashboard numbers (%s)', (kind) => {
  let api: TestApp;
  let db: Knex;
  useTestApp(kind, (suite) => ({ api, db } = suite));

  const range = () => `?from=${today()}&to=${today()}`;
  const leaderboard = async (program: ProgramFixture) =>
    expectOk(await api.get<ReportReferrersResponse>(`/v1/reports/referrers${range()}`, { auth: program.secret })).data;

  describe('conversion rate: referred signups among visitors who clicked', () => {
    let program: ProgramFixture;
    let A: { externalId: string; code: string };
    let B: { externalId: string; code: string };

    /**
     * A: visitors v1 v2 v3 v4 click; u1 signs up with code and v1, u2 with v2 only,
     *    u3…u7 by code alone (no click behind them) → 7 signups, 2 clicked, 4 visitors.
     * B: visitor v5 clicks; u8 and u9 both sign up from v5 (the second is held as a
     *    duplicate identity, still a signup) → 2 clicked signups, 1 visitor.
     */
    beforeAll(async () => {
      program = await buildProgram(api);
      A = await buildParticipant(api, program, { externalId: uniq('a-') });
      B = await buildParticipant(api, program, { externalId: uniq('b-') });
      const [v1, v2, v3, v4, v5] = [newVid(), newVid(), newVid(), newVid(), newVid()] as const;
      for (const vid of [v1, v2, v3, v4]) await click(api, program, { code: A.code, vid });
      await click(api, program, { code: B.code, vid: v5 });
      const signup = (externalId: string, referral: { code?: string; vid?: string }) =>
        conversion(api, program, { type: 'signup', externalId, referral });
      expect((await signup(uniq('u1-'), { code: A.code, vid: v1 })).attribution.referrer).toBe(A.externalId);
      expect((await signup(uniq('u2-'), { vid: v2 })).attribution.referrer).toBe(A.externalId);
      for (let i = 3; i <= 7; i++) expect((await signup(uniq(`u${i}-`), { code: A.code })).attribution.referrer).toBe(A.externalId);
      expect((await signup(uniq('u8-'), { vid: v5 })).attribution.referrer).toBe(B.externalId);
      const held = await signup(uniq('u9-'), { code: B.code, vid: v5 });
      expect(held.attribution).toMatchObject({ status: 'attributed', held: true, reason: 'duplicate_identity' });
    });

    it('counts signups by code without clicks as signups, not as converted visitors', async () => {
      const body = await summary(api, program, range());
      // Before: 9 signups / 5 visitors = 180%.
      expect(body).toMatchObject({ clicks: 5, visitors: 5, signups: 9, clickedSignups: 4, conversionRate: 0.8 });
    });

    it('gives each referrer the same rate, at most 1', async () => {
      const rows = await leaderboard(program);
      const byReferrer = Object.fromEntries(rows.map((row) => [row.participant, row]));
      expect(byReferrer[A.externalId]).toMatchObject({ visitors: 4, signups: 7, clickedSignups: 2, conversionRate: 0.5 });
      // Two customers from one visitor: 2 / 1, capped.
      expect(byReferrer[B.externalId]).toMatchObject({ visitors: 1, signups: 2, clickedSignups: 2, conversionRate: 1 });
      for (const row of rows) expect(row.conversionRate).toBeLessThanOrEqual(1);
      // Sorting by the rate uses the same definition.
      const sorted = expectOk(
        await api.get<ReportReferrersResponse>(`/v1/reports/referrers${range()}&sort=conversionRate`, { auth: program.secret }),
      );
      expect(sorted.data.map((row) => row.participant)).toEqual([B.externalId, A.externalId]);
    });

    it('keeps the rollups equal to the referrals whose visitor clicked', async () => {
      const [raw] = (
        await db.raw(
          `select count(*)::int as n from referrals r
            where r.program_id = ? and exists (select 1 from clicks k join codes kc on kc.id = k.code_id where kc.program_id = r.program_id and k.vid = r.vid)`,
          [program.id],
        )
      ).rows as Array<{ n: number }>;
      for (const table of ['daily_stats', 'participant_monthly', 'program_daily']) {
        const [sum] = await db(table).where({ program_id: program.id }).sum({ n: 'clicked_signups' });
        expect(Number(sum?.n), table).toBe(raw?.n);
      }
      expect(raw?.n).toBe(4);
    });
  });

  describe('rewards apart by kind', () => {
    it('sums cash and credit per currency and status, and counts coupons', async () => {
      const program = await buildProgram(api, {
        settings: {
          rewardRules: [
            { id: 'signup-credit', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 500, currency: 'USD' } },
            { id: 'share', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 } },
            { id: 'welcome', on: 'purchase', to: 'referee', reward: { kind: 'coupon', coupon: 'WELCOME10' }, holdDays: 14 },
          ],
        },
      });
      const R = await buildParticipant(api, program, { externalId: uniq('r-') });
      const customers = [uniq('c1-'), uniq('c2-'), uniq('c3-')];
      for (const externalId of customers) await conversion(api, program, { type: 'signup', externalId, referral: { code: R.code } });
      const buy = (externalId: string, amount: number, currency: string) =>
        conversion(api, program, { type: 'purchase', externalId, amount, currency });
      const p1 = await buy(customers[0] as string, 4900, 'USD');
      await buy(customers[1] as string, 2000, 'EUR');
      await buy(customers[2] as string, 10_000, 'USD');
      const share = p1.rewards.find((reward) => reward.rule === 'share') as RewardResponse;
      expect(expectOk(await transition(api, program, share.id, 'pay', 'paid: TEST-1')).reward.status).toBe('paid');

      const body = await summary(api, program, range());
      expect(body.rewardsByKind).toEqual({
        cash: { pending: {}, approved: { USD: 1000, EUR: 200 }, paid: { USD: 490 } },
        credit: { pending: {}, approved: { USD: 1500 }, paid: {} },
        coupon: { pending: 3, approved: 0, paid: 0 },
      });
      // The old sums stay, every kind together (what the dashboard no longer shows as one figure).
      expect(body.rewards).toEqual({ pending: {}, approved: { USD: 2500, EUR: 200 }, paid: { USD: 490 } });

      // The same figures as the ledger, kind by kind.
      const ledger = await listAllRewards(api, program);
      for (const kindName of ['cash', 'credit'] as const) {
        for (const status of ['pending', 'approved', 'paid'] as const) {
          const sums: Record<string, number> = {};
          for (const reward of ledger.filter((r) => r.kind === kindName && r.status === status && r.currency))
            sums[reward.currency as string] = (sums[reward.currency as string] ?? 0) + reward.amount;
          expect(body.rewardsByKind[kindName][status], `${kindName} ${status}`).toEqual(sums);
        }
      }
      const [row] = await leaderboard(program);
      expect(row?.rewardsByKind).toEqual({ ...body.rewardsByKind, coupon: { pending: 0, approved: 0, paid: 0 } });
    });
  });

  describe('GET /v1/rewards/totals', () => {
    it('sums the queue per participant for the filter: cash and credit apart per currency, coupons counted', async () => {
      const program = await buildProgram(api, {
        settings: {
          rewardRules: [
            { id: 'credit', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 500, currency: 'USD' } },
            { id: 'share', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 }, holdDays: 30 },
            { id: 'welcome', on: 'signup', to: 'referee', reward: { kind: 'coupon', coupon: 'HELLO' } },
          ],
        },
      });
      const P = await buildParticipant(api, program, { externalId: uniq('p-') });
      const Q = await buildParticipant(api, program, { externalId: uniq('q-') });
      const customers: string[] = [];
      for (const [referrer, n] of [
        [P, 3],
        [Q, 1],
      ] as const) {
        for (let i = 0; i < n; i++) {
          const externalId = uniq('c-');
          customers.push(externalId);
          await conversion(api, program, { type: 'signup', externalId, referral: { code: referrer.code } });
        }
      }
      const buy = (externalId: string, amount: number, currency: string) =>
        conversion(api, program, { type: 'purchase', externalId, amount, currency });
      await buy(customers[0] as string, 4900, 'USD');
      await buy(customers[1] as string, 2000, 'EUR');
      await buy(customers[3] as string, 1000, 'USD');
      const totals = async (query: string) =>
        expectOk(await api.get<RewardTotalsResponse>(`/v1/rewards/totals?${query}`, { auth: program.secret }));

      const pending = await totals('status=pending');
      expect(pending).toEqual({
        status: 'pending',
        data: [
          { participant: P.externalId, rewards: 2, cash: { USD: 490, EUR: 200 }, credit: {}, coupons: 0 },
          { participant: Q.externalId, rewards: 1, cash: { USD: 100 }, credit: {}, coupons: 0 },
        ],
        total: { participants: 2, rewards: 3, cash: { USD: 590, EUR: 200 }, credit: {}, coupons: 0 },
        truncated: false,
      });
      const approved = await totals('status=approved');
      expect(approved.data[0]).toEqual({ participant: P.externalId, rewards: 3, cash: {}, credit: { USD: 1500 }, coupons: 0 });
      expect(approved.total).toEqual({ participants: 6, rewards: 8, cash: {}, credit: { USD: 2000 }, coupons: 4 });
      // The same numbers as the queue itself.
      const queue = await listAllRewards(api, program, { status: 'approved' });
      expect(queue).toHaveLength(approved.total.rewards);
      expect(await totals(`status=approved&participant=${Q.externalId}`)).toMatchObject({
        data: [{ participant: Q.externalId, rewards: 1, credit: { USD: 500 } }],
        total: { participants: 1, rewards: 1 },
      });
      expectError(await api.get('/v1/rewards/totals?status=lost', { auth: program.secret }), 400, 'invalid_query');
    });
  });

  describe('POST /v1/program/rules/preview', () => {
    const RULES = [
      { id: 'signup-both', on: 'signup', to: 'both', reward: { kind: 'credit', amount: 500, currency: 'USD' } },
      { id: 'first-share', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 20 }, when: { firstPurchaseOnly: true } },
      {
        id: 'repeat-share',
        on: 'purchase',
        to: 'referrer',
        reward: { kind: 'cash', percent: 5 },
        when: { repeatPurchasesOnly: true },
        holdDays: 30,
      },
      {
        id: 'big-order',
        on: 'purchase',
        to: 'referee',
        reward: { kind: 'credit', amount: 1000, currency: 'EUR' },
        when: { minAmount: 5000 },
      },
      { id: 'tier-2', on: 'purchase', to: 'referrer', reward: { kind: 'cash', amount: 300, currency: 'USD' }, when: { afterReferrals: 2 } },
      { id: 'milestone-2', on: 'signup', to: 'referrer', reward: { kind: 'coupon', coupon: 'GOLD' }, when: { atReferrals: 2 } },
    ];

    type Grant = { rule: string; to: string; kind: string; amount: number; currency: string | null; status: string };
    const sorted = (grants: Grant[]) => [...grants].sort((a, b) => `${a.rule}${a.to}`.localeCompare(`${b.rule}${b.to}`));

    async function preview(program: ProgramFixture, body: unknown) {
      return expectOk(await api.post<RulePreviewResponse>('/v1/program/rules/preview', body, { auth: program.secret }));
    }

    it('pays, for each sample, exactly what grantRewards grants for a real conversion with the same facts', async () => {
      const program = await buildProgram(api, { settings: { rewardRules: RULES } });
      const R = await buildParticipant(api, program, { externalId: uniq('r-') });
      const who = (answer: ConversionResultResponse, customer: string) =>
        sorted(
          answer.rewards.map((reward) => ({
            rule: reward.rule,
            to: reward.participant === R.externalId ? 'referrer' : reward.participant === customer ? 'referee' : 'stranger',
            kind: reward.kind,
            amount: reward.amount,
            currency: reward.currency,
            status: reward.status,
          })),
        );
      const previewed = async (type: 'signup' | 'purchase', sample: Record<string, unknown>) =>
        sorted(
          (await preview(program, { sample })).rules.flatMap((rule) =>
            rule[type].rewards.map((reward) => ({
              rule: rule.rule,
              to: reward.to,
              kind: reward.kind,
              amount: reward.amount,
              currency: reward.currency,
              status: reward.status,
            })),
          ),
        );

      // Referral #1: a signup, a first purchase of $49.00, a repeat one of $10.00.
      const c1 = uniq('c1-');
      const cases: Array<{
        customer: string;
        answer: ConversionResultResponse;
        type: 'signup' | 'purchase';
        sample: Record<string, unknown>;
      }> = [];
      const s1 = await conversion(api, program, { type: 'signup', externalId: c1, referral: { code: R.code } });
      cases.push({ customer: c1, answer: s1, type: 'signup', sample: { purchaseAmount: 0, currency: 'USD', referralNumber: 1 } });
      const p1 = await conversion(api, program, { type: 'purchase', externalId: c1, amount: 4900, currency: 'USD' });
      cases.push({ customer: c1, answer: p1, type: 'purchase', sample: { purchaseAmount: 4900, currency: 'USD', referralNumber: 1 } });
      const p2 = await conversion(api, program, { type: 'purchase', externalId: c1, amount: 1000, currency: 'USD' });
      cases.push({
        customer: c1,
        answer: p2,
        type: 'purchase',
        sample: { purchaseAmount: 1000, currency: 'USD', referralNumber: 1, firstPurchase: false },
      });
      // Referral #2: the milestone, the tier, a big first order in euros.
      const c2 = uniq('c2-');
      const s2 = await conversion(api, program, { type: 'signup', externalId: c2, referral: { code: R.code } });
      cases.push({ customer: c2, answer: s2, type: 'signup', sample: { purchaseAmount: 0, currency: 'USD', referralNumber: 2 } });
      const p3 = await conversion(api, program, { type: 'purchase', externalId: c2, amount: 20_000, currency: 'EUR' });
      cases.push({ customer: c2, answer: p3, type: 'purchase', sample: { purchaseAmount: 20_000, currency: 'EUR', referralNumber: 2 } });

      for (const { customer, answer, type, sample } of cases) {
        const granted = who(answer, customer);
        expect(granted.length, `${type} ${JSON.stringify(sample)} granted something`).toBeGreaterThan(0);
        expect(await previewed(type, sample), `${type} ${JSON.stringify(sample)}`).toEqual(granted);
      }
      // The hand-computed amounts, so the comparison above compares something real.
      expect(who(p3, c2)).toEqual([
        { rule: 'big-order', to: 'referee', kind: 'credit', amount: 1000, currency: 'EUR', status: 'approved' },
        { rule: 'first-share', to: 'referrer', kind: 'cash', amount: 4000, currency: 'EUR', status: 'approved' },
        { rule: 'tier-2', to: 'referrer', kind: 'cash', amount: 300, currency: 'USD', status: 'approved' },
      ]);
      expect(who(p2, c1)).toEqual([{ rule: 'repeat-share', to: 'referrer', kind: 'cash', amount: 50, currency: 'USD', status: 'pending' }]);
    });

    it("says why a rule does not pay, previews rules that are not saved yet, and fills the sample's defaults", async () => {
      const program = await buildProgram(api, { settings: { rewardRules: RULES } });
      const body = await preview(program, { sample: { purchaseAmount: 4000, currency: 'usd' } });
      expect(body.sample).toEqual({ purchaseAmount: 4000, currency: 'USD', referralNumber: 1, firstPurchase: true, daysSinceReferral: 0 });
      const byRule = Object.fromEntries(body.rules.map((rule) => [rule.rule, rule]));
      expect(byRule['big-order']?.purchase).toMatchObject({ applies: false, reason: 'below_min_amount' });
      expect(byRule['tier-2']?.purchase).toMatchObject({ applies: false, reason: 'before_tier' });
      expect(byRule['repeat-share']?.purchase).toMatchObject({ applies: false, reason: 'not_repeat_purchase' });
      expect(byRule['signup-both']?.purchase).toMatchObject({ applies: false, reason: 'other_event', message: 'pays on signups only' });
      expect(byRule['first-share']?.purchase.rewards).toEqual([
        { to: 'referrer', kind: 'cash', amount: 800, currency: 'USD', holdDays: 0, status: 'approved' },
      ]);

      const unsaved = await preview(program, {
        rules: [{ id: 'draft', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 12.5 }, when: { withinDays: 365 } }],
        sample: { purchaseAmount: 4999, currency: 'JPY', daysSinceReferral: 400 },
      });
      expect(unsaved.rules).toEqual([
        {
          rule: 'draft',
          signup: { applies: false, reason: 'other_event', message: 'pays on purchases only', rewards: [] },
          purchase: { applies: false, reason: 'outside_window', message: 'only purchases within 365 days of the referral', rewards: [] },
        },
      ]);
    });

    it('answers field messages for a bad rule or sample, and needs a secret key', async () => {
      const program = await buildProgram(api);
      const fields = expectValidation(
        await api.post(
          '/v1/program/rules/preview',
          {
            rules: [{ id: 'x', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 100 } }],
            sample: { purchaseAmount: 49.5, currency: 'USD' },
          },
          { auth: program.secret },
        ),
      );
      expect(fields).toMatchObject({
        'rules.0.reward.currency': 'a fixed amount needs a currency',
        'sample.purchaseAmount': expect.stringContaining('integer'),
      });
      expectError(await api.post('/v1/program/rules/preview', { sample: { purchaseAmount: 1, currency: 'USD' } }), 401, 'unauthorized');
    });
  });

  describe('refused origins', () => {
    const foreign = 'https://www.shop-preview.example';

    it('records a refused origin once a minute at most, lists it, and forgets it once the origin is allowed', async () => {
      const program = await buildProgram(api);
      const R = await buildParticipant(api, program);
      const list = async () =>
        expectOk(await api.get<RefusedOriginListResponse>('/v1/program/refused-origins', { auth: program.secret })).data;
      expect(await list()).toEqual([]);

      // A flood from the wrong origin: every request refused, one write.
      for (let i = 0; i < 5; i++) {
        expectError(
          await sendClick(api, program, { code: R.code, vid: newVid() }, { headers: { origin: foreign } }),
          403,
          'origin_not_allowed',
        );
      }
      const event = { key: program.publishable, type: 'signup', eventId: uniq('e-'), vid: newVid(), user: { id: uniq('u-') } };
      expectError(await api.post('/v1/events', event, { headers: { origin: foreign } }), 403, 'origin_not_allowed');
      const [listed] = await list();
      expect(listed).toMatchObject({ origin: foreign, count: 1 });
      expect(Date.parse(listed?.lastSeen as string)).toBeGreaterThanOrEqual(Date.parse(listed?.firstSeen as string));
      expect(await countRows(db, 'refused_origins', { program_id: program.id })).toBe(1);
      // Allowed origins are never recorded, and nothing leaks to another program.
      await click(api, program, { code: R.code, vid: newVid() });
      expectOk(await sendClick(api, program, { code: R.code, vid: newVid() }, { headers: { origin: 'https://shop.example' } }), 202);
      const other = await buildProgram(api);
      expect(expectOk(await api.get('/v1/program/refused-origins', { auth: other.secret })).data).toEqual([]);

      // Adding the origin clears it.
      const saved = await api.patch('/v1/program', { settings: { origins: ['https://shop.example', foreign] } }, { auth: program.secret });
      expect(expectOk(saved).program.settings.origins).toEqual(['https://shop.example', foreign]);
      expect(await list()).toEqual([]);
      expect(await countRows(db, 'refused_origins', { program_id: program.id })).toBe(0);
      expectOk(await sendClick(api, program, { code: R.code, vid: newVid() }, { headers: { origin: foreign } }), 202);
      expect(await list()).toEqual([]);
    });

    it('keeps at most 100 origins per program, however many a client invents', async () => {
      const program = await buildProgram(api);
      const R = await buildParticipant(api, program);
      for (let i = 0; i < 104; i++) {
        const origin = `https://site-${i}.example`;
        expectError(await sendClick(api, program, { code: R.code, vid: newVid() }, { headers: { origin } }), 403, 'origin_not_allowed');
      }
      expect(await countRows(db, 'refused_origins', { program_id: program.id })).toBe(100);
    });

    it('warns and writes again after a minute, with the refusals counted in between (a clock given, not waited for)', async () => {
      const program = await buildProgram(api);
      const lines: Array<Record<string, unknown>> = [];
      const sink = new Writable({
        write(chunk, _encoding, done) {
          lines.push(JSON.parse(String(chunk)));
          done();
        },
      });
      let now = 1_000_000;
      const refusals = new OriginRefusals(db, pino({ level: 'warn' }, sink), () => now);
      const row = () => db('refused_origins').where({ program_id: program.id, origin: foreign }).first('count');
      const subject = { id: program.id, slug: program.slug };

      await refusals.note(subject, foreign);
      await refusals.note(subject, foreign);
      await refusals.note(subject, foreign);
      expect(Number((await row())?.count)).toBe(1);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: 40, origin: foreign, program: program.slug, refused: 1 });
      expect(String(lines[0]?.msg)).toContain(`not in the origins of program "${program.slug}"`);

      now += REFUSAL_WRITE_INTERVAL_MS;
      await refusals.note(subject, foreign);
      expect(Number((await row())?.count)).toBe(4);
      expect(lines).toHaveLength(2);
      expect(lines[1]).toMatchObject({ refused: 3 });

      // Not an origin a browser sends: warned about, never stored.
      await refusals.note(subject, 'null');
      expect(lines).toHaveLength(3);
      expect(await countRows(db, 'refused_origins', { program_id: program.id })).toBe(1);
    });
  });
});
