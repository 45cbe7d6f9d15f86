import Router from '@koa/router';
import { ConversionCreateSchema } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { requireSecretKey, type AppState } from '../http/auth.ts';
import { idempotency } from '../http/idempotency.ts';
import { parse } from '../http/validate.ts';
import { recordConversion } from '../domain/conversions.ts';

/** Server-side conversions: verified, attributed and rewarded in one transaction. */
export function conversionRoutes({ db, limits }: Deps) {
  const router = new Router<AppState>();
  router.post('/v1/conversions', requireSecretKey(db, limits), idempotency(db), async (ctx) => {
    const input = parse(ConversionCreateSchema, ctx.request.body);
    ctx.body = await recordConversion(db, ctx.state.program, {
      type: input.type,
      eventId: input.eventId,
      externalId: input.externalId,
      email: input.email,
      name: input.name,
      code: input.referral?.code,
      vid: input.referral?.vid,
      amount: input.amount,
      currency: input.currency,
      verified: true,
      source: 'server',
    });
  });
  return router;
}
