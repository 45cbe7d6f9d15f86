/**
 * Paddle Billing notifications in their full documented shape (typed by the official
 * SDK's notification types, so a field Paddle documents as required cannot be left
 * out), signed as Paddle signs them: `Paddle-Signature: ts=…;h1=` the hex HMAC-SHA256
 * of `ts:body` with the destination's secret key.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { IAdjustmentNotificationResponse, IEventsResponse, ITransactionNotificationResponse } from '@paddle/paddle-node-sdk';
import type { Reply, TestApp } from './app.ts';
import { unix } from './stripe.ts';

export type PaddleEvent<T = object> = IEventsResponse<T>;

/** A Paddle id: prefix and 26 lower-case characters. */
export const paddleId = (prefix: string) =>
  `${prefix}_01${randomBytes(18)
    .toString('base64')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '')
    .padEnd(24, 'x')
    .slice(0, 24)}`;

const iso = (ms = Date.now()) => new Date(ms).toISOString();

export function paddleEvent<T extends object>(type: string, data: T): PaddleEvent<T> {
  return { event_id: paddleId('evt'), event_type: type, occurred_at: iso(), notification_id: paddleId('ntf'), data };
}

export interface TransactionInput {
  id?: string;
  customerId?: string | null;
  /** grand_total in minor units. */
  amount?: number;
  currency?: 'USD' | 'EUR' | 'GBP';
  customData?: Record<string, unknown> | null;
  discountId?: string | null;
  origin?: ITransactionNotificationResponse['origin'];
  subscriptionId?: string | null;
}

/** A completed transaction, as transaction.completed carries it (one recurring price). */
export function transaction(input: TransactionInput = {}): ITransactionNotificationResponse {
  const id = input.id ?? paddleId('txn');
  const amount = input.amount ?? 4900;
  const currency = input.currency ?? 'USD';
  const tax = Math.round(amount - amount / 1.08875);
  const subtotal = amount - tax;
  const fee = Math.round(amount * 0.05);
  const money = (value: number) => String(value);
  const totals = {
    subtotal: money(subtotal),
    discount: '0',
    tax: money(tax),
    total: money(amount),
    credit: '0',
    credit_to_balance: '0',
    balance: '0',
    grand_total: money(amount),
    grand_total_tax: money(tax),
    fee: money(fee),
    earnings: money(amount - fee - tax),
    currency_code: currency,
  };
  const productId = paddleId('pro');
  const priceId = paddleId('pri');
  const recurring = input.origin !== 'api';
  const data: ITransactionNotificationResponse = {
    id,
    status: 'completed',
    customer_id: input.customerId === undefined ? paddleId('ctm') : input.customerId,
    address_id: paddleId('add'),
    business_id: null,
    custom_data: input.customData === undefined ? null : input.customData,
    currency_code: currency,
    origin: input.origin ?? 'web',
    subscription_id: input.subscriptionId === undefined ? paddleId('sub') : input.subscriptionId,
    invoice_id: paddleId('inv'),
    invoice_number: `325-${String(Math.floor(Math.random() * 90_000) + 10_000)}`,
    collection_mode: 'automatic',
    discount_id: input.discountId ?? null,
    billing_details: null,
    billing_period: recurring ? { starts_at: iso(), ends_at: iso(Date.now() + 30 * 86_400_000) } : null,
    items: [
      {
        price: {
          id: priceId,
          description: 'Monthly (per seat)',
          type: 'standard',
          name: 'Monthly (per seat)',
          product_id: productId,
          billing_cycle: recurring ? { interval: 'month', frequency: 1 } : null,
          trial_period: null,
          tax_mode: 'account_setting',
          unit_price: { amount: money(subtotal), currency_code: currency },
          unit_price_overrides: [{ country_codes: ['AU'], unit_price: { amount: money(subtotal * 2), currency_code: 'AUD' } }],
          quantity: { minimum: 1, maximum: 999 },
          status: 'active',
          custom_data: null,
          import_meta: null,
          created_at: '2024-04-11T13:54:52.254748Z',
          updated_at: '2024-04-11T13:54:52.254748Z',
        },
        quantity: 1,
        proration: null,
      },
    ],
    details: {
      tax_rates_used: [
        { tax_rate: '0.08875', totals: { subtotal: money(subtotal), discount: '0', tax: money(tax), total: money(amount) } },
      ],
      totals,
      adjusted_totals: {
        subtotal: money(subtotal),
        tax: money(tax),
        total: money(amount),
        grand_total: money(amount),
        grand_total_tax: money(tax),
        retained_fee: '0',
        fee: money(fee),
        earnings: money(amount - fee - tax),
        currency_code: currency,
      },
      payout_totals: { ...totals, exchange_rate: '1', fee_rate: '0.05' },
      adjusted_payout_totals: {
        subtotal: money(subtotal),
        tax: money(tax),
        total: money(amount),
        fee: money(fee),
        chargeback_fee: { amount: '0', original: null },
        earnings: money(amount - fee - tax),
        currency_code: currency,
        exchange_rate: '1',
        retained_fee: '0',
      },
      line_items: [
        {
          id: paddleId('txnitm'),
          price_id: priceId,
          quantity: 1,
          proration: null,
          tax_rate: '0.08875',
          unit_totals: { subtotal: money(subtotal), discount: '0', tax: money(tax), total: money(amount) },
          totals: { subtotal: money(subtotal), discount: '0', tax: money(tax), total: money(amount) },
          product: {
            id: productId,
            name: 'ChatApp Pro',
            description: 'Everything in basic, plus the tools that take a team further.',
            type: 'standard',
            tax_category: 'standard',
            image_url: 'https://paddle.s3.amazonaws.com/user/165798/bT1XUOJAQhOUxGs83cbk_pro.png',
            custom_data: null,
            status: 'active',
            import_meta: null,
            created_at: '2024-04-11T13:54:52.254748Z',
            updated_at: '2024-04-11T13:54:52.254748Z',
          },
        },
      ],
    },
    payments: [
      {
        payment_attempt_id: randomBytes(16).toString('hex'),
        stored_payment_method_id: randomBytes(16).toString('hex'),
        payment_method_id: paddleId('paymtd'),
        amount: money(amount),
        status: 'captured',
        error_code: null,
        method_details: {
          type: 'card',
          card: { type: 'visa', last4: '4242', expiry_month: 12, expiry_year: 2034, cardholder_name: 'Ana Lima' },
          paypal: null,
          south_korea_local_card: null,
          underlying_details: null,
        },
        created_at: iso(Date.now() - 5000),
        captured_at: iso(Date.now() - 2000),
      },
    ],
    checkout: { url: `https://shop.example/pay?_ptxn=${id}` },
    created_at: iso(Date.now() - 60_000),
    updated_at: iso(),
    billed_at: iso(Date.now() - 2000),
    revised_at: null,
  };
  return data;
}

export interface AdjustmentInput {
  transactionId: string;
  customerId?: string;
  amount: number;
  status?: IAdjustmentNotificationResponse['status'];
  action?: IAdjustmentNotificationResponse['action'];
  id?: string;
  currency?: 'USD' | 'EUR' | 'GBP';
}

/** A refund adjustment (adjustment.created / adjustment.updated carry it). */
export function adjustment(input: AdjustmentInput): IAdjustmentNotificationResponse {
  const amount = input.amount;
  const tax = Math.round(amount - amount / 1.08875);
  const fee = Math.round(amount * 0.05);
  const currency = input.currency ?? 'USD';
  const data: IAdjustmentNotificationResponse = {
    id: input.id ?? paddleId('adj'),
    action: input.action ?? 'refund',
    type: 'partial',
    transaction_id: input.transactionId,
    subscription_id: paddleId('sub'),
    customer_id: input.customerId ?? paddleId('ctm'),
    reason: 'error',
    credit_applied_to_balance: false,
    currency_code: currency,
    status: input.status ?? 'approved',
    items: [
      {
        id: paddleId('adjitm'),
        item_id: paddleId('txnitm'),
        type: 'partial',
        amount: String(amount),
        proration: null,
        totals: {
          subtotal: String(amount - tax),
          tax: String(tax),
          total: String(amount),
          fee: String(fee),
          earnings: String(amount - tax - fee),
          currency_code: currency,
        },
      },
    ],
    totals: {
      subtotal: String(amount - tax),
      tax: String(tax),
      total: String(amount),
      fee: String(fee),
      earnings: String(amount - tax - fee),
      currency_code: currency,
      retained_fee: '0',
    },
    payout_totals: {
      subtotal: String(amount - tax),
      tax: String(tax),
      total: String(amount),
      fee: String(fee),
      chargeback_fee: null,
      earnings: String(amount - tax - fee),
      currency_code: currency,
      retained_fee: '0',
    },
    created_at: iso(Date.now() - 60_000),
    updated_at: iso(),
  };
  return data;
}

/** `ts=…;h1=…` over `ts:body`, as Paddle signs. */
export const paddleSignature = (body: string, secret: string, ts = unix()) =>
  `ts=${ts};h1=${createHmac('sha256', secret).update(`${ts}:${body}`).digest('hex')}`;

/** Signs the notification as Paddle does and POSTs the exact bytes. */
export function deliverPaddle(
  api: TestApp,
  slug: string,
  event: object,
  options: { secret: string; timestamp?: number; signature?: string | null; tamper?: (payload: string) => string },
): Promise<Reply> {
  const payload = JSON.stringify(event);
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'Paddle' };
  if (options.signature !== null)
    headers['paddle-signature'] = options.signature ?? paddleSignature(payload, options.secret, options.timestamp);
  return api.post(`/v1/integrations/paddle/${slug}`, undefined, { raw: options.tamper ? options.tamper(payload) : payload, headers });
}
