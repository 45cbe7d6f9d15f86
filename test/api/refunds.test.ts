/**
 * POST /v1/refunds through the real app, on every database: a full refund revokes
 * unpaid rewards and claws back paid ones; partial refunds pro-rate percentage
 * rewards with negative entries whose floors telescope to exactly zero; refunds are
 * idempotent on eventId and never exceed the purchase.
 */
import { describe, expect, it } from 'vitest';
import { releaseDueRewards } from '../../collector/src/domain/rewards.ts';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES, type TestDb } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';
import { buildParticipant, buildProgram, type ProgramFixture, vidFor } from '../helpers/factories.ts';
import {
  balancesOf,
  browserEvent,
  expectError,
  expectOk,
  listAllRewards,
  participant,
  refund,
  sendRefund,
  serverPurchase,
  serverSignup,
  transition,
} from '../helpers/steps.ts';
import { makeDue, transitionsOf, countRows } from '../helpers/rows.ts';
import type { RewardResponse } from '../../shared/responses.ts';

const RULES = [
  { id: 'signup', on: 'signup', to: 'both', reward: { kind: 'credit', amount: 100, currency: 'USD' } },
  { id: 'pct', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 20 } },
  { id: 'pct-held', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 5 }, holdDays: 10 },
  { id: 'fixed', on: 'purchase', to: 'referee', reward: { kind: 'credit', amount: 500, currency: 'USD' } },
];

describe.each(DATABASES)('refunds (%s)', (kind) => {
  let t: TestDb;
  let api: TestApp;
  useTestApp(kind, (suite) => ({ testDb: t, api } = suite));

  /** alice refers bob; bob buys `amount` USD as order-1. Returns the purchase's grants by rule. */
  async function setup(amount = 10_001) {
    const p = await buildProgram(api, { settings: { rewardRules: RULES } });
    const alice = await buildParticipant(api, p, { externalId: 'alice' });
    await serverSignup(api, p, 'bob', alice.code);
    const { rewards } = await serverPurchase(api, p, 'bob', 'order-1', amount);
    const grants = Object.fromEntries(rewards.map((r) => [r.rule, r])) as Record<'pct' | 'pct-held' | 'fixed', RewardResponse>;
    return { p, grants };
  }

  /** Non-revoked sum of a grant and its entries (reverses = grant id). */
  const net = (ledger: RewardResponse[], grantId: string) =>
    ledger.filter((r) => (r.id === grantId || r.reverses === grantId) && r.status !== 'revoked').reduce((sum, r) => sum + r.amount, 0);

  it('a full refund revokes the purchase’s unpaid rewards and leaves the others alone', async () => {
    const { p, grants } = await setup();
    expect([grants.pct.amount, grants['pct-held'].amount, grants.fixed.amount]).toEqual([2000, 500, 500]);
    expect([grants.pct.status, grants['pct-held'].status, grants.fixed.status]).toEqual(['approved', 'pending', 'approved']);

    const answer = await refund(api, p, { eventId: 'refund-1', purchaseEventId: 'order-1' });
    expect(answer.refund).toMatchObject({
      eventId: 'refund-1',
      purchaseEventId: 'order-1',
      amount: 10_001,
      currency: 'USD',
      refundedTotal: 10_001,
    });
    expect(answer.rewards.map((r) => [r.id, r.status, r.amount]).sort()).toEqual(
      [
        [grants.pct.id, 'revoked', 2000],
        [grants['pct-held'].id, 'revoked', 500],
        [grants.fixed.id, 'revoked', 500],
      ].sort(),
    );

    const ledger = await listAllRewards(api, p);
    expect(ledger.filter((r) => r.reverses)).toEqual([]);
    expect(ledger.filter((r) => r.rule === 'signup').map((r) => r.status)).toEqual(['approved', 'approved']);
    expect(await balancesOf(api, p, 'alice')).toEqual({ pending: {}, approved: { USD: 100 }, paid: {} });
    expect(await balancesOf(api, p, 'bob')).toEqual({ pending: {}, approved: { USD: 100 }, paid: {} });
    expect(await transitionsOf(t.db, grants.pct.id)).toMatchObject([
      { from_status: null, to_status: 'approved', actor: 'system' },
      { from_status: 'approved', to_status: 'revoked', actor: 'refund', reason: 'refund refund-1' },
    ]);
    expect((await transitionsOf(t.db, grants['pct-held'].id)).at(-1)).toMatchObject({
      from_status: 'pending',
      to_status: 'revoked',
      actor: 'refund',
    });
    // Revoked is final.
    expectError(await transition(api, p, grants.pct.id, 'approve'), 409, 'invalid_transition');
    expectError(await transition(api, p, grants.fixed.id, 'pay'), 409, 'invalid_transition');
    // The job never resurrects them.
    await makeDue(t.db, [grants['pct-held'].id]);
    await releaseDueRewards(t.db);
    expect((await listAllRewards(api, p)).find((r) => r.id === grants['pct-held'].id)?.status).toBe('revoked');
  });

  it('a partial refund pro-rates percentage rewards with negative entries; fixed rewards stay', async () => {
    const { p, grants } = await setup();
    const answer = await refund(api, p, { eventId: 'refund-1', purchaseEventId: 'order-1', amount: 3333 });
    expect(answer.refund).toMatchObject({ amount: 3333, refundedTotal: 3333, currency: 'USD' });
    const byGrant = Object.fromEntries(answer.rewards.map((r) => [r.reverses, r])) as Record<string, RewardResponse>;
    expect(Object.keys(byGrant).sort()).toEqual([grants.pct.id, grants['pct-held'].id].sort());
    // floor(2000 × 3333 / 10001) = 666; floor(500 × 3333 / 10001) = 166.
    expect(byGrant[grants.pct.id]).toMatchObject({
      amount: -666,
      status: 'approved',
      participant: 'alice',
      rule: 'pct',
      eventId: 'refund-1',
      currency: 'USD',
    });
    expect(byGrant[grants['pct-held'].id]).toMatchObject({
      amount: -166,
      status: 'pending',
      participant: 'alice',
      rule: 'pct-held',
      eventId: 'refund-1',
    });
    // The adjustment of a held reward is released with it.
    expect(byGrant[grants['pct-held'].id]!.availableAt).toBe(grants['pct-held'].availableAt);

    expect(await balancesOf(api, p, 'alice')).toEqual({ pending: { USD: 334 }, approved: { USD: 1434 }, paid: {} });
    expect(await balancesOf(api, p, 'bob')).toEqual({ pending: {}, approved: { USD: 600 }, paid: {} });
    const ledger = await listAllRewards(api, p);
    expect(ledger.find((r) => r.id === grants.pct.id)).toMatchObject({ amount: 2000, status: 'approved' });
    expect(ledger.find((r) => r.id === grants.fixed.id)).toMatchObject({ amount: 500, status: 'approved' });

    // The adjustments follow their grants: released together, paid together.
    await makeDue(t.db, [grants['pct-held'].id, byGrant[grants['pct-held'].id]!.id]);
    await releaseDueRewards(t.db);
    expectOk(await transition(api, p, grants.pct.id, 'pay', 'payout'));
    const after = Object.fromEntries((await listAllRewards(api, p)).map((r) => [r.id, r.status]));
    expect(after[byGrant[grants.pct.id]!.id]).toBe('paid');
    expect(after[byGrant[grants['pct-held'].id]!.id]).toBe('approved');
    expect(await balancesOf(api, p, 'alice')).toEqual({ pending: {}, approved: { USD: 100 + 334 }, paid: { USD: 1334 } });
  });

  it('refunding in several parts nets percentage rewards to exactly zero (floors telescope)', async () => {
    // Unpaid grants: the parts pro-rate, and the part that completes the refund revokes grant and entries.
    const unpaid = await setup();
    const parts = [3333, 3333, 3335];
    const adjustments: number[] = [];
    for (const [i, amount] of parts.entries()) {
      const answer = await refund(api, unpaid.p, { eventId: `part-${i}`, purchaseEventId: 'order-1', amount });
      adjustments.push(...answer.rewards.filter((r) => r.reverses === unpaid.grants.pct.id).map((r) => r.amount));
    }
    expect(adjustments).toEqual([-666, -667]);
    let ledger = await listAllRewards(api, unpaid.p);
    for (const grant of Object.values(unpaid.grants)) {
      expect(net(ledger, grant.id)).toBe(0);
      for (const entry of ledger.filter((r) => r.id === grant.id || r.reverses === grant.id)) expect(entry.status).toBe('revoked');
    }
    expect(await balancesOf(api, unpaid.p, 'alice')).toEqual({ pending: {}, approved: { USD: 100 }, paid: {} });

    // Paid grants: every part claws back its share; tiny parts floor to nothing until they add up.
    const paid = await setup(9_999);
    expect([paid.grants.pct.amount, paid.grants['pct-held'].amount]).toEqual([1999, 499]);
    await makeDue(t.db, [paid.grants['pct-held'].id]);
    await releaseDueRewards(t.db);
    for (const grant of Object.values(paid.grants)) expectOk(await transition(api, paid.p, grant.id, 'pay'));
    const amounts = [1, 2, 4, 1000, 2500, 3333, 1, 3158];
    expect(amounts.reduce((a, b) => a + b, 0)).toBe(9_999);
    let refunded = 0;
    for (const [i, amount] of amounts.entries()) {
      refunded += amount;
      const answer = await refund(api, paid.p, { eventId: `p-${i}`, purchaseEventId: 'order-1', amount });
      expect(answer.refund.refundedTotal).toBe(refunded);
      ledger = await listAllRewards(api, paid.p);
      for (const grant of [paid.grants.pct, paid.grants['pct-held']]) {
        // After each part, exactly floor(grant × refunded / total) has been clawed back.
        const clawed = ledger.filter((r) => r.reverses === grant.id).reduce((sum, r) => sum - r.amount, 0);
        expect(clawed, `${grant.rule} after ${refunded}`).toBe(Math.floor((grant.amount * refunded) / 9_999));
      }
    }
    for (const grant of Object.values(paid.grants)) {
      expect(ledger.find((r) => r.id === grant.id)?.status).toBe('paid');
      expect(net(ledger, grant.id), grant.rule).toBe(0);
      for (const entry of ledger.filter((r) => r.reverses === grant.id)) {
        expect(entry).toMatchObject({ status: 'approved', needsReview: false, participant: grant.participant, rule: grant.rule });
        expect(entry.amount).toBeLessThan(0);
      }
    }
    // The fixed reward is clawed back once, when the purchase is refunded in full.
    expect(ledger.filter((r) => r.reverses === paid.grants.fixed.id).map((r) => [r.amount, r.eventId])).toEqual([[-500, 'p-7']]);
    expect(await balancesOf(api, paid.p, 'alice')).toEqual({ pending: {}, approved: { USD: 100 - 1999 - 499 }, paid: { USD: 1999 + 499 } });
    expect(await balancesOf(api, paid.p, 'bob')).toEqual({ pending: {}, approved: { USD: 100 - 500 }, paid: { USD: 500 } });
  });

  it('after payout a refund claws back with a negative entry; the clawback settles on the next payout', async () => {
    const { p, grants } = await setup();
    expectOk(await transition(api, p, grants.pct.id, 'pay', 'payout 1'));
    expectOk(await transition(api, p, grants.fixed.id, 'pay', 'payout 1'));
    const answer = await refund(api, p, { eventId: 'refund-1', purchaseEventId: 'order-1' });

    const clawbacks = answer.rewards.filter((r) => r.reverses);
    expect(clawbacks.map((r) => [r.reverses, r.amount, r.status, r.participant]).sort()).toEqual(
      [
        [grants.pct.id, -2000, 'approved', 'alice'],
        [grants.fixed.id, -500, 'approved', 'bob'],
      ].sort(),
    );
    for (const clawback of clawbacks) expect(clawback).toMatchObject({ eventId: 'refund-1', needsReview: false, currency: 'USD' });
    // The unpaid held reward is revoked instead.
    expect(answer.rewards.find((r) => r.id === grants['pct-held'].id)).toMatchObject({ status: 'revoked' });
    const ledger = await listAllRewards(api, p);
    expect(ledger.find((r) => r.id === grants.pct.id)).toMatchObject({ status: 'paid', amount: 2000 });
    expect(await balancesOf(api, p, 'alice')).toEqual({ pending: {}, approved: { USD: 100 - 2000 }, paid: { USD: 2000 } });
    expect(await balancesOf(api, p, 'bob')).toEqual({ pending: {}, approved: { USD: 100 - 500 }, paid: { USD: 500 } });
    const clawback = clawbacks.find((r) => r.reverses === grants.pct.id)!;
    expect(await transitionsOf(t.db, clawback.id)).toMatchObject([
      { from_status: null, to_status: 'approved', actor: 'refund', reason: 'refund refund-1' },
    ]);

    // Settled with the next payout: paid nets to zero.
    expectOk(await transition(api, p, clawback.id, 'pay', 'payout 2'));
    expect((await balancesOf(api, p, 'alice')).paid).toEqual({ USD: 0 });
    expectError(await transition(api, p, clawback.id, 'pay'), 409, 'invalid_transition');
  });

  it('refunds are idempotent on eventId', async () => {
    const { p } = await setup();
    const first = await refund(api, p, { eventId: 'refund-1', purchaseEventId: 'order-1', amount: 5000 });
    const count = await countRows(t.db, 'rewards', { program_id: p.id });
    const balances = await balancesOf(api, p, 'alice');
    // The same refund again, even with another amount, answers the first time's result and writes nothing.
    expect(expectOk(await sendRefund(api, p, { eventId: 'refund-1', purchaseEventId: 'order-1', amount: 5000 }))).toEqual(first);
    expect(expectOk(await sendRefund(api, p, { eventId: 'refund-1', purchaseEventId: 'order-1', amount: 1 }))).toEqual(first);
    expect(expectOk(await sendRefund(api, p, { eventId: 'refund-1', purchaseEventId: 'order-1' }))).toEqual(first);
    // With an Idempotency-Key too.
    const keyed = { eventId: 'refund-2', purchaseEventId: 'order-1', amount: 1000 };
    const second = expectOk(await sendRefund(api, p, keyed, { 'idempotency-key': 'idem-1' }));
    expect(expectOk(await sendRefund(api, p, keyed, { 'idempotency-key': 'idem-1' }))).toEqual(second);
    expect(second.refund.refundedTotal).toBe(6000);
    // Sent twice at once.
    const twice = await Promise.all(
      [0, 1].map(() => sendRefund(api, p, { eventId: 'refund-3', purchaseEventId: 'order-1', amount: 2000 })),
    );
    for (const reply of twice) expectOk(reply);
    expect(twice[0]!.body).toEqual(twice[1]!.body);
    expect(twice[0]!.body.refund.refundedTotal).toBe(8000);

    expect(Number((await t.db('conversions').where({ program_id: p.id, type: 'refund' }).count({ n: '*' }))[0]?.n)).toBe(3);
    expect(await countRows(t.db, 'rewards', { program_id: p.id })).toBe(count + 2 * 2);
    const ledger = await listAllRewards(api, p);
    expect(ledger.filter((r) => r.eventId === 'refund-1')).toHaveLength(2);
    expect(ledger.filter((r) => r.eventId === 'refund-3')).toHaveLength(2);
    // floor(2000 × 8000 / 10001) = 1599 clawed so far.
    expect(-ledger.filter((r) => r.rule === 'pct' && r.reverses).reduce((s, r) => s + r.amount, 0)).toBe(1599);
    expect(balances.approved.USD).toBe(2100 - 999);
  });

  it('an unknown purchase is a 404', async () => {
    const { p } = await setup();
    const other = await setup();
    expectError(await sendRefund(api, p, { eventId: 'refund-1', purchaseEventId: 'no-such-order' }), 404, 'not_found');
    // A signup's eventId is not a purchase.
    expectError(await sendRefund(api, p, { eventId: 'refund-2', purchaseEventId: 'signup-bob' }), 404, 'not_found');
    // Another program's purchase is not found either, and stays untouched.
    const before = await listAllRewards(api, other.p);
    const alien = await buildProgram(api, { settings: { rewardRules: RULES } });
    expectError(await sendRefund(api, alien, { eventId: 'refund-3', purchaseEventId: 'order-1' }), 404, 'not_found');
    expect(await listAllRewards(api, other.p)).toEqual(before);
    expect(
      Number((await t.db('conversions').where({ type: 'refund' }).whereIn('program_id', [p.id, alien.id]).count({ n: '*' }))[0]?.n),
    ).toBe(0);
    // Validation.
    expectError(await sendRefund(api, p, { eventId: 'refund-4' }), 422, 'validation_failed');
    expectError(await sendRefund(api, p, { eventId: 'refund-4', purchaseEventId: 'order-1', amount: -5 }), 422, 'validation_failed');
    expectError(await sendRefund(api, p, { eventId: 'refund-4', purchaseEventId: 'order-1', amount: 1.5 }), 422, 'validation_failed');
    expect((await api.post('/v1/refunds', { eventId: 'refund-4', purchaseEventId: 'order-1' })).status).toBe(401);
  });

  it('refunding more than is left is a 422 refund_exceeds_purchase and changes nothing', async () => {
    const { p, grants } = await setup();
    const count = await countRows(t.db, 'rewards', { program_id: p.id });
    const tooMuch = await sendRefund(api, p, { eventId: 'r-1', purchaseEventId: 'order-1', amount: 10_002 });
    expectError(tooMuch, 422, 'refund_exceeds_purchase');
    expect(Object.keys(tooMuch.body.error.fields ?? {})).toEqual(['amount']);
    expectError(await sendRefund(api, p, { eventId: 'r-1', purchaseEventId: 'order-1', amount: 0 }), 422, 'refund_exceeds_purchase');
    expect(await countRows(t.db, 'rewards', { program_id: p.id })).toBe(count);

    expectOk(await sendRefund(api, p, { eventId: 'r-2', purchaseEventId: 'order-1', amount: 6000 }));
    expectError(await sendRefund(api, p, { eventId: 'r-3', purchaseEventId: 'order-1', amount: 4002 }), 422, 'refund_exceeds_purchase');
    const rest = await refund(api, p, { eventId: 'r-3', purchaseEventId: 'order-1', amount: 4001 });
    expect(rest.refund.refundedTotal).toBe(10_001);
    // Nothing is left: neither a full refund nor a single unit.
    expectError(await sendRefund(api, p, { eventId: 'r-4', purchaseEventId: 'order-1' }), 422, 'refund_exceeds_purchase');
    expectError(await sendRefund(api, p, { eventId: 'r-4', purchaseEventId: 'order-1', amount: 1 }), 422, 'refund_exceeds_purchase');
    // A rejected eventId was not consumed: it is still free (and still too much).
    expectError(await sendRefund(api, p, { eventId: 'r-1', purchaseEventId: 'order-1', amount: 1 }), 422, 'refund_exceeds_purchase');
    expect(Number((await t.db('conversions').where({ program_id: p.id, type: 'refund' }).count({ n: '*' }))[0]?.n)).toBe(2);
    const ledger = await listAllRewards(api, p);
    for (const grant of Object.values(grants)) expect(net(ledger, grant.id)).toBe(0);
  });

  it('concurrent partial refunds never add up to more than the purchase', async () => {
    const { p, grants } = await setup();
    // Six refunds of 3000 at once on a 10001 purchase: three fit, three must be refused.
    const replies = await Promise.all(
      Array.from({ length: 6 }, (_, i) => sendRefund(api, p, { eventId: `c-${i}`, purchaseEventId: 'order-1', amount: 3000 })),
    );
    const statuses = replies.map((r) => r.status).sort();
    expect(statuses, replies.map((r) => r.text).join('\n')).toEqual([200, 200, 200, 422, 422, 422]);
    for (const reply of replies.filter((r) => r.status === 422)) expect(reply.body.error.code).toBe('refund_exceeds_purchase');
    const totals = replies
      .filter((r) => r.status === 200)
      .map((r) => r.body.refund.refundedTotal)
      .sort((a, b) => a - b);
    expect(totals).toEqual([3000, 6000, 9000]);
    const stored = (await t.db('conversions').where({ program_id: p.id, type: 'refund' }).sum({ total: 'amount' }))[0];
    expect(Number(stored?.total)).toBe(9000);
    // And the adjustments add up to the share refunded: floor(2000 × 9000 / 10001) = 1799.
    const ledger = await listAllRewards(api, p);
    expect(ledger.filter((r) => r.reverses === grants.pct.id).reduce((s, r) => s - r.amount, 0)).toBe(1799);
  });

  it('a refund of an unattributed purchase answers with no rewards', async () => {
    const p = await buildProgram(api, { settings: { rewardRules: RULES } });
    await serverPurchase(api, p, 'walk-in', 'order-x', 2500, 'EUR');
    const answer = await refund(api, p, { eventId: 'rx', purchaseEventId: 'order-x', amount: 500 });
    expect(answer).toMatchObject({ refund: { amount: 500, currency: 'EUR', refundedTotal: 500 }, rewards: [] });
  });

  /** bob buys order-7 (100.01 USD) in the browser, with no code. */
  const browserOrder7 = (p: ProgramFixture) =>
    browserEvent(api, p, {
      type: 'purchase',
      eventId: 'evt-1',
      userId: 'bob',
      vid: vidFor('bob'),
      order: { id: 'order-7', amount: 10_001, currency: 'USD' },
    });

  /** bob buys order-7 in the browser with no code, and the secret key refunds `refunded` of it. */
  async function refundedBrowserPurchase(refunded: number) {
    const p = await buildProgram(api, { settings: { rewardRules: RULES } });
    const alice = await buildParticipant(api, p, { externalId: 'alice' });
    await browserOrder7(p);
    const answer = await refund(api, p, { eventId: 'refund-1', purchaseEventId: 'order-7', amount: refunded });
    expect(answer.rewards).toEqual([]);
    return { p, alice };
  }

  it('a purchase refunded in full, then confirmed by the server with a code: the referral is made, the purchase earns nothing (found by the rewards property)', async () => {
    const { p, alice } = await refundedBrowserPurchase(10_001);
    const confirmed = await serverPurchase(api, p, 'bob', 'order-7', 10_001, 'USD', alice.code);
    expect(confirmed.attribution).toMatchObject({ status: 'attributed', referrer: 'alice' });
    expect(await listAllRewards(api, p)).toEqual([]);
    expect((await participant(api, p, 'alice')).stats).toMatchObject({ purchases: 1, revenue: {} });
    // Nothing is left to refund, and nothing was owed.
    expectError(await sendRefund(api, p, { eventId: 'refund-2', purchaseEventId: 'order-7' }), 422, 'refund_exceeds_purchase');
    expect(await balancesOf(api, p, 'alice')).toEqual({ pending: {}, approved: {}, paid: {} });
  });

  it('a purchase refunded in part, then confirmed by the server with a code: it earns on what was kept, and refunding the rest nets it to zero', async () => {
    const { p, alice } = await refundedBrowserPurchase(3333);
    await serverPurchase(api, p, 'bob', 'order-7', 10_001, 'USD', alice.code);
    const ledger = await listAllRewards(api, p, { participant: 'alice' });
    const grant = ledger.find((r) => r.rule === 'pct' && !r.reverses)!;
    expect(grant).toMatchObject({ amount: 2000, status: 'approved' });
    expect(ledger.filter((r) => r.reverses === grant.id).map((r) => [r.amount, r.status])).toEqual([[-666, 'approved']]);
    // As if the refund had come after: 2000 - 666 approved, 500 - floor(500 × 3333 / 10001) = 334 held.
    expect(await balancesOf(api, p, 'alice')).toEqual({ pending: { USD: 334 }, approved: { USD: 1334 }, paid: {} });
    expect((await participant(api, p, 'alice')).stats).toMatchObject({ purchases: 1, revenue: { USD: 6668 } });

    expectOk(await sendRefund(api, p, { eventId: 'refund-2', purchaseEventId: 'order-7' }));
    const after = await listAllRewards(api, p);
    for (const entry of after.filter((r) => !r.reverses && r.rule !== 'signup')) expect(net(after, entry.id), entry.rule).toBe(0);
    expect(await balancesOf(api, p, 'alice')).toEqual({ pending: {}, approved: {}, paid: {} });
    expect((await participant(api, p, 'alice')).stats).toMatchObject({ purchases: 1, revenue: {} });
  });

  it('a partial refund of an unconfirmed browser purchase follows its grant when the server confirms', async () => {
    const p = await buildProgram(api, { settings: { rewardRules: RULES } });
    const alice = await buildParticipant(api, p, { externalId: 'alice' });
    await serverSignup(api, p, 'bob', alice.code);
    await browserOrder7(p);
    const grant = (await listAllRewards(api, p, { participant: 'alice' })).find((r) => r.rule === 'pct')!;
    expect(grant).toMatchObject({ status: 'pending', needsReview: true, amount: 2000 });

    const answer = await refund(api, p, { eventId: 'refund-1', purchaseEventId: 'order-7', amount: 3333 });
    const adjustment = answer.rewards.find((r) => r.reverses === grant.id)!;
    expect(adjustment).toMatchObject({ amount: -666, status: 'pending', needsReview: true });

    // The server confirms the purchase: the grant is approved, and its adjustment with it.
    await serverPurchase(api, p, 'bob', 'order-7', 10_001);
    const ledger = await listAllRewards(api, p);
    expect(ledger.find((r) => r.id === grant.id)).toMatchObject({ status: 'approved', needsReview: false });
    expect(ledger.find((r) => r.id === adjustment.id)).toMatchObject({ status: 'approved', needsReview: false });
    // (The held grant waits for its hold only: 500 - floor(500 × 3333 / 10001) = 334 pending.)
    expect(await balancesOf(api, p, 'alice')).toEqual({ pending: { USD: 334 }, approved: { USD: 100 + 1334 }, paid: {} });

    // Refunding the rest revokes it all: nothing of the purchase is left on the books.
    expectOk(await sendRefund(api, p, { eventId: 'refund-2', purchaseEventId: 'order-7' }));
    const after = await listAllRewards(api, p);
    expect(net(after, grant.id)).toBe(0);
    expect(await balancesOf(api, p, 'alice')).toEqual({ pending: {}, approved: { USD: 100 }, paid: {} });
  });
});
