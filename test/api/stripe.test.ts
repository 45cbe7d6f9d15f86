/**
 * The Stripe integration through the real app, on every database: signed webhooks
 * (Stripe-Signature checked with the program's settings.stripe.webhookSecret, 5-minute
 * tolerance) become verified purchases and refunds.
 *
 * Payloads are realistic Stripe event JSON (many fields the collector never reads),
 * pretty-printed as Stripe sends them and signed with the stripe package's own test
 * header, then sent byte for byte as the raw body.
 */
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Reply, TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';
import { buildParticipant, buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { DAY_MS, countRows } from '../helpers/rows.ts';
import { click, listAllRewards, participant, referrals } from '../helpers/steps.ts';
import {
  API_NEW,
  API_OLD,
  charge,
  checkoutSession,
  deliverStripe,
  invoice,
  refundEvent,
  sid,
  stripeEvent,
  unix,
  visitorId,
  type Json,
} from '../helpers/stripe.ts';

/** Recurring commission: 20% of every purchase within a year of the referral. */
const REC_RULE = { id: 'rec', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 20 }, when: { withinDays: 365 } };

type Participant = Awaited<ReturnType<typeof buildParticipant>>;
interface Shop extends ProgramFixture {
  webhookSecret: string;
  referrer: Participant;
}

// ---------------------------------------------------------------------------

describe.each(DATABASES)('stripe integration (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  useTestApp(kind, (suite) => ({ db, api } = suite));

  const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;

  async function shop(rules: unknown[] = [REC_RULE]): Promise<Shop> {
    const webhookSecret = newSecret();
    const program = await buildProgram(api, { settings: { stripe: { webhookSecret }, rewardRules: rules } });
    const referrer = await buildParticipant(api, program, { email: `${uniq('referrer-')}@example.com` });
    return { ...program, webhookSecret, referrer };
  }

  interface DeliverOptions {
    secret?: string;
    timestamp?: number;
    /** A header to send as is; null sends none. */
    signature?: string | null;
    slug?: string;
    /** Change the body after signing. */
    tamper?: (payload: string) => string;
  }

  /** Signs the event as Stripe does and POSTs the exact bytes. */
  const deliver = (program: { slug: string; webhookSecret?: string }, event: Json, options: DeliverOptions = {}): Promise<Reply> =>
    deliverStripe(api, options.slug ?? program.slug, event, { ...options, secret: options.secret ?? program.webhookSecret ?? newSecret() });

  async function accepted(program: Shop, event: Json): Promise<any> {
    const reply = await deliver(program, event);
    expect(reply.status, reply.text).toBe(200);
    expect(reply.body.received).toBe(true);
    return reply.body;
  }

  const conversions = (program: { id: string }, type?: 'signup' | 'purchase' | 'refund') => {
    const query = db('conversions').where({ program_id: program.id });
    if (type) query.where({ type });
    return query.orderBy('created_at').orderBy('id').select('*') as Promise<Array<Record<string, any>>>;
  };

  /** The participant's rewards, oldest first. */
  const rewardsOf = async (program: Shop, externalId: string) =>
    (await listAllRewards(api, program, { participant: externalId })).reverse();

  // -------------------------------------------------------------------------
  describe('signature and configuration', () => {
    let program: Shop;
    beforeAll(async () => {
      program = await shop();
    });

    const purchaseEvent = () =>
      stripeEvent(
        'checkout.session.completed',
        checkoutSession({ metadata: { externalId: uniq('user-'), referral_code: program.referrer.code } }),
      );

    it('accepts a correctly signed event (control for the refusals below)', async () => {
      const body = await accepted(program, purchaseEvent());
      expect(body.handled).toBe('purchase');
      expect(await conversions(program, 'purchase')).toHaveLength(1);
    });

    it('refuses a missing Stripe-Signature with 400 invalid_signature and stores nothing', async () => {
      const before = await countRows(db, 'conversions', { program_id: program.id });
      const reply = await deliver(program, purchaseEvent(), { signature: null });
      expect(reply.status, reply.text).toBe(400);
      expect(reply.body.error.code).toBe('invalid_signature');
      expect(await countRows(db, 'conversions', { program_id: program.id })).toBe(before);
    });

    it('refuses a signature made with another secret, a garbage header and a payload changed after signing', async () => {
      const before = await countRows(db, 'conversions', { program_id: program.id });
      const wrongSecret = await deliver(program, purchaseEvent(), { secret: newSecret() });
      const garbage = await deliver(program, purchaseEvent(), { signature: 't=12345,v1=deadbeef' });
      const notAHeader = await deliver(program, purchaseEvent(), { signature: 'whsec_not_a_signature' });
      // Same signature, but the amount was raised after signing.
      const tampered = await deliver(program, purchaseEvent(), {
        tamper: (payload) => {
          const changed = payload.replace('"amount_total": 4900', '"amount_total": 490000');
          expect(changed).not.toBe(payload);
          return changed;
        },
      });
      for (const reply of [wrongSecret, garbage, notAHeader, tampered]) {
        expect(reply.status, reply.text).toBe(400);
        expect(reply.body.error.code).toBe('invalid_signature');
      }
      expect(await countRows(db, 'conversions', { program_id: program.id })).toBe(before);
    });

    it('signatures from another program do not verify here', async () => {
      const other = await shop();
      const before = await countRows(db, 'conversions', { program_id: program.id });
      const reply = await deliver(program, purchaseEvent(), { secret: other.webhookSecret });
      expect(reply.status).toBe(400);
      expect(reply.body.error.code).toBe('invalid_signature');
      expect(await countRows(db, 'conversions', { program_id: program.id })).toBe(before);
    });

    it('refuses a timestamp older than 5 minutes and accepts one inside the tolerance', async () => {
      const before = await countRows(db, 'conversions', { program_id: program.id });
      for (const age of [6 * 60, 60 * 60]) {
        const reply = await deliver(program, purchaseEvent(), { timestamp: unix() - age });
        expect(reply.status, `${age}s old: ${reply.text}`).toBe(400);
        expect(reply.body.error.code).toBe('invalid_signature');
      }
      expect(await countRows(db, 'conversions', { program_id: program.id })).toBe(before);
      const fresh = await deliver(program, purchaseEvent(), { timestamp: unix() - 4 * 60 });
      expect(fresh.status, fresh.text).toBe(200);
      expect(await countRows(db, 'conversions', { program_id: program.id })).toBe(before + 2); // its signup and its purchase
    });

    it('answers 404 for an unknown program slug', async () => {
      const reply = await deliver(program, purchaseEvent(), { slug: `no-such-program-${uniq()}` });
      expect(reply.status, reply.text).toBe(404);
      expect(reply.body.error.code).toBe('not_found');
    });

    it('answers 400 stripe_not_configured for a program without a webhook secret, then works once PATCH /v1/program sets one', async () => {
      const bare = await buildProgram(api);
      const referrer = await buildParticipant(api, bare);
      const event = stripeEvent(
        'checkout.session.completed',
        checkoutSession({ metadata: { externalId: 'late-user', referral_code: referrer.code } }),
      );
      const before = await deliver({ slug: bare.slug }, event, { secret: newSecret() });
      expect(before.status, before.text).toBe(400);
      expect(before.body.error.code).toBe('stripe_not_configured');
      expect(await countRows(db, 'conversions', { program_id: bare.id })).toBe(0);

      const webhookSecret = newSecret();
      const patched = await api.patch('/v1/program', { settings: { stripe: { webhookSecret } } }, { auth: bare.secret });
      expect(patched.status, patched.text).toBe(200);
      expect(patched.text).not.toContain(webhookSecret); // the secret is never shown back

      // A different secret than the configured one still fails; the configured one verifies.
      const wrong = await deliver({ slug: bare.slug }, event, { secret: newSecret() });
      expect(wrong.status).toBe(400);
      expect(wrong.body.error.code).toBe('invalid_signature');
      const after = await deliver({ slug: bare.slug, webhookSecret }, event);
      expect(after.status, after.text).toBe(200);
      expect(after.body.handled).toBe('purchase');
      expect(await countRows(db, 'conversions', { program_id: bare.id })).toBe(2);
    });
  });

  // -------------------------------------------------------------------------
  describe('checkout.session.completed', () => {
    it('becomes a verified purchase (eventId = session id, amount = amount_total, currency upper-cased) after signing the new customer up, attributed', async () => {
      const program = await shop();
      const session = checkoutSession({
        amount: 12_345,
        currency: 'eur',
        metadata: { externalId: 'user-42', referral_code: program.referrer.code, plan: 'annual' },
      });
      const body = await accepted(program, stripeEvent('checkout.session.completed', session));

      expect(body.handled).toBe('purchase');
      expect(body.result.conversion).toMatchObject({
        type: 'purchase',
        eventId: session.id,
        externalId: 'user-42',
        amount: 12_345,
        currency: 'EUR',
        verified: true,
        source: 'stripe',
      });
      // The signup attributed the customer first; the purchase finds that referral.
      expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });
      expect(body.result.rewards).toEqual([
        expect.objectContaining({
          participant: program.referrer.externalId,
          rule: 'rec',
          kind: 'cash',
          amount: 2469,
          currency: 'EUR',
          status: 'approved',
          eventId: session.id,
        }),
      ]);

      const signups = await conversions(program, 'signup');
      expect(signups).toHaveLength(1);
      expect(signups[0]).toMatchObject({ verified: true, source: 'stripe' });
      const purchases = await conversions(program, 'purchase');
      expect(purchases).toHaveLength(1);
      expect(purchases[0]).toMatchObject({ event_id: session.id, amount: 12_345, currency: 'EUR', verified: true, source: 'stripe' });

      const list = (await referrals(api, program)).data;
      expect(list).toEqual([
        expect.objectContaining({
          referrer: program.referrer.externalId,
          referred: 'user-42',
          code: program.referrer.code,
          status: 'attributed',
          verified: true,
        }),
      ]);

      const customer = await participant(api, program, 'user-42');
      expect(customer.referredBy).toBe(program.referrer.externalId);
      expect(customer.email).toBe((session.customer_details as Json).email);
      expect(customer.name).toBe('José Müller');
      const referrer = await participant(api, program, program.referrer.externalId);
      expect(referrer.stats).toMatchObject({ signups: 1, purchases: 1, revenue: { EUR: 12_345 } });
      expect(referrer.rewards.approved).toEqual({ EUR: 2469 });
    });

    it('takes the customer from client_reference_id when there is no metadata.externalId, and the referral from metadata.referral_vid', async () => {
      const program = await shop();
      const vid = visitorId();
      await click(api, program, { code: program.referrer.code, vid });
      const session = checkoutSession({ clientReferenceId: 'host-user-7', metadata: { referral_vid: vid } });
      const body = await accepted(program, stripeEvent('checkout.session.completed', session));
      expect(body.result.conversion.externalId).toBe('host-user-7');
      expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });
      expect((await referrals(api, program)).data).toEqual([
        expect.objectContaining({ referred: 'host-user-7', referrer: program.referrer.externalId }),
      ]);
    });

    it('prefers metadata.externalId over client_reference_id', async () => {
      const program = await shop();
      const session = checkoutSession({
        clientReferenceId: 'from-reference',
        metadata: { externalId: 'from-metadata', referral_code: program.referrer.code },
      });
      const body = await accepted(program, stripeEvent('checkout.session.completed', session));
      expect(body.result.conversion.externalId).toBe('from-metadata');
      const missing = await api.get('/v1/participants/from-reference', { auth: program.secret });
      expect(missing.status).toBe(404);
    });

    it('falls back to the Stripe customer id as the customer, and finds the same participant on the next checkout', async () => {
      const program = await shop();
      const customerId = sid('cus_');
      const first = checkoutSession({ customer: customerId, amount: 1000, metadata: { referral_code: program.referrer.code } });
      const body = await accepted(program, stripeEvent('checkout.session.completed', first));
      expect(body.result.conversion.externalId).toBe(customerId);
      expect((await participant(api, program, customerId)).referredBy).toBe(program.referrer.externalId);

      // A second purchase with nothing of ours: the same Stripe customer, so the same participant.
      const second = checkoutSession({ customer: customerId, amount: 3000 });
      const again = await accepted(program, stripeEvent('checkout.session.completed', second));
      expect(again.result.conversion.externalId).toBe(customerId);
      expect(again.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });
      expect(await conversions(program, 'signup')).toHaveLength(1);
      expect((await conversions(program, 'purchase')).map((row) => row.amount)).toEqual([1000, 3000]);
      expect((await rewardsOf(program, program.referrer.externalId)).map((reward) => reward.amount)).toEqual([200, 600]);
    });

    it('a later checkout carrying only the linked Stripe customer belongs to the host user named the first time', async () => {
      const program = await shop();
      const customerId = sid('cus_');
      await accepted(
        program,
        stripeEvent(
          'checkout.session.completed',
          checkoutSession({ customer: customerId, metadata: { externalId: 'alice', referral_code: program.referrer.code } }),
        ),
      );
      const body = await accepted(program, stripeEvent('checkout.session.completed', checkoutSession({ customer: customerId })));
      expect(body.result.conversion.externalId).toBe('alice');
    });

    it('reads the referral from client_reference_id when it holds a visitor id that has clicks', async () => {
      const program = await shop();
      const vid = visitorId();
      await click(api, program, { code: program.referrer.code, vid });
      const customerId = sid('cus_');
      const session = checkoutSession({ customer: customerId, clientReferenceId: vid, amount: 5000 });
      const body = await accepted(program, stripeEvent('checkout.session.completed', session));
      // The visitor id is not a user id: the customer is the Stripe customer.
      expect(body.result.conversion.externalId).toBe(customerId);
      expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });
      const missing = await api.get(`/v1/participants/${vid}`, { auth: program.secret });
      expect(missing.status).toBe(404);
    });

    it('a visitor id in client_reference_id is never the customer, also when metadata.referral_vid repeats it', async () => {
      const program = await shop();
      const vid = visitorId();
      await click(api, program, { code: program.referrer.code, vid });
      const customerId = sid('cus_');
      const session = checkoutSession({ customer: customerId, clientReferenceId: vid, metadata: { referral_vid: vid } });
      const body = await accepted(program, stripeEvent('checkout.session.completed', session));
      expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });
      expect(body.result.conversion.externalId).toBe(customerId);
      expect(await api.get(`/v1/participants/${vid}`, { auth: program.secret })).toMatchObject({ status: 404 });
    });

    it('treats a client_reference_id without clicks as the host user id, not a visitor', async () => {
      const program = await shop();
      const lookalike = visitorId(); // shaped like a visitor id, but nobody clicked with it
      const body = await accepted(program, stripeEvent('checkout.session.completed', checkoutSession({ clientReferenceId: lookalike })));
      expect(body.result.conversion.externalId).toBe(lookalike);
      expect(body.result.attribution.status).toBe('none');
      expect((await referrals(api, program)).data).toEqual([]);
      expect(await rewardsOf(program, program.referrer.externalId)).toEqual([]);
    });

    it('a visitor id that clicked in another program is not a visitor of this one', async () => {
      const program = await shop();
      const other = await shop();
      const vid = visitorId();
      await click(api, other, { code: other.referrer.code, vid });
      const body = await accepted(program, stripeEvent('checkout.session.completed', checkoutSession({ clientReferenceId: vid })));
      expect(body.result.conversion.externalId).toBe(vid);
      expect((await referrals(api, program)).data).toEqual([]);
    });

    it('a customer with no referral is signed up and buys, unattributed', async () => {
      const program = await shop();
      const body = await accepted(
        program,
        stripeEvent('checkout.session.completed', checkoutSession({ metadata: { externalId: 'organic' } })),
      );
      expect(body.handled).toBe('purchase');
      expect(body.result.attribution.status).toBe('none');
      expect(body.result.rewards).toEqual([]);
      expect(await conversions(program, 'signup')).toHaveLength(1);
      expect((await referrals(api, program)).data).toEqual([]);
    });

    it('the same event delivered twice (sequentially, re-signed as Stripe retries) is stored once', async () => {
      const program = await shop();
      const event = stripeEvent(
        'checkout.session.completed',
        checkoutSession({ metadata: { externalId: 'twice', referral_code: program.referrer.code } }),
      );
      const first = await accepted(program, event);
      const second = await deliver(program, event, { timestamp: unix() + 1 });
      expect(second.status, second.text).toBe(200);
      expect(second.body.result.conversion.id).toBe(first.result.conversion.id);
      expect(await conversions(program, 'signup')).toHaveLength(1);
      expect(await conversions(program, 'purchase')).toHaveLength(1);
      expect(await rewardsOf(program, program.referrer.externalId)).toHaveLength(1);
      expect((await participant(api, program, program.referrer.externalId)).stats).toMatchObject({
        signups: 1,
        purchases: 1,
        revenue: { USD: 4900 },
      });
    });

    it('the same event delivered twice at once is stored once', async () => {
      const program = await shop();
      const event = stripeEvent(
        'checkout.session.completed',
        checkoutSession({ metadata: { externalId: 'racer', referral_code: program.referrer.code } }),
      );
      const replies = await Promise.all([deliver(program, event), deliver(program, event)]);
      for (const reply of replies) expect(reply.status, reply.text).toBe(200);
      expect(await conversions(program, 'signup')).toHaveLength(1);
      expect(await conversions(program, 'purchase')).toHaveLength(1);
      expect(await rewardsOf(program, program.referrer.externalId)).toHaveLength(1);
    });

    it('ignores unknown fields, at the top of the event and inside the session', async () => {
      const program = await shop();
      const session = checkoutSession({
        metadata: { externalId: 'future', referral_code: program.referrer.code },
        extra: { brand_new_field: { nested: [1, 2, 3] }, another_flag: true, amount_total_details_v2: null },
      });
      const event = { ...stripeEvent('checkout.session.completed', session), context: 'acct_future', reason: { type: 'request' } };
      const body = await accepted(program, event);
      expect(body.handled).toBe('purchase');
      expect(body.result.conversion.amount).toBe(4900);
    });
  });

  // -------------------------------------------------------------------------
  describe('other event types', () => {
    it('answers 200 and ignores them, storing nothing', async () => {
      const program = await shop();
      const events = [
        stripeEvent('payment_intent.succeeded', {
          id: sid('pi_3Q'),
          object: 'payment_intent',
          amount: 4900,
          amount_received: 4900,
          currency: 'usd',
          customer: sid('cus_'),
          metadata: { externalId: 'x', referral_code: program.referrer.code },
          status: 'succeeded',
        }),
        stripeEvent('customer.created', { id: sid('cus_'), object: 'customer', email: 'c@example.com', metadata: {}, name: 'C' }),
        stripeEvent(
          'invoice.payment_succeeded',
          invoice({ customer: sid('cus_'), subscriptionMetadata: { externalId: 'y', referral_code: program.referrer.code } }),
        ),
        stripeEvent('invoice.payment_failed', {
          ...invoice({ customer: sid('cus_'), subscriptionMetadata: { externalId: 'y2' } }),
          status: 'open',
          amount_paid: 0,
          amount_remaining: 2900,
        }),
        stripeEvent('charge.succeeded', charge({ paymentIntent: sid('pi_3Q'), amount: 4900, amountRefunded: 0 })),
        stripeEvent('checkout.session.expired', {
          ...checkoutSession({ metadata: { externalId: 'z' } }),
          status: 'expired',
          payment_status: 'unpaid',
        }),
      ];
      for (const event of events) {
        const body = await accepted(program, event);
        expect(body.handled, String(event.type)).toBe('ignored');
      }
      expect(await countRows(db, 'conversions', { program_id: program.id })).toBe(0);
      expect(await api.get('/v1/participants/x', { auth: program.secret })).toMatchObject({ status: 404 });
    });
  });

  // -------------------------------------------------------------------------
  describe('subscriptions and invoice.paid', () => {
    it('a subscription Checkout only links the customer; its first invoice.paid carries the money, counted once', async () => {
      const program = await shop();
      const customerId = sid('cus_');
      const subscription = sid('sub_1Q');
      const session = checkoutSession({
        mode: 'subscription',
        amount: 2900,
        customer: customerId,
        subscription,
        metadata: { externalId: 'subscriber-1', referral_code: program.referrer.code },
      });
      const linked = await accepted(program, stripeEvent('checkout.session.completed', session));
      expect(linked.handled).toBe('customer_linked');
      expect(await conversions(program, 'purchase')).toEqual([]);
      expect(await conversions(program, 'signup')).toHaveLength(1);
      expect((await referrals(api, program)).data).toEqual([
        expect.objectContaining({ referred: 'subscriber-1', referrer: program.referrer.externalId }),
      ]);

      // The first invoice: the subscription carries no metadata of ours here.
      const first = invoice({ customer: customerId, subscription, amount: 2900, billingReason: 'subscription_create' });
      const paid = await accepted(program, stripeEvent('invoice.paid', first));
      expect(paid.handled).toBe('purchase');
      expect(paid.result.conversion).toMatchObject({
        eventId: first.id,
        externalId: 'subscriber-1',
        amount: 2900,
        currency: 'USD',
        verified: true,
        source: 'stripe',
      });
      expect(paid.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });

      // Stripe redelivers both: still one purchase.
      await accepted(program, stripeEvent('checkout.session.completed', session));
      await accepted(program, stripeEvent('invoice.paid', first));
      expect(await conversions(program, 'purchase')).toHaveLength(1);
      expect(await conversions(program, 'signup')).toHaveLength(1);
      const referrer = await participant(api, program, program.referrer.externalId);
      expect(referrer.stats).toMatchObject({ signups: 1, purchases: 1, revenue: { USD: 2900 } });
      expect(referrer.rewards.approved).toEqual({ USD: 580 });
    });

    it("renewal invoices with no metadata are the linked participant's purchases: recurring commissions, deduplicated by invoice id", async () => {
      const program = await shop();
      const customerId = sid('cus_');
      const subscription = sid('sub_1Q');
      await accepted(
        program,
        stripeEvent(
          'checkout.session.completed',
          checkoutSession({
            mode: 'subscription',
            customer: customerId,
            subscription,
            metadata: { externalId: 'renewer', referral_code: program.referrer.code },
          }),
        ),
      );
      const invoices = [
        invoice({ customer: customerId, subscription, amount: 2900, billingReason: 'subscription_create' }),
        invoice({ customer: customerId, subscription, amount: 2900, billingReason: 'subscription_cycle' }),
        invoice({ customer: customerId, subscription, amount: 4900, billingReason: 'subscription_cycle', apiVersion: 'old' }),
      ];
      for (const entry of invoices) {
        const body = await accepted(program, stripeEvent('invoice.paid', entry, { apiVersion: entry.paid === true ? API_OLD : API_NEW }));
        expect(body.result.conversion.externalId).toBe('renewer');
        expect(body.result.conversion.eventId).toBe(entry.id);
      }
      // A renewal delivered again, as a new event (invoice.paid can be resent): deduplicated by invoice id.
      const again = await accepted(program, stripeEvent('invoice.paid', invoices[1]!));
      expect(again.result.conversion.eventId).toBe(invoices[1]!.id);

      expect((await conversions(program, 'purchase')).map((row) => [row.event_id, row.amount])).toEqual(
        invoices.map((entry) => [entry.id, entry.amount_paid]),
      );
      const rewards = await rewardsOf(program, program.referrer.externalId);
      expect(rewards.map((reward) => [reward.rule, reward.amount, reward.eventId])).toEqual([
        ['rec', 580, invoices[0]!.id],
        ['rec', 580, invoices[1]!.id],
        ['rec', 980, invoices[2]!.id],
      ]);
      const referrer = await participant(api, program, program.referrer.externalId);
      expect(referrer.stats).toMatchObject({ signups: 1, purchases: 3, revenue: { USD: 10_700 } });
      expect(referrer.rewards.approved).toEqual({ USD: 2140 });
    });

    it('the first invoice.paid arriving before the subscription Checkout (Stripe does not promise order) still ends with one purchase and the customer named in the session, attributed', async () => {
      const program = await shop();
      const customerId = sid('cus_');
      const subscription = sid('sub_1Q');
      const first = invoice({ customer: customerId, subscription, amount: 2900, billingReason: 'subscription_create' });
      const session = checkoutSession({
        mode: 'subscription',
        customer: customerId,
        subscription,
        metadata: { externalId: 'early-invoice', referral_code: program.referrer.code },
      });
      await accepted(program, stripeEvent('invoice.paid', first));
      await accepted(program, stripeEvent('checkout.session.completed', session));
      expect(await conversions(program, 'purchase')).toHaveLength(1);
      expect((await referrals(api, program)).data).toEqual([
        expect.objectContaining({ referred: 'early-invoice', referrer: program.referrer.externalId }),
      ]);
      // From now on, renewals are the named customer's, with the recurring commission.
      const renewal = await accepted(
        program,
        stripeEvent('invoice.paid', invoice({ customer: customerId, subscription, amount: 2900, billingReason: 'subscription_cycle' })),
      );
      expect(renewal.result.conversion.externalId).toBe('early-invoice');
      expect(renewal.result.rewards).toEqual([expect.objectContaining({ participant: program.referrer.externalId, amount: 580 })]);
    });

    it("renewals after the rule's withinDays still count as purchases but earn no commission", async () => {
      const program = await shop();
      const customerId = sid('cus_');
      await accepted(
        program,
        stripeEvent(
          'checkout.session.completed',
          checkoutSession({
            mode: 'subscription',
            customer: customerId,
            metadata: { externalId: 'old-timer', referral_code: program.referrer.code },
          }),
        ),
      );
      await accepted(program, stripeEvent('invoice.paid', invoice({ customer: customerId, amount: 1000 })));
      // The referral is now more than a year old.
      await db('referrals')
        .where({ program_id: program.id })
        .update({ created_at: new Date(Date.now() - 400 * DAY_MS) });
      const late = await accepted(
        program,
        stripeEvent('invoice.paid', invoice({ customer: customerId, amount: 1000, billingReason: 'subscription_cycle' })),
      );
      expect(late.handled).toBe('purchase');
      expect(late.result.rewards).toEqual([]);
      expect(await conversions(program, 'purchase')).toHaveLength(2);
      expect((await rewardsOf(program, program.referrer.externalId)).map((reward) => reward.amount)).toEqual([200]);
    });

    it.each([
      ['API 2025+: parent.subscription_details.metadata', 'new' as const, API_NEW],
      ['older API: subscription_details.metadata', 'old' as const, API_OLD],
    ])('reads subscription metadata from %s', async (_label, apiVersion, eventVersion) => {
      const program = await shop();
      const customerId = sid('cus_');
      // A subscription created through the API (no Checkout): the invoice is the first we hear of this customer.
      const first = invoice({
        apiVersion,
        customer: customerId,
        amount: 1500,
        subscriptionMetadata: { externalId: `meta-${apiVersion}`, referral_code: program.referrer.code },
      });
      const body = await accepted(program, stripeEvent('invoice.paid', first, { apiVersion: eventVersion }));
      expect(body.handled).toBe('purchase');
      expect(body.result.conversion).toMatchObject({ externalId: `meta-${apiVersion}`, eventId: first.id, amount: 1500, currency: 'USD' });
      expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });
      expect(body.result.rewards).toEqual([expect.objectContaining({ participant: program.referrer.externalId, amount: 300 })]);
      expect((await referrals(api, program)).data).toEqual([
        expect.objectContaining({ referred: `meta-${apiVersion}`, referrer: program.referrer.externalId }),
      ]);
      expect(await api.get(`/v1/participants/${customerId}`, { auth: program.secret })).toMatchObject({ status: 404 });

      // The renewal (same metadata still on the subscription, or none) is the same participant's.
      const renewal = invoice({ apiVersion, customer: customerId, amount: 1500, billingReason: 'subscription_cycle' });
      const next = await accepted(program, stripeEvent('invoice.paid', renewal, { apiVersion: eventVersion }));
      expect(next.result.conversion.externalId).toBe(`meta-${apiVersion}`);
      expect(await conversions(program, 'purchase')).toHaveLength(2);
      expect(await conversions(program, 'signup')).toHaveLength(1);
    });

    it('reads the referral from referral_vid in subscription metadata', async () => {
      const program = await shop();
      const vid = visitorId();
      await click(api, program, { code: program.referrer.code, vid });
      const body = await accepted(
        program,
        stripeEvent(
          'invoice.paid',
          invoice({ customer: sid('cus_'), subscriptionMetadata: { externalId: 'vid-subscriber', referral_vid: vid } }),
        ),
      );
      expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });
    });

    it("an invoice for an unknown customer with no metadata is that Stripe customer's purchase, unattributed", async () => {
      const program = await shop();
      const customerId = sid('cus_');
      const body = await accepted(program, stripeEvent('invoice.paid', invoice({ customer: customerId, amount: 700 })));
      expect(body.result.conversion.externalId).toBe(customerId);
      expect(body.result.attribution.status).toBe('none');
      expect(body.result.rewards).toEqual([]);
    });
  });

  // -------------------------------------------------------------------------
  describe('charge.refunded', () => {
    /** A referred checkout purchase of `amount`, returning its payment intent. */
    async function purchase(program: Shop, amount = 10_000, externalId = uniq('buyer-')) {
      const paymentIntent = sid('pi_3Q');
      const customer = sid('cus_');
      const session = checkoutSession({ amount, customer, paymentIntent, metadata: { externalId, referral_code: program.referrer.code } });
      const body = await accepted(program, stripeEvent('checkout.session.completed', session));
      expect(body.result.rewards).toHaveLength(1);
      return { paymentIntent, customer, sessionId: session.id as string, externalId, grant: body.result.rewards[0] };
    }

    it('a full refund refunds the purchase and revokes its unpaid rewards', async () => {
      const program = await shop();
      const bought = await purchase(program);
      const event = refundEvent({ paymentIntent: bought.paymentIntent, customer: bought.customer, amount: 10_000, amountRefunded: 10_000 });
      const body = await accepted(program, event);
      expect(body.handled).toBe('refund');
      expect(body.result.refund).toMatchObject({
        eventId: event.id,
        purchaseEventId: bought.sessionId,
        amount: 10_000,
        currency: 'USD',
        refundedTotal: 10_000,
      });
      expect(body.result.rewards).toEqual([expect.objectContaining({ id: bought.grant.id, status: 'revoked' })]);

      const refunds = await conversions(program, 'refund');
      expect(refunds).toHaveLength(1);
      expect(refunds[0]).toMatchObject({ amount: 10_000, source: 'stripe', event_id: event.id });
      const referrer = await participant(api, program, program.referrer.externalId);
      expect(referrer.stats.revenue).toEqual({ USD: 0 });
      expect(referrer.rewards).toEqual({ pending: {}, approved: {}, paid: {} });

      // Delivered again: nothing more.
      await accepted(program, event);
      expect(await conversions(program, 'refund')).toHaveLength(1);
    });

    it('partial refunds pro-rate percentage rewards; amount_refunded is cumulative, so each event refunds only the difference', async () => {
      const program = await shop();
      const bought = await purchase(program, 10_000);
      expect(bought.grant.amount).toBe(2000);
      const refund = (amountRefunded: number, previous: number) =>
        refundEvent({ paymentIntent: bought.paymentIntent, customer: bought.customer, amount: 10_000, amountRefunded }, previous);

      const first = refund(2500, 0);
      const a = await accepted(program, first);
      expect(a.result.refund).toMatchObject({ amount: 2500, refundedTotal: 2500 });
      expect(a.result.rewards).toEqual([expect.objectContaining({ amount: -500, reverses: bought.grant.id })]);

      const second = refund(4000, 2500);
      const b = await accepted(program, second);
      expect(b.result.refund).toMatchObject({ amount: 1500, refundedTotal: 4000 });
      expect(b.result.rewards).toEqual([expect.objectContaining({ amount: -300, reverses: bought.grant.id })]);

      // The second event again, and the first one arriving late: nothing more is refunded.
      await accepted(program, second);
      const stale = await accepted(program, refund(2500, 0));
      expect(stale.handled).toBe('ignored');
      expect((await conversions(program, 'refund')).map((row) => row.amount)).toEqual([2500, 1500]);

      let referrer = await participant(api, program, program.referrer.externalId);
      expect(referrer.stats.revenue).toEqual({ USD: 6000 });
      expect(referrer.rewards.approved).toEqual({ USD: 1200 });

      // The rest: a full refund in the end revokes the reward and its adjustments.
      const last = await accepted(program, refund(10_000, 4000));
      expect(last.result.refund).toMatchObject({ amount: 6000, refundedTotal: 10_000 });
      expect((await conversions(program, 'refund')).map((row) => row.amount)).toEqual([2500, 1500, 6000]);
      referrer = await participant(api, program, program.referrer.externalId);
      expect(referrer.stats.revenue).toEqual({ USD: 0 });
      expect(referrer.rewards.approved).toEqual({});
    });

    it('two partial refund events delivered at once refund the cumulative amount, not their sum', async () => {
      const program = await shop();
      const bought = await purchase(program, 10_000);
      const refund = (amountRefunded: number, previous: number) =>
        refundEvent({ paymentIntent: bought.paymentIntent, customer: bought.customer, amount: 10_000, amountRefunded }, previous);
      const replies = await Promise.all([deliver(program, refund(3000, 0)), deliver(program, refund(5000, 3000))]);
      for (const reply of replies) expect(reply.status, reply.text).toBe(200);
      const total = (await conversions(program, 'refund')).reduce((sum, row) => sum + Number(row.amount), 0);
      expect(total).toBe(5000);
      expect((await participant(api, program, program.referrer.externalId)).rewards.approved).toEqual({ USD: 1000 });
    });

    it('a paid reward is clawed back with a negative entry when its purchase is refunded', async () => {
      const program = await shop();
      const bought = await purchase(program, 5000);
      const pay = await api.post(`/v1/rewards/${bought.grant.id}/pay`, {}, { auth: program.secret });
      expect(pay.status, pay.text).toBe(200);
      const body = await accepted(
        program,
        refundEvent({ paymentIntent: bought.paymentIntent, customer: bought.customer, amount: 5000, amountRefunded: 5000 }),
      );
      expect(body.result.rewards).toEqual([expect.objectContaining({ amount: -1000, status: 'approved', reverses: bought.grant.id })]);
      const referrer = await participant(api, program, program.referrer.externalId);
      expect(referrer.rewards).toEqual({ pending: {}, approved: { USD: -1000 }, paid: { USD: 1000 } });
    });

    it("refunds a subscription payment by the invoice's payment intent (older API) or its payments list (API 2025+)", async () => {
      const program = await shop();
      const customerId = sid('cus_');
      await accepted(
        program,
        stripeEvent(
          'checkout.session.completed',
          checkoutSession({
            mode: 'subscription',
            customer: customerId,
            metadata: { externalId: 'refund-sub', referral_code: program.referrer.code },
          }),
        ),
      );
      const oldPi = sid('pi_3Q');
      const oldInvoice = invoice({ apiVersion: 'old', customer: customerId, amount: 3000, paymentIntent: oldPi });
      await accepted(program, stripeEvent('invoice.paid', oldInvoice, { apiVersion: API_OLD }));
      const newPi = sid('pi_3Q');
      const newInvoice = invoice({
        apiVersion: 'new',
        customer: customerId,
        amount: 3000,
        paymentIntent: newPi,
        withPayments: true,
        billingReason: 'subscription_cycle',
      });
      await accepted(program, stripeEvent('invoice.paid', newInvoice));

      const a = await accepted(
        program,
        refundEvent(
          { paymentIntent: oldPi, customer: customerId, invoice: oldInvoice.id as string, amount: 3000, amountRefunded: 1000 },
          0,
          API_OLD,
        ),
      );
      expect(a.result.refund).toMatchObject({ purchaseEventId: oldInvoice.id, amount: 1000 });
      const b = await accepted(program, refundEvent({ paymentIntent: newPi, customer: customerId, amount: 3000, amountRefunded: 3000 }));
      expect(b.result.refund).toMatchObject({ purchaseEventId: newInvoice.id, amount: 3000 });
    });

    it('refunds an older-API invoice purchase found only through charge.invoice', async () => {
      const program = await shop();
      const customerId = sid('cus_');
      const entry = invoice({
        apiVersion: 'old',
        customer: customerId,
        amount: 2000,
        subscriptionMetadata: { externalId: 'by-invoice', referral_code: program.referrer.code },
      });
      await accepted(program, stripeEvent('invoice.paid', entry, { apiVersion: API_OLD }));
      // A charge whose payment intent we never saw, naming the invoice.
      const body = await accepted(
        program,
        refundEvent(
          { paymentIntent: sid('pi_3Q'), customer: customerId, invoice: entry.id as string, amount: 2000, amountRefunded: 500 },
          0,
          API_OLD,
        ),
      );
      expect(body.result.refund).toMatchObject({ purchaseEventId: entry.id, amount: 500 });
    });

    it('an unknown purchase answers 404 (so Stripe retries) and stores nothing; the retry succeeds once the purchase is known', async () => {
      const program = await shop();
      const paymentIntent = sid('pi_3Q');
      const customer = sid('cus_');
      const event = refundEvent({ paymentIntent, customer, amount: 4000, amountRefunded: 4000 });
      const before = await countRows(db, 'conversions', { program_id: program.id });
      const early = await deliver(program, event);
      expect(early.status, early.text).toBe(404);
      expect(early.body.error.code).toBe('not_found');
      expect(await countRows(db, 'conversions', { program_id: program.id })).toBe(before);

      await accepted(
        program,
        stripeEvent(
          'checkout.session.completed',
          checkoutSession({
            amount: 4000,
            customer,
            paymentIntent,
            metadata: { externalId: 'out-of-order', referral_code: program.referrer.code },
          }),
        ),
      );
      const retried = await accepted(program, event);
      expect(retried.handled).toBe('refund');
      expect(retried.result.refund).toMatchObject({ amount: 4000 });
    });

    it('a charge with neither a known payment intent nor an invoice is 404', async () => {
      const program = await shop();
      await purchase(program);
      const reply = await deliver(program, refundEvent({ paymentIntent: null, customer: null, amount: 10_000, amountRefunded: 10_000 }));
      expect(reply.status, reply.text).toBe(404);
      expect(await conversions(program, 'refund')).toEqual([]);
    });
  });

  // -------------------------------------------------------------------------
  it('end to end: a referred visitor buys through Checkout; the purchase is attributed and the referrer earns the commission', async () => {
    const program = await shop();
    // 1. The visitor lands through the referrer's link; the snippet reports the click with its visitor id.
    const vid = visitorId();
    await click(api, program, { code: program.referrer.code, vid });
    expect((await participant(api, program, program.referrer.externalId)).stats.clicks).toBe(1);

    // 2. The host creates a Checkout Session with client_reference_id = referral.get().vid and its own user id.
    const customerId = sid('cus_');
    const paymentIntent = sid('pi_3Q');
    const session = checkoutSession({
      amount: 7900,
      currency: 'usd',
      customer: customerId,
      paymentIntent,
      clientReferenceId: vid,
      metadata: { externalId: 'shop-user-1001', order: 'ORD-1001' },
    });

    // 3. Stripe reports the payment.
    const body = await accepted(program, stripeEvent('checkout.session.completed', session));
    expect(body.handled).toBe('purchase');
    expect(body.result.conversion).toMatchObject({
      externalId: 'shop-user-1001',
      eventId: session.id,
      amount: 7900,
      currency: 'USD',
      verified: true,
    });
    expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });

    expect((await referrals(api, program)).data).toEqual([
      expect.objectContaining({
        referrer: program.referrer.externalId,
        referred: 'shop-user-1001',
        code: program.referrer.code,
        verified: true,
      }),
    ]);
    const buyer = await participant(api, program, 'shop-user-1001');
    expect(buyer.referredBy).toBe(program.referrer.externalId);

    const referrer = await participant(api, program, program.referrer.externalId);
    expect(referrer.stats).toEqual({ clicks: 1, signups: 1, purchases: 1, revenue: { USD: 7900 } });
    expect(referrer.rewards).toEqual({ pending: {}, approved: { USD: 1580 }, paid: {} });
    const rewards = await rewardsOf(program, program.referrer.externalId);
    expect(rewards).toEqual([
      expect.objectContaining({ rule: 'rec', kind: 'cash', amount: 1580, currency: 'USD', status: 'approved', eventId: session.id }),
    ]);
  });

  // -------------------------------------------------------------------------
  // Stripe's own check refuses only old timestamps; a signature dated ahead of now
  // would stay replayable until that date comes.
  it('refuses a signature dated more than the tolerance in the future, and stores nothing', async () => {
    const program = await shop();
    const event = () => stripeEvent('checkout.session.completed', checkoutSession({ metadata: { externalId: uniq('user-') } }));
    const before = await countRows(db, 'conversions', { program_id: program.id });
    for (const ahead of [6 * 60, 60 * 60, 365 * 86_400]) {
      const reply = await deliver(program, event(), { timestamp: unix() + ahead });
      expect(reply.status, `${ahead}s ahead: ${reply.text}`).toBe(400);
      expect(reply.body.error.code).toBe('invalid_signature');
    }
    expect(await countRows(db, 'conversions', { program_id: program.id })).toBe(before);
    // Clock skew inside the tolerance is fine (control).
    const skewed = await deliver(program, event(), { timestamp: unix() + 4 * 60 });
    expect(skewed.status, skewed.text).toBe(200);
    expect(await countRows(db, 'conversions', { program_id: program.id })).toBe(before + 2); // its signup and its purchase
  });
});
