import Router from '@koa/router';
import { z } from 'zod';
import { PageQuerySchema, RefundCreateSchema, RewardTransitionSchema } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { requireSecretKey, type AppState } from '../http/auth.ts';
import { idempotency } from '../http/idempotency.ts';
import { pageQuery, toPage } from '../http/paging.ts';
import { parse, parseQuery } from '../http/validate.ts';
import { notFound } from '../errors.ts';
import { recordRefund, transitionReward, type RewardAction } from '../domain/ledger.ts';
import { presentReward, rewardQuery, type RewardRow } from '../domain/rewards.ts';
import { presentDelivery, type DeliveryRow } from '../domain/webhooks.ts';

const RewardQuerySchema = PageQuerySchema.extend({
  status: z.enum(['pending', 'approved', 'paid', 'revoked']).optional(),
  participant: z.string().min(1).max(255).optional(),
});

const DeliveryQuerySchema = PageQuerySchema.extend({
  status: z.enum(['pending', 'delivered', 'failed']).optional(),
});

export function rewardRoutes({ db, limits }: Deps) {
  const router = new Router<AppState>();
  const auth = requireSecretKey(db, limits);

  router.get('/v1/rewards', auth, async (ctx) => {
    const query = parseQuery(RewardQuerySchema, ctx.query);
    const rows = rewardQuery(db).where('w.program_id', ctx.state.program.id);
    if (query.status) rows.where('w.status', query.status);
    if (query.participant) rows.where('p.external_id', query.participant);
    ctx.body = toPage((await pageQuery(rows, 'w', query.limit, query.cursor)) as RewardRow[], query.limit, presentReward);
  });

  router.post('/v1/rewards/:id/:action', auth, async (ctx) => {
    const action = ctx.params.action as RewardAction;
    if (!['approve', 'revoke', 'pay'].includes(action)) throw notFound('Action');
    if (!z.uuid().safeParse(ctx.params.id).success) throw notFound('Reward');
    const body = parse(RewardTransitionSchema, ctx.request.body);
    ctx.body = {
      reward: await transitionReward(db, ctx.state.program, ctx.params.id as string, action, `key:${ctx.state.apiKeyId}`, body),
    };
  });

  router.post('/v1/refunds', auth, idempotency(db), async (ctx) => {
    const input = parse(RefundCreateSchema, ctx.request.body);
    ctx.body = await recordRefund(db, ctx.state.program, input);
  });

  router.get('/v1/webhooks/deliveries', auth, async (ctx) => {
    const query = parseQuery(DeliveryQuerySchema, ctx.query);
    const rows = db('webhook_outbox as o').where('o.program_id', ctx.state.program.id).select('o.*');
    if (query.status) rows.where('o.status', query.status);
    ctx.body = toPage((await pageQuery(rows, 'o', query.limit, query.cursor)) as DeliveryRow[], query.limit, presentDelivery);
  });
  return router;
}
