import Router from '@koa/router';
import { z } from 'zod';
import type { ApiKeyCreateResponse, ApiKeyListResponse, ApiKeyRevokeResponse } from '../../../shared/responses.ts';
import { ApiKeyCreateSchema } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { requireSecretKey, type AppState } from '../http/auth.ts';
import { invalidateKeyCaches } from '../http/keyCache.ts';
import { parse } from '../http/validate.ts';
import { notFound } from '../errors.ts';
import { createApiKey, listApiKeys, presentApiKey, revokeApiKey } from '../domain/keys.ts';

/**
 * Key rotation without downtime: create a new key, move clients to it, revoke the
 * old one (domain/keys.ts keeps the last live secret key from being revoked).
 */
export function keyRoutes({ db, limits }: Deps) {
  const router = new Router<AppState>();
  const auth = requireSecretKey(db, limits);

  router.get('/v1/keys', auth, async (ctx) => {
    const rows = await listApiKeys(db, ctx.state.program.id);
    ctx.body = { data: rows.map(presentApiKey) } satisfies ApiKeyListResponse;
  });

  router.post('/v1/keys', auth, async (ctx) => {
    // No body at all reads as {}: the answer then names the missing field, `kind`.
    const { kind } = parse(ApiKeyCreateSchema, ctx.request.body ?? {});
    const { row, key } = await createApiKey(db, ctx.state.program.id, kind);
    ctx.status = 201;
    ctx.body = { key: presentApiKey(row), secret: key } satisfies ApiKeyCreateResponse;
  });

  router.delete('/v1/keys/:id', auth, async (ctx) => {
    if (!z.uuid().safeParse(ctx.params.id).success) throw notFound('Key');
    const revoked = await revokeApiKey(db, ctx.state.program.id, ctx.params.id as string);
    // This process forgets the revoked key at once; other processes within KEY_CACHE_TTL_MS.
    invalidateKeyCaches();
    ctx.body = { key: presentApiKey(revoked) } satisfies ApiKeyRevokeResponse;
  });
  return router;
}
