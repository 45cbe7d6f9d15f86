/**
 * Stripe payloads in their full published shape (many fields the collector never
 * reads), for the suites that deliver signed Stripe webhooks through the real app.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';
import type { Reply, TestApp } from './app.ts';
import { uniq } from './factories.ts';

/** API 2025+ (invoice subscription metadata under `parent`) and an older version (top-level `subscription_details`). */
export const API_NEW = '2025-09-30.clover';
export const API_OLD = '2024-06-20';

export type Json = Record<string, unknown>;

export const unix = (ms = Date.now()) => Math.floor(ms / 1000);
export const sid = (prefix: string) => `${prefix}${randomBytes(12).toString('base64url').replace(/[-_]/g, 'x')}`;
/** The snippet's visitor id shape: referral.get().vid. */
export const visitorId = () => Array.from({ length: 5 }, () => randomBytes(4).readUInt32BE(0)).join('-');

// ---------------------------------------------------------------------------
// Stripe payload builders
// ---------------------------------------------------------------------------

export function stripeEvent(type: string, object: Json, options: { apiVersion?: string; previous?: Json } = {}): Json {
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

export interface SessionInput {
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

export function checkoutSession(input: SessionInput = {}): Json {
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
    invoice_creation:
      mode === 'payment'
        ? {
            enabled: false,
            invoice_data: {
              account_tax_ids: null,
              custom_fields: null,
              description: null,
              footer: null,
              issuer: null,
              metadata: {},
              rendering_options: null,
            },
          }
        : null,
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

export interface InvoiceInput {
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

export function invoice(input: InvoiceInput): Json {
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
              subscription_item_details: {
                invoice_item: null,
                proration: false,
                proration_details: { credited_items: null },
                subscription,
                subscription_item: sid('si_'),
              },
              type: 'subscription_item_details',
            },
            pretax_credit_amounts: [],
            pricing: {
              price_details: { price: sid('price_1Q'), product: sid('prod_') },
              type: 'price_details',
              unit_amount_decimal: String(amount),
            },
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
          plan: {
            id: sid('price_1Q'),
            object: 'plan',
            active: true,
            amount,
            currency,
            interval: 'month',
            interval_count: 1,
            product: sid('prod_'),
          },
          price: {
            id: sid('price_1Q'),
            object: 'price',
            active: true,
            currency,
            product: sid('prod_'),
            recurring: { interval: 'month', interval_count: 1 },
            type: 'recurring',
            unit_amount: amount,
          },
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

export interface ChargeInput {
  paymentIntent?: string | null;
  amount: number;
  amountRefunded: number;
  currency?: string;
  customer?: string | null;
  /** Older API versions name the invoice on the charge. */
  invoice?: string | null;
  id?: string;
}

export function charge(input: ChargeInput): Json {
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
    billing_details: {
      address: { city: null, country: 'PT', line1: null, line2: null, postal_code: null, state: null },
      email: 'buyer@example.com',
      name: 'José Müller',
      phone: null,
      tax_id: null,
    },
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
    outcome: {
      advice_code: null,
      network_advice_code: null,
      network_decline_code: null,
      network_status: 'approved_by_network',
      reason: null,
      risk_level: 'normal',
      risk_score: 32,
      seller_message: 'Payment complete.',
      type: 'authorized',
    },
    paid: true,
    payment_intent: input.paymentIntent ?? null,
    payment_method: sid('pm_1Q'),
    payment_method_details: {
      card: {
        amount_authorized: input.amount,
        brand: 'visa',
        checks: { address_line1_check: null, address_postal_code_check: null, cvc_check: 'pass' },
        country: 'US',
        exp_month: 12,
        exp_year: 2034,
        funding: 'credit',
        last4: '4242',
        network: 'visa',
        three_d_secure: null,
        wallet: null,
      },
      type: 'card',
    },
    radar_options: {},
    receipt_email: null,
    receipt_number: null,
    receipt_url: `https://pay.stripe.com/receipts/payment/${id}`,
    refunded: input.amountRefunded >= input.amount,
    refunds: {
      object: 'list',
      data: [
        {
          id: sid('re_3Q'),
          object: 'refund',
          amount: input.amountRefunded,
          charge: id,
          currency: input.currency ?? 'usd',
          payment_intent: input.paymentIntent ?? null,
          reason: 'requested_by_customer',
          status: 'succeeded',
        },
      ],
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

export const refundEvent = (input: ChargeInput, previousRefunded = 0, apiVersion = API_NEW) =>
  stripeEvent('charge.refunded', charge(input), { apiVersion, previous: { amount_refunded: previousRefunded, refunded: false } });

/** Signs `event` as Stripe does (the stripe package's own test header) and POSTs the exact bytes. */
export async function deliverStripe(
  api: TestApp,
  slug: string,
  event: Json,
  options: { secret: string; timestamp?: number; signature?: string | null; tamper?: (payload: string) => string },
): Promise<Reply> {
  const payload = JSON.stringify(event, null, 2);
  const header =
    options.signature === null
      ? undefined
      : (options.signature ??
        Stripe.webhooks.generateTestHeaderString({
          payload,
          secret: options.secret,
          ...(options.timestamp !== undefined ? { timestamp: options.timestamp } : {}),
        }));
  const headers: Record<string, string> = {
    'content-type': 'application/json; charset=utf-8',
    'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
  };
  if (header !== undefined) headers['stripe-signature'] = header;
  return api.post(`/v1/integrations/stripe/${slug}`, undefined, { raw: options.tamper ? options.tamper(payload) : payload, headers });
}

// ---------------------------------------------------------------------------
// Promotion codes: discounts on sessions and invoices, and a stand-in of the API
// ---------------------------------------------------------------------------

/** A Stripe promotion code id (`promo_…`). */
export const promotionCodeId = () => sid('promo_1Q');

/** A checkout session's `discounts[]` entry: the coupon and the promotion code the customer typed. */
export const sessionDiscount = (promotionCode: string | null, coupon = 'SAVE10') => ({ coupon, promotion_code: promotionCode });

/**
 * A Discount object in its published shape: what an older API version's invoice carries
 * expanded as `discount`, and what `expand[]=discounts` returns. Webhooks of API 2025+
 * name invoice discounts by id only (`di_…`).
 */
export function discountObject(input: {
  promotionCode: string | null;
  customer: string;
  subscription?: string | null;
  coupon?: string;
  apiVersion?: 'new' | 'old';
}): Json {
  const coupon = input.coupon ?? 'SAVE10';
  const base: Json = {
    id: sid('di_1Q'),
    object: 'discount',
    checkout_session: null,
    customer: input.customer,
    end: null,
    invoice: null,
    invoice_item: null,
    promotion_code: input.promotionCode,
    start: unix() - 60,
    subscription: input.subscription ?? null,
    subscription_item: null,
  };
  if ((input.apiVersion ?? 'new') === 'new') return { ...base, source: { coupon, type: 'coupon' } };
  return {
    ...base,
    coupon: {
      id: coupon,
      object: 'coupon',
      amount_off: null,
      created: unix() - 86_400,
      currency: null,
      duration: 'once',
      duration_in_months: null,
      livemode: false,
      max_redemptions: null,
      metadata: {},
      name: '10% off',
      percent_off: 10,
      redeem_by: null,
      times_redeemed: 1,
      valid: true,
    },
  };
}

export interface PromotionCodeRequest {
  method: string;
  path: string;
  /** The form-encoded body, decoded (`promotion[coupon]`, `metadata[…]` keys kept as they are). */
  form: Record<string, string>;
  idempotencyKey: string | undefined;
  authorization: string | undefined;
}

export interface PromotionCodeStandIn {
  url: string;
  /** Every request received, retries and replays included. */
  requests: PromotionCodeRequest[];
  /** The promotion codes it created (a replayed idempotent request creates none). */
  created: Json[];
  /** Coupons that exist; a promotion code for another one is refused (400 resource_missing). */
  coupons: Set<string>;
  /** While set, every request is answered 500 `api_error`. */
  failing: { on: boolean };
  close: () => Promise<void>;
}

/**
 * A local stand-in of Stripe's `POST /v1/promotion_codes` (Stripe cannot be reached
 * from here), for the official SDK pointed at it through `STRIPE_API_URL`. Like Stripe,
 * it replays the first answer for an Idempotency-Key it has seen.
 */
export async function startPromotionCodeStandIn(): Promise<PromotionCodeStandIn> {
  const requests: PromotionCodeRequest[] = [];
  const created: Json[] = [];
  const coupons = new Set<string>();
  const failing = { on: false };
  const answered = new Map<string, { status: number; body: string }>();
  const error = (status: number, body: Json) => ({ status, body: JSON.stringify({ error: body }) });
  const answer = (method: string, path: string, form: Record<string, string>) => {
    if (failing.on) return error(500, { type: 'api_error', message: 'An unknown error occurred' });
    if (method !== 'POST' || path !== '/v1/promotion_codes')
      return error(404, { type: 'invalid_request_error', message: `Unrecognized request URL (${method}: ${path})` });
    const coupon = form['promotion[coupon]'] ?? '';
    if (form['promotion[type]'] !== 'coupon' || !coupons.has(coupon)) {
      return error(400, {
        code: 'resource_missing',
        doc_url: 'https://stripe.com/docs/error-codes/resource-missing',
        message: `No such coupon: '${coupon}'`,
        param: 'promotion[coupon]',
        type: 'invalid_request_error',
      });
    }
    const metadata = Object.fromEntries(
      Object.entries(form)
        .filter(([key]) => key.startsWith('metadata['))
        .map(([key, value]) => [key.slice(9, -1), value]),
    );
    const promotionCode: Json = {
      id: promotionCodeId(),
      object: 'promotion_code',
      active: true,
      code: form.code,
      created: unix(),
      customer: null,
      customer_account: null,
      expires_at: null,
      livemode: false,
      max_redemptions: null,
      metadata,
      promotion: { coupon, type: 'coupon' },
      restrictions: { first_time_transaction: false, minimum_amount: null, minimum_amount_currency: null },
      times_redeemed: 0,
    };
    created.push(promotionCode);
    return { status: 200, body: JSON.stringify(promotionCode) };
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
      const idempotencyKey = req.headers['idempotency-key'] as string | undefined;
      const method = req.method ?? '';
      const path = req.url ?? '';
      requests.push({ method, path, form, idempotencyKey, authorization: req.headers.authorization });
      const reply = (idempotencyKey && answered.get(idempotencyKey)) || answer(method, path, form);
      if (idempotencyKey) answered.set(idempotencyKey, reply);
      res
        .writeHead(reply.status, { 'content-type': 'application/json', 'request-id': sid('req_'), 'stripe-version': API_NEW })
        .end(reply.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    created,
    coupons,
    failing,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
