import Router from '@koa/router';
import type { Deps } from '../deps.ts';
import { buildOpenApi } from '../openapi.ts';

export function openApiRoutes({ config }: Deps) {
  const router = new Router();
  let document: ReturnType<typeof buildOpenApi> | undefined;
  router.get('/v1/openapi.json', (ctx) => {
    document ??= buildOpenApi(config.publicUrl);
    ctx.body = document;
  });
  return router;
}
