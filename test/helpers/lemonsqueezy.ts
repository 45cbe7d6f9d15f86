/**
 * Lemon Squeezy webhooks in their full shape (the JSON:API documents Lemon Squeezy
 * sends, every attribute of an order and a subscription invoice, the relationships'
 * links, and `meta` with `custom_data` from checkout[custom][…]), signed as Lemon
 * Squeezy signs them: `X-Signature`, the hex HMAC-SHA256 of the raw body. Also a local
 * stand-in of the Lemon Squeezy API's discount redemptions, for the promo-code lookup.
 */
import { createHmac, randomInt, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Reply, TestApp } from './app.ts';

export type Json = Record<string, unknown>;
const API = 'https://api.lemonsqueezy.com/v1';
const stamp = (ms = Date.now()) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
const money = (cents: number, currency: string) =>
  new Intl.NumberFormat('en-US', { style: 'currency', currency }).format(cents / 100).replace('US$', '$');
const links = (type: string, id: string, names: string[]) =>
  Object.fromEntries(
    names.map((name) => [name, { links: { related: `${API}/${type}/${id}/${name}`, self: `${API}/${type}/${id}/relationships/${name}` } }]),
  );

export const lsId = () => randomInt(1_000_000, 99_999_999);

export function lemonEvent(eventName: string, data: Json, customData: Json | null = null): Json {
  return {
    meta: {
      test_mode: true,
      event_name: eventName,
      webhook_id: randomUUID(),
      ...(customData ? { custom_data: customData } : {}),
    },
    data,
  };
}

export interface OrderInput {
  id?: number;
  identifier?: string;
  customerId?: number;
  total?: number;
  discountTotal?: number;
  currency?: string;
  status?: OrderStatus;
  refundedAmount?: number;
  email?: string;
}

/** The statuses of a Lemon Squeezy order. */
export type OrderStatus = 'pending' | 'failed' | 'paid' | 'refunded' | 'partial_refund' | 'fraudulent';
const formatted = (status: string) => status.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());

/** An order (order_created, order_refunded) with every attribute Lemon Squeezy sends. */
export function order(input: OrderInput = {}): Json {
  const id = input.id ?? lsId();
  const identifier = input.identifier ?? randomUUID();
  const currency = input.currency ?? 'USD';
  const total = input.total ?? 4900;
  const discount = input.discountTotal ?? 0;
  const subtotal = total + discount;
  const refunded = input.refundedAmount ?? 0;
  const rate = currency === 'USD' ? '1.00000000' : '1.14680740';
  const usd = (cents: number) => Math.round(cents * Number(rate));
  return {
    type: 'orders',
    id: String(id),
    attributes: {
      store_id: 364783,
      customer_id: input.customerId ?? lsId(),
      identifier,
      order_number: randomInt(1000, 9_999_999),
      user_name: 'Ana Lima',
      user_email: input.email ?? `buyer-${identifier.slice(0, 8)}@example.com`,
      currency,
      currency_rate: rate,
      subtotal,
      setup_fee: 0,
      discount_total: discount,
      tax: 0,
      total,
      refunded_amount: refunded,
      subtotal_usd: usd(subtotal),
      setup_fee_usd: 0,
      discount_total_usd: usd(discount),
      tax_usd: 0,
      total_usd: usd(total),
      refunded_amount_usd: usd(refunded),
      tax_name: 'VAT',
      tax_rate: '0.00',
      tax_inclusive: false,
      status: input.status ?? 'paid',
      status_formatted: formatted(input.status ?? 'paid'),
      // True once refunded in full; a partial refund only moves refunded_amount.
      refunded: refunded > 0 && refunded >= total,
      refunded_at: refunded > 0 ? stamp() : null,
      subtotal_formatted: money(subtotal, currency),
      setup_fee_formatted: money(0, currency),
      discount_total_formatted: money(discount, currency),
      tax_formatted: money(0, currency),
      total_formatted: money(total, currency),
      refunded_amount_formatted: money(refunded, currency),
      affiliate_id: null,
      referral_amount: null,
      first_order_item: {
        id: lsId(),
        order_id: id,
        product_id: 1_254_414,
        variant_id: 1_960_881,
        price_id: 3_294_770,
        product_name: 'Pro plan',
        variant_name: 'Monthly',
        price: subtotal,
        quantity: 1,
        created_at: stamp(Date.now() - 60_000),
        updated_at: stamp(Date.now() - 60_000),
        test_mode: true,
      },
      urls: {
        receipt: `https://app.lemonsqueezy.com/my-orders/${identifier}?expires=1785434872&signature=${randomUUID().replace(/-/g, '')}`,
      },
      created_at: stamp(Date.now() - 60_000),
      updated_at: stamp(),
      test_mode: true,
    },
    relationships: links('orders', String(id), [
      'store',
      'customer',
      'affiliate',
      'order-items',
      'license-keys',
      'subscriptions',
      'discount-redemptions',
    ]),
    links: { self: `${API}/orders/${id}` },
  };
}

export interface InvoiceInput {
  id?: number;
  customerId: number;
  subscriptionId?: number;
  total?: number;
  currency?: string;
  billingReason?: 'initial' | 'renewal' | 'updated';
  status?: 'paid' | 'pending' | 'void' | 'refunded' | 'partial_refund';
  refundedAmount?: number;
  email?: string;
}

/**
 * The order as order_refunded carries it: the same order, with the refund figures
 * (cumulative `refunded_amount`) and status updated.
 */
export function refundedOrder(paid: Json, refundedAmount: number): Json {
  const attributes = paid.attributes as Json;
  const currency = String(attributes.currency);
  const full = refundedAmount >= Number(attributes.total);
  return {
    ...paid,
    attributes: {
      ...attributes,
      refunded_amount: refundedAmount,
      refunded_amount_usd: Math.round(refundedAmount * Number(attributes.currency_rate)),
      refunded_amount_formatted: money(refundedAmount, currency),
      status: full ? 'refunded' : 'partial_refund',
      status_formatted: full ? 'Refunded' : 'Partial refund',
      refunded: full,
      refunded_at: stamp(),
      updated_at: stamp(),
    },
  };
}

/** A subscription invoice (subscription_payment_success, subscription_payment_refunded). */
export function subscriptionInvoice(input: InvoiceInput): Json {
  const id = input.id ?? lsId();
  const currency = input.currency ?? 'USD';
  const total = input.total ?? 2900;
  const refunded = input.refundedAmount ?? 0;
  return {
    type: 'subscription-invoices',
    id: String(id),
    attributes: {
      store_id: 364783,
      subscription_id: input.subscriptionId ?? lsId(),
      customer_id: input.customerId,
      user_name: 'Ana Lima',
      user_email: input.email ?? 'ana@example.com',
      billing_reason: input.billingReason ?? 'renewal',
      card_brand: 'visa',
      card_last_four: '4242',
      currency,
      currency_rate: '1.00000000',
      status: input.status ?? 'paid',
      status_formatted: formatted(input.status ?? 'paid'),
      refunded: refunded > 0 && refunded >= total,
      refunded_at: refunded > 0 ? stamp() : null,
      subtotal: total,
      discount_total: 0,
      tax: 0,
      tax_inclusive: false,
      total,
      refunded_amount: refunded,
      subtotal_usd: total,
      discount_total_usd: 0,
      tax_usd: 0,
      total_usd: total,
      refunded_amount_usd: refunded,
      subtotal_formatted: money(total, currency),
      discount_total_formatted: money(0, currency),
      tax_formatted: money(0, currency),
      total_formatted: money(total, currency),
      refunded_amount_formatted: money(refunded, currency),
      urls: { invoice_url: `https://app.lemonsqueezy.com/my-orders/${randomUUID()}/subscription-invoice/${id}?signature=${randomUUID()}` },
      created_at: stamp(Date.now() - 60_000),
      updated_at: stamp(),
      test_mode: true,
    },
    relationships: links('subscription-invoices', String(id), ['store', 'subscription', 'customer']),
    links: { self: `${API}/subscription-invoices/${id}` },
  };
}

/** A subscription (subscription_created, subscription_updated, …): events the collector acknowledges and ignores. */
export function subscription(input: {
  id?: number;
  customerId: number;
  orderId: number;
  status?: string;
  trialEndsAt?: string | null;
}): Json {
  const id = input.id ?? lsId();
  const signed = () => `expires=1785434872&signature=${randomUUID().replace(/-/g, '')}`;
  return {
    type: 'subscriptions',
    id: String(id),
    attributes: {
      store_id: 364783,
      customer_id: input.customerId,
      order_id: input.orderId,
      order_item_id: lsId(),
      product_id: 1_254_414,
      variant_id: 1_960_881,
      product_name: 'Pro plan',
      variant_name: 'Monthly',
      user_name: 'Ana Lima',
      user_email: 'ana@example.com',
      status: input.status ?? 'active',
      status_formatted: formatted(input.status ?? 'active'),
      card_brand: 'visa',
      card_last_four: '4242',
      payment_processor: 'stripe',
      pause: null,
      cancelled: false,
      trial_ends_at: input.trialEndsAt ?? null,
      billing_anchor: 12,
      first_subscription_item: {
        id: lsId(),
        subscription_id: id,
        price_id: 3_294_770,
        quantity: 1,
        is_usage_based: false,
        created_at: stamp(Date.now() - 60_000),
        updated_at: stamp(),
      },
      urls: {
        update_payment_method: `https://shop.lemonsqueezy.com/subscription/${id}/payment-details?${signed()}`,
        customer_portal: `https://shop.lemonsqueezy.com/billing?${signed()}`,
        customer_portal_update_subscription: `https://shop.lemonsqueezy.com/billing/${id}/update?${signed()}`,
      },
      renews_at: stamp(Date.now() + 30 * 86_400_000),
      ends_at: null,
      created_at: stamp(Date.now() - 60_000),
      updated_at: stamp(),
      test_mode: true,
    },
    relationships: links('subscriptions', String(id), [
      'store',
      'customer',
      'order',
      'order-item',
      'product',
      'variant',
      'subscription-items',
      'subscription-invoices',
    ]),
    links: { self: `${API}/subscriptions/${id}` },
  };
}

/** A license key (license_key_created, license_key_updated). */
export function licenseKey(input: { customerId: number; orderId: number }): Json {
  const id = lsId();
  const key = randomUUID().toUpperCase();
  return {
    type: 'license-keys',
    id: String(id),
    attributes: {
      store_id: 364783,
      customer_id: input.customerId,
      order_id: input.orderId,
      order_item_id: lsId(),
      product_id: 1_254_414,
      user_name: 'Ana Lima',
      user_email: 'ana@example.com',
      key,
      key_short: `XXXX-${key.slice(-12)}`,
      activation_limit: 5,
      instances_count: 0,
      disabled: false,
      status: 'inactive',
      status_formatted: 'Inactive',
      expires_at: null,
      created_at: stamp(),
      updated_at: stamp(),
      test_mode: true,
    },
    relationships: links('license-keys', String(id), ['store', 'customer', 'order', 'order-item', 'product', 'license-key-instances']),
    links: { self: `${API}/license-keys/${id}` },
  };
}

export const lemonSignature = (body: string, secret: string) => createHmac('sha256', secret).update(body).digest('hex');

/** Signs the event as Lemon Squeezy does and POSTs the exact bytes. */
export function deliverLemonSqueezy(
  api: TestApp,
  slug: string,
  event: Json,
  options: { secret: string; signature?: string | null; tamper?: (payload: string) => string },
): Promise<Reply> {
  const payload = JSON.stringify(event);
  const eventName = String((event.meta as Json).event_name);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'LemonSqueezy-Hookshot',
    'x-event-name': eventName,
  };
  if (options.signature !== null) headers['x-signature'] = options.signature ?? lemonSignature(payload, options.secret);
  return api.post(`/v1/integrations/lemonsqueezy/${slug}`, undefined, { raw: options.tamper ? options.tamper(payload) : payload, headers });
}

export interface LemonApiStandIn {
  url: string;
  /** Discount redemptions by order id, as `GET /v1/discount-redemptions?filter[order_id]=` lists them. */
  redemptions: Map<string, Array<{ discountId: number; code: string }>>;
  requests: Array<{ path: string; authorization: string | undefined }>;
  /** Answer every request with this status instead (a failing API). */
  failWith?: number;
  close: () => Promise<void>;
}

/** A local stand-in of the Lemon Squeezy API's discount redemptions (Lemon Squeezy cannot be reached from here). */
export async function startLemonApiStandIn(): Promise<LemonApiStandIn> {
  const standIn: LemonApiStandIn = {
    url: '',
    redemptions: new Map(),
    requests: [],
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    standIn.requests.push({ path: `${url.pathname}${url.search}`, authorization: req.headers.authorization });
    const send = (status: number, body: unknown) =>
      res.writeHead(status, { 'content-type': 'application/vnd.api+json' }).end(JSON.stringify(body));
    if (standIn.failWith) return send(standIn.failWith, { errors: [{ status: String(standIn.failWith), title: 'Server Error' }] });
    if (req.headers.authorization !== 'Bearer ls_test_key') return send(401, { errors: [{ status: '401', title: 'Unauthenticated' }] });
    if (url.pathname !== '/v1/discount-redemptions') return send(404, { errors: [{ status: '404', title: 'Not Found' }] });
    const orderId = url.searchParams.get('filter[order_id]') ?? '';
    const data = (standIn.redemptions.get(orderId) ?? []).map((redemption, index) => ({
      type: 'discount-redemptions',
      id: String(index + 1),
      attributes: {
        discount_id: redemption.discountId,
        order_id: Number(orderId),
        discount_name: `${redemption.code} (10%)`,
        discount_code: redemption.code,
        discount_amount: 10,
        discount_amount_type: 'percent',
        amount: 490,
        created_at: stamp(),
        updated_at: stamp(),
      },
      relationships: links('discount-redemptions', String(index + 1), ['discount', 'order']),
      links: { self: `${API}/discount-redemptions/${index + 1}` },
    }));
    return send(200, {
      meta: { page: { currentPage: 1, from: 1, lastPage: 1, perPage: 10, to: data.length, total: data.length } },
      jsonapi: { version: '1.0' },
      links: { first: `${API}/discount-redemptions?page%5Bnumber%5D=1`, last: `${API}/discount-redemptions?page%5Bnumber%5D=1` },
      data,
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  standIn.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  standIn.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return standIn;
}
