/**
 * Payouts through the real app, on every database: the run arithmetic (cash only,
 * holds, minimums per currency, clawbacks carried forward), exactly once (a database
 * constraint, concurrent runs and concurrent mark-paid), the providers' bulk files,
 * and Stripe Connect transfers against a local stand-in of the Stripe API reached
 * through the official SDK.
 */
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { startStripeStandIn, type StripeStandIn } from '../helpers/stripeApi.ts';
import { type Suite, useTestApp } from '../helpers/suite.ts';

const SIGNUP_CASH = { id: 'signup-cash', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 1000, currency: 'USD' } };
const SIGNUP_CREDIT = { id: 'signup-credit', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 700, currency: 'USD' } };
const SHARE = { id: 'share', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 } };

let stripe: StripeStandIn;
beforeAll(async () => {
  stripe = await startStripeStandIn();
});
afterAll(async () => {
  await stripe?.close();
});

describe.each(DATABASES)('payouts (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  let suite: Suite;
  useTestApp(kind, (opened) => {
    suite = opened;
    db = opened.db;
  });
  // The app's Stripe SDK calls go to the stand-in, started before this suite.
  beforeAll(async () => {
    api = await suite.startApp({ STRIPE_API_URL: stripe.url });
  });

  const ok = async (reply: Promise<{ status: number; body: any; text: string }>, status = 200) => {
    const answer = await reply;
    expect(answer.status, answer.text).toBe(status);
    return answer.body;
  };
  const shop = (settings: Record<string, unknown> = {}) =>
    buildProgram(api, { settings: { rewardRules: [SIGNUP_CASH, SIGNUP_CREDIT, SHARE], ...settings } });
  const referrerWith = async (
    p: ProgramFixture,
    payout: Record<string, unknown> | null = { method: 'paypal', email: `${uniq('r')}@example.com` },
  ) => {
    const referrer = await buildParticipant(api, p, { name: 'Ana Lima' });
    if (payout) await ok(api.patch(`/v1/participants/${referrer.externalId}`, { payout }, { auth: p.secret }));
    return referrer;
  };
  const signups = async (p: ProgramFixture, code: string, n: number) => {
    for (let i = 0; i < n; i++) {
      await ok(
        api.post(
          '/v1/conversions',
          { type: 'signup', eventId: uniq('s-'), externalId: uniq('c-'), referral: { code } },
          { auth: p.secret },
        ),
      );
    }
  };
  const purchase = async (p: ProgramFixture, code: string, amount: number, currency: string) => {
    const customer = uniq('c-');
    await ok(
      api.post('/v1/conversions', { type: 'signup', eventId: uniq('s-'), externalId: customer, referral: { code } }, { auth: p.secret }),
    );
    const order = uniq('o-');
    await ok(api.post('/v1/conversions', { type: 'purchase', eventId: order, externalId: customer, amount, currency }, { auth: p.secret }));
    return order;
  };
  const run = (p: ProgramFixture, body: Record<string, unknown> = {}) => api.post('/v1/payouts', body, { auth: p.secret });
  const rewardsOf = async (p: ProgramFixture, who: string) =>
    (await ok(api.get(`/v1/rewards?participant=${who}&limit=500`, { auth: p.secret }))).data as Array<Record<string, any>>;

  describe('the run', () => {
    it('pays approved cash rewards per referrer and currency; credit, pending and small items wait', async () => {
      const p = await shop({ payouts: { minimum: { USD: 2500, EUR: 100 } } });
      const big = await referrerWith(p);
      const small = await referrerWith(p);
      await signups(p, big.code, 3); // 3 × $10 cash, 3 × $7 credit
      await purchase(p, big.code, 20_000, 'EUR'); // + $10 cash for the signup, €20 cash share
      await signups(p, small.code, 2); // $20 < $25 minimum
      // A cash reward still on hold is not paid.
      const held = (await db('rewards').where({ program_id: p.id, rule_id: 'signup-cash' }).first('id', 'beneficiary_id')) as {
        id: string;
        beneficiary_id: string;
      };
      await db('rewards')
        .where({ id: held.id })
        .update({ available_at: new Date(Date.now() + 86_400_000) });

      const preview = await ok(run(p, { dryRun: true }));
      expect(await db('payouts').where({ program_id: p.id })).toHaveLength(0);
      const expectedBig = held.beneficiary_id === big.id ? 3000 : 4000;
      const expectedSmall = held.beneficiary_id === small.id ? 1000 : 2000;
      expect(preview.items.map((i: any) => [i.participant, i.currency, i.amount]).sort()).toEqual(
        [
          [big.externalId, 'EUR', 2000],
          [big.externalId, 'USD', expectedBig],
        ].sort(),
      );
      expect(preview.skipped).toEqual([{ participant: small.externalId, currency: 'USD', amount: expectedSmall, reason: 'below_minimum' }]);

      const payout = await ok(run(p), 201);
      expect(payout).toMatchObject({ status: 'created', totals: { USD: expectedBig, EUR: 2000 } });
      expect(payout.items.map((i: any) => [i.currency, i.amount, i.method, i.destination.email, i.status]).sort()).toEqual(
        preview.items.map((i: any) => [i.currency, i.amount, 'paypal', i.destination.email, 'pending']).sort(),
      );
      // Until the item is paid, its rewards stay approved; credit is never in a payout.
      const mine = await rewardsOf(p, big.externalId);
      const inItems = new Set(payout.items.flatMap((i: any) => i.rewards));
      for (const reward of mine) {
        expect(inItems.has(reward.id), `${reward.rule} ${reward.status}`).toBe(
          reward.kind === 'cash' && reward.status === 'approved' && Date.parse(reward.availableAt) <= Date.now(),
        );
      }
      // A second run finds nothing new.
      const again = await run(p);
      expect(again.status).toBe(422);
      expect(again.body.error.code).toBe('nothing_to_pay');
    });

    it('marks items paid with a reference: rewards become paid with the payout id, once', async () => {
      const p = await shop();
      const referrer = await referrerWith(p);
      await signups(p, referrer.code, 2);
      const payout = await ok(run(p), 201);
      const paid = await ok(api.post(`/v1/payouts/${payout.id}/paid`, { reference: 'PP-BATCH-77' }, { auth: p.secret }));
      expect(paid).toMatchObject({ status: 'paid', items: [{ status: 'paid', reference: 'PP-BATCH-77' }] });
      const rewards = (await rewardsOf(p, referrer.externalId)).filter((r) => r.kind === 'cash');
      expect(rewards.map((r) => r.status)).toEqual(['paid', 'paid']);
      const rows = await db('rewards').whereIn(
        'id',
        rewards.map((r) => r.id),
      );
      for (const row of rows) expect(row.payout_id).toBe(payout.id);
      // A retry changes nothing; the webhooks of the run are queued once each.
      await ok(api.post(`/v1/payouts/${payout.id}/paid`, { reference: 'PP-BATCH-77' }, { auth: p.secret }));
      const transitions = await db('reward_transitions')
        .whereIn(
          'reward_id',
          rewards.map((r) => r.id),
        )
        .where({ to_status: 'paid' });
      expect(transitions).toHaveLength(2);
      expect(transitions[0].reason).toBe(`payout ${payout.id}: PP-BATCH-77`);
      expect(await ok(api.get(`/v1/participants/${referrer.externalId}`, { auth: p.secret }))).toMatchObject({
        rewards: { paid: { USD: 2000 }, approved: { USD: 1400 } },
      });
    });

    it('a failed item frees its rewards for the next run', async () => {
      const p = await shop();
      const referrer = await referrerWith(p);
      await signups(p, referrer.code, 1);
      const first = await ok(run(p), 201);
      const failed = await ok(api.post(`/v1/payouts/${first.id}/failed`, { reason: 'PayPal: receiver unconfirmed' }, { auth: p.secret }));
      expect(failed).toMatchObject({
        status: 'failed',
        items: [{ status: 'failed', failure: 'PayPal: receiver unconfirmed', rewards: [] }],
      });
      const second = await ok(run(p), 201);
      expect(second.items.map((i: any) => i.amount)).toEqual([1000]);
      // Marking a failed item paid is refused.
      const refused = await api.post(`/v1/payouts/${first.id}/paid`, { items: [first.items[0].id] }, { auth: p.secret });
      expect(refused.status).toBe(409);
    });

    it('a clawback after a payout is carried into the next one', async () => {
      const p = await shop();
      const referrer = await referrerWith(p);
      const order = await purchase(p, referrer.code, 50_000, 'USD'); // $10 signup + $50 share
      const first = await ok(run(p), 201);
      expect(first.totals).toEqual({ USD: 6000 });
      await ok(api.post(`/v1/payouts/${first.id}/paid`, {}, { auth: p.secret }));
      // A full refund after the payout claws the $50 back.
      await ok(api.post('/v1/refunds', { eventId: uniq('rf-'), purchaseEventId: order }, { auth: p.secret }));
      // Nothing else to pay yet: the clawback alone is not a payout.
      const nothing = await run(p, { dryRun: true });
      expect(nothing.body.items).toEqual([]);
      expect(nothing.body.skipped).toEqual([
        { participant: referrer.externalId, currency: 'USD', amount: -5000, reason: 'nothing_to_pay' },
      ]);
      await signups(p, referrer.code, 7); // $70 earned
      const second = await ok(run(p), 201);
      expect(second.totals).toEqual({ USD: 2000 }); // 7000 − 5000
      await ok(api.post(`/v1/payouts/${second.id}/paid`, {}, { auth: p.secret }));
      const balances = (await ok(api.get(`/v1/participants/${referrer.externalId}`, { auth: p.secret }))).rewards;
      expect(balances.paid).toEqual({ USD: 8000 }); // 6000 + 7000 − 5000 = what was sent
    });

    it('refuses referrers without payout details for their method, and validates details', async () => {
      const p = await shop({ payouts: { method: 'wise' } });
      const none = await referrerWith(p, null);
      await signups(p, none.code, 1);
      const preview = await ok(run(p, { dryRun: true }));
      expect(preview.skipped).toEqual([{ participant: none.externalId, currency: 'USD', amount: 1000, reason: 'no_payout_details' }]);
      const bad = await api.patch(`/v1/participants/${none.externalId}`, { payout: { method: 'stripe_connect' } }, { auth: p.secret });
      expect(bad.status).toBe(422);
      expect(bad.body.error.fields.stripeAccount ?? bad.body.error.fields['payout.stripeAccount']).toMatch(/acct_/);
      const manual = await ok(api.patch(`/v1/participants/${none.externalId}`, { payout: { method: 'manual' } }, { auth: p.secret }));
      expect(manual.payout).toEqual({ method: 'manual' });
      expect((await ok(run(p, { dryRun: true }))).items).toHaveLength(1);
    });
  });

  describe('exactly once', () => {
    it('the database refuses a reward in two open items', async () => {
      const p = await shop();
      const referrer = await referrerWith(p);
      await signups(p, referrer.code, 1);
      const payout = await ok(run(p), 201);
      const [item] = payout.items;
      const [copy] = await db('payouts').insert({ program_id: p.id, actor: 'test' }).returning('id');
      const [other] = await db('payout_items')
        .insert({
          program_id: p.id,
          payout_id: copy.id,
          participant_id: referrer.id,
          currency: 'USD',
          amount: 1000,
          method: 'manual',
          destination: '{}',
        })
        .returning('id');
      await expect(db('payout_item_rewards').insert({ item_id: other.id, reward_id: item.rewards[0] })).rejects.toMatchObject({
        code: '23505',
      });
    });

    it.skipIf(kind === 'pglite')('concurrent runs never take one reward twice; concurrent mark-paid pays once', async () => {
      const p = await shop();
      const referrers = await Promise.all([referrerWith(p), referrerWith(p), referrerWith(p)]);
      for (const referrer of referrers) await signups(p, referrer.code, 3);
      const replies = await Promise.all(Array.from({ length: 6 }, () => run(p)));
      expect(
        replies.every((reply) => [201, 409, 422].includes(reply.status)),
        replies.map((r) => r.text).join('\n'),
      ).toBe(true);
      const taken = (await db('payout_item_rewards as x')
        .join('payout_items as i', 'i.id', 'x.item_id')
        .where({ 'i.program_id': p.id })
        .select('x.reward_id')) as Array<{
        reward_id: string;
      }>;
      const cash = await db('rewards').where({ program_id: p.id, kind: 'cash' });
      expect(taken.map((row) => row.reward_id).sort()).toEqual(cash.map((row) => row.id).sort());

      const payouts = replies.filter((reply) => reply.status === 201).map((reply) => reply.body.id as string);
      const marks = await Promise.all(
        payouts.flatMap((id) => [1, 2, 3].map(() => api.post(`/v1/payouts/${id}/paid`, { reference: 'x' }, { auth: p.secret }))),
      );
      expect(
        marks.every((reply) => reply.status === 200),
        marks.map((r) => r.text).join('\n'),
      ).toBe(true);
      const paidTransitions = await db('reward_transitions').where({ program_id: p.id, to_status: 'paid' });
      expect(paidTransitions).toHaveLength(cash.length);
      expect((await db('rewards').where({ program_id: p.id, kind: 'cash' })).every((row) => row.status === 'paid')).toBe(true);
    });
  });

  describe('bulk files', () => {
    const fileOf = async (p: ProgramFixture, id: string, query: string) => {
      const reply = await api.get(`/v1/payouts/${id}/export.csv?${query}`, { auth: p.secret });
      expect(reply.status, reply.text).toBe(200);
      expect(reply.headers.get('content-type')).toContain('text/csv');
      return reply.text.split('\r\n').filter(Boolean);
    };

    it('PayPal Payouts Web (one currency per file, no header), Wise batch (header), generic; JPY without decimals', async () => {
      const p = await shop({ rewardRules: [SHARE] });
      const paypal = await referrerWith(p, { method: 'paypal', email: 'pay.me@example.com' });
      const wise = await referrerWith(p, { method: 'wise', email: 'wise.me@example.com' });
      await purchase(p, paypal.code, 12_345, 'USD'); // 10% → 1234 = 12.34
      await purchase(p, paypal.code, 98_765, 'JPY'); // 10% → 9876 yen
      await purchase(p, wise.code, 5_000, 'EUR'); // 500 = 5.00
      const payout = await ok(run(p), 201);
      const item = (who: string, currency: string) => payout.items.find((i: any) => i.participant === who && i.currency === currency);

      const multi = await api.get(`/v1/payouts/${payout.id}/export.csv?format=paypal`, { auth: p.secret });
      expect(multi.status).toBe(422);
      expect(multi.body.error.code).toBe('one_currency_per_file');
      expect(await fileOf(p, payout.id, 'format=paypal&currency=USD')).toEqual([
        `pay.me@example.com,12.34,USD,${item(paypal.externalId, 'USD').id},${p.program.name} referral rewards,PAYPAL`,
      ]);
      expect(await fileOf(p, payout.id, 'format=paypal&currency=JPY')).toEqual([
        `pay.me@example.com,9876,JPY,${item(paypal.externalId, 'JPY').id},${p.program.name} referral rewards,PAYPAL`,
      ]);
      expect(await fileOf(p, payout.id, 'format=wise')).toEqual([
        'name,recipientEmail,paymentReference,receiverType,amountCurrency,amount,sourceCurrency,targetCurrency',
        `Ana Lima,wise.me@example.com,Payout ${payout.id.slice(0, 8)},PERSON,target,5.00,EUR,EUR`,
      ]);
      const generic = await fileOf(p, payout.id, 'format=generic');
      expect(generic[0]).toBe(
        'item_id,participant_external_id,name,email,method,destination,currency,amount,amount_minor,status,reference',
      );
      expect(generic).toHaveLength(4);
      expect(generic).toContain(
        `${item(paypal.externalId, 'JPY').id},${paypal.externalId},Ana Lima,,paypal,pay.me@example.com,JPY,9876,9876,pending,`,
      );
    });
  });

  describe('Stripe Connect', () => {
    it('transfers each item once with an idempotency key; a refused transfer fails the item and frees its rewards', async () => {
      const p = await shop({ stripe: { secretKey: 'sk_test_4eC39HqLyjWDarjtT1zdp7dc' } });
      const good = await referrerWith(p, { method: 'stripe_connect', stripeAccount: 'acct_1GoodAccount' });
      const bad = await referrerWith(p, { method: 'stripe_connect', stripeAccount: 'acct_1RefusesTransfers' });
      stripe.refuse.add('acct_1RefusesTransfers');
      await signups(p, good.code, 2);
      await signups(p, bad.code, 1);
      const before = stripe.requests.length;
      const payout = await ok(run(p), 201);
      const goodItem = payout.items.find((i: any) => i.participant === good.externalId);
      const badItem = payout.items.find((i: any) => i.participant === bad.externalId);
      expect(goodItem).toMatchObject({ status: 'paid', amount: 2000, transferId: expect.stringMatching(/^tr_/) });
      expect(badItem).toMatchObject({ status: 'failed', rewards: [] });
      expect(badItem.failure).toMatch(/capabilities/);
      expect(payout.status).toBe('paid');

      const sent = stripe.requests.slice(before).filter((r) => r.path === '/v1/transfers');
      const byKey = new Map(sent.map((r) => [r.idempotencyKey, r]));
      expect(byKey.get(`payout-item-${goodItem.id}`)?.form).toMatchObject({
        amount: '2000',
        currency: 'usd',
        destination: 'acct_1GoodAccount',
        transfer_group: `payout_${payout.id}`,
        'metadata[item]': goodItem.id,
      });
      expect(byKey.get(`payout-item-${badItem.id}`)?.form.destination).toBe('acct_1RefusesTransfers');
      expect(sent[0]?.headers.authorization).toBe('Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc');

      // Retrying sends nothing for the paid item; the freed rewards go to the next run.
      const retried = await ok(api.post(`/v1/payouts/${payout.id}/transfer`, {}, { auth: p.secret }));
      expect(retried.transferErrors).toEqual([]);
      expect(stripe.requests.slice(before).filter((r) => r.path === '/v1/transfers')).toHaveLength(sent.length);
      stripe.refuse.delete('acct_1RefusesTransfers');
      const next = await ok(run(p), 201);
      expect(next.items).toEqual([expect.objectContaining({ participant: bad.externalId, amount: 1000, status: 'paid' })]);
      expect(await rewardsOf(p, good.externalId)).toEqual(
        expect.arrayContaining([expect.objectContaining({ kind: 'cash', status: 'paid' })]),
      );
    });
  });
});
