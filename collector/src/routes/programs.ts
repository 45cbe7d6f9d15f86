import Router from '@koa/router';
import type { RefusedOriginListResponse, RulePreviewResponse } from '../../../shared/responses.ts';
import { ProgramCreateSchema, ProgramUpdateSchema, RulePreviewSchema } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { requireAdmin, requireSecretKey, type AppState } from '../http/auth.ts';
import { invalidateKeyCaches } from '../http/keyCache.ts';
import { parse } from '../http/validate.ts';
import { createProgram, presentProgram, updateProgram } from '../domain/programs.ts';
import { forgetAllowedOrigins, listRefusedOrigins } from '../domain/refusedOrigins.ts';
import { previewRules } from '../domain/rules.ts';

/** Operator API: creating programs (ADMIN_TOKEN). */
export function operatorRoutes({ db, config }: Deps) {
  const router = new Router();
  router.post('/v1/programs', requireAdmin(config.adminToken), async (ctx) => {
    const input = parse(ProgramCreateSchema, ctx.request.body);
    const { program, keys } = await createProgram(db, input, { allowPrivate: config.webhookAllowPrivate, clickRetentionDays: config.clickRetentionDays });
    ctx.status = 201;
    ctx.body = { program: presentProgram(program), keys };
  });
  return router;
}

/** The calling key's own program. */
export function programRoutes({ db, config, limits }: Deps) {
  const router = new Router<AppState>();
  router.use(requireSecretKey(db, limits));
  router.get('/v1/program', (ctx) => {
    ctx.body = { program: presentProgram(ctx.state.program) };
  });
  router.patch('/v1/program', async (ctx) => {
    const patch = parse(ProgramUpdateSchema, ctx.request.body);
    const program = await updateProgram(db, ctx.state.program, patch, { allowPrivate: config.webhookAllowPrivate, clickRetentionDays: config.clickRetentionDays });
    invalidateKeyCaches();
    // An origin added to the settings is no longer refused: its warning goes.
    await forgetAllowedOrigins(db, program);
    ctx.body = { program: presentProgram(program) };
  });
  router.get('/v1/program/refused-origins', async (ctx) => {
    ctx.body = { data: await listRefusedOrigins(db, ctx.state.program) } satisfies RefusedOriginListResponse;
  });
  /** What each rule (the saved ones, or those sent) pays for a sample signup and purchase: grantRewards' own logic. */
  router.post('/v1/program/rules/preview', (ctx) => {
    const { rules, sample } = parse(RulePreviewSchema, ctx.request.body);
    ctx.body = previewRules(rules ?? ctx.state.program.settings.rewardRules, sample) satisfies RulePreviewResponse;
  });
  return router;
}
