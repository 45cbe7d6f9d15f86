/**
 * The rewards engine through the real app, on every database: each rule option,
 * holds and the release job (function and CLI), browser rewards waiting for the
 * server's confirmation, status transitions with their audit trail, the rewards
 * list, balances, and the DESIGN "Done means" program end to end.
 */
import { describe, expect, it } from 'vitest';
import { releaseDueRewards } from '../../collector/src/domain/rewards.ts';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES, type TestDb } from '../helpers/databases.ts';
import { runCli } from '../helpers/processes.ts';
import { useTestApp } from '../helpers/suite.ts';
import { buildParticipant, buildProgram, type ProgramFixture, vidFor } from '../helpers/factories.ts';
import {
  balancesOf,
  browserEvent,
  expectError,
  expectOk,
  listAllRewards,
  serverPurchase,
  serverSignup,
  transition,
} from '../helpers/steps.ts';
import { DAY_MS, backdateReferral, makeDue, secretKeyId, transitionsOf } from '../helpers/rows.ts';
import type { RewardResponse } from '../../shared/responses.ts';

type Rule = Record<string, unknown>;

/** Compact view of rewards for exact comparisons: [rule, participant, amount, currency, status]. */
const byJson = (a: unknown, b: unknown) => {
  const [x, y] = [JSON.stringify(a), JSON.stringify(b)];
  return x < y ? -1 : x > y ? 1 : 0;
};
const brief = (rewards: RewardResponse[]) =>
  rewards.map((r) => [r.rule, r.participant, r.amount, r.currency, r.status] as const).sort(byJson);

const near = (iso: string, expectedMs: number, toleranceMs = 60_000) => {
  expect(Math.abs(Date.parse(iso) - expectedMs), `${iso} vs ${new Date(expectedMs).toISOString()}`).toBeLessThan(toleranceMs);
};

describe.each(DATABASES)('rewards (%s)', (kind) => {
  let t: TestDb;
  let api: TestApp;
  useTestApp(kind, (suite) => ({ testDb: t, api } = suite));

  const program = (rewardRules: Rule[], settings: Record<string, unknown> = {}) =>
    buildProgram(api, { settings: { rewardRules, ...settings } });
  const rewardsOf = (p: ProgramFixture, participant: string) => listAllRewards(api, p, { participant });

  describe('rules', () => {
    it('pays fixed rewards to the referrer, the referee or both on an attributed signup', async () => {
      const p = await program([
        { id: 'to-referrer', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 700, currency: 'USD' } },
        { id: 'to-referee', on: 'signup', to: 'referee', reward: { kind: 'coupon', coupon: 'WELCOME10' } },
        { id: 'to-both', on: 'signup', to: 'both', reward: { kind: 'credit', amount: 250, currency: 'eur' } },
        { id: 'on-purchase', on: 'purchase', to: 'both', reward: { kind: 'credit', amount: 1, currency: 'USD' } },
      ]);
      const alice = await buildParticipant(api, p, { externalId: 'alice' });
      const answer = await serverSignup(api, p, 'bob', alice.code);
      expect(answer.attribution).toMatchObject({ status: 'attributed', referrer: 'alice' });
      expect(brief(answer.rewards)).toEqual(
        brief([
          { rule: 'to-referrer', participant: 'alice', amount: 700, currency: 'USD', status: 'approved' },
          { rule: 'to-referee', participant: 'bob', amount: 0, currency: null, status: 'approved' },
          { rule: 'to-both', participant: 'alice', amount: 250, currency: 'EUR', status: 'approved' },
          { rule: 'to-both', participant: 'bob', amount: 250, currency: 'EUR', status: 'approved' },
        ] as RewardResponse[]),
      );
      for (const reward of answer.rewards) {
        expect(reward).toMatchObject({ eventId: 'signup-bob', needsReview: false });
        expect(reward.id).toMatch(/^[0-9a-f-]{36}$/);
        expect(reward.reverses).toBeUndefined();
        near(reward.availableAt, Date.now());
      }
      expect(answer.rewards.find((r) => r.rule === 'to-referee')).toMatchObject({ kind: 'coupon', coupon: 'WELCOME10' });
      expect(answer.rewards.find((r) => r.rule === 'to-referrer')).toMatchObject({ kind: 'cash' });
      expect(answer.rewards.find((r) => r.rule === 'to-both')).toMatchObject({ kind: 'credit' });

      // The list shows the same entries, and the balances add them up per currency.
      const listed = await listAllRewards(api, p);
      expect(brief(listed)).toEqual(brief(answer.rewards));
      expect(listed.map((r) => r.id).sort()).toEqual(answer.rewards.map((r) => r.id).sort());
      expect(await balancesOf(api, p, 'alice')).toEqual({ pending: {}, approved: { USD: 700, EUR: 250 }, paid: {} });
      expect(await balancesOf(api, p, 'bob')).toEqual({ pending: {}, approved: { EUR: 250 }, paid: {} });

      // Each grant is logged as created by the system, naming its rule.
      for (const reward of answer.rewards) {
        expect(await transitionsOf(t.db, reward.id)).toMatchObject([
          { from_status: null, to_status: 'approved', actor: 'system', reason: `rule ${reward.rule}` },
        ]);
      }
    });

    it('grants nothing without an attribution', async () => {
      const p = await program([
        { id: 'signup', on: 'signup', to: 'both', reward: { kind: 'credit', amount: 100, currency: 'USD' } },
        { id: 'sale', on: 'purchase', to: 'both', reward: { kind: 'cash', percent: 10 } },
      ]);
      const alice = await buildParticipant(api, p, { externalId: 'alice', email: 'alice@example.com' });
      expect((await serverSignup(api, p, 'organic')).rewards).toEqual([]);
      const unknown = await serverSignup(api, p, 'lost', 'NOSUCHCODE');
      expect(unknown.attribution).toMatchObject({ status: 'rejected', reason: 'unknown_code' });
      expect(unknown.rewards).toEqual([]);
      // Self-referral: alice signs up with her own code.
      const self = await serverSignup(api, p, 'alice', alice.code);
      expect(self.attribution).toMatchObject({ status: 'rejected', reason: 'self_referral' });
      expect(self.rewards).toEqual([]);
      expect((await serverPurchase(api, p, 'organic', 'order-organic', 5000)).rewards).toEqual([]);
      expect(await listAllRewards(api, p)).toEqual([]);
      const [row] = await t.db('rewards').where({ program_id: p.id }).count({ n: '*' });
      expect(Number(row?.n)).toBe(0);
    });

    it('pays a percent of the purchase, floored, in the purchase currency', async () => {
      const p = await program([
        { id: 'pct', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 12.5 } },
        // A currency on a percent rule does not change it: the purchase currency wins.
        { id: 'pct-both', on: 'purchase', to: 'both', reward: { kind: 'credit', percent: 3, currency: 'USD' } },
      ]);
      const alice = await buildParticipant(api, p, { externalId: 'alice' });
      await serverSignup(api, p, 'bob', alice.code);
      const first = await serverPurchase(api, p, 'bob', 'order-1', 999, 'eur');
      expect(brief(first.rewards)).toEqual(
        brief([
          { rule: 'pct', participant: 'alice', amount: 124, currency: 'EUR', status: 'approved' }, // 124.875
          { rule: 'pct-both', participant: 'alice', amount: 29, currency: 'EUR', status: 'approved' }, // 29.97
          { rule: 'pct-both', participant: 'bob', amount: 29, currency: 'EUR', status: 'approved' },
        ] as RewardResponse[]),
      );
      for (const reward of first.rewards) expect(reward.eventId).toBe('order-1');
      // Every purchase counts without firstPurchaseOnly; a tiny purchase floors to 0.
      const second = await serverPurchase(api, p, 'bob', 'order-2', 7, 'JPY');
      expect(brief(second.rewards)).toEqual(
        brief([
          { rule: 'pct', participant: 'alice', amount: 0, currency: 'JPY', status: 'approved' },
          { rule: 'pct-both', participant: 'alice', amount: 0, currency: 'JPY', status: 'approved' },
          { rule: 'pct-both', participant: 'bob', amount: 0, currency: 'JPY', status: 'approved' },
        ] as RewardResponse[]),
      );
      const third = await serverPurchase(api, p, 'bob', 'order-3', 100_000, 'USD');
      expect(brief(third.rewards)).toEqual(
        brief([
          { rule: 'pct', participant: 'alice', amount: 12_500, currency: 'USD', status: 'approved' },
          { rule: 'pct-both', participant: 'alice', amount: 3000, currency: 'USD', status: 'approved' },
          { rule: 'pct-both', participant: 'bob', amount: 3000, currency: 'USD', status: 'approved' },
        ] as RewardResponse[]),
      );
      expect(await balancesOf(api, p, 'alice')).toEqual({ pending: {}, approved: { EUR: 153, JPY: 0, USD: 15_500 }, paid: {} });
      expect(await balancesOf(api, p, 'bob')).toEqual({ pending: {}, approved: { EUR: 29, JPY: 0, USD: 3000 }, paid: {} });
    });

    it('when.firstPurchaseOnly rewards only the customer’s first purchase', async () => {
      const p = await program([
        { id: 'first', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 20 }, when: { firstPurchaseOnly: true } },
        { id: 'every', on: 'purchase', to: 'referrer', reward: { kind: 'cash', amount: 5, currency: 'USD' } },
      ]);
      const alice = await buildParticipant(api, p, { externalId: 'alice' });
      await serverSignup(api, p, 'bob', alice.code);
      await serverSignup(api, p, 'carol', alice.code);
      expect(brief((await serverPurchase(api, p, 'bob', 'b-1', 1000)).rewards).map((r) => r[0])).toEqual(['every', 'first']);
      expect(brief((await serverPurchase(api, p, 'bob', 'b-2', 1000)).rewards).map((r) => r[0])).toEqual(['every']);
      expect(brief((await serverPurchase(api, p, 'bob', 'b-3', 9000)).rewards).map((r) => r[0])).toEqual(['every']);
      // First purchase of another referee still counts.
      const carol = await serverPurchase(api, p, 'carol', 'c-1', 4000);
      expect(carol.rewards.find((r) => r.rule === 'first')).toMatchObject({ amount: 800, participant: 'alice' });
      const firsts = await listAllRewards(api, p, { participant: 'alice' });
      expect(
        firsts
          .filter((r) => r.rule === 'first')
          .map((r) => r.eventId)
          .sort(),
      ).toEqual(['b-1', 'c-1']);
    });

    it('when.minAmount skips smaller purchases (the minimum itself counts)', async () => {
      const p = await program([
        { id: 'big', on: 'purchase', to: 'referee', reward: { kind: 'credit', amount: 300, currency: 'USD' }, when: { minAmount: 5000 } },
      ]);
      const alice = await buildParticipant(api, p, { externalId: 'alice' });
      await serverSignup(api, p, 'bob', alice.code);
      expect((await serverPurchase(api, p, 'bob', 'small', 4999)).rewards).toEqual([]);
      expect(brief((await serverPurchase(api, p, 'bob', 'exact', 5000)).rewards)).toEqual([['big', 'bob', 300, 'USD', 'approved']]);
      expect(brief((await serverPurchase(api, p, 'bob', 'large', 80_000, 'EUR')).rewards)).toEqual([
        ['big', 'bob', 300, 'USD', 'approved'],
      ]);
      expect(await balancesOf(api, p, 'bob')).toEqual({ pending: {}, approved: { USD: 600 }, paid: {} });
    });

    it('when.afterReferrals applies from the referrer’s Nth attributed referral on', async () => {
      const p = await program([
        {
          id: 'tier-signup',
          on: 'signup',
          to: 'referrer',
          reward: { kind: 'cash', amount: 5000, currency: 'USD' },
          when: { afterReferrals: 3 },
        },
        { id: 'tier-sale', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 }, when: { afterReferrals: 2 } },
      ]);
      const alice = await buildParticipant(api, p, { externalId: 'alice' });
      const bob = await buildParticipant(api, p, { externalId: 'bob' });
      const tiers: string[][] = [];
      for (const friend of ['a1', 'a2', 'a3', 'a4'])
        tiers.push((await serverSignup(api, p, friend, alice.code)).rewards.map((r) => r.rule));
      expect(tiers).toEqual([[], [], ['tier-signup'], ['tier-signup']]);
      // Another referrer's count starts from zero; an unattributed signup counts for nobody.
      await serverSignup(api, p, 'organic');
      expect((await serverSignup(api, p, 'b1', bob.code)).rewards).toEqual([]);
      expect((await serverSignup(api, p, 'b2', bob.code)).rewards).toEqual([]);
      expect((await serverSignup(api, p, 'b3', bob.code)).rewards.map((r) => r.participant)).toEqual(['bob']);
      // Purchases: the tier is the position of the buyer's referral, not the referrer's current count.
      expect((await serverPurchase(api, p, 'a1', 'a1-order', 1000)).rewards).toEqual([]);
      expect(brief((await serverPurchase(api, p, 'a2', 'a2-order', 1000)).rewards)).toEqual([
        ['tier-sale', 'alice', 100, 'USD', 'approved'],
      ]);
      expect(brief((await serverPurchase(api, p, 'a4', 'a4-order', 2000)).rewards)).toEqual([
        ['tier-sale', 'alice', 200, 'USD', 'approved'],
      ]);
      expect(await balancesOf(api, p, 'alice')).toEqual({ pending: {}, approved: { USD: 10_300 }, paid: {} });
    });

    it('when.withinDays only rewards purchases within N days of the referral', async () => {
      const p = await program([
        { id: 'year', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 20 }, when: { withinDays: 30 } },
        { id: 'always', on: 'purchase', to: 'referrer', reward: { kind: 'cash', amount: 1, currency: 'USD' } },
      ]);
      const alice = await buildParticipant(api, p, { externalId: 'alice' });
      await serverSignup(api, p, 'bob', alice.code);
      await serverSignup(api, p, 'carol', alice.code);
      expect((await serverPurchase(api, p, 'bob', 'bob-day-0', 1000)).rewards.map((r) => r.rule).sort()).toEqual(['always', 'year']);
      await backdateReferral(t.db, p.id, 'bob', 29);
      expect((await serverPurchase(api, p, 'bob', 'bob-day-29', 1000)).rewards.map((r) => r.rule).sort()).toEqual(['always', 'year']);
      await backdateReferral(t.db, p.id, 'bob', 2);
      expect((await serverPurchase(api, p, 'bob', 'bob-day-31', 1000)).rewards.map((r) => r.rule)).toEqual(['always']);
      await backdateReferral(t.db, p.id, 'carol', 400);
      expect((await serverPurchase(api, p, 'carol', 'carol-day-400', 1000)).rewards.map((r) => r.rule)).toEqual(['always']);
      const year = (await listAllRewards(api, p)).filter((r) => r.rule === 'year');
      expect(year.map((r) => r.eventId).sort()).toEqual(['bob-day-0', 'bob-day-29']);
    });

    it('cap.perReferrer stops a rule at the cap and records a cap_reached decision', async () => {
      const p = await program([
        { id: 'capped', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 1000, currency: 'USD' }, cap: { perReferrer: 2 } },
        { id: 'uncapped', on: 'signup', to: 'referee', reward: { kind: 'credit', amount: 10, currency: 'USD' } },
      ]);
      const alice = await buildParticipant(api, p, { externalId: 'alice' });
      const bob = await buildParticipant(api, p, { externalId: 'bob' });
      const rules: string[][] = [];
      for (const friend of ['f1', 'f2', 'f3', 'f4'])
        rules.push((await serverSignup(api, p, friend, alice.code)).rewards.map((r) => r.rule).sort());
      expect(rules).toEqual([['capped', 'uncapped'], ['capped', 'uncapped'], ['uncapped'], ['uncapped']]);
      // The cap is per referrer: bob starts with his own allowance.
      expect((await serverSignup(api, p, 'g1', bob.code)).rewards.map((r) => r.rule).sort()).toEqual(['capped', 'uncapped']);
      expect(await balancesOf(api, p, 'alice')).toEqual({ pending: {}, approved: { USD: 2000 }, paid: {} });

      const decisions = expectOk(await api.get('/v1/decisions?reason=cap_reached', { auth: p.secret })).data as any[];
      expect(decisions).toHaveLength(2);
      for (const decision of decisions) {
        expect(decision).toMatchObject({
          subject: 'reward',
          outcome: 'rejected',
          reason: 'cap_reached',
          referrer: 'alice',
          details: { rule: 'capped', cap: 2 },
        });
      }
      expect(decisions.map((d) => d.participant).sort()).toEqual(['f3', 'f4']);
      expect(decisions.map((d) => d.eventId).sort()).toEqual(['signup-f3', 'signup-f4']);
    });

    it('pays a rule at most once per conversion and beneficiary', async () => {
      const p = await program([
        { id: 'signup', on: 'signup', to: 'both', reward: { kind: 'credit', amount: 100, currency: 'USD' } },
        { id: 'sale', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 } },
      ]);
      const alice = await buildParticipant(api, p, { externalId: 'alice' });
      const first = await serverSignup(api, p, 'bob', alice.code);
      expect(first.rewards).toHaveLength(2);
      // The same event retried: the first answer again, nothing new.
      const retried = await serverSignup(api, p, 'bob', alice.code);
      expect(retried).toEqual(first);
      // Another signup event for the same customer is a duplicate, not a new conversion.
      const other = await serverSignup(api, p, 'bob', alice.code, 'signup-bob-again');
      expect(other.rewards.map((r) => r.id).sort()).toEqual(first.rewards.map((r) => r.id).sort());
      // A retried purchase, with or without an Idempotency-Key.
      const sale = await serverPurchase(api, p, 'bob', 'order-1', 5000);
      expect(await serverPurchase(api, p, 'bob', 'order-1', 5000)).toEqual(sale);
      const body = { type: 'purchase', eventId: 'order-2', externalId: 'bob', amount: 3000, currency: 'USD' };
      const keyed = [
        await api.post('/v1/conversions', body, { auth: p.secret, headers: { 'idempotency-key': 'k-1' } }),
        await api.post('/v1/conversions', body, { auth: p.secret, headers: { 'idempotency-key': 'k-1' } }),
        await api.post('/v1/conversions', body, { auth: p.secret }),
      ];
      for (const reply of keyed) expect(expectOk(reply).rewards).toEqual(keyed[0]?.body.rewards);

      const ledger = await listAllRewards(api, p);
      expect(brief(ledger)).toEqual(
        brief([
          { rule: 'signup', participant: 'alice', amount: 100, currency: 'USD', status: 'approved' },
          { rule: 'signup', participant: 'bob', amount: 100, currency: 'USD', status: 'approved' },
          { rule: 'sale', participant: 'alice', amount: 500, currency: 'USD', status: 'approved' },
          { rule: 'sale', participant: 'alice', amount: 300, currency: 'USD', status: 'approved' },
        ] as RewardResponse[]),
      );
      // The database itself refuses a second grant of the same rule for the same conversion and beneficiary.
      const grant = await t.db('rewards').where({ program_id: p.id, rule_id: 'sale' }).first();
      const { id: _id, created_at: _c, updated_at: _u, ...copy } = grant as Record<string, unknown>;
      await expect(t.db('rewards').insert(copy)).rejects.toMatchObject({ code: '23505' });
    });
  });

  describe('holds and release', () => {
    it('holdDays keeps a reward pending until its availableAt; releaseDueRewards approves it then', async () => {
      const p = await program([
        { id: 'held', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 20 }, holdDays: 30 },
        { id: 'short', on: 'purchase', to: 'referee', reward: { kind: 'credit', amount: 500, currency: 'USD' }, holdDays: 1 },
        { id: 'now', on: 'purchase', to: 'referee', reward: { kind: 'credit', amount: 50, currency: 'USD' }, holdDays: 0 },
      ]);
      const alice = await buildParticipant(api, p, { externalId: 'alice' });
      await serverSignup(api, p, 'bob', alice.code);
      const { rewards } = await serverPurchase(api, p, 'bob', 'order-1', 10_000);
      const byRule = Object.fromEntries(rewards.map((r) => [r.rule, r])) as Record<string, RewardResponse>;
      expect(byRule.held).toMatchObject({ status: 'pending', amount: 2000, needsReview: false });
      expect(byRule.short).toMatchObject({ status: 'pending', amount: 500, needsReview: false });
      expect(byRule.now).toMatchObject({ status: 'approved', amount: 50 });
      near(byRule.held!.availableAt, Date.parse(byRule.held!.createdAt) + 30 * DAY_MS);
      near(byRule.short!.availableAt, Date.parse(byRule.short!.createdAt) + DAY_MS);
      expect(await balancesOf(api, p, 'alice')).toEqual({ pending: { USD: 2000 }, approved: {}, paid: {} });

      // Not due yet: the release job leaves them alone.
      await releaseDueRewards(t.db);
      expect((await rewardsOf(p, 'alice'))[0]).toMatchObject({ status: 'pending' });
      // One day later: only the 1-day hold is released.
      await t
        .db('rewards')
        .where({ program_id: p.id })
        .update({ available_at: t.db.raw(`available_at - interval '1 day' - interval '1 second'`) });
      expect(await releaseDueRewards(t.db)).toBeGreaterThanOrEqual(1);
      const later = Object.fromEntries((await listAllRewards(api, p)).map((r) => [r.rule, r.status]));
      expect(later).toEqual({ held: 'pending', short: 'approved', now: 'approved' });
      expect(await transitionsOf(t.db, byRule.short!.id)).toMatchObject([
        { from_status: null, to_status: 'pending', actor: 'system', reason: 'rule short' },
        { from_status: 'pending', to_status: 'approved', actor: 'system', reason: 'hold period over' },
      ]);
      // 30 days later everything is released, once.
      await t
        .db('rewards')
        .where({ program_id: p.id })
        .update({ available_at: t.db.raw(`available_at - interval '29 days'`) });
      await releaseDueRewards(t.db);
      await releaseDueRewards(t.db);
      expect(Object.fromEntries((await listAllRewards(api, p)).map((r) => [r.rule, r.status]))).toEqual({
        held: 'approved',
        short: 'approved',
        now: 'approved',
      });
      expect((await transitionsOf(t.db, byRule.held!.id)).map((row) => row.to_status)).toEqual(['pending', 'approved']);
      expect(await balancesOf(api, p, 'alice')).toEqual({ pending: {}, approved: { USD: 2000 }, paid: {} });
      expect(await balancesOf(api, p, 'bob')).toEqual({ pending: {}, approved: { USD: 550 }, paid: {} });
    });

    // The CLI needs a database another process can open: PostgreSQL (PGlite in memory is this process's own).
    it.skipIf(kind !== 'postgres')('`referral rewards release` (CLI) approves due rewards', async () => {
      const p = await program([
        { id: 'held', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 900, currency: 'USD' }, holdDays: 14 },
      ]);
      const alice = await buildParticipant(api, p, { externalId: 'alice' });
      const due = (await serverSignup(api, p, 'bob', alice.code)).rewards[0]!;
      const notDue = (await serverSignup(api, p, 'carol', alice.code)).rewards[0]!;
      await makeDue(t.db, [due.id]);
      const schema = ((await t.db.raw('select current_schema() as s')).rows[0] as { s: string }).s;
      const url = new URL(process.env.TEST_DATABASE_URL as string);
      url.searchParams.set('options', `-c search_path=${schema}`);
      const released = await runCli(['rewards', 'release'], { DATABASE_URL: url.toString(), LOG_LEVEL: 'silent' }, 60_000);
      expect(released.code, released.stderr).toBe(0);
      expect(released.stdout).toMatch(/^Released [1-9]\d* reward\(s\)$/m);
      const statuses = Object.fromEntries((await listAllRewards(api, p)).map((r) => [r.id, r.status]));
      expect(statuses).toEqual({ [due.id]: 'approved', [notDue.id]: 'pending' });
      expect(await transitionsOf(t.db, due.id)).toMatchObject([
        { to_status: 'pending' },
        { from_status: 'pending', to_status: 'approved', actor: 'system', reason: 'hold period over' },
      ]);
    });
  });

  describe('browser events', () => {
    it('rewards from browser events stay pending for review until the server confirms the conversion', async () => {
      const p = await program([
        { id: 'signup', on: 'signup', to: 'both', reward: { kind: 'credit', amount: 1000, currency: 'USD' } },
        { id: 'sale', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 } },
        { id: 'sale-held', on: 'purchase', to: 'referee', reward: { kind: 'credit', amount: 200, currency: 'USD' }, holdDays: 5 },
      ]);
      const alice = await buildParticipant(api, p, { externalId: 'alice' });

      // A signup from the snippet (text/plain body, as sendBeacon sends it).
      await browserEvent(
        api,
        p,
        { type: 'signup', eventId: 'evt-signup-1', userId: 'bob', vid: vidFor('bob'), code: alice.code },
        { textPlain: true },
      );
      const pendingSignup = await listAllRewards(api, p);
      expect(brief(pendingSignup)).toEqual([
        ['signup', 'alice', 1000, 'USD', 'pending'],
        ['signup', 'bob', 1000, 'USD', 'pending'],
      ]);
      for (const reward of pendingSignup) expect(reward).toMatchObject({ needsReview: true, eventId: 'evt-signup-1' });
      expect(await balancesOf(api, p, 'alice')).toEqual({ pending: { USD: 1000 }, approved: {}, paid: {} });

      // The release job does not approve what needs review, even when due; a browser retry confirms nothing.
      await makeDue(
        t.db,
        pendingSignup.map((r) => r.id),
      );
      await releaseDueRewards(t.db);
      await browserEvent(api, p, { type: 'signup', eventId: 'evt-signup-1', userId: 'bob', vid: vidFor('bob'), code: alice.code });
      expect((await listAllRewards(api, p)).map((r) => [r.status, r.needsReview])).toEqual([
        ['pending', true],
        ['pending', true],
      ]);

      // The server reports the same signup: confirmed, approved at once (hold 0).
      const confirmed = await serverSignup(api, p, 'bob', alice.code, 'evt-signup-1');
      expect(confirmed.conversion).toMatchObject({ verified: true });
      expect(brief(confirmed.rewards)).toEqual([
        ['signup', 'alice', 1000, 'USD', 'approved'],
        ['signup', 'bob', 1000, 'USD', 'approved'],
      ]);
      expect(confirmed.rewards.map((r) => r.id).sort()).toEqual(pendingSignup.map((r) => r.id).sort());
      for (const reward of confirmed.rewards) {
        expect(reward.needsReview).toBe(false);
        expect(await transitionsOf(t.db, reward.id)).toMatchObject([
          { from_status: null, to_status: 'pending', actor: 'system' },
          { from_status: 'pending', to_status: 'approved', actor: 'system', reason: 'conversion confirmed' },
        ]);
      }

      // A purchase from the browser (JSON body): its event is known by the order id.
      await browserEvent(api, p, {
        type: 'purchase',
        eventId: 'evt-random-77',
        userId: 'bob',
        vid: vidFor('bob'),
        order: { id: 'order-9', amount: 4321, currency: 'usd' },
      });
      const sale = (await listAllRewards(api, p)).filter((r) => r.eventId === 'order-9');
      expect(brief(sale)).toEqual([
        ['sale', 'alice', 432, 'USD', 'pending'],
        ['sale-held', 'bob', 200, 'USD', 'pending'],
      ]);
      for (const reward of sale) expect(reward.needsReview).toBe(true);

      // The server confirms the purchase by the order id: hold 0 → approved; the held one waits for its hold only.
      const confirmedSale = await serverPurchase(api, p, 'bob', 'order-9', 4321, 'USD');
      const bySaleRule = Object.fromEntries(confirmedSale.rewards.map((r) => [r.rule, r])) as Record<string, RewardResponse>;
      expect(bySaleRule.sale).toMatchObject({ status: 'approved', needsReview: false, amount: 432 });
      expect(bySaleRule['sale-held']).toMatchObject({ status: 'pending', needsReview: false });
      near(bySaleRule['sale-held']!.availableAt, Date.parse(bySaleRule['sale-held']!.createdAt) + 5 * DAY_MS);
      expect(
        (await listAllRewards(api, p))
          .filter((r) => r.eventId === 'order-9')
          .map((r) => r.id)
          .sort(),
      ).toEqual(sale.map((r) => r.id).sort());
      await makeDue(t.db, [bySaleRule['sale-held']!.id]);
      await releaseDueRewards(t.db);
      expect((await rewardsOf(p, 'bob')).find((r) => r.rule === 'sale-held')).toMatchObject({ status: 'approved' });
      expect(await balancesOf(api, p, 'alice')).toEqual({ pending: {}, approved: { USD: 1432 }, paid: {} });
      expect(await balancesOf(api, p, 'bob')).toEqual({ pending: {}, approved: { USD: 1200 }, paid: {} });
    });

    it('someone can approve a browser reward without a server confirmation', async () => {
      const p = await program([{ id: 'signup', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 300, currency: 'USD' } }]);
      const alice = await buildParticipant(api, p, { externalId: 'alice' });
      await browserEvent(api, p, { type: 'signup', eventId: 'evt-1', userId: 'bob', vid: vidFor('bob'), code: alice.code });
      const [reward] = await listAllRewards(api, p);
      expect(reward).toMatchObject({ status: 'pending', needsReview: true });
      const approved = expectOk(await transition(api, p, reward!.id, 'approve', 'looked fine')).reward as RewardResponse;
      expect(approved).toMatchObject({ id: reward!.id, status: 'approved', needsReview: false });
      // A later server confirmation changes nothing more.
      await serverSignup(api, p, 'bob', alice.code, 'evt-1');
      expect((await transitionsOf(t.db, reward!.id)).map((row) => row.to_status)).toEqual(['pending', 'approved']);
      expect(await balancesOf(api, p, 'alice')).toEqual({ pending: {}, approved: { USD: 300 }, paid: {} });
    });
  });

  describe('transitions', () => {
    /**
     * A program whose signups leave `n` pending rewards for alice: held 7 days, then
     * due (approving before the hold ends takes `force`, see rules.test.ts) but not
     * released yet.
     */
    async function pendingRewards(n: number) {
      const p = await program([
        { id: 'hold', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 1000, currency: 'USD' }, holdDays: 7 },
      ]);
      const alice = await buildParticipant(api, p, { externalId: 'alice' });
      const ids: string[] = [];
      for (let i = 0; i < n; i++) ids.push((await serverSignup(api, p, `friend-${i}`, alice.code)).rewards[0]!.id);
      await makeDue(t.db, ids);
      return { p, ids, actor: `key:${await secretKeyId(t.db, p.id)}` };
    }

    it('moves pending → approved → paid and pending|approved → revoked, recording actor and reason', async () => {
      const { p, ids, actor } = await pendingRewards(3);
      const [a, b, c] = ids as [string, string, string];

      const approved = expectOk(await transition(api, p, a, 'approve', 'checked by ops')).reward as RewardResponse;
      expect(approved).toMatchObject({ id: a, status: 'approved', participant: 'alice', amount: 1000, rule: 'hold' });
      const paid = expectOk(await transition(api, p, a, 'pay', 'payout 42')).reward as RewardResponse;
      expect(paid).toMatchObject({ id: a, status: 'paid' });
      expect(expectOk(await transition(api, p, b, 'revoke')).reward).toMatchObject({ id: b, status: 'revoked' });
      expect(expectOk(await transition(api, p, c, 'approve')).reward).toMatchObject({ id: c, status: 'approved' });
      expect(expectOk(await transition(api, p, c, 'revoke', 'fraud')).reward).toMatchObject({ id: c, status: 'revoked' });

      const before = Date.now() - 60_000;
      const check = async (id: string, expected: Array<[string | null, string, string, string | null]>) => {
        const rows = await transitionsOf(t.db, id);
        expect(rows.map((r) => [r.from_status, r.to_status, r.actor, r.reason])).toEqual(expected);
        for (const row of rows) expect(row.created_at.getTime()).toBeGreaterThan(before);
      };
      await check(a, [
        [null, 'pending', 'system', 'rule hold'],
        ['pending', 'approved', actor, 'checked by ops'],
        ['approved', 'paid', actor, 'payout 42'],
      ]);
      await check(b, [
        [null, 'pending', 'system', 'rule hold'],
        ['pending', 'revoked', actor, null],
      ]);
      await check(c, [
        [null, 'pending', 'system', 'rule hold'],
        ['pending', 'approved', actor, null],
        ['approved', 'revoked', actor, 'fraud'],
      ]);
      expect(Object.fromEntries((await listAllRewards(api, p)).map((r) => [r.id, r.status]))).toEqual({
        [a]: 'paid',
        [b]: 'revoked',
        [c]: 'revoked',
      });
      expect(await balancesOf(api, p, 'alice')).toEqual({ pending: {}, approved: {}, paid: { USD: 1000 } });
    });

    it('refuses every other transition with 409 invalid_transition and records nothing', async () => {
      const { p, ids } = await pendingRewards(4);
      const [pending, approved, paid, revoked] = ids as [string, string, string, string];
      expectOk(await transition(api, p, approved, 'approve'));
      expectOk(await transition(api, p, paid, 'approve'));
      expectOk(await transition(api, p, paid, 'pay'));
      expectOk(await transition(api, p, revoked, 'revoke'));
      const logged = async () => Number((await t.db('reward_transitions').where({ program_id: p.id }).count({ n: '*' }))[0]?.n);
      const count = await logged();

      const refused: Array<[string, string]> = [
        [pending, 'pay'],
        [approved, 'approve'],
        [paid, 'approve'],
        [paid, 'pay'],
        [paid, 'revoke'],
        [revoked, 'approve'],
        [revoked, 'pay'],
        [revoked, 'revoke'],
      ];
      for (const [id, action] of refused) expectError(await transition(api, p, id, action, 'try'), 409, 'invalid_transition');
      expect(await logged()).toBe(count);
      expect(Object.fromEntries((await listAllRewards(api, p)).map((r) => [r.id, r.status]))).toEqual({
        [pending]: 'pending',
        [approved]: 'approved',
        [paid]: 'paid',
        [revoked]: 'revoked',
      });
      // A malformed reason is a validation error.
      expectError(await api.post(`/v1/rewards/${pending}/approve`, { reason: 42 }, { auth: p.secret }), 422, 'validation_failed');
      expect((await listAllRewards(api, p, { status: 'pending' })).map((r) => r.id)).toEqual([pending]);
    });

    it('answers 404 for unknown or malformed ids, unknown actions and another program’s rewards', async () => {
      const { p, ids } = await pendingRewards(1);
      const other = await program([]);
      const id = ids[0]!;
      for (const bad of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid', '123', "1' or '1'='1"]) {
        for (const action of ['approve', 'revoke', 'pay'])
          expectError(await transition(api, p, encodeURIComponent(bad), action), 404, 'not_found');
      }
      expectError(await transition(api, p, id, 'refund'), 404, 'not_found');
      for (const action of ['approve', 'revoke', 'pay']) expectError(await transition(api, other, id, action), 404, 'not_found');
      expect(await listAllRewards(api, other)).toEqual([]);
      expect((await listAllRewards(api, p)).map((r) => r.status)).toEqual(['pending']);
      expect((await api.post(`/v1/rewards/${id}/approve`)).status).toBe(401);
      expect((await api.post(`/v1/rewards/${id}/approve`, undefined, { auth: p.publishable })).status).toBe(401);
    });
  });

  it('lists rewards filtered by status and participant, page by page', async () => {
    const p = await program([
      { id: 'signup', on: 'signup', to: 'both', reward: { kind: 'credit', amount: 100, currency: 'USD' } },
      { id: 'sale', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 }, holdDays: 3 },
    ]);
    const alice = await buildParticipant(api, p, { externalId: 'alice' });
    for (const friend of ['f1', 'f2', 'f3']) {
      await serverSignup(api, p, friend, alice.code);
      await serverPurchase(api, p, friend, `${friend}-order`, 1000);
    }
    const all = await listAllRewards(api, p);
    expect(all).toHaveLength(9);
    expect(new Set(all.map((r) => r.id)).size).toBe(9);
    // Newest first.
    const times = all.map((r) => Date.parse(r.createdAt));
    expect([...times].sort((x, y) => y - x)).toEqual(times);
    // Small pages walk the same list, without gaps or repeats.
    for (const limit of [1, 2, 4]) expect((await listAllRewards(api, p, {}, limit)).map((r) => r.id)).toEqual(all.map((r) => r.id));
    const firstPage = expectOk(await api.get('/v1/rewards?limit=4', { auth: p.secret }));
    expect(firstPage.data).toHaveLength(4);
    expect(typeof firstPage.nextCursor).toBe('string');

    const pending = await listAllRewards(api, p, { status: 'pending' }, 2);
    expect(brief(pending)).toEqual([
      ['sale', 'alice', 100, 'USD', 'pending'],
      ['sale', 'alice', 100, 'USD', 'pending'],
      ['sale', 'alice', 100, 'USD', 'pending'],
    ]);
    expect((await listAllRewards(api, p, { status: 'approved' })).map((r) => r.rule)).toEqual(Array(6).fill('signup'));
    expect(await listAllRewards(api, p, { status: 'paid' })).toEqual([]);
    expect((await listAllRewards(api, p, { participant: 'alice' }, 2)).map((r) => r.participant)).toEqual(Array(6).fill('alice'));
    expect(brief(await listAllRewards(api, p, { participant: 'f2' }))).toEqual([['signup', 'f2', 100, 'USD', 'approved']]);
    expect((await listAllRewards(api, p, { participant: 'alice', status: 'pending' })).map((r) => r.id).sort()).toEqual(
      pending.map((r) => r.id).sort(),
    );
    expect(await listAllRewards(api, p, { participant: 'nobody' })).toEqual([]);

    expectError(await api.get('/v1/rewards?status=lost', { auth: p.secret }), 400, 'invalid_query');
    expectError(await api.get('/v1/rewards?limit=0', { auth: p.secret }), 400, 'invalid_query');
    expectError(await api.get('/v1/rewards?cursor=garbage', { auth: p.secret }), 400, 'invalid_cursor');
    expect((await api.get('/v1/rewards')).status).toBe(401);
  });

  it('Done means: 10 USD to both sides on signup, 20% of the first purchase after a 30-day hold, 50 USD from the 5th referral, at most 20 per referrer', async () => {
    const p = await program([
      {
        id: 'signup-credit',
        on: 'signup',
        to: 'both',
        reward: { kind: 'credit', amount: 1000, currency: 'USD' },
        cap: { perReferrer: 20 },
      },
      {
        id: 'first-purchase',
        on: 'purchase',
        to: 'referrer',
        reward: { kind: 'cash', percent: 20 },
        when: { firstPurchaseOnly: true },
        holdDays: 30,
        cap: { perReferrer: 20 },
      },
      {
        id: 'fifth-bonus',
        on: 'signup',
        to: 'referrer',
        reward: { kind: 'cash', amount: 5000, currency: 'USD' },
        when: { afterReferrals: 5 },
        cap: { perReferrer: 20 },
      },
    ]);
    const alice = await buildParticipant(api, p, { externalId: 'alice' });
    const bob = await buildParticipant(api, p, { externalId: 'bob' });
    const friends = Array.from({ length: 22 }, (_, i) => `f${String(i + 1).padStart(2, '0')}`);

    for (const [i, friend] of friends.entries()) {
      const n = i + 1;
      const { rewards } = await serverSignup(api, p, friend, alice.code);
      const expected: Array<[string, string, number]> = [];
      if (n <= 20) expected.push(['signup-credit', 'alice', 1000], ['signup-credit', friend, 1000]);
      if (n >= 5) expected.push(['fifth-bonus', 'alice', 5000]);
      expect(rewards.map((r) => [r.rule, r.participant, r.amount]).sort(), friend).toEqual(expected.sort());
      for (const reward of rewards) expect(reward).toMatchObject({ status: 'approved', currency: 'USD', needsReview: false });
    }
    // Bob's referrals are counted on their own.
    expect(brief((await serverSignup(api, p, 'g1', bob.code)).rewards)).toEqual([
      ['signup-credit', 'bob', 1000, 'USD', 'approved'],
      ['signup-credit', 'g1', 1000, 'USD', 'approved'],
    ]);

    const first = await serverPurchase(api, p, 'f01', 'order-f01-1', 12_345);
    expect(brief(first.rewards)).toEqual([['first-purchase', 'alice', 2469, 'USD', 'pending']]);
    near(first.rewards[0]!.availableAt, Date.parse(first.rewards[0]!.createdAt) + 30 * DAY_MS);
    expect((await serverPurchase(api, p, 'f01', 'order-f01-2', 5000)).rewards).toEqual([]);
    expect(brief((await serverPurchase(api, p, 'f02', 'order-f02-1', 999, 'EUR')).rewards)).toEqual([
      ['first-purchase', 'alice', 199, 'EUR', 'pending'],
    ]);
    expect(brief((await serverPurchase(api, p, 'f21', 'order-f21-1', 1000)).rewards)).toEqual([
      ['first-purchase', 'alice', 200, 'USD', 'pending'],
    ]);

    const capped = expectOk(await api.get('/v1/decisions?reason=cap_reached', { auth: p.secret })).data as any[];
    expect(capped.map((d) => [d.participant, d.referrer, d.details.rule]).sort()).toEqual([
      ['f21', 'alice', 'signup-credit'],
      ['f22', 'alice', 'signup-credit'],
    ]);

    // The exact ledger and balances.
    const ledger = await listAllRewards(api, p, {}, 50);
    expect(ledger).toHaveLength(20 * 2 + 18 + 3 + 2);
    const aliceLedger = ledger.filter((r) => r.participant === 'alice');
    const expectedAlice = [
      ...friends.slice(0, 20).map((f) => ['signup-credit', `signup-${f}`, 1000, 'USD', 'approved']),
      ...friends.slice(4).map((f) => ['fifth-bonus', `signup-${f}`, 5000, 'USD', 'approved']),
      ['first-purchase', 'order-f01-1', 2469, 'USD', 'pending'],
      ['first-purchase', 'order-f02-1', 199, 'EUR', 'pending'],
      ['first-purchase', 'order-f21-1', 200, 'USD', 'pending'],
    ];
    const view = (rs: RewardResponse[]) => rs.map((r) => [r.rule, r.eventId, r.amount, r.currency, r.status]).sort(byJson);
    const sorted = (rows: unknown[][]) => [...rows].sort(byJson);
    expect(view(aliceLedger)).toEqual(sorted(expectedAlice));
    expect(await balancesOf(api, p, 'alice')).toEqual({ pending: { USD: 2669, EUR: 199 }, approved: { USD: 110_000 }, paid: {} });
    for (const friend of friends.slice(0, 20)) {
      expect(ledger.filter((r) => r.participant === friend).map((r) => [r.rule, r.amount])).toEqual([['signup-credit', 1000]]);
    }
    expect(await balancesOf(api, p, 'f07')).toEqual({ pending: {}, approved: { USD: 1000 }, paid: {} });
    expect(await balancesOf(api, p, 'f21')).toEqual({ pending: {}, approved: {}, paid: {} });
    expect(ledger.filter((r) => r.participant === 'f21' || r.participant === 'f22')).toEqual([]);
    expect(await balancesOf(api, p, 'bob')).toEqual({ pending: {}, approved: { USD: 1000 }, paid: {} });

    // Before 30 days nothing is released; after 30 days the purchase rewards are approved.
    await releaseDueRewards(t.db);
    expect(await balancesOf(api, p, 'alice')).toEqual({ pending: { USD: 2669, EUR: 199 }, approved: { USD: 110_000 }, paid: {} });
    await t
      .db('rewards')
      .where({ program_id: p.id, status: 'pending' })
      .update({ available_at: t.db.raw(`available_at - interval '30 days'`) });
    await releaseDueRewards(t.db);
    expect(await balancesOf(api, p, 'alice')).toEqual({ pending: {}, approved: { USD: 112_669, EUR: 199 }, paid: {} });

    // Paying alice out empties her approved balance into paid.
    for (const reward of await listAllRewards(api, p, { participant: 'alice', status: 'approved' })) {
      expectOk(await transition(api, p, reward.id, 'pay', 'payout batch 1'));
    }
    expect(await balancesOf(api, p, 'alice')).toEqual({ pending: {}, approved: {}, paid: { USD: 112_669, EUR: 199 } });
    expect((await listAllRewards(api, p, { participant: 'alice' })).every((r) => r.status === 'paid')).toBe(true);
  });
});
