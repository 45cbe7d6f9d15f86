import Router from '@koa/router';
import type { ApiKeyCreateResponse, RefusedOriginListResponse, RulePreviewResponse } from '../../../shared/responses.ts';
import { ApiKeyCreateSchema, ProgramCreateSchema, ProgramUpdateSchema, RulePreviewSchema } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { requireAdmin, requireSecretKey, type AppState } from '../http/auth.ts';
import { invalidateKeyCaches } from '../http/keyCache.ts';
import { parse } from '../http/validate.ts';
import { createApiKeyForSlug, presentApiKey } from '../domain/keys.ts';
import { createProgram, presentProgram, updateProgram } from '../domain/programs.ts';
import { forgetAllowedOrigins, listRefusedOrigins } from '../domain/refusedOrigins.ts';
import { previewRules } from '../domain/rules.ts';

/** Operator API (ADMIN_TOKEN): creating programs, and a new key for a program whose secret key is lost. */
export function operatorRoutes({ db, config }: Deps) {
  const router = new Router();
  const admin = requireAdmin(config.adminToken);
  router.post('/v1/programs', admin, async (ctx) => {
    const input = parse(ProgramCreateSchema, ctx.request.body);
    const { program, keys } = await createProgram(db, input, {
      allowPrivate: config.webhookAllowPrivate,
      clickRetentionDays: config.clickRetentionDays,
    });
    ctx.status = 201;
    ctx.body = { program: presentProgram(program), keys };
  });
  router.post('/v1/programs/:slug/keys', admin, async (ctx) => {
    const { kind } = parse(ApiKeyCreateSchema, ctx.request.body ?? {});
    const { row, key } = await createApiKeyForSlug(db, ctx.params.slug as string, kind);
    ctx.status = 201;
    ctx.body = { key: presentApiKey(row), secret: key } satisfies ApiKeyCreateResponse;
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
    const program = await updateProgram(db, ctx.state.program, patch, {
      allowPrivate: config.webhookAllowPrivate,
      clickRetentionDays: config.clickRetentionDays,
    });
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
