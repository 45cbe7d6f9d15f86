/**
 * The Stripe integration through the real app, on every database: signed webhooks
 * (Stripe-Signature checked with the program's settings.stripe.webhookSecret, 5-minute
 * tolerance) become verified purchases and refunds.
 *
 * Payloads are realistic Stripe event JSON (many fields the collector never reads),
 * pretty-printed as Stripe sends them and signed with the stripe package's own test
 * header, then sent byte for byte as the raw body.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import Stripe from 'stripe';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Reply, type TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';
import { buildParticipant, buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';

/** API 2025+ (invoice subscription metadata under `parent`) and an older version (top-level `subscription_details`). */
const API_NEW = '2025-09-30.clover';
const API_OLD = '2024-06-20';
const DAY_MS = 86_400_000;

/** Recurring commission: 20% of every purchase within a year of the referral. */
const REC_RULE = { id: 'rec', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 20 }, when: { withinDays: 365 } };

type Json = Record<string, unknown>;
type Participant = Awaited<ReturnType<typeof buildParticipant>>;
interface Shop extends ProgramFixture {
  webhookSecret: string;
  referrer: Participant;
}

const unix = (ms = Date.now()) => Math.floor(ms / 1000);
const sid = (prefix: string) => `${prefix}${randomBytes(12).toString('base64url').replace(/[-_]/g, 'x')}`;
/** The snippet's visitor id shape: referral.get().vid. */
const visitorId = () => Array.from({ length: 5 }, () => randomBytes(4).readUInt32BE(0)).join('-');

// ---------------------------------------------------------------------------
// Stripe payload builders
// ---------------------------------------------------------------------------

function stripeEvent(type: string, object: Json, options: { apiVersion?: string; previous?: Json } = {}): Json {
  return {
    id: sid('evt_1Q'),
    object: 'event',
    api_version: options.apiVersion ?? API_NEW,
    created: unix(),
    data: { object, ...(options.previous ? { previous_attributes: options.previous } : {}) },
    livemode: false,
    pending_webhooks: 2,
    request: { id: sid('req_'), idempotency_key: randomUUID() },
    type,
  };
}

interface SessionInput {
  id?: string;
  mode?: 'payment' | 'subscription';
  amount?: number;
  currency?: string;
  customer?: string | null;
  clientReferenceId?: string | null;
  metadata?: Json;
  paymentIntent?: string | null;
  subscription?: string | null;
  email?: string;
  name?: string;
  extra?: Json;
}

function checkoutSession(input: SessionInput = {}): Json {
  const mode = input.mode ?? 'payment';
  const amount = input.amount ?? 4900;
  const subscription = mode === 'subscription' ? (input.subscription ?? sid('sub_1Q')) : null;
  return {
    id: input.id ?? sid('cs_test_a1'),
    object: 'checkout.session',
    adaptive_pricing: { enabled: true },
    after_expiration: null,
    allow_promotion_codes: false,
    amount_subtotal: amount,
    amount_total: amount,
    automatic_tax: { enabled: false, liability: null, provider: null, status: null },
    billing_address_collection: null,
    cancel_url: 'https://shop.example/cart',
    client_reference_id: input.clientReferenceId ?? null,
    client_secret: null,
    collected_information: { shipping_details: null },
    consent: null,
    consent_collection: null,
    created: unix() - 120,
    currency: input.currency ?? 'usd',
    currency_conversion: null,
    custom_fields: [],
    custom_text: { after_submit: null, shipping_address: null, submit: null, terms_of_service_acceptance: null },
    customer: input.customer === undefined ? sid('cus_') : input.customer,
    customer_creation: 'always',
    customer_details: {
      address: { city: 'Lisboa', country: 'PT', line1: 'Rua Augusta 1', line2: null, postal_code: '1100-048', state: null },
      business_name: null,
      email: input.email ?? `${uniq('buyer-')}@example.com`,
      individual_name: null,
      name: input.name ?? 'José Müller',
      phone: null,
      tax_exempt: 'none',
      tax_ids: [],
    },
    customer_email: null,
    discounts: [],
    expires_at: unix() + 86_000,
    invoice: mode === 'subscription' ? sid('in_1Q') : null,
    invoice_creation: mode === 'payment' ? { enabled: false, invoice_data: { account_tax_ids: null, custom_fields: null, description: null, footer: null, issuer: null, metadata: {}, rendering_options: null } } : null,
    livemode: false,
    locale: null,
    metadata: input.metadata ?? {},
    mode,
    origin_context: null,
    payment_intent: mode === 'payment' ? (input.paymentIntent === undefined ? sid('pi_3Q') : input.paymentIntent) : null,
    payment_link: null,
    payment_method_collection: 'if_required',
    payment_method_configuration_details: { id: sid('pmc_'), parent: null },
    payment_method_options: { card: { request_three_d_secure: 'automatic' } },
    payment_method_types: ['card', 'link'],
    payment_status: 'paid',
    permissions: null,
    phone_number_collection: { enabled: false },
    presentment_details: { presentment_amount: amount, presentment_currency: input.currency ?? 'usd' },
    recovered_from: null,
    saved_payment_method_options: { allow_redisplay_filters: ['always'], payment_method_remove: 'disabled', payment_method_save: null },
    setup_intent: null,
    shipping_address_collection: null,
    shipping_cost: null,
    shipping_options: [],
    status: 'complete',
    submit_type: null,
    subscription,
    success_url: 'https://shop.example/thanks?session_id={CHECKOUT_SESSION_ID}',
    total_details: { amount_discount: 0, amount_shipping: 0, amount_tax: 0 },
    ui_mode: 'hosted',
    url: null,
    wallet_options: null,
    ...input.extra,
  };
}

interface InvoiceInput {
  id?: string;
  apiVersion?: 'new' | 'old';
  customer: string;
  amount?: number;
  currency?: string;
  subscription?: string;
  billingReason?: 'subscription_create' | 'subscription_cycle' | 'manual';
  /** The subscription's metadata (parent.subscription_details.metadata or subscription_details.metadata). */
  subscriptionMetadata?: Json;
  metadata?: Json;
  paymentIntent?: string;
  charge?: string;
  /** API 2025+: include the (normally expandable) payments list. */
  withPayments?: boolean;
  email?: string;
}

function invoice(input: InvoiceInput): Json {
  const id = input.id ?? sid('in_1Q');
  const amount = input.amount ?? 2900;
  const currency = input.currency ?? 'usd';
  const subscription = input.subscription ?? sid('sub_1Q');
  const periodStart = unix() - 60;
  const periodEnd = periodStart + 30 * 86_400;
  const paymentIntent = input.paymentIntent ?? sid('pi_3Q');
  const base: Json = {
    id,
    object: 'invoice',
    account_country: 'US',
    account_name: 'Shop Example Inc.',
    account_tax_ids: null,
    amount_due: amount,
    amount_overpaid: 0,
    amount_paid: amount,
    amount_remaining: 0,
    amount_shipping: 0,
    application: null,
    attempt_count: 1,
    attempted: true,
    auto_advance: false,
    automatic_tax: { disabled_reason: null, enabled: false, liability: null, provider: null, status: null },
    automatically_finalizes_at: null,
    billing_reason: input.billingReason ?? 'subscription_create',
    collection_method: 'charge_automatically',
    created: periodStart,
    currency,
    custom_fields: null,
    customer: input.customer,
    customer_address: null,
    customer_email: input.email ?? `${uniq('subscriber-')}@example.com`,
    customer_name: 'Ana Lima',
    customer_phone: null,
    customer_shipping: null,
    customer_tax_exempt: 'none',
    customer_tax_ids: [],
    default_payment_method: null,
    default_source: null,
    default_tax_rates: [],
    description: null,
    discounts: [],
    due_date: null,
    effective_at: periodStart,
    ending_balance: 0,
    footer: null,
    from_invoice: null,
    hosted_invoice_url: `https://invoice.stripe.com/i/acct_1Q/test_${id}`,
    invoice_pdf: `https://pay.stripe.com/invoice/acct_1Q/test_${id}/pdf`,
    issuer: { type: 'self' },
    last_finalization_error: null,
    latest_revision: null,
    livemode: false,
    metadata: input.metadata ?? {},
    next_payment_attempt: null,
    number: `ABCD1234-${String(Math.floor(Math.random() * 9000) + 1000)}`,
    on_behalf_of: null,
    payment_settings: { default_mandate: null, payment_method_options: null, payment_method_types: null },
    period_end: periodEnd,
    period_start: periodStart,
    post_payment_credit_notes_amount: 0,
    pre_payment_credit_notes_amount: 0,
    receipt_number: null,
    rendering: null,
    shipping_cost: null,
    shipping_details: null,
    starting_balance: 0,
    statement_descriptor: null,
    status: 'paid',
    status_transitions: { finalized_at: periodStart, marked_uncollectible_at: null, paid_at: periodStart + 2, voided_at: null },
    subtotal: amount,
    subtotal_excluding_tax: amount,
    test_clock: null,
    total: amount,
    total_discount_amounts: [],
    total_excluding_tax: amount,
    total_taxes: [],
    webhooks_delivered_at: null,
  };
  const line = {
    id: sid('il_1Q'),
    object: 'line_item',
    amount,
    currency,
    description: '1 × Pro plan (at $29.00 / month)',
    discount_amounts: [],
    discountable: true,
    discounts: [],
    invoice: id,
    livemode: false,
    metadata: {},
    period: { end: periodEnd, start: periodStart },
    quantity: 1,
  };
  if ((input.apiVersion ?? 'new') === 'new') {
    return {
      ...base,
      confirmation_secret: null,
      lines: {
        object: 'list',
        data: [
          {
            ...line,
            parent: {
              invoice_item_details: null,
              subscription_item_details: { invoice_item: null, proration: false, proration_details: { credited_items: null }, subscription, subscription_item: sid('si_') },
              type: 'subscription_item_details',
            },
            pretax_credit_amounts: [],
            pricing: { price_details: { price: sid('price_1Q'), product: sid('prod_') }, type: 'price_details', unit_amount_decimal: String(amount) },
            taxes: [],
          },
        ],
        has_more: false,
        total_count: 1,
        url: `/v1/invoices/${id}/lines`,
      },
      parent: {
        quote_details: null,
        subscription_details: { metadata: input.subscriptionMetadata ?? {}, subscription },
        type: 'subscription_details',
      },
      ...(input.withPayments
        ? {
            payments: {
              object: 'list',
              data: [
                {
                  id: sid('inpay_1Q'),
                  object: 'invoice_payment',
                  amount_paid: amount,
                  amount_requested: amount,
                  created: periodStart,
                  currency,
                  invoice: id,
                  is_default: true,
                  livemode: false,
                  payment: { payment_intent: paymentIntent, type: 'payment_intent' },
                  status: 'paid',
                  status_transitions: { canceled_at: null, paid_at: periodStart + 2 },
                },
              ],
              has_more: false,
              total_count: 1,
              url: '/v1/invoice_payments',
            },
          }
        : {}),
    };
  }
  return {
    ...base,
    application_fee_amount: null,
    charge: input.charge ?? sid('ch_3Q'),
    discount: null,
    lines: {
      object: 'list',
      data: [
        {
          ...line,
          discount_amounts: [],
          invoice_item: null,
          plan: { id: sid('price_1Q'), object: 'plan', active: true, amount, currency, interval: 'month', interval_count: 1, product: sid('prod_') },
          price: { id: sid('price_1Q'), object: 'price', active: true, currency, product: sid('prod_'), recurring: { interval: 'month', interval_count: 1 }, type: 'recurring', unit_amount: amount },
          proration: false,
          proration_details: { credited_items: null },
          subscription,
          subscription_item: sid('si_'),
          tax_amounts: [],
          tax_rates: [],
          type: 'subscription',
          unit_amount_excluding_tax: String(amount),
        },
      ],
      has_more: false,
      total_count: 1,
      url: `/v1/invoices/${id}/lines`,
    },
    paid: true,
    paid_out_of_band: false,
    payment_intent: paymentIntent,
    quote: null,
    subscription,
    subscription_details: { metadata: input.subscriptionMetadata ?? {} },
    subscription_proration_date: null,
    tax: null,
  };
}

interface ChargeInput {
  paymentIntent?: string | null;
  amount: number;
  amountRefunded: number;
  currency?: string;
  customer?: string | null;
  /** Older API versions name the invoice on the charge. */
  invoice?: string | null;
  id?: string;
}

function charge(input: ChargeInput): Json {
  const id = input.id ?? sid('ch_3Q');
  return {
    id,
    object: 'charge',
    amount: input.amount,
    amount_captured: input.amount,
    amount_refunded: input.amountRefunded,
    application: null,
    application_fee: null,
    application_fee_amount: null,
    balance_transaction: sid('txn_3Q'),
    billing_details: { address: { city: null, country: 'PT', line1: null, line2: null, postal_code: null, state: null }, email: 'buyer@example.com', name: 'José Müller', phone: null, tax_id: null },
    calculated_statement_descriptor: 'SHOP EXAMPLE',
    captured: true,
    created: unix() - 3600,
    currency: input.currency ?? 'usd',
    customer: input.customer === undefined ? sid('cus_') : input.customer,
    description: null,
    destination: null,
    dispute: null,
    disputed: false,
    failure_balance_transaction: null,
    failure_code: null,
    failure_message: null,
    fraud_details: {},
    ...(input.invoice !== undefined ? { invoice: input.invoice } : {}),
    livemode: false,
    metadata: {},
    on_behalf_of: null,
    outcome: { advice_code: null, network_advice_code: null, network_decline_code: null, network_status: 'approved_by_network', reason: null, risk_level: 'normal', risk_score: 32, seller_message: 'Payment complete.', type: 'authorized' },
    paid: true,
    payment_intent: input.paymentIntent ?? null,
    payment_method: sid('pm_1Q'),
    payment_method_details: {
      card: { amount_authorized: input.amount, brand: 'visa', checks: { address_line1_check: null, address_postal_code_check: null, cvc_check: 'pass' }, country: 'US', exp_month: 12, exp_year: 2034, funding: 'credit', last4: '4242', network: 'visa', three_d_secure: null, wallet: null },
      type: 'card',
    },
    radar_options: {},
    receipt_email: null,
    receipt_number: null,
    receipt_url: `https://pay.stripe.com/receipts/payment/${id}`,
    refunded: input.amountRefunded >= input.amount,
    refunds: {
      object: 'list',
      data: [{ id: sid('re_3Q'), object: 'refund', amount: input.amountRefunded, charge: id, currency: input.currency ?? 'usd', payment_intent: input.paymentIntent ?? null, reason: 'requested_by_customer', status: 'succeeded' }],
      has_more: false,
      total_count: 1,
      url: `/v1/charges/${id}/refunds`,
    },
    review: null,
    shipping: null,
    source: null,
    source_transfer: null,
    statement_descriptor: null,
    statement_descriptor_suffix: null,
    status: 'succeeded',
    transfer_data: null,
    transfer_group: null,
  };
}

const refundEvent = (input: ChargeInput, previousRefunded = 0, apiVersion = API_NEW) =>
  stripeEvent('charge.refunded', charge(input), { apiVersion, previous: { amount_refunded: previousRefunded, refunded: false } });

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
  async function deliver(program: { slug: string; webhookSecret?: string }, event: Json, options: DeliverOptions = {}): Promise<Reply> {
    const payload = JSON.stringify(event, null, 2);
    const secret = options.secret ?? program.webhookSecret ?? newSecret();
    const header =
      options.signature === null
        ? undefined
        : (options.signature ?? Stripe.webhooks.generateTestHeaderString({ payload, secret, ...(options.timestamp !== undefined ? { timestamp: options.timestamp } : {}) }));
    const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)' };
    if (header !== undefined) headers['stripe-signature'] = header;
    return api.post(`/v1/integrations/stripe/${options.slug ?? program.slug}`, undefined, { raw: options.tamper ? options.tamper(payload) : payload, headers });
  }

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
  const countConversions = async (program: { id: string }) => Number((await db('conversions').where({ program_id: program.id }).count({ n: '*' }))[0]?.n);

  const participant = async (program: Shop, externalId: string) => {
    const reply = await api.get(`/v1/participants/${encodeURIComponent(externalId)}`, { auth: program.secret });
    expect(reply.status, reply.text).toBe(200);
    return reply.body;
  };
  const referrals = async (program: Shop) => {
    const reply = await api.get('/v1/referrals', { auth: program.secret });
    expect(reply.status, reply.text).toBe(200);
    return reply.body.data as Array<Record<string, any>>;
  };
  const rewardsOf = async (program: Shop, externalId: string) => {
    const reply = await api.get(`/v1/rewards?participant=${encodeURIComponent(externalId)}&limit=500`, { auth: program.secret });
    expect(reply.status, reply.text).toBe(200);
    return (reply.body.data as Array<Record<string, any>>).reverse(); // oldest first
  };
  const click = async (program: Shop, vid: string, code = program.referrer.code) => {
    const reply = await api.post('/v1/clicks', { key: program.publishable, code, vid, url: `https://shop.example/pricing?ref=${code}` });
    expect(reply.status, reply.text).toBe(202);
    expect(reply.body.valid).toBe(true);
  };

  // -------------------------------------------------------------------------
  describe('signature and configuration', () => {
    let program: Shop;
    beforeAll(async () => {
      program = await shop();
    });

    const purchaseEvent = () => stripeEvent('checkout.session.completed', checkoutSession({ metadata: { externalId: uniq('user-'), referral_code: program.referrer.code } }));

    it('accepts a correctly signed event (control for the refusals below)', async () => {
      const body = await accepted(program, purchaseEvent());
      expect(body.handled).toBe('purchase');
      expect(await conversions(program, 'purchase')).toHaveLength(1);
    });

    it('refuses a missing Stripe-Signature with 400 invalid_signature and stores nothing', async () => {
      const before = await countConversions(program);
      const reply = await deliver(program, purchaseEvent(), { signature: null });
      expect(reply.status, reply.text).toBe(400);
      expect(reply.body.error.code).toBe('invalid_signature');
      expect(await countConversions(program)).toBe(before);
    });

    it('refuses a signature made with another secret, a garbage header and a payload changed after signing', async () => {
      const before = await countConversions(program);
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
      expect(await countConversions(program)).toBe(before);
    });

    it('signatures from another program do not verify here', async () => {
      const other = await shop();
      const before = await countConversions(program);
      const reply = await deliver(program, purchaseEvent(), { secret: other.webhookSecret });
      expect(reply.status).toBe(400);
      expect(reply.body.error.code).toBe('invalid_signature');
      expect(await countConversions(program)).toBe(before);
    });

    it('refuses a timestamp older than 5 minutes and accepts one inside the tolerance', async () => {
      const before = await countConversions(program);
      for (const age of [6 * 60, 60 * 60]) {
        const reply = await deliver(program, purchaseEvent(), { timestamp: unix() - age });
        expect(reply.status, `${age}s old: ${reply.text}`).toBe(400);
        expect(reply.body.error.code).toBe('invalid_signature');
      }
      expect(await countConversions(program)).toBe(before);
      const fresh = await deliver(program, purchaseEvent(), { timestamp: unix() - 4 * 60 });
      expect(fresh.status, fresh.text).toBe(200);
      expect(await countConversions(program)).toBe(before + 2); // its signup and its purchase
    });

    it('answers 404 for an unknown program slug', async () => {
      const reply = await deliver(program, purchaseEvent(), { slug: `no-such-program-${uniq()}` });
      expect(reply.status, reply.text).toBe(404);
      expect(reply.body.error.code).toBe('not_found');
    });

    it('answers 400 stripe_not_configured for a program without a webhook secret, then works once PATCH /v1/program sets one', async () => {
      const bare = await buildProgram(api);
      const referrer = await buildParticipant(api, bare);
      const event = stripeEvent('checkout.session.completed', checkoutSession({ metadata: { externalId: 'late-user', referral_code: referrer.code } }));
      const before = await deliver({ slug: bare.slug }, event, { secret: newSecret() });
      expect(before.status, before.text).toBe(400);
      expect(before.body.error.code).toBe('stripe_not_configured');
      expect(await countConversions(bare)).toBe(0);

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
      expect(await countConversions(bare)).toBe(2);
    });
  });

  // -------------------------------------------------------------------------
  describe('checkout.session.completed', () => {
    it('becomes a verified purchase (eventId = session id, amount = amount_total, currency upper-cased) after signing the new customer up, attributed', async () => {
      const program = await shop();
      const session = checkoutSession({ amount: 12_345, currency: 'eur', metadata: { externalId: 'user-42', referral_code: program.referrer.code, plan: 'annual' } });
      const body = await accepted(program, stripeEvent('checkout.session.completed', session));

      expect(body.handled).toBe('purchase');
      expect(body.result.conversion).toMatchObject({ type: 'purchase', eventId: session.id, externalId: 'user-42', amount: 12_345, currency: 'EUR', verified: true, source: 'stripe' });
      // The signup attributed the customer first; the purchase finds that referral.
      expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });
      expect(body.result.rewards).toEqual([expect.objectContaining({ participant: program.referrer.externalId, rule: 'rec', kind: 'cash', amount: 2469, currency: 'EUR', status: 'approved', eventId: session.id })]);

      const signups = await conversions(program, 'signup');
      expect(signups).toHaveLength(1);
      expect(signups[0]).toMatchObject({ verified: true, source: 'stripe' });
      const purchases = await conversions(program, 'purchase');
      expect(purchases).toHaveLength(1);
      expect(purchases[0]).toMatchObject({ event_id: session.id, amount: 12_345, currency: 'EUR', verified: true, source: 'stripe' });

      const list = await referrals(program);
      expect(list).toEqual([expect.objectContaining({ referrer: program.referrer.externalId, referred: 'user-42', code: program.referrer.code, status: 'attributed', verified: true })]);

      const customer = await participant(program, 'user-42');
      expect(customer.referredBy).toBe(program.referrer.externalId);
      expect(customer.email).toBe((session.customer_details as Json).email);
      expect(customer.name).toBe('José Müller');
      const referrer = await participant(program, program.referrer.externalId);
      expect(referrer.stats).toMatchObject({ signups: 1, purchases: 1, revenue: { EUR: 12_345 } });
      expect(referrer.rewards.approved).toEqual({ EUR: 2469 });
    });

    it('takes the customer from client_reference_id when there is no metadata.externalId, and the referral from metadata.referral_vid', async () => {
      const program = await shop();
      const vid = visitorId();
      await click(program, vid);
      const session = checkoutSession({ clientReferenceId: 'host-user-7', metadata: { referral_vid: vid } });
      const body = await accepted(program, stripeEvent('checkout.session.completed', session));
      expect(body.result.conversion.externalId).toBe('host-user-7');
      expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });
      expect(await referrals(program)).toEqual([expect.objectContaining({ referred: 'host-user-7', referrer: program.referrer.externalId })]);
    });

    it('prefers metadata.externalId over client_reference_id', async () => {
      const program = await shop();
      const session = checkoutSession({ clientReferenceId: 'from-reference', metadata: { externalId: 'from-metadata', referral_code: program.referrer.code } });
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
      expect((await participant(program, customerId)).referredBy).toBe(program.referrer.externalId);

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
      await accepted(program, stripeEvent('checkout.session.completed', checkoutSession({ customer: customerId, metadata: { externalId: 'alice', referral_code: program.referrer.code } })));
      const body = await accepted(program, stripeEvent('checkout.session.completed', checkoutSession({ customer: customerId })));
      expect(body.result.conversion.externalId).toBe('alice');
    });

    it('reads the referral from client_reference_id when it holds a visitor id that has clicks', async () => {
      const program = await shop();
      const vid = visitorId();
      await click(program, vid);
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
      await click(program, vid);
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
      expect(await referrals(program)).toEqual([]);
      expect(await rewardsOf(program, program.referrer.externalId)).toEqual([]);
    });

    it('a visitor id that clicked in another program is not a visitor of this one', async () => {
      const program = await shop();
      const other = await shop();
      const vid = visitorId();
      await click(other, vid);
      const body = await accepted(program, stripeEvent('checkout.session.completed', checkoutSession({ clientReferenceId: vid })));
      expect(body.result.conversion.externalId).toBe(vid);
      expect(await referrals(program)).toEqual([]);
    });

    it('a customer with no referral is signed up and buys, unattributed', async () => {
      const program = await shop();
      const body = await accepted(program, stripeEvent('checkout.session.completed', checkoutSession({ metadata: { externalId: 'organic' } })));
      expect(body.handled).toBe('purchase');
      expect(body.result.attribution.status).toBe('none');
      expect(body.result.rewards).toEqual([]);
      expect(await conversions(program, 'signup')).toHaveLength(1);
      expect(await referrals(program)).toEqual([]);
    });

    it('the same event delivered twice (sequentially, re-signed as Stripe retries) is stored once', async () => {
      const program = await shop();
      const event = stripeEvent('checkout.session.completed', checkoutSession({ metadata: { externalId: 'twice', referral_code: program.referrer.code } }));
      const first = await accepted(program, event);
      const second = await deliver(program, event, { timestamp: unix() + 1 });
      expect(second.status, second.text).toBe(200);
      expect(second.body.result.conversion.id).toBe(first.result.conversion.id);
      expect(await conversions(program, 'signup')).toHaveLength(1);
      expect(await conversions(program, 'purchase')).toHaveLength(1);
      expect(await rewardsOf(program, program.referrer.externalId)).toHaveLength(1);
      expect((await participant(program, program.referrer.externalId)).stats).toMatchObject({ signups: 1, purchases: 1, revenue: { USD: 4900 } });
    });

    it('the same event delivered twice at once is stored once', async () => {
      const program = await shop();
      const event = stripeEvent('checkout.session.completed', checkoutSession({ metadata: { externalId: 'racer', referral_code: program.referrer.code } }));
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
        stripeEvent('payment_intent.succeeded', { id: sid('pi_3Q'), object: 'payment_intent', amount: 4900, amount_received: 4900, currency: 'usd', customer: sid('cus_'), metadata: { externalId: 'x', referral_code: program.referrer.code }, status: 'succeeded' }),
        stripeEvent('customer.created', { id: sid('cus_'), object: 'customer', email: 'c@example.com', metadata: {}, name: 'C' }),
        stripeEvent('invoice.payment_succeeded', invoice({ customer: sid('cus_'), subscriptionMetadata: { externalId: 'y', referral_code: program.referrer.code } })),
        stripeEvent('invoice.payment_failed', { ...invoice({ customer: sid('cus_'), subscriptionMetadata: { externalId: 'y2' } }), status: 'open', amount_paid: 0, amount_remaining: 2900 }),
        stripeEvent('charge.succeeded', charge({ paymentIntent: sid('pi_3Q'), amount: 4900, amountRefunded: 0 })),
        stripeEvent('checkout.session.expired', { ...checkoutSession({ metadata: { externalId: 'z' } }), status: 'expired', payment_status: 'unpaid' }),
      ];
      for (const event of events) {
        const body = await accepted(program, event);
        expect(body.handled, String(event.type)).toBe('ignored');
      }
      expect(await countConversions(program)).toBe(0);
      expect(await api.get('/v1/participants/x', { auth: program.secret })).toMatchObject({ status: 404 });
    });
  });

  // -------------------------------------------------------------------------
  describe('subscriptions and invoice.paid', () => {
    it('a subscription Checkout only links the customer; its first invoice.paid carries the money, counted once', async () => {
      const program = await shop();
      const customerId = sid('cus_');
      const subscription = sid('sub_1Q');
      const session = checkoutSession({ mode: 'subscription', amount: 2900, customer: customerId, subscription, metadata: { externalId: 'subscriber-1', referral_code: program.referrer.code } });
      const linked = await accepted(program, stripeEvent('checkout.session.completed', session));
      expect(linked.handled).toBe('customer_linked');
      expect(await conversions(program, 'purchase')).toEqual([]);
      expect(await conversions(program, 'signup')).toHaveLength(1);
      expect(await referrals(program)).toEqual([expect.objectContaining({ referred: 'subscriber-1', referrer: program.referrer.externalId })]);

      // The first invoice: the subscription carries no metadata of ours here.
      const first = invoice({ customer: customerId, subscription, amount: 2900, billingReason: 'subscription_create' });
      const paid = await accepted(program, stripeEvent('invoice.paid', first));
      expect(paid.handled).toBe('purchase');
      expect(paid.result.conversion).toMatchObject({ eventId: first.id, externalId: 'subscriber-1', amount: 2900, currency: 'USD', verified: true, source: 'stripe' });
      expect(paid.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });

      // Stripe redelivers both: still one purchase.
      await accepted(program, stripeEvent('checkout.session.completed', session));
      await accepted(program, stripeEvent('invoice.paid', first));
      expect(await conversions(program, 'purchase')).toHaveLength(1);
      expect(await conversions(program, 'signup')).toHaveLength(1);
      const referrer = await participant(program, program.referrer.externalId);
      expect(referrer.stats).toMatchObject({ signups: 1, purchases: 1, revenue: { USD: 2900 } });
      expect(referrer.rewards.approved).toEqual({ USD: 580 });
    });

    it('renewal invoices with no metadata are the linked participant\'s purchases: recurring commissions, deduplicated by invoice id', async () => {
      const program = await shop();
      const customerId = sid('cus_');
      const subscription = sid('sub_1Q');
      await accepted(program, stripeEvent('checkout.session.completed', checkoutSession({ mode: 'subscription', customer: customerId, subscription, metadata: { externalId: 'renewer', referral_code: program.referrer.code } })));
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

      expect((await conversions(program, 'purchase')).map((row) => [row.event_id, row.amount])).toEqual(invoices.map((entry) => [entry.id, entry.amount_paid]));
      const rewards = await rewardsOf(program, program.referrer.externalId);
      expect(rewards.map((reward) => [reward.rule, reward.amount, reward.eventId])).toEqual([
        ['rec', 580, invoices[0]!.id],
        ['rec', 580, invoices[1]!.id],
        ['rec', 980, invoices[2]!.id],
      ]);
      const referrer = await participant(program, program.referrer.externalId);
      expect(referrer.stats).toMatchObject({ signups: 1, purchases: 3, revenue: { USD: 10_700 } });
      expect(referrer.rewards.approved).toEqual({ USD: 2140 });
    });

    it('the first invoice.paid arriving before the subscription Checkout (Stripe does not promise order) still ends with one purchase and the customer named in the session, attributed', async () => {
      const program = await shop();
      const customerId = sid('cus_');
      const subscription = sid('sub_1Q');
      const first = invoice({ customer: customerId, subscription, amount: 2900, billingReason: 'subscription_create' });
      const session = checkoutSession({ mode: 'subscription', customer: customerId, subscription, metadata: { externalId: 'early-invoice', referral_code: program.referrer.code } });
      await accepted(program, stripeEvent('invoice.paid', first));
      await accepted(program, stripeEvent('checkout.session.completed', session));
      expect(await conversions(program, 'purchase')).toHaveLength(1);
      expect(await referrals(program)).toEqual([expect.objectContaining({ referred: 'early-invoice', referrer: program.referrer.externalId })]);
      // From now on, renewals are the named customer's, with the recurring commission.
      const renewal = await accepted(program, stripeEvent('invoice.paid', invoice({ customer: customerId, subscription, amount: 2900, billingReason: 'subscription_cycle' })));
      expect(renewal.result.conversion.externalId).toBe('early-invoice');
      expect(renewal.result.rewards).toEqual([expect.objectContaining({ participant: program.referrer.externalId, amount: 580 })]);
    });

    it('renewals after the rule\'s withinDays still count as purchases but earn no commission', async () => {
      const program = await shop();
      const customerId = sid('cus_');
      await accepted(program, stripeEvent('checkout.session.completed', checkoutSession({ mode: 'subscription', customer: customerId, metadata: { externalId: 'old-timer', referral_code: program.referrer.code } })));
      await accepted(program, stripeEvent('invoice.paid', invoice({ customer: customerId, amount: 1000 })));
      // The referral is now more than a year old.
      await db('referrals').where({ program_id: program.id }).update({ created_at: new Date(Date.now() - 400 * DAY_MS) });
      const late = await accepted(program, stripeEvent('invoice.paid', invoice({ customer: customerId, amount: 1000, billingReason: 'subscription_cycle' })));
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
      const first = invoice({ apiVersion, customer: customerId, amount: 1500, subscriptionMetadata: { externalId: `meta-${apiVersion}`, referral_code: program.referrer.code } });
      const body = await accepted(program, stripeEvent('invoice.paid', first, { apiVersion: eventVersion }));
      expect(body.handled).toBe('purchase');
      expect(body.result.conversion).toMatchObject({ externalId: `meta-${apiVersion}`, eventId: first.id, amount: 1500, currency: 'USD' });
      expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });
      expect(body.result.rewards).toEqual([expect.objectContaining({ participant: program.referrer.externalId, amount: 300 })]);
      expect(await referrals(program)).toEqual([expect.objectContaining({ referred: `meta-${apiVersion}`, referrer: program.referrer.externalId })]);
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
      await click(program, vid);
      const body = await accepted(program, stripeEvent('invoice.paid', invoice({ customer: sid('cus_'), subscriptionMetadata: { externalId: 'vid-subscriber', referral_vid: vid } })));
      expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });
    });

    it('an invoice for an unknown customer with no metadata is that Stripe customer\'s purchase, unattributed', async () => {
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
      expect(body.result.refund).toMatchObject({ eventId: event.id, purchaseEventId: bought.sessionId, amount: 10_000, currency: 'USD', refundedTotal: 10_000 });
      expect(body.result.rewards).toEqual([expect.objectContaining({ id: bought.grant.id, status: 'revoked' })]);

      const refunds = await conversions(program, 'refund');
      expect(refunds).toHaveLength(1);
      expect(refunds[0]).toMatchObject({ amount: 10_000, source: 'stripe', event_id: event.id });
      const referrer = await participant(program, program.referrer.externalId);
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

      let referrer = await participant(program, program.referrer.externalId);
      expect(referrer.stats.revenue).toEqual({ USD: 6000 });
      expect(referrer.rewards.approved).toEqual({ USD: 1200 });

      // The rest: a full refund in the end revokes the reward and its adjustments.
      const last = await accepted(program, refund(10_000, 4000));
      expect(last.result.refund).toMatchObject({ amount: 6000, refundedTotal: 10_000 });
      expect((await conversions(program, 'refund')).map((row) => row.amount)).toEqual([2500, 1500, 6000]);
      referrer = await participant(program, program.referrer.externalId);
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
      expect((await participant(program, program.referrer.externalId)).rewards.approved).toEqual({ USD: 1000 });
    });

    it('a paid reward is clawed back with a negative entry when its purchase is refunded', async () => {
      const program = await shop();
      const bought = await purchase(program, 5000);
      const pay = await api.post(`/v1/rewards/${bought.grant.id}/pay`, {}, { auth: program.secret });
      expect(pay.status, pay.text).toBe(200);
      const body = await accepted(program, refundEvent({ paymentIntent: bought.paymentIntent, customer: bought.customer, amount: 5000, amountRefunded: 5000 }));
      expect(body.result.rewards).toEqual([expect.objectContaining({ amount: -1000, status: 'approved', reverses: bought.grant.id })]);
      const referrer = await participant(program, program.referrer.externalId);
      expect(referrer.rewards).toEqual({ pending: {}, approved: { USD: -1000 }, paid: { USD: 1000 } });
    });

    it('refunds a subscription payment by the invoice\'s payment intent (older API) or its payments list (API 2025+)', async () => {
      const program = await shop();
      const customerId = sid('cus_');
      await accepted(program, stripeEvent('checkout.session.completed', checkoutSession({ mode: 'subscription', customer: customerId, metadata: { externalId: 'refund-sub', referral_code: program.referrer.code } })));
      const oldPi = sid('pi_3Q');
      const oldInvoice = invoice({ apiVersion: 'old', customer: customerId, amount: 3000, paymentIntent: oldPi });
      await accepted(program, stripeEvent('invoice.paid', oldInvoice, { apiVersion: API_OLD }));
      const newPi = sid('pi_3Q');
      const newInvoice = invoice({ apiVersion: 'new', customer: customerId, amount: 3000, paymentIntent: newPi, withPayments: true, billingReason: 'subscription_cycle' });
      await accepted(program, stripeEvent('invoice.paid', newInvoice));

      const a = await accepted(program, refundEvent({ paymentIntent: oldPi, customer: customerId, invoice: oldInvoice.id as string, amount: 3000, amountRefunded: 1000 }, 0, API_OLD));
      expect(a.result.refund).toMatchObject({ purchaseEventId: oldInvoice.id, amount: 1000 });
      const b = await accepted(program, refundEvent({ paymentIntent: newPi, customer: customerId, amount: 3000, amountRefunded: 3000 }));
      expect(b.result.refund).toMatchObject({ purchaseEventId: newInvoice.id, amount: 3000 });
    });

    it('refunds an older-API invoice purchase found only through charge.invoice', async () => {
      const program = await shop();
      const customerId = sid('cus_');
      const entry = invoice({ apiVersion: 'old', customer: customerId, amount: 2000, subscriptionMetadata: { externalId: 'by-invoice', referral_code: program.referrer.code } });
      await accepted(program, stripeEvent('invoice.paid', entry, { apiVersion: API_OLD }));
      // A charge whose payment intent we never saw, naming the invoice.
      const body = await accepted(program, refundEvent({ paymentIntent: sid('pi_3Q'), customer: customerId, invoice: entry.id as string, amount: 2000, amountRefunded: 500 }, 0, API_OLD));
      expect(body.result.refund).toMatchObject({ purchaseEventId: entry.id, amount: 500 });
    });

    it('an unknown purchase answers 404 (so Stripe retries) and stores nothing; the retry succeeds once the purchase is known', async () => {
      const program = await shop();
      const paymentIntent = sid('pi_3Q');
      const customer = sid('cus_');
      const event = refundEvent({ paymentIntent, customer, amount: 4000, amountRefunded: 4000 });
      const before = await countConversions(program);
      const early = await deliver(program, event);
      expect(early.status, early.text).toBe(404);
      expect(early.body.error.code).toBe('not_found');
      expect(await countConversions(program)).toBe(before);

      await accepted(program, stripeEvent('checkout.session.completed', checkoutSession({ amount: 4000, customer, paymentIntent, metadata: { externalId: 'out-of-order', referral_code: program.referrer.code } })));
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
    await click(program, vid);
    expect((await participant(program, program.referrer.externalId)).stats.clicks).toBe(1);

    // 2. The host creates a Checkout Session with client_reference_id = referral.get().vid and its own user id.
    const customerId = sid('cus_');
    const paymentIntent = sid('pi_3Q');
    const session = checkoutSession({ amount: 7900, currency: 'usd', customer: customerId, paymentIntent, clientReferenceId: vid, metadata: { externalId: 'shop-user-1001', order: 'ORD-1001' } });

    // 3. Stripe reports the payment.
    const body = await accepted(program, stripeEvent('checkout.session.completed', session));
    expect(body.handled).toBe('purchase');
    expect(body.result.conversion).toMatchObject({ externalId: 'shop-user-1001', eventId: session.id, amount: 7900, currency: 'USD', verified: true });
    expect(body.result.attribution).toMatchObject({ status: 'existing', referrer: program.referrer.externalId });

    expect(await referrals(program)).toEqual([expect.objectContaining({ referrer: program.referrer.externalId, referred: 'shop-user-1001', code: program.referrer.code, verified: true })]);
    const buyer = await participant(program, 'shop-user-1001');
    expect(buyer.referredBy).toBe(program.referrer.externalId);

    const referrer = await participant(program, program.referrer.externalId);
    expect(referrer.stats).toEqual({ clicks: 1, signups: 1, purchases: 1, revenue: { USD: 7900 } });
    expect(referrer.rewards).toEqual({ pending: {}, approved: { USD: 1580 }, paid: {} });
    const rewards = await rewardsOf(program, program.referrer.externalId);
    expect(rewards).toEqual([expect.objectContaining({ rule: 'rec', kind: 'cash', amount: 1580, currency: 'USD', status: 'approved', eventId: session.id })]);
  });
});
