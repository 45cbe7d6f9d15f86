import Router from '@koa/router';
import { ExternalIdSchema, PromoCodeCreateSchema } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { requireSecretKey, type AppState } from '../http/auth.ts';
import { parse } from '../http/validate.ts';
import { notFound } from '../errors.ts';
import { addPromoCode, promoCodesOf, removePromoCode } from '../domain/promoCodes.ts';
import { createStripePromotionCode } from '../domain/providers/stripePromotionCodes.ts';

/** A participant's promo codes: provider discounts that attribute the paid events carrying them. */
export function promoCodeRoutes({ db, config, limits }: Deps) {
  const router = new Router<AppState>();
  const base = '/v1/participants/:externalId/promo-codes';
  router.use(base, requireSecretKey(db, limits));

  router.post(base, async (ctx) => {
    const externalId = parse(ExternalIdSchema, ctx.params.externalId, 'externalId');
    const input = parse(PromoCodeCreateSchema, ctx.request.body);
    const { program } = ctx.state;
    // Created in Stripe first (idempotent on program, participant and code), then stored with Stripe's id.
    const id = input.create ? await createStripePromotionCode(db, program, externalId, input, config.stripeApiUrl) : input.id;
    ctx.status = 201;
    ctx.body = await addPromoCode(db, program.id, externalId, { ...input, id });
  });

  router.get(base, async (ctx) => {
    const externalId = parse(ExternalIdSchema, ctx.params.externalId, 'externalId');
    ctx.body = { data: await promoCodesOf(db, ctx.state.program.id, externalId) };
  });

  router.delete(`${base}/:id`, async (ctx) => {
    const externalId = parse(ExternalIdSchema, ctx.params.externalId, 'externalId');
    if (!(await removePromoCode(db, ctx.state.program.id, externalId, String(ctx.params.id)))) throw notFound('Promo code');
    ctx.status = 204;
  });
  return router;
}
