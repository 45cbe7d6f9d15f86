/**
 * Paddle Billing through the real app, on every database: notifications in their full
 * documented shape (the SDK's notification types), signed as Paddle signs them
 * (`Paddle-Signature: ts=…;h1=` HMAC-SHA256 of `ts:body`), become verified purchases,
 * renewals through the customer link, and refunds on approval.
 */
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import type { Reply, TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { adjustment, deliverPaddle, paddleEvent, paddleId, paddleSignature, transaction } from '../helpers/paddle.ts';
import { backdateReferral, countRows } from '../helpers/rows.ts';
import { browserEvent, decisions, listAllRewards, participant, referrals } from '../helpers/steps.ts';
import { unix } from '../helpers/stripe.ts';
import { useTestApp } from '../helpers/suite.ts';

/** 20% of every purchase within a year of the referral; 10 on the first purchase only. */
const REC = { id: 'rec', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 20 }, when: { withinDays: 365 } };
const FIRST = {
  id: 'first',
  on: 'purchase',
  to: 'referrer',
  reward: { kind: 'credit', amount: 1000, currency: 'USD' },
  when: { firstPurchaseOnly: true },
};

type Participant = Awaited<ReturnType<typeof buildParticipant>>;
interface Shop extends ProgramFixture {
  webhookSecret: string;
  referrer: Participant;
}

describe.each(DATABASES)('paddle integration (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  useTestApp(kind, (suite) => ({ db, api } = suite));

  const newSecret = () => `pdl_ntfset_${uniq()}_${uniq()}`;

  async function shop(rules: unknown[] = [REC]): Promise<Shop> {
    const webhookSecret = newSecret();
    const program = await buildProgram(api, { settings: { paddle: { webhookSecret }, rewardRules: rules } });
    const referrer = await buildParticipant(api, program, { email: `${uniq('referrer-')}@example.com` });
    return { ...program, webhookSecret, referrer };
  }

  const deliver = (
    program: Shop,
    event: object,
    options: { secret?: string; timestamp?: number; signature?: string | null; tamper?: (p: string) => string } = {},
  ): Promise<Reply> => deliverPaddle(api, program.slug, event, { ...options, secret: options.secret ?? program.webhookSecret });

  async function accepted(program: Shop, event: object): Promise<any> {
    const reply = await deliver(program, event);
    expect(reply.status, reply.text).toBe(200);
    expect(reply.body.received).toBe(true);
    return reply.body;
  }

  const completed = (input: Parameters<typeof transaction>[0]) => paddleEvent('transaction.completed', transaction(input));
  const conversions = (program: { id: string }, type: string) =>
    db('conversions').where({ program_id: program.id, type }).orderBy('created_at').orderBy('id').select('*') as Promise<
      Array<Record<string, any>>
    >;
  const rewardsOf = async (program: Shop) => (await listAllRewards(api, program, { participant: program.referrer.externalId })).reverse();

  it('transaction.completed is a verified purchase: custom_data names the customer and the referral; amounts are strings of minor units', async () => {
    const program = await shop();
    const customerId = paddleId('ctm');
    const event = completed({
      customerId,
      amount: 65_215,
      customData: { externalId: 'paddle-user-1', referral_code: program.referrer.code, plan: 'pro' },
    });
    const body = await accepted(program, event);
    expect(body.handled).toBe('purchase');
    expect(body.result.conversion).toMatchObject({
      type: 'purchase',
      eventId: event.data.id,
      externalId: 'paddle-user-1',
      amount: 65_215,
      currency: 'USD',
      verified: true,
      source: 'paddle',
    });
    expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });
    expect(body.result.rewards).toEqual([expect.objectContaining({ rule: 'rec', amount: 13_043, currency: 'USD', status: 'approved' })]);
    expect((await referrals(api, program)).data).toEqual([
      expect.objectContaining({
        referred: 'paddle-user-1',
        referrer: program.referrer.externalId,
        code: program.referrer.code,
        verified: true,
      }),
    ]);
    const signups = await conversions(program, 'signup');
    expect(signups).toHaveLength(1);
    expect(signups[0]).toMatchObject({ event_id: 'paddle:paddle-user-1', source: 'paddle', verified: true });
  });

  it('renewals (origin subscription_recurring, no custom data) are the linked customer’s purchases: recurring commissions', async () => {
    const program = await shop();
    const customerId = paddleId('ctm');
    const subscriptionId = paddleId('sub');
    await accepted(
      program,
      completed({ customerId, subscriptionId, amount: 3000, customData: { externalId: 'renewer', referral_code: program.referrer.code } }),
    );
    const renewal = completed({ customerId, subscriptionId, amount: 3000, origin: 'subscription_recurring', customData: null });
    const body = await accepted(program, renewal);
    expect(body.result.conversion).toMatchObject({ externalId: 'renewer', eventId: renewal.data.id, amount: 3000 });
    expect(body.result.rewards).toEqual([expect.objectContaining({ participant: program.referrer.externalId, amount: 600 })]);
    expect(await conversions(program, 'signup')).toHaveLength(1);
    expect((await participant(api, program, program.referrer.externalId)).stats).toMatchObject({
      signups: 1,
      purchases: 2,
      revenue: { USD: 6000 },
    });
  });

  it('a customer with no custom data is the Paddle customer, and stays that participant on later transactions', async () => {
    const program = await shop();
    const customerId = paddleId('ctm');
    const first = await accepted(program, completed({ customerId, amount: 1000 }));
    expect(first.result.conversion.externalId).toBe(customerId);
    expect(first.result.attribution.status).toBe('none');
    const second = await accepted(program, completed({ customerId, amount: 2000 }));
    expect(second.result.conversion.externalId).toBe(customerId);
    expect(await conversions(program, 'signup')).toHaveLength(1);
  });

  it('trials: the 0 transaction only links the customer; the first paid one is the first purchase (firstPurchaseOnly, withinDays)', async () => {
    const program = await shop([REC, FIRST]);
    const customerId = paddleId('ctm');
    const trial = await accepted(
      program,
      completed({ customerId, amount: 0, customData: { externalId: 'trialist', referral_code: program.referrer.code } }),
    );
    expect(trial).toMatchObject({ handled: 'customer_linked', reason: 'nothing_paid' });
    expect(await conversions(program, 'purchase')).toEqual([]);
    expect(await rewardsOf(program)).toEqual([]);
    expect((await referrals(api, program)).data).toEqual([expect.objectContaining({ referred: 'trialist' })]);

    // The trial lasted 14 days; the first charge is inside the year of withinDays and is the first purchase.
    await backdateReferral(db, program.id, 'trialist', 14);
    const paid = await accepted(program, completed({ customerId, amount: 2900, origin: 'subscription_recurring', customData: null }));
    expect(paid.result.conversion).toMatchObject({ externalId: 'trialist', amount: 2900 });
    expect(paid.result.rewards.map((reward: any) => [reward.rule, reward.amount]).sort()).toEqual([
      ['first', 1000],
      ['rec', 580],
    ]);
    const next = await accepted(program, completed({ customerId, amount: 2900, origin: 'subscription_recurring', customData: null }));
    expect(next.result.rewards.map((reward: any) => reward.rule)).toEqual(['rec']);
  });

  it('a refund waits in pending_approval (nothing happens) and is refunded, pro-rated, once adjustment.updated says approved', async () => {
    const program = await shop();
    const bought = completed({ amount: 10_000, customData: { externalId: uniq('buyer-'), referral_code: program.referrer.code } });
    const body = await accepted(program, bought);
    const grant = body.result.rewards[0];
    expect(grant.amount).toBe(2000);

    const pending = adjustment({ transactionId: bought.data.id, amount: 2500, status: 'pending_approval' });
    const created = await accepted(program, paddleEvent('adjustment.created', pending));
    expect(created).toMatchObject({ handled: 'ignored', reason: 'pending_approval' });
    expect(await conversions(program, 'refund')).toEqual([]);

    const approved = paddleEvent('adjustment.updated', { ...pending, status: 'approved' as const });
    const refunded = await accepted(program, approved);
    expect(refunded.handled).toBe('refund');
    expect(refunded.result.refund).toMatchObject({
      eventId: pending.id,
      purchaseEventId: bought.data.id,
      amount: 2500,
      refundedTotal: 2500,
    });
    expect(refunded.result.rewards).toEqual([expect.objectContaining({ amount: -500, reverses: grant.id })]);

    // Delivered again: stored once.
    await accepted(program, approved);
    expect(await conversions(program, 'refund')).toHaveLength(1);
    expect((await participant(api, program, program.referrer.externalId)).rewards.approved).toEqual({ USD: 1500 });

    // A rejected refund and a credit adjustment give nothing back.
    for (const other of [
      adjustment({ transactionId: bought.data.id, amount: 1000, status: 'rejected' }),
      adjustment({ transactionId: bought.data.id, amount: 1000, action: 'credit' }),
    ]) {
      expect((await accepted(program, paddleEvent('adjustment.updated', other))).handled).toBe('ignored');
    }
    expect(await conversions(program, 'refund')).toHaveLength(1);
  });

  it('a refund of an unknown transaction answers 404 so Paddle retries, and stores nothing', async () => {
    const program = await shop();
    const reply = await deliver(program, paddleEvent('adjustment.updated', adjustment({ transactionId: paddleId('txn'), amount: 100 })));
    expect(reply.status, reply.text).toBe(404);
    expect(await countRows(db, 'conversions', { program_id: program.id })).toBe(0);
  });

  it('discount_id naming a promo code attributes the purchase to its owner (decision promo_code), with no custom data', async () => {
    const program = await shop();
    const discountId = paddleId('dsc');
    const mapped = await api.post(
      `/v1/participants/${program.referrer.externalId}/promo-codes`,
      { provider: 'paddle', id: discountId, code: 'CREATOR10' },
      { auth: program.secret },
    );
    expect(mapped.status, mapped.text).toBe(201);
    const customerId = paddleId('ctm');
    const body = await accepted(program, completed({ customerId, amount: 5000, discountId }));
    expect(body.result.conversion.externalId).toBe(customerId);
    expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });
    expect(body.result.rewards).toEqual([
      expect.objectContaining({ participant: program.referrer.externalId, amount: 1000, status: 'approved' }),
    ]);
    expect(await decisions(api, program, 'reason=promo_code')).toEqual([
      expect.objectContaining({ outcome: 'accepted', participant: customerId, referrer: program.referrer.externalId, code: 'CREATOR10' }),
    ]);
  });

  it('duplicates are stored once; unknown event types answer 200 and store nothing; unknown fields are ignored', async () => {
    const program = await shop();
    const event = completed({ amount: 4900, customData: { externalId: 'twice', referral_code: program.referrer.code } });
    const first = await accepted(program, event);
    const again = await accepted(program, event);
    const racing = await Promise.all([deliver(program, event), deliver(program, event)]);
    for (const reply of racing) expect(reply.status).toBe(200);
    expect(again.result.conversion.id).toBe(first.result.conversion.id);
    expect(await conversions(program, 'purchase')).toHaveLength(1);
    expect(await rewardsOf(program)).toHaveLength(1);

    const before = await countRows(db, 'conversions', { program_id: program.id });
    for (const type of ['transaction.paid', 'subscription.created', 'customer.created', 'transaction.brand_new_event']) {
      const other = await accepted(program, {
        ...paddleEvent(type, { ...transaction({ customData: { externalId: 'x' } }), status: 'paid' }),
        future_field: { a: 1 },
      });
      expect(other, type).toMatchObject({ handled: 'ignored', reason: 'event_type' });
    }
    expect(await countRows(db, 'conversions', { program_id: program.id })).toBe(before);
    const extra = await accepted(program, { ...completed({ amount: 700 }), brand_new_top_level: true });
    expect(extra.handled).toBe('purchase');
  });

  it('a missing, wrong, old, future-dated or tampered signature is 400 invalid_signature and stores nothing', async () => {
    const program = await shop();
    const event = () => completed({ amount: 4900, customData: { externalId: uniq('user-'), referral_code: program.referrer.code } });
    const replies = [
      await deliver(program, event(), { signature: null }),
      await deliver(program, event(), { secret: newSecret() }),
      await deliver(program, event(), { signature: 'ts=123;h1=deadbeef' }),
      await deliver(program, event(), { signature: 'not a signature' }),
      await deliver(program, event(), { timestamp: unix() - 3600 }),
      await deliver(program, event(), { timestamp: unix() + 3600 }),
      await deliver(program, event(), {
        tamper: (payload) => {
          const changed = payload.replace('"grand_total":"4900"', '"grand_total":"490000"');
          expect(changed).not.toBe(payload);
          return changed;
        },
      }),
    ];
    for (const reply of replies) {
      expect(reply.status, reply.text).toBe(400);
      expect(reply.body.error.code).toBe('invalid_signature');
    }
    expect(await countRows(db, 'conversions', { program_id: program.id })).toBe(0);
    // The control: signed now with the right secret.
    const payload = JSON.stringify(event());
    const good = await api.post(`/v1/integrations/paddle/${program.slug}`, undefined, {
      raw: payload,
      headers: { 'content-type': 'application/json', 'paddle-signature': paddleSignature(payload, program.webhookSecret) },
    });
    expect(good.status, good.text).toBe(200);
  });

  it('answers 400 paddle_not_configured without settings.paddle.webhookSecret, and the secret is masked when shown', async () => {
    const bare = await buildProgram(api);
    const reply = await deliverPaddle(api, bare.slug, completed({}), { secret: newSecret() });
    expect(reply.status, reply.text).toBe(400);
    expect(reply.body.error.code).toBe('paddle_not_configured');
    const secret = newSecret();
    const patched = await api.patch('/v1/program', { settings: { paddle: { webhookSecret: secret } } }, { auth: bare.secret });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.text).not.toContain(secret);
    expect(patched.body.program.settings.paddle).toEqual({ webhookSecret: `${secret.slice(0, 6)}…` });
  });

  it('trust: a forged browser purchase with the transaction id is replaced by Paddle’s figures', async () => {
    const program = await shop();
    const attacker = await buildParticipant(api, program);
    const buyer = uniq('buyer-');
    const event = completed({ amount: 4900, customData: { externalId: buyer } });
    await browserEvent(api, program, {
      type: 'purchase',
      userId: buyer,
      code: attacker.code,
      order: { id: event.data.id, amount: 1e12, currency: 'USD' },
    });
    const body = await accepted(program, event);
    expect(body.result.conversion).toMatchObject({
      eventId: event.data.id,
      amount: 4900,
      currency: 'USD',
      verified: true,
      source: 'paddle',
    });
    const rewards = await listAllRewards(api, program, { participant: attacker.externalId });
    expect(rewards.map((reward) => [reward.amount, reward.status])).toEqual([[980, 'pending']]);
    expect((await participant(api, program, attacker.externalId)).stats.revenue).toEqual({ USD: 4900 });
  });
});
