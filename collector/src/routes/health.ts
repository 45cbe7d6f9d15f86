import Router from '@koa/router';
import type { Deps } from '../deps.ts';
import { unavailable } from '../errors.ts';
import { isReachable } from '../storage/db.ts';

export function healthRoutes({ db }: Deps) {
  const router = new Router();
  /** Alive: the process answers. */
  router.get('/v1/health', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  /** Ready: the database answers too. */
  router.get('/v1/ready', async (ctx) => {
    if (!(await isReachable(db))) throw unavailable('The database is unreachable');
    ctx.body = { status: 'ready' };
  });
  return router;
}
