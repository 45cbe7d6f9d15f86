import Router from '@koa/router';
import { ConversionCreateSchema } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { requireSecretKey, type AppState } from '../http/auth.ts';
import { idempotency } from '../http/idempotency.ts';
import { parse } from '../http/validate.ts';

/** Server-side conversions: verified, attributed and rewarded, group-committed (see ingest.ts). */
export function conversionRoutes({ db, limits, ingest }: Deps) {
  const router = new Router<AppState>();
  router.post('/v1/conversions', requireSecretKey(db, limits, { checkedLater: true }), idempotency(db), async (ctx) => {
    const input = parse(ConversionCreateSchema, ctx.request.body);
    const outcome = await ingest.conversions.add({
      program: ctx.state.program,
      keyId: ctx.state.apiKeyId,
      input: {
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
      },
    });
    if ('error' in outcome) throw outcome.error;
    ctx.body = outcome.ok;
  });
  return router;
}
