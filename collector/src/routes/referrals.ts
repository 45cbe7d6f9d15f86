import Router from '@koa/router';
import { DecisionQuerySchema, ReferralQuerySchema } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { requireSecretKey, type AppState } from '../http/auth.ts';
import { parseQuery } from '../http/validate.ts';
import { listDecisions, listReferrals } from '../domain/referrals.ts';

export function referralRoutes({ db, limits }: Deps) {
  const router = new Router<AppState>();
  router.get('/v1/referrals', requireSecretKey(db, limits), async (ctx) => {
    ctx.body = await listReferrals(db, ctx.state.program.id, parseQuery(ReferralQuerySchema, ctx.query));
  });
  router.get('/v1/decisions', requireSecretKey(db, limits), async (ctx) => {
    ctx.body = await listDecisions(db, ctx.state.program.id, parseQuery(DecisionQuerySchema, ctx.query));
  });
  return router;
}
