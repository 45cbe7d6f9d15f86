/**
 * Paddle Billing webhooks as commands (commands.ts), verified and typed by the
 * official `@paddle/paddle-node-sdk`.
 *
 * - transaction.completed: a purchase; amounts are strings of minor units
 *   (`details.totals.grand_total`, else `total`). The customer is
 *   `custom_data.externalId`, else the Paddle customer (`ctm_…`), linked so renewals
 *   (`origin: subscription_recurring`, no custom data of ours) find them; the referral
 *   is `custom_data.referral_code` / `referral_vid`; `discount_id` may be a promo code.
 *   A transaction of 0 (a trial's) only links the customer.
 * - adjustment.created|updated with `action: refund`: a refund once `status` is
 *   `approved` (refunds wait in `pending_approval` first), of `totals.total`.
 */
import type {
  AdjustmentCreatedEvent,
  AdjustmentUpdatedEvent,
  EventEntity,
  TransactionCompletedEvent,
  Webhooks as PaddleWebhooks,
} from '@paddle/paddle-node-sdk';
import { z } from 'zod';
import { CurrencySchema } from '../../../../shared/schemas.ts';
import { badRequest } from '../../errors.ts';
import { invalidPayload, type Command, type ProviderAdapter } from './commands.ts';

/** Paddle signs `ts:body`; the SDK refuses signatures older than a few seconds, and these dated ahead are refused here. */
const FUTURE_TOLERANCE_SECONDS = 300;

/** Strings of minor units, as Paddle sends amounts. */
const MinorUnits = z
  .string()
  .regex(/^\d{1,13}$/)
  .transform(Number);

/** Our keys in `custom_data` (Paddle.js `customData`); anything else there is the host's. */
const CustomData = z
  .object({
    externalId: z.string().optional().catch(undefined),
    referral_code: z.string().optional().catch(undefined),
    referral_vid: z.string().optional().catch(undefined),
  })
  .nullish()
  .catch(null);

let sdk: Promise<{ webhooks: PaddleWebhooks; fromJson: typeof PaddleWebhooks.fromJson }> | undefined;

/** The SDK, loaded on first use (installs that never use Paddle do not load it). */
function loadPaddle() {
  sdk ??= import('@paddle/paddle-node-sdk').then(({ NodeRuntime, Webhooks }) => {
    NodeRuntime.initialize(); // the runtime the SDK's signature check computes HMACs with
    return { webhooks: new Webhooks(), fromJson: Webhooks.fromJson };
  });
  return sdk;
}

function transactionCompleted(event: TransactionCompletedEvent): Command {
  const transaction = event.data;
  const totals = transaction.details?.totals;
  const amount = MinorUnits.safeParse(totals?.grandTotal ?? totals?.total);
  const currency = CurrencySchema.safeParse(totals?.currencyCode ?? transaction.currencyCode);
  if (!amount.success || !currency.success) throw invalidPayload('paddle', 'The Paddle transaction has no totals we can read');
  const custom = CustomData.parse(transaction.customData) ?? {};
  const customer = {
    customerId: transaction.customerId ?? undefined,
    externalId: custom.externalId,
    code: custom.referral_code,
    vid: custom.referral_vid,
    discounts: transaction.discountId ? [{ id: transaction.discountId }] : [],
    fallbackId: `paddle:${transaction.id}`,
  };
  if (amount.data === 0) return { kind: 'link_customer', customer, reason: 'nothing_paid' };
  return { kind: 'purchase', customer, eventId: transaction.id, amount: amount.data, currency: currency.data, payments: [transaction.id] };
}

function adjustment(event: AdjustmentCreatedEvent | AdjustmentUpdatedEvent): Command {
  const { data } = event;
  if (data.action !== 'refund') return { kind: 'ignore', reason: 'not_a_refund' };
  // Refunds over a threshold wait for Paddle's approval; only an approved one gave money back.
  if (data.status !== 'approved') return { kind: 'ignore', reason: data.status };
  const amount = MinorUnits.safeParse(data.totals.total);
  if (!amount.success) throw invalidPayload('paddle', 'The Paddle adjustment has no total we can read');
  return { kind: 'refund', eventId: data.id, payments: [data.transactionId], purchaseEventId: data.transactionId, amount: amount.data };
}

/** The events turned into commands; the others are acknowledged and ignored. */
const HANDLED = new Set(['transaction.completed', 'adjustment.created', 'adjustment.updated']);

/** A verified notification: the SDK's typed event for those handled, the bare envelope for the rest. */
export type PaddleEvent = EventEntity | { eventId: string; eventType: string; data: object };

/** The `ts` of a `Paddle-Signature` header (`ts=…;h1=…`), or NaN. */
const signedAt = (header: string) => Number(/(?:^|;)ts=(\d+)(?:;|$)/.exec(header)?.[1] ?? Number.NaN);

export const paddleProvider: ProviderAdapter<PaddleEvent> = {
  name: 'paddle',

  async verify(rawBody, header, secret) {
    const signature = header('paddle-signature');
    if (!signature) throw badRequest('invalid_signature', 'The Paddle-Signature header is missing');
    const { webhooks, fromJson } = await loadPaddle();
    // The SDK checks the HMAC of `ts:body` and that ts is recent; a header it cannot read throws.
    const valid = await webhooks.isSignatureValid(rawBody, secret, signature).catch(() => false);
    if (!valid) throw badRequest('invalid_signature', 'The Paddle signature does not match this payload (or is too old)');
    if (signedAt(signature) - Date.now() / 1000 > FUTURE_TOLERANCE_SECONDS)
      throw badRequest('invalid_signature', "The Paddle signature is dated in the future; check the sender's clock");
    let envelope: { event_id?: unknown; event_type?: unknown; data?: unknown };
    try {
      envelope = JSON.parse(rawBody);
    } catch {
      throw invalidPayload('paddle', 'The Paddle notification is not JSON');
    }
    if (
      typeof envelope?.event_id !== 'string' ||
      typeof envelope.event_type !== 'string' ||
      typeof envelope.data !== 'object' ||
      !envelope.data
    )
      throw invalidPayload('paddle', 'The Paddle notification has no event_id, event_type or data');
    // Only the events read here go through the SDK's typed entities; any other is acknowledged as it is.
    if (!HANDLED.has(envelope.event_type)) return { eventId: envelope.event_id, eventType: envelope.event_type, data: envelope.data };
    try {
      return fromJson(envelope as Parameters<typeof fromJson>[0]);
    } catch {
      throw invalidPayload('paddle', 'The Paddle notification is missing fields we need');
    }
  },

  describe: (event) => ({ type: event.eventType, id: event.eventId }),

  commandFor(event) {
    switch (String(event.eventType)) {
      case 'transaction.completed':
        return transactionCompleted(event as TransactionCompletedEvent);
      case 'adjustment.created':
      case 'adjustment.updated':
        return adjustment(event as AdjustmentCreatedEvent | AdjustmentUpdatedEvent);
      default:
        return { kind: 'ignore', reason: 'event_type' };
    }
  },
};
