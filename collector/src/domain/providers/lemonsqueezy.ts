/**
 * Lemon Squeezy webhooks as commands (commands.ts). `X-Signature` is the hex
 * HMAC-SHA256 of the raw body with the webhook's signing secret.
 *
 * - order_created (status paid): a purchase, eventId the order's `identifier`; the
 *   customer is `meta.custom_data.externalId` (checkout[custom][externalId]), else the
 *   Lemon Squeezy customer, linked so renewals find them; the referral is
 *   `custom_data.referral_code` / `referral_vid`. An order of 0 only links the customer.
 * - subscription_payment_success: a renewal (the customer link says whose). A new
 *   subscription sends it too, with `billing_reason: initial`, beside its
 *   order_created: that first payment is the order's, counted once.
 * - order_refunded / subscription_payment_refunded: `refunded_amount` is cumulative:
 *   each event refunds what is new, pro-rated.
 * Discount codes: an order names only `discount_total` and its discount-redemptions
 * relationship, so with `settings.lemonsqueezy.apiKey` set, the order's redemptions
 * (discount id and code) are read from the Lemon Squeezy API to find a promo code.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { CurrencySchema } from '../../../../shared/schemas.ts';
import { badRequest, unavailable } from '../../errors.ts';
import type { Discount } from '../promoCodes.ts';
import { cleanEmail, parsePayload, type AdapterContext, type Command, type CustomerRef, type ProviderAdapter } from './commands.ts';

const Cents = z.number().int().min(0).max(1e12);
const Id = z.union([z.string().min(1).max(255), z.number().int()]).transform(String);

/** Our keys in `meta.custom_data` (checkout[custom][…]); anything else there is the host's. */
const CustomData = z
  .object({
    externalId: z
      .union([z.string(), z.number().transform(String)])
      .optional()
      .catch(undefined),
    referral_code: z.string().optional().catch(undefined),
    referral_vid: z.string().optional().catch(undefined),
  })
  .nullish()
  .catch(null);

const Envelope = z.object({
  meta: z.object({ event_name: z.string().min(1).max(255), custom_data: z.unknown().optional(), webhook_id: z.string().nullish() }),
  data: z.object({ id: Id, attributes: z.unknown() }),
});
export type LemonSqueezyEvent = z.infer<typeof Envelope>;

const Order = z.object({
  identifier: z.string().min(1).max(255),
  customer_id: Id.nullish(),
  user_name: z.string().nullish(),
  user_email: z.string().nullish(),
  currency: CurrencySchema,
  total: Cents,
  discount_total: Cents.nullish(),
  status: z.string(),
  refunded: z.boolean().nullish(),
  refunded_amount: Cents.nullish(),
});

const SubscriptionInvoice = z.object({
  subscription_id: Id.nullish(),
  customer_id: Id.nullish(),
  user_name: z.string().nullish(),
  user_email: z.string().nullish(),
  billing_reason: z.string().nullish(),
  currency: CurrencySchema,
  total: Cents,
  status: z.string(),
  refunded: z.boolean().nullish(),
  refunded_amount: Cents.nullish(),
});

/** A discount redemption from the Lemon Squeezy API (`GET /v1/discount-redemptions`). */
const Redemptions = z.object({
  data: z.array(z.object({ attributes: z.object({ discount_id: Id.nullish(), discount_code: z.string().nullish() }) })),
});

/** The eventId of a subscription invoice's purchase (orders use their `identifier`). */
const invoiceEventId = (id: string) => `lemonsqueezy:subscription-invoice:${id}`;

/**
 * The discounts an order redeemed, from the API. A network failure or a 5xx answers 503
 * (Lemon Squeezy retries the webhook); a refusal (bad key) attributes without them.
 */
async function orderDiscounts(orderId: string, context: AdapterContext): Promise<Discount[]> {
  const apiKey = context.program.settings.lemonsqueezy?.apiKey;
  if (!apiKey) return [];
  const url = `${context.config.lemonSqueezyApiUrl}/v1/discount-redemptions?filter[order_id]=${encodeURIComponent(orderId)}`;
  let reply: Response;
  try {
    reply = await fetch(url, {
      headers: { accept: 'application/vnd.api+json', authorization: `Bearer ${apiKey}` },
      signal: AbortSignal.timeout(10_000),
    });
  } catch {
    throw unavailable('Lemon Squeezy could not be reached to read the order’s discount; retry later', 30);
  }
  if (reply.status >= 500) throw unavailable('Lemon Squeezy failed to answer for the order’s discount; retry later', 30);
  if (!reply.ok) return [];
  const body = Redemptions.safeParse(await reply.json().catch(() => null));
  if (!body.success) return [];
  return body.data.data.map(({ attributes }) => ({
    id: attributes.discount_id ?? undefined,
    code: attributes.discount_code ?? undefined,
  }));
}

function customerOf(
  custom: z.infer<typeof CustomData>,
  attributes: z.infer<typeof Order> | z.infer<typeof SubscriptionInvoice>,
  fallbackId: string,
): CustomerRef {
  return {
    customerId: attributes.customer_id ?? undefined,
    externalId: custom?.externalId,
    email: cleanEmail(attributes.user_email),
    name: attributes.user_name ?? undefined,
    code: custom?.referral_code,
    vid: custom?.referral_vid,
    fallbackId,
  };
}

async function orderCreated(event: LemonSqueezyEvent, context: AdapterContext): Promise<Command> {
  const order = parsePayload('lemonsqueezy', Order, event.data.attributes, 'Lemon Squeezy order');
  if (order.status !== 'paid') return { kind: 'ignore', reason: order.status };
  const customer = customerOf(CustomData.parse(event.meta.custom_data), order, `lemonsqueezy:${order.identifier}`);
  if (order.discount_total) customer.discounts = await orderDiscounts(event.data.id, context);
  if (order.total === 0) return { kind: 'link_customer', customer, reason: 'nothing_paid' };
  return {
    kind: 'purchase',
    customer,
    eventId: order.identifier,
    amount: order.total,
    currency: order.currency,
    payments: [event.data.id],
  };
}

function paymentSuccess(event: LemonSqueezyEvent): Command {
  const invoice = parsePayload('lemonsqueezy', SubscriptionInvoice, event.data.attributes, 'Lemon Squeezy subscription invoice');
  const customer = customerOf(CustomData.parse(event.meta.custom_data), invoice, invoiceEventId(event.data.id));
  // The subscription's first payment is its order's (order_created): counted there, once.
  if (invoice.billing_reason === 'initial') return { kind: 'link_customer', customer, reason: 'counted_on_order' };
  if (invoice.total === 0) return { kind: 'link_customer', customer, reason: 'nothing_paid' };
  const eventId = invoiceEventId(event.data.id);
  return { kind: 'purchase', customer, eventId, amount: invoice.total, currency: invoice.currency, payments: [eventId] };
}

function orderRefunded(event: LemonSqueezyEvent): Command {
  const order = parsePayload('lemonsqueezy', Order, event.data.attributes, 'Lemon Squeezy order');
  const refundedTotal = order.refunded_amount ?? (order.refunded ? order.total : 0);
  if (refundedTotal <= 0) return { kind: 'ignore', reason: 'nothing_refunded' };
  // One refund per cumulative figure: a redelivery repeats it, a further partial refund is another.
  return {
    kind: 'refund',
    eventId: `${order.identifier}:refunded:${refundedTotal}`,
    payments: [event.data.id],
    purchaseEventId: order.identifier,
    refundedTotal,
  };
}

function invoiceRefunded(event: LemonSqueezyEvent): Command {
  const invoice = parsePayload('lemonsqueezy', SubscriptionInvoice, event.data.attributes, 'Lemon Squeezy subscription invoice');
  if (invoice.billing_reason === 'initial') return { kind: 'ignore', reason: 'counted_on_order' };
  const refundedTotal = invoice.refunded_amount ?? (invoice.refunded ? invoice.total : 0);
  if (refundedTotal <= 0) return { kind: 'ignore', reason: 'nothing_refunded' };
  const purchaseEventId = invoiceEventId(event.data.id);
  return {
    kind: 'refund',
    eventId: `${purchaseEventId}:refunded:${refundedTotal}`,
    payments: [purchaseEventId],
    purchaseEventId,
    refundedTotal,
  };
}

const hmac = (secret: string, body: string) => createHmac('sha256', secret).update(body, 'utf8').digest('hex');

export const lemonSqueezyProvider: ProviderAdapter<LemonSqueezyEvent> = {
  name: 'lemonsqueezy',

  async verify(rawBody, header, secret) {
    const signature = header('x-signature').trim().toLowerCase();
    if (!signature) throw badRequest('invalid_signature', 'The X-Signature header is missing');
    const expected = Buffer.from(hmac(secret, rawBody), 'hex');
    const given = /^[0-9a-f]{64}$/.test(signature) ? Buffer.from(signature, 'hex') : Buffer.alloc(0);
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      throw badRequest('invalid_signature', 'The Lemon Squeezy signature does not match this payload');
    let json: unknown;
    try {
      json = JSON.parse(rawBody);
    } catch {
      json = undefined;
    }
    return parsePayload('lemonsqueezy', Envelope, json, 'Lemon Squeezy event');
  },

  describe: (event) => ({ type: event.meta.event_name, id: event.meta.webhook_id ?? event.data.id }),

  commandFor(event, context) {
    switch (event.meta.event_name) {
      case 'order_created':
        return orderCreated(event, context);
      case 'subscription_payment_success':
        return paymentSuccess(event);
      case 'order_refunded':
        return orderRefunded(event);
      case 'subscription_payment_refunded':
        return invoiceRefunded(event);
      default:
        return { kind: 'ignore', reason: 'event_type' };
    }
  },
};
