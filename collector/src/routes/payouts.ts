/**
 * Payout runs (secret key): make one (or preview it), read them, download the
 * provider's bulk file, mark items paid or failed, and send Stripe Connect transfers.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { PageQuerySchema, PayoutCreateSchema, PayoutExportQuerySchema, PayoutItemsUpdateSchema } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { badRequest, notFound } from '../errors.ts';
import { requireSecretKey, type AppState } from '../http/auth.ts';
import { idempotency } from '../http/idempotency.ts';
import { parse, parseQuery } from '../http/validate.ts';
import { payoutFile } from '../domain/payoutFiles.ts';
import {
  createPayout,
  findPayout,
  listPayouts,
  markItemsFailed,
  markItemsPaid,
  type PayoutHooks,
  payoutItems,
  presentPayout,
} from '../domain/payouts.ts';
import type { ProgramRow } from '../domain/programs.ts';
import { transferPendingItems } from '../domain/stripeTransfers.ts';
import { emailPayoutPaid } from '../domain/emails.ts';
import { stripeClient } from '../stripeClient.ts';

/** What paying an item also does: the referrer's "we paid you" email (when the program sends it). */
const HOOKS: PayoutHooks = { onItemPaid: emailPayoutPaid };

export function payoutRoutes({ db, config, limits }: Deps) {
  const router = new Router<AppState>();
  router.use('/v1/payouts', requireSecretKey(db, limits));
  const actorOf = (ctx: Context) => `key:${(ctx.state as AppState).apiKeyId}`;
  const payoutId = (ctx: Context) => {
    if (!z.uuid().safeParse(ctx.params.id).success) throw notFound('Payout');
    return ctx.params.id as string;
  };
  /** Sends the run's pending Stripe Connect transfers, when there are any and a key to send them with. */
  const transfer = async (program: ProgramRow, id: string, actor: string) => {
    const items = await payoutItems(db, await findPayout(db, program.id, id));
    if (!items.some((item) => item.status === 'pending' && item.method === 'stripe_connect')) return [];
    const key = program.settings.stripe?.secretKey;
    if (!key)
      throw badRequest(
        'stripe_not_configured',
        'Stripe Connect items need settings.stripe.secretKey; set it, then POST /v1/payouts/:id/transfer',
      );
    return transferPendingItems(db, program, id, await stripeClient(key, config.stripeApiUrl), actor, HOOKS);
  };

  router.post('/v1/payouts', idempotency(db), async (ctx) => {
    const input = parse(PayoutCreateSchema, ctx.request.body ?? {});
    const program = ctx.state.program;
    const made = await createPayout(db, program, input, actorOf(ctx));
    if (made.dryRun) {
      ctx.body = made;
      return;
    }
    const errors = program.settings.stripe?.secretKey ? await transfer(program, made.payout.id, actorOf(ctx)) : [];
    ctx.status = 201;
    ctx.body = {
      ...(await presentPayout(db, await findPayout(db, program.id, made.payout.id))),
      skipped: made.skipped,
      transferErrors: errors,
    };
  });

  router.get('/v1/payouts', async (ctx) => {
    ctx.body = await listPayouts(db, ctx.state.program.id, parseQuery(PageQuerySchema, ctx.query));
  });

  router.get('/v1/payouts/:id', async (ctx) => {
    ctx.body = await presentPayout(db, await findPayout(db, ctx.state.program.id, payoutId(ctx)));
  });

  router.get('/v1/payouts/:id/export.csv', async (ctx) => {
    const query = parseQuery(PayoutExportQuerySchema, ctx.query);
    const payout = await findPayout(db, ctx.state.program.id, payoutId(ctx));
    const file = payoutFile(ctx.state.program, payout, await payoutItems(db, payout), query);
    ctx.set('Content-Type', 'text/csv; charset=utf-8');
    ctx.set('Content-Disposition', `attachment; filename="${file.filename}"`);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = file.body;
  });

  router.post('/v1/payouts/:id/paid', async (ctx) => {
    const input = parse(PayoutItemsUpdateSchema, ctx.request.body ?? {});
    ctx.body = await markItemsPaid(db, ctx.state.program, payoutId(ctx), input, actorOf(ctx), HOOKS);
  });

  router.post('/v1/payouts/:id/failed', async (ctx) => {
    const input = parse(PayoutItemsUpdateSchema, ctx.request.body ?? {});
    ctx.body = await markItemsFailed(db, ctx.state.program, payoutId(ctx), input);
  });

  router.post('/v1/payouts/:id/transfer', async (ctx) => {
    const id = payoutId(ctx);
    const errors = await transfer(ctx.state.program, id, actorOf(ctx));
    ctx.body = { ...(await presentPayout(db, await findPayout(db, ctx.state.program.id, id))), transferErrors: errors };
  });
  return router;
}
