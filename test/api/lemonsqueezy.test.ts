/**
 * Lemon Squeezy through the real app, on every database: webhooks in their full
 * published shape (JSON:API orders and subscription invoices, `meta.custom_data` from
 * checkout[custom][…]), signed as Lemon Squeezy signs them (`X-Signature`, the hex
 * HMAC-SHA256 of the raw body), become verified purchases, renewals through the
 * customer link, refunds (cumulative `refunded_amount`) and promo-code attributions.
 */
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reply, TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, uniq, vidFor, type ProgramFixture } from '../helpers/factories.ts';
import {
  deliverLemonSqueezy,
  lemonEvent,
  lemonSignature,
  licenseKey,
  lsId,
  order,
  refundedOrder,
  startLemonApiStandIn,
  subscription,
  subscriptionInvoice,
  type Json,
  type LemonApiStandIn,
} from '../helpers/lemonsqueezy.ts';
import { countRows } from '../helpers/rows.ts';
import { click, decisions, listAllRewards, participant, referrals, sumLedger } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';

/** 20% of every purchase within a year of the referral. */
const REC = { id: 'rec', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 20 }, when: { withinDays: 365 } };
const API_KEY = 'ls_test_key';

type Participant = Awaited<ReturnType<typeof buildParticipant>>;
interface Shop extends ProgramFixture {
  webhookSecret: string;
  referrer: Participant;
}

describe.each(DATABASES)('lemon squeezy integration (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  /** An app whose Lemon Squeezy API calls go to the stand-in. */
  let withApi: TestApp;
  let standIn: LemonApiStandIn;
  let startApp: (env: Record<string, string>) => Promise<TestApp>;
  useTestApp(kind, (suite) => ({ db, api, startApp } = suite));

  beforeAll(async () => {
    standIn = await startLemonApiStandIn();
    withApi = await startApp({ LEMONSQUEEZY_API_URL: standIn.url });
  });
  afterAll(() => standIn?.close());

  const newSecret = () => `whsec-${uniq()}`;

  async function shop(rules: unknown[] = [REC], settings: Json = {}): Promise<Shop> {
    const webhookSecret = newSecret();
    const program = await buildProgram(api, { settings: { lemonsqueezy: { webhookSecret, ...settings }, rewardRules: rules } });
    const referrer = await buildParticipant(api, program, { email: `${uniq('referrer-')}@example.com` });
    return { ...program, webhookSecret, referrer };
  }

  const deliver = (
    program: Shop,
    event: Json,
    options: { secret?: string; signature?: string | null; tamper?: (p: string) => string; app?: TestApp } = {},
  ): Promise<Reply> =>
    deliverLemonSqueezy(options.app ?? api, program.slug, event, { ...options, secret: options.secret ?? program.webhookSecret });

  async function accepted(program: Shop, event: Json, app?: TestApp): Promise<any> {
    const reply = await deliver(program, event, app ? { app } : {});
    expect(reply.status, reply.text).toBe(200);
    expect(reply.body.received).toBe(true);
    return reply.body;
  }

  const orderCreated = (input: Parameters<typeof order>[0], custom: Json | null = null) =>
    lemonEvent('order_created', order(input), custom);
  const paymentSuccess = (input: Parameters<typeof subscriptionInvoice>[0], custom: Json | null = null) =>
    lemonEvent('subscription_payment_success', subscriptionInvoice(input), custom);
  const attributesOf = (event: Json) => (event.data as { attributes: Json }).attributes;
  const idOf = (event: Json) => String((event.data as { id: string }).id);

  const conversions = (program: { id: string }, type: string) =>
    db('conversions').where({ program_id: program.id, type }).orderBy('created_at').orderBy('id').select('*') as Promise<
      Array<Record<string, any>>
    >;
  const rewardsOf = async (program: Shop) => (await listAllRewards(api, program, { participant: program.referrer.externalId })).reverse();
  /** Rows a webhook could write, for before/after comparisons. */
  const stored = async (program: Shop) => ({
    conversions: await countRows(db, 'conversions', { program_id: program.id }),
    participants: await countRows(db, 'participants', { program_id: program.id }),
    referrals: await countRows(db, 'referrals', { program_id: program.id }),
    rewards: await countRows(db, 'rewards', { program_id: program.id }),
    customers: await countRows(db, 'provider_customers', { program_id: program.id }),
  });

  it('order_created is a verified purchase: meta.custom_data names the customer and the referral', async () => {
    const program = await shop();
    const customerId = lsId();
    const event = orderCreated(
      { customerId, total: 65_215, email: 'Ana.Lima@Example.com' },
      { externalId: 'ls-user-1', referral_code: program.referrer.code, plan: 'pro' },
    );
    const body = await accepted(program, event);
    expect(body.handled).toBe('purchase');
    expect(body.result.conversion).toMatchObject({
      type: 'purchase',
      eventId: attributesOf(event).identifier,
      externalId: 'ls-user-1',
      amount: 65_215,
      currency: 'USD',
      verified: true,
      source: 'lemonsqueezy',
    });
    expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });
    expect(body.result.rewards).toEqual([expect.objectContaining({ rule: 'rec', amount: 13_043, currency: 'USD', status: 'approved' })]);
    expect((await referrals(api, program)).data).toEqual([
      expect.objectContaining({
        referred: 'ls-user-1',
        referrer: program.referrer.externalId,
        code: program.referrer.code,
        verified: true,
      }),
    ]);
    const signups = await conversions(program, 'signup');
    expect(signups).toHaveLength(1);
    expect(signups[0]).toMatchObject({ event_id: 'lemonsqueezy:ls-user-1', source: 'lemonsqueezy', verified: true });
    expect((await participant(api, program, 'ls-user-1')).email).toBe('ana.lima@example.com');
  });

  it('custom_data.referral_vid (referral.get().vid) attributes to the clicked code; no custom data names the Lemon Squeezy customer', async () => {
    const program = await shop();
    const vid = vidFor(uniq('ls-visitor-'));
    await click(api, program, { code: program.referrer.code!, vid });
    const byVid = await accepted(program, orderCreated({ total: 1000 }, { externalId: 'ls-vid-user', referral_vid: vid }));
    expect(byVid.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });

    const customerId = lsId();
    const first = await accepted(program, orderCreated({ customerId, total: 1000 }));
    expect(first.result.conversion.externalId).toBe(`lemonsqueezy:${customerId}`);
    expect(first.result.attribution.status).toBe('none');
    const second = await accepted(program, orderCreated({ customerId, total: 2000 }));
    expect(second.result.conversion.externalId).toBe(`lemonsqueezy:${customerId}`);
    expect(await conversions(program, 'signup')).toHaveLength(2);
  });

  it('a subscription: order_created and the initial subscription_payment_success count once; renewals are the linked customer’s', async () => {
    const program = await shop();
    const customerId = lsId();
    const subscriptionId = lsId();
    const custom = { externalId: 'subscriber', referral_code: program.referrer.code };
    const first = await accepted(program, orderCreated({ customerId, total: 2900 }, custom));
    expect(first.handled).toBe('purchase');
    // Lemon Squeezy sends the first payment again as an invoice, billing_reason initial.
    const initial = await accepted(program, paymentSuccess({ customerId, subscriptionId, total: 2900, billingReason: 'initial' }, custom));
    expect(initial).toMatchObject({ handled: 'customer_linked', reason: 'counted_on_order' });
    expect(await conversions(program, 'purchase')).toHaveLength(1);

    // Renewals: one with the checkout's custom data (subscription events repeat it), one without (the link says whose).
    const renewals = [
      paymentSuccess({ customerId, subscriptionId, total: 2900 }, custom),
      paymentSuccess({ customerId, subscriptionId, total: 4900 }),
    ];
    for (const renewal of renewals) {
      const body = await accepted(program, renewal);
      expect(body.handled).toBe('purchase');
      expect(body.result.conversion).toMatchObject({
        externalId: 'subscriber',
        eventId: `lemonsqueezy:subscription-invoice:${idOf(renewal)}`,
        amount: attributesOf(renewal).total,
        verified: true,
        source: 'lemonsqueezy',
      });
    }
    // A renewal delivered again: deduplicated by invoice id.
    await accepted(program, renewals[1]!);
    expect((await rewardsOf(program)).map((reward) => [reward.rule, reward.amount])).toEqual([
      ['rec', 580],
      ['rec', 580],
      ['rec', 980],
    ]);
    expect(await conversions(program, 'signup')).toHaveLength(1);
    expect((await participant(api, program, program.referrer.externalId)).stats).toMatchObject({
      signups: 1,
      purchases: 3,
      revenue: { USD: 10_700 },
    });
  });

  it('order_refunded: a partial refund pro-rates the commission; the full refund takes back the rest; redeliveries refund nothing more', async () => {
    const program = await shop();
    const paid = order({ total: 10_000 });
    const body = await accepted(
      program,
      lemonEvent('order_created', paid, { externalId: uniq('buyer-'), referral_code: program.referrer.code }),
    );
    const grant = body.result.rewards[0];
    expect(grant.amount).toBe(2000);

    const partial = lemonEvent('order_refunded', refundedOrder(paid, 2500));
    expect(attributesOf(partial)).toMatchObject({ status: 'partial_refund', refunded: false, refunded_amount: 2500 });
    const first = await accepted(program, partial);
    expect(first.handled).toBe('refund');
    expect(first.result.refund).toMatchObject({ purchaseEventId: (paid.attributes as Json).identifier, amount: 2500, refundedTotal: 2500 });
    expect(first.result.rewards).toEqual([expect.objectContaining({ amount: -500, reverses: grant.id })]);

    await accepted(program, partial);
    expect(await conversions(program, 'refund')).toHaveLength(1);

    const full = lemonEvent('order_refunded', refundedOrder(paid, 10_000));
    expect(attributesOf(full)).toMatchObject({ status: 'refunded', refunded: true });
    const rest = await accepted(program, full);
    expect(rest.result.refund).toMatchObject({ amount: 7500, refundedTotal: 10_000 });
    await accepted(program, full);
    expect((await conversions(program, 'refund')).map((row) => row.amount)).toEqual([2500, 7500]);
    // Nothing of the commission is left, however the ledger records it (revoked grant or reversals).
    expect((await participant(api, program, program.referrer.externalId)).rewards.approved.USD ?? 0).toBe(0);
    expect(sumLedger(await rewardsOf(program)).approved.USD ?? 0).toBe(0);
  });

  it('a refund of an order we never saw answers 404 so Lemon Squeezy retries, and stores nothing', async () => {
    const program = await shop();
    const before = await stored(program);
    const reply = await deliver(program, lemonEvent('order_refunded', refundedOrder(order({ total: 4900 }), 4900)));
    expect(reply.status, reply.text).toBe(404);
    expect(await stored(program)).toEqual(before);
  });

  describe('discount codes', () => {
    async function promoShop() {
      const program = await shop([REC], { apiKey: API_KEY });
      const mapped = await api.post(
        `/v1/participants/${program.referrer.externalId}/promo-codes`,
        { provider: 'lemonsqueezy', code: 'CREATOR10' },
        { auth: program.secret },
      );
      expect(mapped.status, mapped.text).toBe(201);
      expect(mapped.body).toMatchObject({ provider: 'lemonsqueezy', code: 'CREATOR10', discountId: null });
      return program;
    }

    it('an order with a discount mapped to a participant is attributed to its owner (decision promo_code), without custom_data', async () => {
      const program = await promoShop();
      const customerId = lsId();
      const paid = order({ customerId, total: 4410, discountTotal: 490 });
      standIn.redemptions.set(String(paid.id), [{ discountId: lsId(), code: 'creator10' }]);
      const seen = standIn.requests.length;
      const body = await accepted(program, lemonEvent('order_created', paid), withApi);
      expect(standIn.requests.slice(seen)).toEqual([
        { path: `/v1/discount-redemptions?filter[order_id]=${paid.id}`, authorization: `Bearer ${API_KEY}` },
      ]);
      expect(body.result.conversion).toMatchObject({ externalId: `lemonsqueezy:${customerId}`, amount: 4410 });
      expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });
      expect(body.result.rewards).toEqual([
        expect.objectContaining({ participant: program.referrer.externalId, amount: 882, status: 'approved' }),
      ]);
      expect(await decisions(api, program, 'reason=promo_code')).toEqual([
        expect.objectContaining({
          outcome: 'accepted',
          participant: `lemonsqueezy:${customerId}`,
          referrer: program.referrer.externalId,
          code: 'CREATOR10',
        }),
      ]);
    });

    it('an order without discount_total is not looked up; a discount nobody owns attributes nothing', async () => {
      const program = await promoShop();
      const seen = standIn.requests.length;
      const plain = await accepted(program, orderCreated({ total: 4900 }), withApi);
      expect(standIn.requests.length).toBe(seen);
      expect(plain.result.attribution.status).toBe('none');

      const other = order({ total: 4410, discountTotal: 490 });
      standIn.redemptions.set(String(other.id), [{ discountId: lsId(), code: 'SOMEONE-ELSE' }]);
      const body = await accepted(program, lemonEvent('order_created', other), withApi);
      expect(standIn.requests.length).toBe(seen + 1);
      expect(body.result.attribution.status).toBe('none');
      expect(await rewardsOf(program)).toEqual([]);
    });

    it('a Lemon Squeezy API failure answers 503 (Lemon Squeezy retries) and stores nothing', async () => {
      const program = await promoShop();
      const paid = order({ total: 4410, discountTotal: 490 });
      standIn.redemptions.set(String(paid.id), [{ discountId: lsId(), code: 'CREATOR10' }]);
      const before = await stored(program);
      standIn.failWith = 502;
      try {
        const reply = await deliver(program, lemonEvent('order_created', paid), { app: withApi });
        expect(reply.status, reply.text).toBe(503);
      } finally {
        standIn.failWith = undefined;
      }
      expect(await stored(program)).toEqual(before);
      const retried = await accepted(program, lemonEvent('order_created', paid), withApi);
      expect(retried.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });
    });
  });

  it('a $0 order (a free product, a trial) is not a purchase: it only links the customer and grants nothing', async () => {
    const program = await shop([
      REC,
      { id: 'flat', on: 'purchase', to: 'referrer', reward: { kind: 'credit', amount: 500, currency: 'USD' } },
    ]);
    const customerId = lsId();
    const free = await accepted(
      program,
      orderCreated({ customerId, total: 0 }, { externalId: 'freebie', referral_code: program.referrer.code }),
    );
    expect(free).toMatchObject({ handled: 'customer_linked', reason: 'nothing_paid' });
    // A renewal of 0 (a 100% discount, a paused plan) is no purchase either.
    const zero = await accepted(program, paymentSuccess({ customerId, total: 0, billingReason: 'renewal' }));
    expect(zero).toMatchObject({ handled: 'customer_linked', reason: 'nothing_paid' });
    expect(await conversions(program, 'purchase')).toEqual([]);
    expect(await rewardsOf(program)).toEqual([]);
    expect((await referrals(api, program)).data).toEqual([expect.objectContaining({ referred: 'freebie' })]);
    // An order not paid (pending, failed) is nothing at all.
    for (const status of ['pending', 'failed'] as const) {
      const body = await accepted(program, orderCreated({ total: 4900, status }, { externalId: uniq('unpaid-') }));
      expect(body).toMatchObject({ handled: 'ignored', reason: status });
    }
    expect(await conversions(program, 'purchase')).toEqual([]);
  });

  it('the same webhook delivered twice (and concurrently) is stored once and rewards once', async () => {
    const program = await shop();
    const event = orderCreated({ total: 4900 }, { externalId: 'twice', referral_code: program.referrer.code });
    const first = await accepted(program, event);
    const again = await accepted(program, event);
    expect(again.result.conversion.id).toBe(first.result.conversion.id);
    const racing = await Promise.all([deliver(program, event), deliver(program, event)]);
    for (const reply of racing) expect(reply.status, reply.text).toBe(200);
    expect(await conversions(program, 'purchase')).toHaveLength(1);
    expect(await conversions(program, 'signup')).toHaveLength(1);
    expect(await rewardsOf(program)).toHaveLength(1);
  });

  it('other event types (subscription_created, subscription_updated, license_key_created, …) answer 200 and store nothing', async () => {
    const program = await shop();
    const customerId = lsId();
    const custom = { externalId: 'x', referral_code: program.referrer.code };
    const before = await stored(program);
    const events = [
      lemonEvent('subscription_created', subscription({ customerId, orderId: lsId(), status: 'on_trial' }), custom),
      lemonEvent('subscription_updated', subscription({ customerId, orderId: lsId() }), custom),
      lemonEvent('subscription_payment_failed', subscriptionInvoice({ customerId, status: 'pending' }), custom),
      lemonEvent('license_key_created', licenseKey({ customerId, orderId: lsId() }), custom),
      lemonEvent('brand_new_event', order({ customerId }), custom),
    ];
    for (const event of events) {
      const body = await accepted(program, event);
      expect(body, String((event.meta as Json).event_name)).toMatchObject({ handled: 'ignored', reason: 'event_type' });
    }
    expect(await stored(program)).toEqual(before);
  });

  it('a missing, wrong, malformed or tampered X-Signature is 400 invalid_signature and stores nothing', async () => {
    const program = await shop();
    const event = () => orderCreated({ total: 4900 }, { externalId: uniq('user-'), referral_code: program.referrer.code });
    const before = await stored(program);
    const replies = [
      await deliver(program, event(), { signature: null }),
      await deliver(program, event(), { signature: '' }),
      await deliver(program, event(), { secret: newSecret() }),
      await deliver(program, event(), { signature: 'deadbeef' }),
      await deliver(program, event(), { signature: `sha256=${'0'.repeat(64)}` }),
      await deliver(program, event(), {
        tamper: (payload) => {
          const changed = payload.replace('"total":4900', '"total":490000');
          expect(changed).not.toBe(payload);
          return changed;
        },
      }),
    ];
    for (const reply of replies) {
      expect(reply.status, reply.text).toBe(400);
      expect(reply.body.error.code).toBe('invalid_signature');
    }
    expect(await stored(program)).toEqual(before);
    // The control: the same shape, signed with the program's secret (upper-case hex is accepted too).
    const payload = JSON.stringify(event());
    const good = await api.post(`/v1/integrations/lemonsqueezy/${program.slug}`, undefined, {
      raw: payload,
      headers: { 'content-type': 'application/json', 'x-signature': lemonSignature(payload, program.webhookSecret).toUpperCase() },
    });
    expect(good.status, good.text).toBe(200);
    expect((await stored(program)).conversions).toBe(before.conversions + 2);
  });

  it('answers 400 lemonsqueezy_not_configured without settings.lemonsqueezy.webhookSecret; the secret and API key are masked when shown', async () => {
    const bare = await buildProgram(api);
    const reply = await deliverLemonSqueezy(api, bare.slug, orderCreated({}), { secret: newSecret() });
    expect(reply.status, reply.text).toBe(400);
    expect(reply.body.error.code).toBe('lemonsqueezy_not_configured');
    expect(await countRows(db, 'conversions', { program_id: bare.id })).toBe(0);

    const secret = newSecret();
    const patched = await api.patch(
      '/v1/program',
      { settings: { lemonsqueezy: { webhookSecret: secret, apiKey: API_KEY } } },
      { auth: bare.secret },
    );
    expect(patched.status, patched.text).toBe(200);
    expect(patched.text).not.toContain(secret);
    expect(patched.text).not.toContain(API_KEY);
    const event = orderCreated({ total: 100 });
    const now = await deliverLemonSqueezy(api, bare.slug, event, { secret });
    expect(now.status, now.text).toBe(200);
  });
});
