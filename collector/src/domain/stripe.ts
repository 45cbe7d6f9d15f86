/**
 * Stripe webhooks as verified conversions and refunds.
 *
 * - checkout.session.completed: a purchase (mode payment) or, in subscription mode,
 *   only the link between the Stripe customer and the participant: the first
 *   invoice.paid carries the money, so the first payment counts once.
 * - invoice.paid: a purchase, also for renewals that carry no metadata of ours
 *   (the customer link says who it is): recurring commissions.
 * - charge.refunded: a refund of the purchase that payment belongs to.
 * Payloads carry many more fields than read here; unknown fields are ignored.
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import { CurrencySchema, ExternalIdSchema, type StripeEvent } from '../../../shared/schemas.ts';
import { notFound, unprocessable } from '../errors.ts';
import { recordConversion, type ConversionResult } from './conversions.ts';
import { recordRefund, type RefundResult } from './ledger.ts';
import type { ProgramRow } from './programs.ts';

const stripeId = z
  .union([z.string(), z.object({ id: z.string() })])
  .nullish()
  .transform((value) => (typeof value === 'string' ? value : value?.id));
const Metadata = z.record(z.string(), z.string().nullable()).nullish();
const withMetadata = z.object({ metadata: Metadata }).nullish();

/** Stripe sends ISO 4217 codes in lower case; an unknown one is an invalid payload. */
const stripeCurrency = CurrencySchema;

const CheckoutSession = z.object({
  id: z.string().min(1).max(255),
  mode: z.string().nullish(),
  payment_status: z.string().nullish(),
  amount_total: z.number().int().min(0).max(1e12).nullish(),
  currency: stripeCurrency.nullish(),
  customer: stripeId,
  client_reference_id: z.string().nullish(),
  metadata: Metadata,
  payment_intent: stripeId,
  customer_details: z.object({ email: z.string().nullish(), name: z.string().nullish() }).nullish(),
});

const Invoice = z.object({
  id: z.string().min(1).max(255),
  customer: stripeId,
  amount_paid: z.number().int().max(1e12),
  currency: stripeCurrency,
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
});

const Charge = z.object({
  id: z.string().min(1).max(255),
  payment_intent: stripeId,
  invoice: stripeId,
  amount_refunded: z.number().int(),
});

export type StripeOutcome =
  | { handled: 'purchase' | 'customer_linked'; result?: ConversionResult }
  | { handled: 'refund'; result: RefundResult }
  | { handled: 'ignored'; reason: string };

function parsePayload<S extends z.ZodType>(schema: S, object: unknown): z.infer<S> {
  const result = schema.safeParse(object);
  if (!result.success) throw unprocessable('invalid_stripe_payload', 'The Stripe event is missing fields we need');
  return result.data;
}

const cleanEmail = (email: string | null | undefined) =>
  email && z.email().safeParse(email.trim().toLowerCase()).success ? email.trim().toLowerCase() : undefined;

async function isKnownVisitor(db: Knex, programId: string, value: string): Promise<boolean> {
  return Boolean(await db('clicks').where({ program_id: programId, vid: value }).first('id'));
}

async function linkedParticipant(db: Knex, programId: string, customerId: string | undefined): Promise<string | undefined> {
  if (!customerId) return undefined;
  const row = (await db('stripe_customers as s')
    .join('participants as p', 'p.id', 's.participant_id')
    .where({ 's.program_id': programId, 's.customer_id': customerId })
    .first('p.external_id')) as { external_id: string } | undefined;
  return row?.external_id;
}

async function linkCustomer(db: Knex, programId: string, customerId: string | undefined, externalId: string) {
  if (!customerId) return;
  // A customer first seen without our metadata is linked to a stand-in participant
  // named after the customer id; the first event that names the real user relinks it.
  await db.raw(
    `insert into stripe_customers (program_id, customer_id, participant_id)
     select ?, ?, id from participants where program_id = ? and external_id = ?
     on conflict (program_id, customer_id) do update set participant_id = excluded.participant_id
     where stripe_customers.participant_id in (
       select id from participants where program_id = stripe_customers.program_id and external_id = stripe_customers.customer_id)`,
    [programId, customerId, programId, externalId],
  );
}

async function linkPayments(db: Knex, programId: string, purchaseEventId: string, paymentIds: Array<string | undefined>) {
  for (const paymentId of new Set(paymentIds.filter((id): id is string => Boolean(id)))) {
    await db.raw(`insert into stripe_payments (program_id, payment_id, purchase_event_id) values (?, ?, ?) on conflict do nothing`, [
      programId,
      paymentId,
      purchaseEventId,
    ]);
  }
}

interface Customer {
  externalId: string;
  email?: string | undefined;
  name?: string | undefined;
  code?: string | undefined;
  vid?: string | undefined;
}

/** Signs the customer up (attributing them) unless they are known, then links the Stripe customer. */
async function ensureCustomer(db: Knex, program: ProgramRow, customer: Customer, customerId: string | undefined) {
  if (!ExternalIdSchema.safeParse(customer.externalId).success) {
    throw unprocessable(
      'invalid_stripe_payload',
      'The customer id (metadata.externalId, client_reference_id or customer) is not a valid externalId',
    );
  }
  await recordConversion(db, program, {
    type: 'signup',
    eventId: `stripe:${customer.externalId}`,
    externalId: customer.externalId,
    email: customer.email,
    name: customer.name,
    code: customer.code,
    vid: customer.vid,
    verified: true,
    source: 'stripe',
  });
  await linkCustomer(db, program.id, customerId, customer.externalId);
}

async function checkoutCompleted(db: Knex, program: ProgramRow, object: unknown): Promise<StripeOutcome> {
  const session = parsePayload(CheckoutSession, object);
  const meta = session.metadata ?? {};
  let vid = meta.referral_vid ?? undefined;
  let externalId = meta.externalId ?? undefined;
  const reference = session.client_reference_id ?? undefined;
  if (reference) {
    // client_reference_id may carry referral.get().vid instead of the host's user id.
    if (await isKnownVisitor(db, program.id, reference)) vid ??= reference;
    else externalId ??= reference;
  }
  externalId ??=
    (await linkedParticipant(db, program.id, session.customer)) ??
    session.customer ??
    cleanEmail(session.customer_details?.email) ??
    `stripe:${session.id}`;
  await ensureCustomer(
    db,
    program,
    {
      externalId,
      email: cleanEmail(session.customer_details?.email),
      name: session.customer_details?.name ?? undefined,
      code: meta.referral_code ?? undefined,
      vid,
    },
    session.customer,
  );
  if (session.mode === 'subscription') return { handled: 'customer_linked' };
  if (session.payment_status === 'unpaid' || session.amount_total == null || !session.currency)
    return { handled: 'ignored', reason: 'unpaid' };
  const result = await recordConversion(db, program, {
    type: 'purchase',
    eventId: session.id,
    externalId,
    amount: session.amount_total,
    currency: session.currency.toUpperCase(),
    verified: true,
    source: 'stripe',
  });
  await linkPayments(db, program.id, session.id, [session.payment_intent]);
  return { handled: 'purchase', result };
}

async function invoicePaid(db: Knex, program: ProgramRow, object: unknown): Promise<StripeOutcome> {
  const invoice = parsePayload(Invoice, object);
  if (invoice.amount_paid <= 0) return { handled: 'ignored', reason: 'nothing_paid' };
  const meta = invoice.parent?.subscription_details?.metadata ?? invoice.subscription_details?.metadata ?? invoice.metadata ?? {};
  const linked = await linkedParticipant(db, program.id, invoice.customer);
  const externalId = linked ?? meta.externalId ?? invoice.customer ?? cleanEmail(invoice.customer_email) ?? `stripe:${invoice.id}`;
  if (!linked) {
    await ensureCustomer(
      db,
      program,
      {
        externalId,
        email: cleanEmail(invoice.customer_email),
        name: invoice.customer_name ?? undefined,
        code: meta.referral_code ?? undefined,
        vid: meta.referral_vid ?? undefined,
      },
      invoice.customer,
    );
  }
  const result = await recordConversion(db, program, {
    type: 'purchase',
    eventId: invoice.id,
    externalId,
    amount: invoice.amount_paid,
    currency: invoice.currency.toUpperCase(),
    verified: true,
    source: 'stripe',
  });
  const payments = invoice.payments?.data.flatMap((entry) => [entry.payment?.payment_intent, entry.payment?.charge]) ?? [];
  await linkPayments(db, program.id, invoice.id, [invoice.payment_intent, invoice.charge, ...payments]);
  return { handled: 'purchase', result };
}

async function chargeRefunded(db: Knex, program: ProgramRow, eventId: string, object: unknown): Promise<StripeOutcome> {
  const charge = parsePayload(Charge, object);
  const done = (await db('conversions').where({ program_id: program.id, type: 'refund', event_id: eventId }).first('response')) as
    | { response: RefundResult }
    | undefined;
  if (done) return { handled: 'refund', result: done.response };
  const payment = (await db('stripe_payments')
    .where({ program_id: program.id })
    .whereIn(
      'payment_id',
      [charge.payment_intent, charge.id].filter((id): id is string => Boolean(id)),
    )
    .first('purchase_event_id')) as { purchase_event_id: string } | undefined;
  const purchaseEventId = payment?.purchase_event_id ?? charge.invoice;
  const purchase = purchaseEventId
    ? ((await db('conversions').where({ program_id: program.id, type: 'purchase', event_id: purchaseEventId }).first('id')) as
        | { id: string }
        | undefined)
    : undefined;
  // Not known yet (Stripe does not promise order): a 404 makes Stripe retry later.
  if (!purchase || !purchaseEventId) throw notFound('Purchase for this charge');
  // amount_refunded is cumulative over the charge's refunds: refund up to it, under the purchase's lock.
  const result = await recordRefund(db, program, { eventId, purchaseEventId }, { source: 'stripe', refundedTotal: charge.amount_refunded });
  return result ? { handled: 'refund', result } : { handled: 'ignored', reason: 'already_refunded' };
}

export async function handleStripeEvent(db: Knex, program: ProgramRow, event: StripeEvent): Promise<StripeOutcome> {
  switch (event.type) {
    case 'checkout.session.completed':
    case 'checkout.session.async_payment_succeeded': // delayed methods (SEPA, …) pay later
      return checkoutCompleted(db, program, event.data.object);
    case 'invoice.paid':
      return invoicePaid(db, program, event.data.object);
    case 'charge.refunded':
      return chargeRefunded(db, program, event.id, event.data.object);
    default:
      return { handled: 'ignored', reason: 'event_type' };
  }
}
