import Router from '@koa/router';
import { z } from 'zod';
import type { RewardTransitionResponse } from '../../../shared/responses.ts';
import {
  DeliveryQuerySchema,
  RefundCreateSchema,
  RewardQuerySchema,
  RewardTotalsQuerySchema,
  RewardTransitionSchema,
} from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { requireSecretKey, type AppState } from '../http/auth.ts';
import { idempotency } from '../http/idempotency.ts';
import { parse, parseQuery } from '../http/validate.ts';
import { notFound } from '../errors.ts';
import { recordRefund, transitionReward, type RewardAction } from '../domain/ledger.ts';
import { listRewards } from '../domain/rewards.ts';
import { rewardTotals } from '../domain/rewardTotals.ts';
import { listDeliveries } from '../domain/webhooks.ts';

export function rewardRoutes({ db, limits }: Deps) {
  const router = new Router<AppState>();
  const auth = requireSecretKey(db, limits);

  router.get('/v1/rewards', auth, async (ctx) => {
    ctx.body = await listRewards(db, ctx.state.program.id, parseQuery(RewardQuerySchema, ctx.query));
  });

  router.get('/v1/rewards/totals', auth, async (ctx) => {
    ctx.body = await rewardTotals(db, ctx.state.program.id, parseQuery(RewardTotalsQuerySchema, ctx.query));
  });

  router.post('/v1/rewards/:id/:action', auth, async (ctx) => {
    const action = ctx.params.action as RewardAction;
    if (!['approve', 'revoke', 'pay'].includes(action)) throw notFound('Action');
    if (!z.uuid().safeParse(ctx.params.id).success) throw notFound('Reward');
    const body = parse(RewardTransitionSchema, ctx.request.body);
    const actor = `key:${ctx.state.apiKeyId}`;
    ctx.body = {
      reward: await transitionReward(db, ctx.state.program, ctx.params.id as string, action, actor, body),
    } satisfies RewardTransitionResponse;
  });

  router.post('/v1/refunds', auth, idempotency(db), async (ctx) => {
    const input = parse(RefundCreateSchema, ctx.request.body);
    ctx.body = await recordRefund(db, ctx.state.program, input);
  });

  router.get('/v1/webhooks/deliveries', auth, async (ctx) => {
    ctx.body = await listDeliveries(db, ctx.state.program.id, parseQuery(DeliveryQuerySchema, ctx.query));
  });
  return router;
}
