/**
 * Trials, for every payment provider, through the real app on every database: a
 * payment of 0 (Stripe's trial invoice, Paddle's trial transaction, Lemon Squeezy's
 * trial order and initial invoice) is no purchase and grants nothing, but links the
 * customer and keeps the referral; the first paid invoice after the trial is the
 * customer's first purchase (`firstPurchaseOnly`), and `withinDays` still counts from
 * the referral. Each provider's events in its full published shape, signed as it signs.
 */
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import type { Reply, TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { deliverLemonSqueezy, lemonEvent, lsId, order, subscription, subscriptionInvoice } from '../helpers/lemonsqueezy.ts';
import { deliverPaddle, paddleEvent, paddleId, transaction } from '../helpers/paddle.ts';
import { backdateReferral } from '../helpers/rows.ts';
import { listAllRewards, participant, referrals } from '../helpers/steps.ts';
import { checkoutSession, deliverStripe, invoice, sid, stripeEvent, type Json } from '../helpers/stripe.ts';
import { useTestApp } from '../helpers/suite.ts';

/** 1000 on the customer's first purchase; 10% of purchases within 30 days of the referral; 100 on any purchase. */
const RULES = [
  {
    id: 'first',
    on: 'purchase',
    to: 'referrer',
    reward: { kind: 'credit', amount: 1000, currency: 'USD' },
    when: { firstPurchaseOnly: true },
  },
  { id: 'window', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 }, when: { withinDays: 30 } },
  { id: 'any', on: 'purchase', to: 'referrer', reward: { kind: 'credit', amount: 100, currency: 'USD' } },
];

/** One subscriber's life with a provider: who they are there, and their events. */
interface Subscriber {
  externalId: string;
  code: string;
  customer: string;
  subscription: string;
}

/** A provider, as the trial tests drive it. */
interface Provider {
  name: 'stripe' | 'paddle' | 'lemonsqueezy';
  newSecret: () => string;
  subscriber: (externalId: string, code: string) => Subscriber;
  /** The events a trial's checkout sends: every one pays 0. */
  trialStarted: (who: Subscriber) => object[];
  /** A paid invoice after the trial: a renewal, named by the provider's customer. */
  paid: (who: Subscriber, amount: number) => object;
  deliver: (api: TestApp, slug: string, event: object, secret: string) => Promise<Reply>;
}

const stripe: Provider = {
  name: 'stripe',
  newSecret: () => `whsec_${randomBytes(24).toString('base64')}`,
  subscriber: (externalId, code) => ({ externalId, code, customer: sid('cus_'), subscription: sid('sub_1Q') }),
  trialStarted: (who) => {
    const metadata = { externalId: who.externalId, referral_code: who.code };
    return [
      stripeEvent(
        'checkout.session.completed',
        checkoutSession({
          mode: 'subscription',
          amount: 0,
          customer: who.customer,
          subscription: who.subscription,
          metadata,
          extra: { payment_status: 'no_payment_required' },
        }),
      ),
      // The trial's invoice: created with the subscription, paid, of 0.
      stripeEvent(
        'invoice.paid',
        invoice({
          customer: who.customer,
          subscription: who.subscription,
          amount: 0,
          billingReason: 'subscription_create',
          subscriptionMetadata: metadata,
        }),
      ),
    ];
  },
  paid: (who, amount) =>
    stripeEvent(
      'invoice.paid',
      invoice({
        customer: who.customer,
        subscription: who.subscription,
        amount,
        billingReason: 'subscription_cycle',
        withPayments: true,
      }),
    ),
  deliver: (api, slug, event, secret) => deliverStripe(api, slug, event as Json, { secret }),
};

const paddle: Provider = {
  name: 'paddle',
  newSecret: () => `pdl_ntfset_${uniq()}_${uniq()}`,
  subscriber: (externalId, code) => ({ externalId, code, customer: paddleId('ctm'), subscription: paddleId('sub') }),
  trialStarted: (who) => [
    paddleEvent(
      'transaction.completed',
      transaction({
        customerId: who.customer,
        subscriptionId: who.subscription,
        amount: 0,
        origin: 'web',
        customData: { externalId: who.externalId, referral_code: who.code },
      }),
    ),
  ],
  paid: (who, amount) =>
    paddleEvent(
      'transaction.completed',
      transaction({
        customerId: who.customer,
        subscriptionId: who.subscription,
        amount,
        origin: 'subscription_recurring',
        customData: null,
      }),
    ),
  deliver: (api, slug, event, secret) => deliverPaddle(api, slug, event, { secret }),
};

const lemonSqueezy: Provider = {
  name: 'lemonsqueezy',
  newSecret: () => `whsec-${uniq()}`,
  subscriber: (externalId, code) => ({ externalId, code, customer: String(lsId()), subscription: String(lsId()) }),
  trialStarted: (who) => {
    const custom = { externalId: who.externalId, referral_code: who.code };
    const customerId = Number(who.customer);
    const trialOrder = order({ customerId, total: 0 });
    return [
      lemonEvent('order_created', trialOrder, custom),
      lemonEvent(
        'subscription_created',
        subscription({
          id: Number(who.subscription),
          customerId,
          orderId: Number(trialOrder.id),
          status: 'on_trial',
          trialEndsAt: new Date(Date.now() + 14 * 86_400_000).toISOString(),
        }),
        custom,
      ),
      lemonEvent(
        'subscription_payment_success',
        subscriptionInvoice({ customerId, subscriptionId: Number(who.subscription), total: 0, billingReason: 'initial' }),
        custom,
      ),
    ];
  },
  // Subscription events repeat the checkout's custom data; the customer link would do without it.
  paid: (who, amount) =>
    lemonEvent(
      'subscription_payment_success',
      subscriptionInvoice({ customerId: Number(who.customer), subscriptionId: Number(who.subscription), total: amount }),
      { externalId: who.externalId, referral_code: who.code },
    ),
  deliver: (api, slug, event, secret) => deliverLemonSqueezy(api, slug, event as Json, { secret }),
};

interface Shop extends ProgramFixture {
  webhookSecret: string;
  referrer: Awaited<ReturnType<typeof buildParticipant>>;
}

describe.each(DATABASES)('trials (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  useTestApp(kind, (suite) => ({ db, api } = suite));

  describe.each([stripe, paddle, lemonSqueezy])('$name', (provider) => {
    async function shop(): Promise<Shop> {
      const webhookSecret = provider.newSecret();
      const program = await buildProgram(api, { settings: { [provider.name]: { webhookSecret }, rewardRules: RULES } });
      const referrer = await buildParticipant(api, program, { email: `${uniq('referrer-')}@example.com` });
      return { ...program, webhookSecret, referrer };
    }

    async function accepted(program: Shop, event: object): Promise<any> {
      const reply = await provider.deliver(api, program.slug, event, program.webhookSecret);
      expect(reply.status, reply.text).toBe(200);
      expect(reply.body.received).toBe(true);
      return reply.body;
    }

    const purchases = (program: Shop) =>
      db('conversions').where({ program_id: program.id, type: 'purchase' }).orderBy('created_at').select('event_id', 'amount') as Promise<
        Array<{ event_id: string; amount: number }>
      >;
    /** The referrer's rewards as [rule, amount], by purchase (in the order made), then by rule. */
    const rewardsOf = async (program: Shop) => {
      const rewards = await listAllRewards(api, program, { participant: program.referrer.externalId });
      const order = (await purchases(program)).map((row) => row.event_id);
      return rewards
        .map((reward) => ({ at: order.indexOf(String(reward.eventId)), pair: [reward.rule, reward.amount] as const }))
        .sort((a, b) => a.at - b.at || String(a.pair[0]).localeCompare(String(b.pair[0])))
        .map(({ pair }) => [...pair]);
    };

    /** The trial's events: none is a purchase or grants anything, and the referral stands. */
    async function startTrial(program: Shop): Promise<Subscriber> {
      const who = provider.subscriber(uniq('trialist-'), program.referrer.code);
      for (const event of provider.trialStarted(who)) {
        const body = await accepted(program, event);
        expect(['customer_linked', 'ignored'], JSON.stringify(body)).toContain(body.handled);
      }
      expect(await purchases(program)).toEqual([]);
      expect(await rewardsOf(program)).toEqual([]);
      expect((await referrals(api, program)).data).toEqual([
        expect.objectContaining({ referred: who.externalId, referrer: program.referrer.externalId, verified: true }),
      ]);
      return who;
    }

    it('a payment of 0 is no purchase; the first paid invoice after the trial is the first purchase (firstPurchaseOnly, withinDays)', async () => {
      const program = await shop();
      const who = await startTrial(program);
      // A 14-day trial: the first charge is inside the 30 days of `window`.
      await backdateReferral(db, program.id, who.externalId, 14);

      const first = await accepted(program, provider.paid(who, 2900));
      expect(first.handled).toBe('purchase');
      expect(first.result.conversion).toMatchObject({ externalId: who.externalId, amount: 2900, verified: true, source: provider.name });
      expect(first.result.attribution).toMatchObject({ referrer: program.referrer.externalId });
      const second = await accepted(program, provider.paid(who, 2900));
      expect(second.result.conversion.externalId).toBe(who.externalId);

      expect(await rewardsOf(program)).toEqual([
        ['any', 100],
        ['first', 1000],
        ['window', 290],
        ['any', 100],
        ['window', 290],
      ]);
      expect((await participant(api, program, program.referrer.externalId)).stats).toMatchObject({
        signups: 1,
        purchases: 2,
        revenue: { USD: 5800 },
      });
    });

    it('a trial longer than withinDays: the first paid invoice is still the first purchase, outside the window', async () => {
      const program = await shop();
      const who = await startTrial(program);
      await backdateReferral(db, program.id, who.externalId, 45);
      const first = await accepted(program, provider.paid(who, 4900));
      expect(first.handled).toBe('purchase');
      expect(await rewardsOf(program)).toEqual([
        ['any', 100],
        ['first', 1000],
      ]);
    });
  });
});
