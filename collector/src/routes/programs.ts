import Router from '@koa/router';
import { ProgramCreateSchema, ProgramUpdateSchema } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { requireAdmin, requireSecretKey, type AppState } from '../http/auth.ts';
import { invalidateKeyCaches } from '../http/keyCache.ts';
import { parse } from '../http/validate.ts';
import { createProgram, presentProgram, updateProgram } from '../domain/programs.ts';

/** Operator API: creating programs (ADMIN_TOKEN). */
export function operatorRoutes({ db, config }: Deps) {
  const router = new Router();
  router.post('/v1/programs', requireAdmin(config.adminToken), async (ctx) => {
    const input = parse(ProgramCreateSchema, ctx.request.body);
    const { program, keys } = await createProgram(db, input, { allowPrivate: config.webhookAllowPrivate });
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
    const program = await updateProgram(db, ctx.state.program, patch, { allowPrivate: config.webhookAllowPrivate });
    invalidateKeyCaches();
    ctx.body = { program: presentProgram(program) };
  });
  return router;
}
