/**
 * Stripe promotion codes as referral codes, through the real app on every database: a
 * participant's promo code (`POST /v1/participants/:externalId/promo-codes`) maps a
 * Stripe promotion code (`promo_…`) to them, and a signed webhook whose discounts carry
 * it attributes the paying customer to its owner (decision `promo_code`) with no cookie
 * or metadata. `create: true` creates the promotion code in Stripe first, through the
 * official SDK pointed at a local stand-in of the Stripe API (`STRIPE_API_URL`).
 */
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PromoCodeResponse } from '../../shared/responses.ts';
import type { Reply, TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, newVid, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { countRows } from '../helpers/rows.ts';
import {
  browserEvent,
  click,
  conversion,
  decisions,
  expectError,
  expectOk,
  expectValidation,
  listAllRewards,
  referrals,
} from '../helpers/steps.ts';
import {
  API_OLD,
  checkoutSession,
  deliverStripe,
  discountObject,
  invoice,
  promotionCodeId,
  refundEvent,
  sessionDiscount,
  sid,
  startPromotionCodeStandIn,
  stripeEvent,
  type Json,
  type PromotionCodeStandIn,
  type SessionInput,
} from '../helpers/stripe.ts';
import { type Suite, useTestApp } from '../helpers/suite.ts';

/** 20% of every purchase to the referrer. */
const SHARE = { id: 'share', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 20 } };
const COUPON = 'SAVE10';

/** A subscription Checkout of 29.00 with the promotion code applied. */
const subscriptionCheckout = (customer: string, subscription: string, promo: PromoCodeResponse) =>
  checkoutSession({
    mode: 'subscription',
    customer,
    subscription,
    amount: 2900,
    extra: { discounts: [sessionDiscount(promo.discountId, COUPON)] },
  });

type Participant = Awaited<ReturnType<typeof buildParticipant>>;
interface Shop extends ProgramFixture {
  webhookSecret: string;
  /** Anna: owns the promo codes unless a test says otherwise. */
  owner: Participant;
}

let stripeApi: PromotionCodeStandIn;
beforeAll(async () => {
  stripeApi = await startPromotionCodeStandIn();
  stripeApi.coupons.add(COUPON);
});
afterAll(async () => {
  await stripeApi?.close();
});

describe.each(DATABASES)('Stripe promo codes (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  let suite: Suite;
  useTestApp(kind, (opened) => {
    suite = opened;
    db = opened.db;
  });
  // The app's Stripe SDK calls go to the stand-in, started before this suite.
  beforeAll(async () => {
    api = await suite.startApp({ STRIPE_API_URL: stripeApi.url });
  });

  const secretKey = () => `sk_test_${randomBytes(18).toString('hex')}`;

  async function shop(stripe: Record<string, unknown> = {}): Promise<Shop> {
    const webhookSecret = `whsec_${randomBytes(24).toString('base64')}`;
    const program = await buildProgram(api, { settings: { stripe: { webhookSecret, ...stripe }, rewardRules: [SHARE] } });
    const owner = await buildParticipant(api, program, { externalId: uniq('anna-'), name: 'Anna Lima' });
    return { ...program, webhookSecret, owner };
  }

  const promoCodesPath = (externalId: string) => `/v1/participants/${encodeURIComponent(externalId)}/promo-codes`;
  const addPromoCode = (program: ProgramFixture, externalId: string, body: Record<string, unknown>): Promise<Reply> =>
    api.post(promoCodesPath(externalId), body, { auth: program.secret });

  /** Maps a fresh Stripe promotion code to `externalId`; returns what the API answered. */
  async function mapPromoCode(program: ProgramFixture, externalId: string, code = uniq('ANNA')): Promise<PromoCodeResponse> {
    return expectOk(await addPromoCode(program, externalId, { provider: 'stripe', id: promotionCodeId(), code }), 201);
  }

  async function accepted(program: Shop, event: Json): Promise<any> {
    const reply = await deliverStripe(api, program.slug, event, { secret: program.webhookSecret });
    expect(reply.status, reply.text).toBe(200);
    expect(reply.body.received).toBe(true);
    return reply.body;
  }

  /** A paid Checkout (payment mode) whose only referral data is the promotion code the customer typed. */
  const paidWithPromo = (promotionCode: string | null, input: SessionInput = {}) =>
    stripeEvent(
      'checkout.session.completed',
      checkoutSession({
        amount: 4900,
        ...input,
        extra: {
          amount_subtotal: 5444,
          discounts: [sessionDiscount(promotionCode, COUPON)],
          total_details: { amount_discount: 544, amount_shipping: 0, amount_tax: 0 },
          ...input.extra,
        },
      }),
    );

  /** The id of the session an event carries: the purchase's eventId. */
  const sessionId = (event: Json) => (event.data as { object: { id: string } }).object.id;
  const purchases = (program: { id: string }) => countRows(db, 'conversions', { program_id: program.id, type: 'purchase' });
  const rewardsOf = async (program: ProgramFixture) =>
    (await listAllRewards(api, program)).map((reward) => [reward.participant, reward.rule, reward.amount, reward.eventId]);
  const promoCodesOf = async (program: ProgramFixture, externalId: string) =>
    (expectOk(await api.get(promoCodesPath(externalId), { auth: program.secret })) as { data: PromoCodeResponse[] }).data;
  /** What the stand-in received for this program (every program has its own slug in the metadata). */
  const stripeRequestsOf = (program: ProgramFixture) =>
    stripeApi.requests.filter((request) => request.form['metadata[referral_program]'] === program.slug);

  // -------------------------------------------------------------------------
  describe('a Checkout paid with a mapped promotion code', () => {
    it('attributes the new customer to its owner (decision promo_code) with no metadata or client_reference_id; rewarded once, stored once on redelivery', async () => {
      const program = await shop();
      const promo = await mapPromoCode(program, program.owner.externalId, 'ANNA10');
      expect(promo).toEqual({
        id: expect.any(String),
        participant: program.owner.externalId,
        provider: 'stripe',
        discountId: expect.stringMatching(/^promo_/),
        code: 'ANNA10',
        createdAt: expect.any(String),
      });
      const customer = sid('cus_');
      const event = paidWithPromo(promo.discountId, { customer, clientReferenceId: null, metadata: {} });

      const body = await accepted(program, event);
      expect(body.handled).toBe('purchase');
      expect(body.result.conversion).toMatchObject({ externalId: customer, amount: 4900, currency: 'USD' });
      // The signup the purchase made attributed the customer; the purchase finds that referral.
      expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.owner.externalId });
      expect(body.result.rewards).toEqual([
        expect.objectContaining({ participant: program.owner.externalId, rule: 'share', amount: 980, currency: 'USD' }),
      ]);

      expect((await referrals(api, program)).data).toEqual([
        expect.objectContaining({
          referrer: program.owner.externalId,
          referred: customer,
          status: 'attributed',
          reason: null,
          verified: true,
        }),
      ]);
      expect(await decisions(api, program, 'reason=promo_code')).toEqual([
        expect.objectContaining({
          subject: 'attribution',
          outcome: 'accepted',
          participant: customer,
          referrer: program.owner.externalId,
          code: 'ANNA10',
          details: { promoCode: { id: promo.id, provider: 'stripe', discountId: promo.discountId, code: 'ANNA10' } },
        }),
      ]);

      // Stripe redelivers the same event (re-signed): nothing new.
      const again = await accepted(program, event);
      expect(again.result.conversion.id).toBe(body.result.conversion.id);
      expect(await purchases(program)).toBe(1);
      expect(await rewardsOf(program)).toEqual([[program.owner.externalId, 'share', 980, sessionId(event)]]);
      expect((await referrals(api, program)).data).toHaveLength(1);
      expect(await decisions(api, program, 'reason=promo_code')).toHaveLength(1);
    });

    it('a promotion code of someone in another program names nobody here', async () => {
      const program = await shop();
      const other = await shop();
      const promo = await mapPromoCode(other, other.owner.externalId);
      const body = await accepted(program, paidWithPromo(promo.discountId));
      expect(body.handled).toBe('purchase');
      expect(body.result.attribution).toMatchObject({ status: 'none' });
      expect(body.result.rewards).toEqual([]);
      expect((await referrals(api, program)).data).toEqual([]);
      expect((await referrals(api, other)).data).toEqual([]);
    });
  });

  // -------------------------------------------------------------------------
  describe('subscriptions: invoice.paid', () => {
    it('an older API version: the invoice carries its discount expanded (discount.promotion_code); the invoice alone attributes the customer', async () => {
      const program = await shop();
      const promo = await mapPromoCode(program, program.owner.externalId);
      const customer = sid('cus_');
      const subscription = sid('sub_1Q');
      const discount = discountObject({ promotionCode: promo.discountId, customer, subscription, coupon: COUPON, apiVersion: 'old' });
      const paid = { ...invoice({ apiVersion: 'old', customer, subscription, amount: 2900 }), discount, discounts: [discount.id] };

      const body = await accepted(program, stripeEvent('invoice.paid', paid, { apiVersion: API_OLD }));
      expect(body.handled).toBe('purchase');
      expect(body.result.conversion).toMatchObject({ externalId: customer, amount: 2900 });
      expect(body.result.rewards).toEqual([expect.objectContaining({ participant: program.owner.externalId, amount: 580 })]);
      expect(await decisions(api, program, 'reason=promo_code')).toEqual([
        expect.objectContaining({ outcome: 'accepted', participant: customer, referrer: program.owner.externalId, code: promo.code }),
      ]);
    });

    it('API 2025+: invoices name their discounts by id (di_…) only, so the subscription Checkout carries the promotion code; its invoices are then the referred customer’s, with recurring commissions', async () => {
      const program = await shop();
      const promo = await mapPromoCode(program, program.owner.externalId);
      const customer = sid('cus_');
      const subscription = sid('sub_1Q');
      const session = subscriptionCheckout(customer, subscription, promo);
      const linked = await accepted(program, stripeEvent('checkout.session.completed', session));
      expect(linked.handled).toBe('customer_linked');
      expect((await referrals(api, program)).data).toEqual([
        expect.objectContaining({ referrer: program.owner.externalId, referred: customer }),
      ]);

      const discountIds = { discounts: [sid('di_1Q')] };
      for (const billingReason of ['subscription_create', 'subscription_cycle'] as const) {
        const paid = { ...invoice({ customer, subscription, amount: 2900, billingReason }), ...discountIds };
        const body = await accepted(program, stripeEvent('invoice.paid', paid));
        expect(body.result.conversion.externalId).toBe(customer);
        expect(body.result.rewards).toEqual([expect.objectContaining({ participant: program.owner.externalId, amount: 580 })]);
      }
      expect(await purchases(program)).toBe(2);
      expect(await decisions(api, program, 'reason=promo_code')).toEqual([
        expect.objectContaining({ outcome: 'accepted', participant: customer, referrer: program.owner.externalId }),
      ]);
    });

    // Stripe does not promise order, and the first invoice.paid often comes before checkout.session.completed.
    // That invoice names its discounts by id only, so the customer is signed up unattributed and linked; the
    // session's promotion code then attributes them as of their signup (conversions.ts attributeLater).
    it('the first invoice.paid arriving before the subscription Checkout that carries the promotion code: the customer is still attributed', async () => {
      const program = await shop();
      const promo = await mapPromoCode(program, program.owner.externalId);
      const customer = sid('cus_');
      const subscription = sid('sub_1Q');
      const discountIds = { discounts: [sid('di_1Q')] };
      await accepted(program, stripeEvent('invoice.paid', { ...invoice({ customer, subscription, amount: 2900 }), ...discountIds }));
      const session = subscriptionCheckout(customer, subscription, promo);
      expect((await accepted(program, stripeEvent('checkout.session.completed', session))).handled).toBe('customer_linked');
      // The first invoice, paid before the session arrived, counts and earns as it would have.
      const earned = expectOk(
        await api.get(`/v1/rewards?participant=${encodeURIComponent(program.owner.externalId)}`, { auth: program.secret }),
      );
      expect(earned.data).toEqual([expect.objectContaining({ amount: 580 })]);
      const renewal = { ...invoice({ customer, subscription, amount: 2900, billingReason: 'subscription_cycle' }), ...discountIds };
      const body = await accepted(program, stripeEvent('invoice.paid', renewal));
      expect(body.result.conversion.externalId).toBe(customer);
      expect((await referrals(api, program)).data).toEqual([
        expect.objectContaining({ referrer: program.owner.externalId, referred: customer }),
      ]);
    });

    it('an invoice refunded before the Checkout that carries the promotion code arrives: it earns on what was kept, or nothing when refunded in full', async () => {
      const program = await shop();
      const promo = await mapPromoCode(program, program.owner.externalId);
      const customer = sid('cus_');
      const subscription = sid('sub_1Q');
      const discountIds = { discounts: [sid('di_1Q')] };
      const [kept, gone] = [sid('pi_3Q'), sid('pi_3Q')];
      for (const paymentIntent of [kept, gone]) {
        await accepted(
          program,
          stripeEvent('invoice.paid', {
            ...invoice({ customer, subscription, amount: 2900, paymentIntent, withPayments: true }),
            ...discountIds,
          }),
        );
      }
      await accepted(program, refundEvent({ paymentIntent: kept, customer, amount: 2900, amountRefunded: 900 }));
      await accepted(program, refundEvent({ paymentIntent: gone, customer, amount: 2900, amountRefunded: 2900 }));
      const session = subscriptionCheckout(customer, subscription, promo);
      expect((await accepted(program, stripeEvent('checkout.session.completed', session))).handled).toBe('customer_linked');
      // As if the refunds had come after: 580 granted and 180 (580 × 900 / 2900) taken back; nothing on the other.
      const earned = await listAllRewards(api, program, { participant: program.owner.externalId });
      expect(earned.map((r) => r.amount).sort((a, b) => a - b)).toEqual([-180, 580]);
      const owner = expectOk(await api.get(`/v1/participants/${encodeURIComponent(program.owner.externalId)}`, { auth: program.secret }));
      expect(owner.stats).toMatchObject({ purchases: 2, revenue: { USD: 2000 } });
    });

    it('invoice discounts expanded as the API returns them (expand[]=discounts) are read too', async () => {
      const program = await shop();
      const promo = await mapPromoCode(program, program.owner.externalId);
      const customer = sid('cus_');
      const subscription = sid('sub_1Q');
      const paid = {
        ...invoice({ customer, subscription, amount: 2900 }),
        discounts: [discountObject({ promotionCode: promo.discountId, customer, subscription, coupon: COUPON })],
      };
      const body = await accepted(program, stripeEvent('invoice.paid', paid));
      expect(body.result.rewards).toEqual([expect.objectContaining({ participant: program.owner.externalId, amount: 580 })]);
      expect((await referrals(api, program)).data).toEqual([
        expect.objectContaining({ referrer: program.owner.externalId, referred: customer }),
      ]);
    });

    it('an API 2025+ invoice alone (discount ids only, no session yet) names no promotion code: the purchase is recorded, unattributed', async () => {
      const program = await shop();
      await mapPromoCode(program, program.owner.externalId);
      const paid = { ...invoice({ customer: sid('cus_'), amount: 2900 }), discounts: [sid('di_1Q')] };
      const body = await accepted(program, stripeEvent('invoice.paid', paid));
      expect(body.handled).toBe('purchase');
      expect(body.result.attribution).toMatchObject({ status: 'none' });
      expect((await referrals(api, program)).data).toEqual([]);
    });
  });

  // -------------------------------------------------------------------------
  describe('promotion codes that name nobody', () => {
    it('a promotion code nobody owns attributes nothing; the purchase is still recorded', async () => {
      const program = await shop();
      await mapPromoCode(program, program.owner.externalId);
      const body = await accepted(program, paidWithPromo(promotionCodeId()));
      expect(body.handled).toBe('purchase');
      expect(body.result.attribution).toMatchObject({ status: 'none' });
      expect(body.result.rewards).toEqual([]);
      expect(await purchases(program)).toBe(1);
      expect((await referrals(api, program)).data).toEqual([]);
      expect(await decisions(api, program, 'reason=promo_code')).toEqual([]);
    });

    it('an erased owner refers nobody: their promo codes go with them', async () => {
      const program = await shop();
      const promo = await mapPromoCode(program, program.owner.externalId);
      const erased = await api.request('DELETE', `/v1/participants/${program.owner.externalId}`, undefined, { auth: program.secret });
      expect(erased.status, erased.text).toBe(204);
      expect(await countRows(db, 'promo_codes', { program_id: program.id })).toBe(0);

      const body = await accepted(program, paidWithPromo(promo.discountId));
      expect(body.handled).toBe('purchase');
      expect(body.result.attribution).toMatchObject({ status: 'none' });
      expect(body.result.rewards).toEqual([]);
      expect((await referrals(api, program)).data).toEqual([]);
      expect(await listAllRewards(api, program)).toEqual([]);
    });
  });

  // -------------------------------------------------------------------------
  describe('a customer who already has a referral', () => {
    it('keeps the referral made by link (first referral wins): the purchase earns that referrer, and the other promo code is a rejected already_attributed decision', async () => {
      const program = await shop();
      const linkReferrer = await buildParticipant(api, program, { externalId: uniq('bea-') });
      const promo = await mapPromoCode(program, program.owner.externalId);
      // Came through Bea's link; the host's server reported the signup with the referral.
      const vid = newVid();
      await click(api, program, { code: linkReferrer.code, vid });
      const customer = uniq('user-');
      const signup = await conversion(api, program, { externalId: customer, code: linkReferrer.code, vid });
      expect(signup.attribution).toMatchObject({ status: 'attributed', referrer: linkReferrer.externalId });

      // Then paid at Checkout with Anna's promotion code.
      const event = paidWithPromo(promo.discountId, { metadata: { externalId: customer } });
      const body = await accepted(program, event);
      expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: linkReferrer.externalId });
      expect(body.result.rewards).toEqual([expect.objectContaining({ participant: linkReferrer.externalId, amount: 980 })]);
      expect((await referrals(api, program)).data).toEqual([
        expect.objectContaining({ referrer: linkReferrer.externalId, referred: customer }),
      ]);
      expect(await decisions(api, program, 'reason=already_attributed')).toEqual([
        expect.objectContaining({
          outcome: 'rejected',
          participant: customer,
          referrer: linkReferrer.externalId,
          code: promo.code,
        }),
      ]);
      expect(await decisions(api, program, 'reason=promo_code')).toEqual([]);
      expect(await rewardsOf(program)).toEqual([[linkReferrer.externalId, 'share', 980, sessionId(event)]]);
    });

    it('a referral only the browser made is not confirmed by a payment carrying another owner’s promo code: the verified payment names the referrer', async () => {
      const program = await shop();
      const linkReferrer = await buildParticipant(api, program, { externalId: uniq('bea-') });
      const promo = await mapPromoCode(program, program.owner.externalId);
      const vid = newVid();
      await click(api, program, { code: linkReferrer.code, vid });
      const customer = uniq('user-');
      await browserEvent(api, program, { userId: customer, vid, code: linkReferrer.code });
      expect((await referrals(api, program)).data).toEqual([
        expect.objectContaining({ referrer: linkReferrer.externalId, referred: customer, verified: false }),
      ]);

      const body = await accepted(program, paidWithPromo(promo.discountId, { metadata: { externalId: customer } }));
      expect(body.result.rewards).toEqual([expect.objectContaining({ participant: program.owner.externalId, amount: 980 })]);
      expect((await referrals(api, program)).data).toEqual([
        expect.objectContaining({ referrer: program.owner.externalId, referred: customer, verified: true }),
      ]);
    });

    it('in one Checkout, the promotion code typed at payment wins over a referral code in the metadata', async () => {
      const program = await shop();
      const linkReferrer = await buildParticipant(api, program, { externalId: uniq('bea-') });
      const promo = await mapPromoCode(program, program.owner.externalId);
      const customer = uniq('user-');
      const body = await accepted(
        program,
        paidWithPromo(promo.discountId, { metadata: { externalId: customer, referral_code: linkReferrer.code } }),
      );
      expect(body.result.rewards).toEqual([expect.objectContaining({ participant: program.owner.externalId })]);
      expect((await referrals(api, program)).data).toEqual([
        expect.objectContaining({ referrer: program.owner.externalId, referred: customer }),
      ]);
    });
  });

  // -------------------------------------------------------------------------
  describe('create: true makes the promotion code in Stripe', () => {
    it('POSTs /v1/promotion_codes with the coupon, the code and an Idempotency-Key, stores the id Stripe answered, and that code then attributes', async () => {
      const program = await shop({ secretKey: secretKey() });
      const code = uniq('ANNA');
      const reply = await addPromoCode(program, program.owner.externalId, { provider: 'stripe', code, create: true, coupon: COUPON });
      const stored = expectOk(reply, 201) as PromoCodeResponse;

      const sent = stripeRequestsOf(program);
      expect(sent).toHaveLength(1);
      expect(sent[0]).toMatchObject({
        method: 'POST',
        path: '/v1/promotion_codes',
        form: {
          'promotion[type]': 'coupon',
          'promotion[coupon]': COUPON,
          code,
          'metadata[referral_program]': program.slug,
          'metadata[referral_participant]': program.owner.externalId,
        },
        authorization: expect.stringMatching(/^Bearer sk_test_/),
      });
      expect(sent[0]?.idempotencyKey).toEqual(expect.stringMatching(/\S{16,}/));
      const created = stripeApi.created.filter((promotion) => promotion.code === code);
      expect(created).toHaveLength(1);
      expect(stored).toMatchObject({ participant: program.owner.externalId, provider: 'stripe', discountId: created[0]?.id, code });
      expect(await promoCodesOf(program, program.owner.externalId)).toEqual([stored]);

      const customer = sid('cus_');
      const body = await accepted(program, paidWithPromo(stored.discountId, { customer }));
      expect(body.result.rewards).toEqual([expect.objectContaining({ participant: program.owner.externalId, amount: 980 })]);
    });

    it('the same request again sends the same Idempotency-Key, so Stripe creates nothing twice; the collector answers 409 promo_code_taken', async () => {
      const program = await shop({ secretKey: secretKey() });
      const body = { provider: 'stripe', code: uniq('ANNA'), create: true, coupon: COUPON };
      const first = expectOk(await addPromoCode(program, program.owner.externalId, body), 201) as PromoCodeResponse;
      const again = await addPromoCode(program, program.owner.externalId, body);
      expect(expectError(again, 409, 'promo_code_taken').message).toContain(body.code);

      const sent = stripeRequestsOf(program);
      expect(sent).toHaveLength(2);
      expect(sent[1]?.idempotencyKey).toBe(sent[0]?.idempotencyKey);
      expect(stripeApi.created.filter((promotion) => promotion.code === body.code)).toHaveLength(1);
      expect(await promoCodesOf(program, program.owner.externalId)).toEqual([first]);
    });

    it('Stripe refusing the request (an unknown coupon) answers 422 stripe_refused with Stripe’s reason, and stores nothing', async () => {
      const program = await shop({ secretKey: secretKey() });
      const code = uniq('ANNA');
      const reply = await addPromoCode(program, program.owner.externalId, {
        provider: 'stripe',
        code,
        create: true,
        coupon: 'NO_SUCH_COUPON',
      });
      expect(reply.body).toEqual({
        error: { code: 'stripe_refused', message: "Stripe refused the promotion code: No such coupon: 'NO_SUCH_COUPON'" },
      });
      expect(reply.status).toBe(422);
      expect(stripeRequestsOf(program)).toHaveLength(1);
      expect(await countRows(db, 'promo_codes', { program_id: program.id })).toBe(0);
      // Corrected to a real coupon, it is a new request to Stripe (another idempotency key),
      // not one Stripe refuses as "same key, other parameters".
      expectOk(await addPromoCode(program, program.owner.externalId, { provider: 'stripe', code, create: true, coupon: COUPON }), 201);
      const sent = stripeRequestsOf(program);
      expect(sent).toHaveLength(2);
      expect(sent[1]?.idempotencyKey).not.toBe(sent[0]?.idempotencyKey);
    });

    it('Stripe failing (500, retried by the SDK with the same key) answers 503 unavailable with Retry-After, and stores nothing', async () => {
      const program = await shop({ secretKey: secretKey() });
      stripeApi.failing.on = true;
      let reply: Reply;
      try {
        reply = await addPromoCode(program, program.owner.externalId, {
          provider: 'stripe',
          code: uniq('ANNA'),
          create: true,
          coupon: COUPON,
        });
      } finally {
        stripeApi.failing.on = false;
      }
      expect(reply.body).toEqual({
        error: { code: 'unavailable', message: 'Stripe could not be reached to create the promotion code; retry' },
      });
      expect(reply.status).toBe(503);
      expect(reply.headers.get('retry-after')).toMatch(/^\d+$/);
      const sent = stripeRequestsOf(program);
      expect(sent.length).toBeGreaterThanOrEqual(1);
      expect(new Set(sent.map((request) => request.idempotencyKey)).size).toBe(1);
      expect(await countRows(db, 'promo_codes', { program_id: program.id })).toBe(0);
    });

    it('without settings.stripe.secretKey: 400 stripe_not_configured saying what to set; an unknown participant is 404; Stripe hears of neither', async () => {
      const program = await shop();
      const body = { provider: 'stripe', code: uniq('ANNA'), create: true, coupon: COUPON };
      expect(await addPromoCode(program, program.owner.externalId, body)).toMatchObject({
        status: 400,
        body: {
          error: {
            code: 'stripe_not_configured',
            message: 'Set settings.stripe.secretKey for this program to create Stripe promotion codes',
          },
        },
      });
      const configured = await shop({ secretKey: secretKey() });
      expectError(await addPromoCode(configured, uniq('nobody-'), body), 404, 'not_found');
      expect(stripeRequestsOf(program)).toEqual([]);
      expect(stripeRequestsOf(configured)).toEqual([]);
      expect(await countRows(db, 'promo_codes', { program_id: program.id })).toBe(0);
      expect(await countRows(db, 'promo_codes', { program_id: configured.id })).toBe(0);
    });
  });

  // -------------------------------------------------------------------------
  describe('validation', () => {
    it.each([
      [
        'a Stripe promo code without id or create',
        { provider: 'stripe', code: 'ANNA10' },
        { id: 'Stripe webhooks name the promotion code by its id (promo_…): give it, or create: true with a coupon' },
      ],
      [
        'create without a coupon',
        { provider: 'stripe', code: 'ANNA10', create: true },
        { coupon: 'creating a Stripe promotion code needs the coupon id it applies' },
      ],
      [
        'create with an id',
        { provider: 'stripe', id: 'promo_1Qabc', code: 'ANNA10', create: true, coupon: COUPON },
        { id: 'a promotion code created here gets its id from Stripe' },
      ],
    ])('%s: 422 with the field, nothing stored or sent to Stripe', async (_name, body, fields) => {
      const program = await shop({ secretKey: secretKey() });
      expect(expectValidation(await addPromoCode(program, program.owner.externalId, body))).toEqual(fields);
      expect(await countRows(db, 'promo_codes', { program_id: program.id })).toBe(0);
      expect(stripeRequestsOf(program)).toEqual([]);
    });

    it('a promotion code id or code text already mapped in the program is 409 promo_code_taken, whoever asks', async () => {
      const program = await shop();
      const promo = await mapPromoCode(program, program.owner.externalId, 'ANNA10');
      const other = await buildParticipant(api, program);
      for (const body of [
        { provider: 'stripe', id: promo.discountId, code: 'OTHER10' },
        { provider: 'stripe', id: promotionCodeId(), code: 'anna10' },
      ]) {
        expectError(await addPromoCode(program, other.externalId, body), 409, 'promo_code_taken');
      }
      expect(await countRows(db, 'promo_codes', { program_id: program.id })).toBe(1);
    });
  });
});
