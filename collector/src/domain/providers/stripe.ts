/**
 * Stripe webhooks as commands (commands.ts), verified by the official SDK.
 *
 * - checkout.session.completed: a purchase (mode payment) or, in subscription mode,
 *   only the customer link: the first invoice.paid carries the money, so the first
 *   payment counts once.
 * - invoice.paid: a purchase, also for renewals that carry no metadata of ours (the
 *   customer link says who it is): recurring commissions. An invoice of 0 (a trial)
 *   only links the customer.
 * - charge.refunded: a refund of the purchase that payment belongs to.
 * Promotion codes: `discounts[].promotion_code` (sessions, expanded invoice discounts)
 * and the older `discount.promotion_code`. Unknown fields are ignored.
 */
import { z } from 'zod';
import { CurrencySchema, StripeEventSchema, type StripeEvent } from '../../../../shared/schemas.ts';
import { badRequest } from '../../errors.ts';
import { loadStripe } from '../../stripeClient.ts';
import type { Discount } from '../promoCodes.ts';
import { cleanEmail, invalidPayload, parsePayload, type Command, type CustomerRef, type ProviderAdapter } from './commands.ts';

/** Signatures older than this, or dated further ahead, are refused (Stripe's own default). */
const TOLERANCE_SECONDS = 300;

const stripeId = z
  .union([z.string(), z.object({ id: z.string() })])
  .nullish()
  .transform((value) => (typeof value === 'string' ? value : value?.id));
const Metadata = z.record(z.string(), z.string().nullable()).nullish();
const withMetadata = z.object({ metadata: Metadata }).nullish();

/** A promotion code: its id, or the expanded object with its code text. */
const PromotionCode = z.union([z.string(), z.object({ id: z.string(), code: z.string().nullish() })]).nullish();
/** A discount: a session's `{ coupon, promotion_code }`, an invoice's discount id (`di_…`) or expanded Discount. */
const StripeDiscount = z.union([z.string(), z.object({ promotion_code: PromotionCode })]);
const Discounts = z.array(StripeDiscount).nullish().catch(null);

const CheckoutSession = z.object({
  id: z.string().min(1).max(255),
  mode: z.string().nullish(),
  payment_status: z.string().nullish(),
  amount_total: z.number().int().min(0).max(1e12).nullish(),
  currency: CurrencySchema.nullish(),
  customer: stripeId,
  client_reference_id: z.string().nullish(),
  metadata: Metadata,
  payment_intent: stripeId,
  customer_details: z.object({ email: z.string().nullish(), name: z.string().nullish() }).nullish(),
  discounts: Discounts,
});

const Invoice = z.object({
  id: z.string().min(1).max(255),
  customer: stripeId,
  amount_paid: z.number().int().max(1e12),
  currency: CurrencySchema,
  customer_email: z.string().nullish(),
  customer_name: z.string().nullish(),
  metadata: Metadata,
  payment_intent: stripeId,
  charge: stripeId,
  // API 2025+: subscription metadata sits under parent; older versions at the top.
  parent: z.object({ subscription_details: withMetadata }).nullish(),
  subscription_details: withMetadata,
  payments: z
    .object({ data: z.array(z.object({ payment: z.object({ payment_intent: stripeId, charge: stripeId }).nullish() })) })
    .nullish(),
  discounts: Discounts,
  // Older API versions: the one discount, expanded.
  discount: z.object({ promotion_code: PromotionCode }).nullish().catch(null),
});

const Charge = z.object({
  id: z.string().min(1).max(255),
  payment_intent: stripeId,
  invoice: stripeId,
  amount_refunded: z.number().int(),
});

/** The promotion codes among a payload's discounts (a bare `di_…` id names none). */
function promotionCodes(
  discounts: Array<z.infer<typeof StripeDiscount>> | null | undefined,
  ...more: Array<{ promotion_code?: z.infer<typeof PromotionCode> } | null | undefined>
): Discount[] {
  return [...(discounts ?? []), ...more]
    .map((discount) => (typeof discount === 'string' ? undefined : discount?.promotion_code))
    .filter((promotion) => promotion != null)
    .map((promotion) => (typeof promotion === 'string' ? { id: promotion } : { id: promotion.id, code: promotion.code ?? undefined }));
}

function checkoutCompleted(object: unknown): Command {
  const session = parsePayload('stripe', CheckoutSession, object, 'Stripe event');
  const meta = session.metadata ?? {};
  const customer: CustomerRef = {
    customerId: session.customer,
    externalId: meta.externalId ?? undefined,
    reference: session.client_reference_id ?? undefined,
    email: cleanEmail(session.customer_details?.email),
    name: session.customer_details?.name ?? undefined,
    code: meta.referral_code ?? undefined,
    vid: meta.referral_vid ?? undefined,
    discounts: promotionCodes(session.discounts),
    fallbackId: `stripe:${session.id}`,
  };
  if (session.mode === 'subscription') return { kind: 'link_customer', customer };
  if (session.payment_status === 'unpaid' || session.amount_total == null || !session.currency)
    return { kind: 'link_customer', customer, reason: 'unpaid' };
  if (session.amount_total === 0) return { kind: 'link_customer', customer, reason: 'nothing_paid' };
  return {
    kind: 'purchase',
    customer,
    eventId: session.id,
    amount: session.amount_total,
    currency: session.currency,
    payments: [session.payment_intent],
  };
}

function invoicePaid(object: unknown): Command {
  const invoice = parsePayload('stripe', Invoice, object, 'Stripe event');
  const meta = invoice.parent?.subscription_details?.metadata ?? invoice.subscription_details?.metadata ?? invoice.metadata ?? {};
  const customer: CustomerRef = {
    customerId: invoice.customer,
    externalId: meta.externalId ?? undefined,
    email: cleanEmail(invoice.customer_email),
    name: invoice.customer_name ?? undefined,
    code: meta.referral_code ?? undefined,
    vid: meta.referral_vid ?? undefined,
    discounts: promotionCodes(invoice.discounts, invoice.discount),
    fallbackId: `stripe:${invoice.id}`,
  };
  // A trial's invoice (or one paid in full by a discount or credit): no purchase; the first paid one is.
  if (invoice.amount_paid <= 0) return { kind: 'link_customer', customer, reason: 'nothing_paid' };
  const payments = invoice.payments?.data.flatMap((entry) => [entry.payment?.payment_intent, entry.payment?.charge]) ?? [];
  return {
    kind: 'purchase',
    customer,
    eventId: invoice.id,
    amount: invoice.amount_paid,
    currency: invoice.currency,
    payments: [invoice.payment_intent, invoice.charge, ...payments],
  };
}

function chargeRefunded(eventId: string, object: unknown): Command {
  const charge = parsePayload('stripe', Charge, object, 'Stripe event');
  // amount_refunded is cumulative over the charge's refunds.
  return {
    kind: 'refund',
    eventId,
    payments: [charge.payment_intent, charge.id],
    purchaseEventId: charge.invoice,
    refundedTotal: charge.amount_refunded,
  };
}

/**
 * The SDK refuses only old timestamps; a signature dated in the future would stay
 * replayable until then. Reads `t=` as the SDK does (the last one counts).
 */
function datedAhead(header: string, nowMs = Date.now()): boolean {
  const stamps = header.split(',').filter((item) => item.split('=')[0] === 't');
  const timestamp = Number.parseInt(stamps.at(-1)?.split('=')[1] ?? '', 10);
  return !Number.isFinite(timestamp) || timestamp - nowMs / 1000 > TOLERANCE_SECONDS;
}

export const stripeProvider: ProviderAdapter<StripeEvent> = {
  name: 'stripe',

  /** The event, once the official SDK has checked its signature against the raw body; nothing is read before. */
  async verify(rawBody, header, secret) {
    const signature = header('stripe-signature');
    if (!signature) throw badRequest('invalid_signature', 'The Stripe-Signature header is missing');
    const Stripe = await loadStripe();
    let event: unknown;
    try {
      event = Stripe.webhooks.constructEvent(rawBody, signature, secret, TOLERANCE_SECONDS);
    } catch {
      throw badRequest('invalid_signature', 'The Stripe signature does not match this payload');
    }
    if (datedAhead(signature))
      throw badRequest('invalid_signature', "The Stripe signature is dated in the future; check the sender's clock");
    const shape = StripeEventSchema.safeParse(event);
    if (!shape.success) throw invalidPayload('stripe', 'The Stripe event has no id, type or data.object');
    return shape.data;
  },

  describe: (event) => ({ type: event.type, id: event.id }),

  commandFor(event) {
    switch (event.type) {
      case 'checkout.session.completed':
      case 'checkout.session.async_payment_succeeded': // delayed methods (SEPA, …) pay later
        return checkoutCompleted(event.data.object);
      case 'invoice.paid':
        return invoicePaid(event.data.object);
      case 'charge.refunded':
        return chargeRefunded(event.id, event.data.object);
      default:
        return { kind: 'ignore', reason: 'event_type' };
    }
  },
};
