import Router from '@koa/router';
import { z } from 'zod';
import { PageQuerySchema } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { requireSecretKey, type AppState } from '../http/auth.ts';
import { parseQuery } from '../http/validate.ts';
import { listDecisions, listReferrals } from '../domain/referrals.ts';

const ReferralQuerySchema = PageQuerySchema.extend({
  referrer: z.string().min(1).max(255).optional(),
  status: z.enum(['attributed', 'held']).optional(),
});

const DecisionQuerySchema = PageQuerySchema.extend({
  reason: z
    .string()
    .regex(/^[a-z_]{1,64}$/, 'must be a snake_case reason')
    .optional(),
  subject: z.enum(['click', 'attribution', 'conversion', 'reward']).optional(),
  outcome: z.enum(['accepted', 'rejected', 'held']).optional(),
  participant: z.string().min(1).max(255).optional(),
});

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
