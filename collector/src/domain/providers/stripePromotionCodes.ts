/**
 * Creating a participant's Stripe promotion code through the official SDK
 * (`promotionCodes.create`) with the program's `settings.stripe.secretKey`, so the
 * code a creator reads aloud exists in Stripe and is mapped to them in one call.
 */
import type { Knex } from 'knex';
import type { PromoCodeCreate } from '../../../../shared/schemas.ts';
import { badRequest, notFound, unavailable, unprocessable } from '../../errors.ts';
import { stripeClient } from '../../stripeClient.ts';
import type { ProgramRow } from '../programs.ts';

/** Stripe's promotion code id (`promo_…`) for `input.code` on `input.coupon`. */
export async function createStripePromotionCode(
  db: Knex,
  program: ProgramRow,
  externalId: string,
  input: Pick<PromoCodeCreate, 'code' | 'coupon'>,
  apiUrl: string | undefined,
): Promise<string> {
  const secretKey = program.settings.stripe?.secretKey;
  if (!secretKey)
    throw badRequest('stripe_not_configured', 'Set settings.stripe.secretKey for this program to create Stripe promotion codes');
  const owner = await db('participants').where({ program_id: program.id, external_id: externalId }).whereNull('erased_at').first('id');
  if (!owner) throw notFound('Participant');
  const stripe = await stripeClient(secretKey, apiUrl);
  try {
    const created = await stripe.promotionCodes.create(
      {
        promotion: { type: 'coupon', coupon: input.coupon as string },
        code: input.code,
        metadata: { referral_program: program.slug, referral_participant: externalId },
      },
      // A retried request creates nothing twice (Stripe replays the first answer for a
      // day); the coupon is in the key, so a request corrected to another coupon is a
      // new request, not "same key, other parameters".
      { idempotencyKey: `promo-${program.id}-${owner.id}-${input.code.toLowerCase()}-${input.coupon ?? ''}` },
    );
    return created.id;
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    const message = ((error as Error).message ?? 'Stripe refused').slice(0, 300);
    if (typeof status === 'number' && status >= 400 && status < 500) {
      throw unprocessable('stripe_refused', `Stripe refused the promotion code: ${message}`);
    }
    throw unavailable('Stripe could not be reached to create the promotion code; retry', 5);
  }
}
