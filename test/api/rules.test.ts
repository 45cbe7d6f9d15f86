/**
 * Rules pay what their names say, on every database: the README's own example rules
 * (read from README.md, so the documentation cannot drift), the milestone
 * `atReferrals` against the tier `afterReferrals`, repeat purchases, and approvals
 * before a hold ends, which take `force` and a reason.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { expectError, expectOk, listAllRewards, serverPurchase, serverSignup, transition } from '../helpers/steps.ts';
import { transitionsOf } from '../helpers/rows.ts';
import type { RewardResponse } from '../../shared/responses.ts';
import { useTestApp } from '../helpers/suite.ts';
import type { Knex } from 'knex';

const README = readFileSync(path.resolve(import.meta.dirname, '../../README.md'), 'utf8');

/** The JSON block under the README's "## Rewards" heading. */
function readmeRules(): Array<Record<string, any>> {
  const section = README.slice(README.indexOf('## Rewards'));
  const block = /```json\n([\s\S]*?)```/.exec(section)?.[1];
  if (!block) throw new Error('README: no JSON rules under "## Rewards"');
  return JSON.parse(block) as Array<Record<string, any>>;
}

const paid = (rewards: RewardResponse[], rule: string, who?: string) =>
  rewards.filter((r) => r.rule === rule && (!who || r.participant === who) && r.status !== 'revoked');

describe.each(DATABASES)('reward rules (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  useTestApp(kind, (suite) => ({ db, api } = suite));

  const shop = (rules: unknown[]) => buildProgram(api, { settings: { rewardRules: rules } });

  it('the README’s example rules pay what their names say', async () => {
    const rules = readmeRules();
    const ids = rules.map((rule) => rule.id);
    expect(ids).toEqual(['signup-credit', 'first-purchase', 'fifth-referral-bonus', 'renewals']);
    const p = await shop(rules);
    const referrer = await buildParticipant(api, p);
    const customers: string[] = [];
    for (let i = 0; i < 6; i++) {
      const customer = uniq(`c${i}-`);
      customers.push(customer);
      await serverSignup(api, p, customer, referrer.code);
    }
    const first = customers[0] as string;
    await serverPurchase(api, p, first, uniq('order-'), 10_000);
    await serverPurchase(api, p, first, uniq('order-'), 10_000);
    await serverPurchase(api, p, first, uniq('order-'), 5_000);

    const rewards = await listAllRewards(api, p);
    // signup-credit: both sides of each of the six signups.
    expect(paid(rewards, 'signup-credit', referrer.externalId)).toHaveLength(6);
    expect(paid(rewards, 'signup-credit', first)).toHaveLength(1);
    // first-purchase: 20% of the first purchase only, and nothing else on it.
    expect(paid(rewards, 'first-purchase').map((r) => r.amount)).toEqual([2000]);
    const firstOrder = paid(rewards, 'first-purchase')[0]?.eventId;
    expect(rewards.filter((r) => r.eventId === firstOrder).map((r) => r.rule)).toEqual(['first-purchase']);
    // renewals: 20% of each later purchase.
    expect(
      paid(rewards, 'renewals')
        .map((r) => r.amount)
        .sort(),
    ).toEqual([1000, 2000]);
    // fifth-referral-bonus: once, at the fifth referral (not at the sixth).
    const bonus = paid(rewards, 'fifth-referral-bonus');
    expect(bonus.map((r) => [r.participant, r.amount])).toEqual([[referrer.externalId, 5000]]);
    expect(bonus[0]?.eventId).toBe(`signup-${customers[4]}`);
  });

  it('atReferrals pays once at the Nth referral; afterReferrals from the Nth on', async () => {
    const p = await shop([
      { id: 'at-3', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 300, currency: 'USD' }, when: { atReferrals: 3 } },
      { id: 'from-3', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 100, currency: 'USD' }, when: { afterReferrals: 3 } },
      {
        id: 'at-2-purchase',
        on: 'purchase',
        to: 'referrer',
        reward: { kind: 'cash', amount: 50, currency: 'USD' },
        when: { atReferrals: 2 },
      },
    ]);
    const referrer = await buildParticipant(api, p);
    const customers = Array.from({ length: 5 }, (_, i) => uniq(`c${i}-`));
    for (const customer of customers) await serverSignup(api, p, customer, referrer.code);
    // The second referral's customer buys twice: the milestone pays once.
    await serverPurchase(api, p, customers[1] as string, uniq('order-'), 1000);
    await serverPurchase(api, p, customers[1] as string, uniq('order-'), 1000);
    await serverPurchase(api, p, customers[3] as string, uniq('order-'), 1000);
    const rewards = await listAllRewards(api, p);
    expect(paid(rewards, 'at-3').map((r) => r.eventId)).toEqual([`signup-${customers[2]}`]);
    expect(
      paid(rewards, 'from-3')
        .map((r) => r.eventId)
        .sort(),
    ).toEqual(
      customers
        .slice(2)
        .map((c) => `signup-${c}`)
        .sort(),
    );
    expect(paid(rewards, 'at-2-purchase')).toHaveLength(1);
  });

  it('refuses contradictory conditions with field messages', async () => {
    const p = await shop([]);
    const both = await api.patch(
      '/v1/program',
      {
        settings: {
          rewardRules: [
            {
              id: 'x',
              on: 'purchase',
              to: 'referrer',
              reward: { kind: 'cash', percent: 5 },
              when: { firstPurchaseOnly: true, repeatPurchasesOnly: true },
            },
          ],
        },
      },
      { auth: p.secret },
    );
    expectError(both, 422, 'validation_failed');
    expect(both.body.error.fields['settings.rewardRules.0.when.repeatPurchasesOnly']).toMatch(/two rules/);
    const tiers = await api.patch(
      '/v1/program',
      {
        settings: {
          rewardRules: [
            {
              id: 'y',
              on: 'signup',
              to: 'referrer',
              reward: { kind: 'credit', amount: 5, currency: 'USD' },
              when: { atReferrals: 2, afterReferrals: 2 },
            },
          ],
        },
      },
      { auth: p.secret },
    );
    expectError(tiers, 422, 'validation_failed');
    expect(tiers.body.error.fields['settings.rewardRules.0.when.atReferrals']).toMatch(/not both/);
  });

  describe('approving before the hold ends', () => {
    async function heldReward(p: ProgramFixture) {
      const referrer = await buildParticipant(api, p);
      const answer = await serverSignup(api, p, uniq('c-'), referrer.code);
      const reward = answer.rewards[0] as RewardResponse;
      expect(reward.status).toBe('pending');
      expect(Date.parse(reward.availableAt)).toBeGreaterThan(Date.now());
      return reward;
    }
    const HELD = [{ id: 'held', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 700, currency: 'USD' }, holdDays: 14 }];

    it('is a 409 that says how to override', async () => {
      const p = await shop(HELD);
      const reward = await heldReward(p);
      const reply = await transition(api, p, reward.id, 'approve');
      expectError(reply, 409, 'hold_not_over');
      expect(reply.body.error.message).toContain('"force": true');
      expect((await listAllRewards(api, p))[0]?.status).toBe('pending');
    });

    it('force without a reason is a 422', async () => {
      const p = await shop(HELD);
      const reward = await heldReward(p);
      const reply = await api.post(`/v1/rewards/${reward.id}/approve`, { force: true }, { auth: p.secret });
      expectError(reply, 422, 'validation_failed');
      expect(reply.body.error.fields.reason).toMatch(/reason/);
    });

    it('force with a reason approves, and the override is recorded', async () => {
      const p = await shop(HELD);
      const reward = await heldReward(p);
      const approved = expectOk(
        await api.post(`/v1/rewards/${reward.id}/approve`, { force: true, reason: 'VIP partner, paid early' }, { auth: p.secret }),
      );
      expect(approved.reward.status).toBe('approved');
      const log = await transitionsOf(db, reward.id);
      expect(log.at(-1)).toMatchObject({ from_status: 'pending', to_status: 'approved' });
      expect(log.at(-1)?.reason).toMatch(/^forced before the hold ended \(.+\): VIP partner, paid early$/);
    });

    it('after the hold ends, approval needs no force', async () => {
      const p = await shop(HELD);
      const reward = await heldReward(p);
      await db('rewards')
        .where({ id: reward.id })
        .update({ available_at: new Date(Date.now() - 1000) });
      expect(expectOk(await transition(api, p, reward.id, 'approve')).reward.status).toBe('approved');
    });
  });
});
