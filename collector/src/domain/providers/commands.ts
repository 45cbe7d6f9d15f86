/**
 * The commands every payment provider's verified webhook becomes, run the same way
 * whoever sent them. An adapter (stripe.ts, paddle.ts, lemonsqueezy.ts) only reads its
 * provider's payload; this module knows the collector:
 *
 * - purchase: the customer is signed up (and attributed) unless known, the provider's
 *   customer is linked to them, then the purchase is recorded, verified. Renewals carry
 *   no metadata of ours: the customer link says whose they are.
 * - customer link: the same, without a purchase (a subscription checkout whose first
 *   invoice carries the money, a trial, anything that paid 0: a payment of 0 is no
 *   purchase, so the first paid one is the customer's first purchase).
 * - refund: of the purchase a payment belongs to, pro-rated like POST /v1/refunds.
 *
 * A promo code the payment carried (a provider discount mapped to a participant) names
 * the referrer, for the signup and the purchase alike.
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import { ExternalIdSchema, type PaymentProvider } from '../../../../shared/schemas.ts';
import { notFound, unprocessable } from '../../errors.ts';
import type { Config } from '../../config.ts';
import { hasClicked } from '../clicks.ts';
import { attributeLater, recordConversion, type ConversionResult } from '../conversions.ts';
import { recordRefund, type RefundResult } from '../ledger.ts';
import type { ProgramRow } from '../programs.ts';
import { findPromoCode, type Discount, type PromoCodeMatch } from '../promoCodes.ts';

/** Who paid, as a provider's event names them. */
export interface CustomerRef {
  /** The provider's customer id: linked to the participant, so renewals find them. */
  customerId?: string | undefined;
  /** The host's user id from our metadata (metadata.externalId, custom_data.externalId). */
  externalId?: string | undefined;
  /** The host's user id or a visitor id (Stripe's client_reference_id): a visitor id with clicks is the referral. */
  reference?: string | undefined;
  email?: string | undefined;
  name?: string | undefined;
  /** The referral passed into the checkout (referral_code, referral_vid). */
  code?: string | undefined;
  vid?: string | undefined;
  /** The discounts the payment carried: a promo code among them names the referrer. */
  discounts?: Discount[] | undefined;
  /** The customer when nothing else names them (e.g. `stripe:cs_…`). */
  fallbackId: string;
}

export type Command =
  | { kind: 'link_customer'; customer: CustomerRef; reason?: string }
  | { kind: 'purchase'; customer: CustomerRef; eventId: string; amount: number; currency: string; payments: Array<string | undefined> }
  | ({
      kind: 'refund';
      eventId: string;
      /** Payment ids the purchase was linked with (payment intents, charges, transactions). */
      payments: Array<string | undefined>;
      /** The purchase's eventId, when the event names it. */
      purchaseEventId?: string | undefined;
    } & ({ refundedTotal: number } | { amount: number }))
  | { kind: 'ignore'; reason: string };

export type ProviderOutcome =
  | { handled: 'purchase'; result: ConversionResult }
  | { handled: 'customer_linked'; reason?: string }
  | { handled: 'refund'; result: RefundResult }
  | { handled: 'ignored'; reason: string };

/** What an adapter may use besides its event (the program's settings; where provider APIs are). */
export interface AdapterContext {
  program: ProgramRow;
  config: Pick<Config, 'lemonSqueezyApiUrl'>;
}

/** One payment provider: how its webhooks are verified, and what each becomes. */
export interface ProviderAdapter<Event> {
  name: PaymentProvider;
  /** The event once its signature is checked against the raw body; throws 400 `invalid_signature` otherwise. */
  verify: (rawBody: string, header: (name: string) => string, secret: string) => Promise<Event>;
  /** The event's type and id, for the log. */
  describe: (event: Event) => { type: string; id: string };
  commandFor: (event: Event, context: AdapterContext) => Command | Promise<Command>;
}

/** A payload that passed the signature check but lacks what we read. */
export const invalidPayload = (provider: PaymentProvider, message: string) => unprocessable(`invalid_${provider}_payload`, message);

/** Reads `object` with `schema` (which ignores unknown fields), or 422. */
export function parsePayload<S extends z.ZodType>(provider: PaymentProvider, schema: S, object: unknown, what: string): z.infer<S> {
  const result = schema.safeParse(object);
  if (!result.success) throw invalidPayload(provider, `The ${what} is missing fields we need`);
  return result.data;
}

/** A usable email, normalized, or nothing. */
export const cleanEmail = (email: string | null | undefined) =>
  email && z.email().safeParse(email.trim().toLowerCase()).success ? email.trim().toLowerCase() : undefined;

/**
 * A participant named after the provider's customer, for a customer first seen
 * without our metadata (the first event that names the real user relinks it).
 * Stripe and Paddle ids are prefixed already (cus_, ctm_); a bare number is not.
 */
const standInId = (provider: PaymentProvider, customerId: string) => (/^\d+$/.test(customerId) ? `${provider}:${customerId}` : customerId);

async function isKnownVisitor(db: Knex, programId: string, value: string): Promise<boolean> {
  return hasClicked(db, programId, value);
}

async function linkedParticipant(db: Knex, programId: string, provider: PaymentProvider, customerId: string | undefined) {
  if (!customerId) return undefined;
  const row = (await db('provider_customers as s')
    .join('participants as p', 'p.id', 's.participant_id')
    .where({ 's.program_id': programId, 's.provider': provider, 's.customer_id': customerId })
    .first('p.external_id')) as { external_id: string } | undefined;
  return row?.external_id;
}

async function linkCustomer(db: Knex, programId: string, provider: PaymentProvider, customerId: string | undefined, externalId: string) {
  if (!customerId) return;
  // A link to a stand-in (named after the customer id) gives way to the real user.
  await db.raw(
    `insert into provider_customers (program_id, provider, customer_id, participant_id)
     select ?, ?, ?, id from participants where program_id = ? and external_id = ?
     on conflict (program_id, provider, customer_id) do update set participant_id = excluded.participant_id
     where provider_customers.participant_id in (select id from participants where program_id = ? and external_id = ?)`,
    [programId, provider, customerId, programId, externalId, programId, standInId(provider, customerId)],
  );
}

async function linkPayments(
  db: Knex,
  programId: string,
  provider: PaymentProvider,
  purchaseEventId: string,
  ids: Array<string | undefined>,
) {
  for (const paymentId of new Set(ids.filter((id): id is string => Boolean(id)))) {
    await db.raw(
      `insert into provider_payments (program_id, provider, payment_id, purchase_event_id) values (?, ?, ?, ?) on conflict do nothing`,
      [programId, provider, paymentId, purchaseEventId],
    );
  }
}

interface Resolved {
  externalId: string;
  vid?: string | undefined;
  /** Already linked to this very participant: a renewal, nothing to sign up. */
  known: boolean;
  promoCode?: PromoCodeMatch | undefined;
}

/** Who the customer is: named by our metadata, else the linked participant, else the provider's customer, email or event. */
async function resolveCustomer(db: Knex, program: ProgramRow, provider: PaymentProvider, ref: CustomerRef): Promise<Resolved> {
  let { externalId, vid } = ref;
  if (ref.reference) {
    // A reference may carry referral.get().vid instead of the host's user id.
    if (await isKnownVisitor(db, program.id, ref.reference)) vid ??= ref.reference;
    else externalId ??= ref.reference;
  }
  const linked = await linkedParticipant(db, program.id, provider, ref.customerId);
  externalId ??= linked ?? (ref.customerId ? standInId(provider, ref.customerId) : undefined) ?? ref.email ?? ref.fallbackId;
  if (!ExternalIdSchema.safeParse(externalId).success) {
    throw invalidPayload(provider, 'The customer id (externalId, client reference or customer) is not a valid externalId');
  }
  const promoCode = ref.discounts?.length ? await findPromoCode(db, program.id, provider, ref.discounts) : undefined;
  return { externalId, vid, known: linked !== undefined && linked === externalId, promoCode };
}

/**
 * Signs the customer up (attributing them) unless they are linked already, then links
 * the provider's customer. A linked customer still unreferred is attributed by a later
 * event's referral (the provider's events come in any order).
 */
async function ensureCustomer(db: Knex, program: ProgramRow, provider: PaymentProvider, ref: CustomerRef): Promise<Resolved> {
  const customer = await resolveCustomer(db, program, provider, ref);
  if (customer.known) {
    await attributeLater(db, program, customer.externalId, { code: ref.code, vid: customer.vid, promoCode: customer.promoCode });
    return customer;
  }
  await recordConversion(db, program, {
    type: 'signup',
    eventId: `${provider}:${customer.externalId}`,
    externalId: customer.externalId,
    email: ref.email,
    name: ref.name,
    code: ref.code,
    vid: customer.vid,
    verified: true,
    source: provider,
    promoCode: customer.promoCode,
  });
  await linkCustomer(db, program.id, provider, ref.customerId, customer.externalId);
  return customer;
}

async function purchase(db: Knex, program: ProgramRow, provider: PaymentProvider, command: Extract<Command, { kind: 'purchase' }>) {
  const customer = await ensureCustomer(db, program, provider, command.customer);
  const result = await recordConversion(db, program, {
    type: 'purchase',
    eventId: command.eventId,
    externalId: customer.externalId,
    amount: command.amount,
    currency: command.currency,
    verified: true,
    source: provider,
    // For a customer who signed up before, unreferred: the promo code attributes them now.
    promoCode: customer.promoCode,
  });
  await linkPayments(db, program.id, provider, command.eventId, command.payments);
  return result;
}

async function refund(db: Knex, program: ProgramRow, provider: PaymentProvider, command: Extract<Command, { kind: 'refund' }>) {
  const done = (await db('conversions as c')
    .join('conversion_answers as a', 'a.conversion_id', 'c.id')
    .where({ 'c.program_id': program.id, 'c.type': 'refund', 'c.event_id': command.eventId })
    .first('a.response')) as { response: RefundResult } | undefined;
  if (done) return done.response;
  const ids = command.payments.filter((id): id is string => Boolean(id));
  const payment = ids.length
    ? ((await db('provider_payments').where({ program_id: program.id, provider }).whereIn('payment_id', ids).first('purchase_event_id')) as
        | { purchase_event_id: string }
        | undefined)
    : undefined;
  const purchaseEventId = payment?.purchase_event_id ?? command.purchaseEventId;
  const known = purchaseEventId
    ? await db('conversions').where({ program_id: program.id, type: 'purchase', event_id: purchaseEventId }).first('id')
    : undefined;
  // Not known yet (providers do not promise order): a 404 makes the provider retry later.
  if (!known || !purchaseEventId) throw notFound('Purchase for this refund');
  const input = { eventId: command.eventId, purchaseEventId };
  // A cumulative figure refunds what is new, under the purchase's lock; an amount is this refund alone.
  if ('refundedTotal' in command) return recordRefund(db, program, input, { source: provider, refundedTotal: command.refundedTotal });
  return recordRefund(db, program, { ...input, amount: command.amount }, { source: provider });
}

/** Runs one command for a verified event of `provider`. */
export async function runCommand(db: Knex, program: ProgramRow, provider: PaymentProvider, command: Command): Promise<ProviderOutcome> {
  switch (command.kind) {
    case 'link_customer':
      await ensureCustomer(db, program, provider, command.customer);
      return { handled: 'customer_linked', ...(command.reason ? { reason: command.reason } : {}) };
    case 'purchase':
      return { handled: 'purchase', result: await purchase(db, program, provider, command) };
    case 'refund': {
      const result = await refund(db, program, provider, command);
      return result ? { handled: 'refund', result } : { handled: 'ignored', reason: 'already_refunded' };
    }
    case 'ignore':
      return { handled: 'ignored', reason: command.reason };
  }
}
