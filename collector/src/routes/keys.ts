import Router from '@koa/router';
import { z } from 'zod';
import { ApiKeyCreateSchema } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { requireSecretKey, type AppState } from '../http/auth.ts';
import { invalidateKeyCaches } from '../http/keyCache.ts';
import { parse } from '../http/validate.ts';
import { conflict, notFound } from '../errors.ts';
import { createApiKey, type ApiKeyRow } from '../domain/keys.ts';

const presentKey = (row: ApiKeyRow) => ({
  id: row.id,
  kind: row.kind,
  prefix: row.prefix,
  createdAt: row.created_at.toISOString(),
  revokedAt: row.revoked_at?.toISOString() ?? null,
});

/**
 * Key rotation without downtime: create a new key, move clients to it, revoke the
 * old one. The last live secret key cannot be revoked (the program would be locked out).
 */
export function keyRoutes({ db, limits }: Deps) {
  const router = new Router<AppState>();
  const auth = requireSecretKey(db, limits);

  router.get('/v1/keys', auth, async (ctx) => {
    const rows = (await db('api_keys').where({ program_id: ctx.state.program.id }).orderBy('created_at')) as ApiKeyRow[];
    ctx.body = { data: rows.map(presentKey) };
  });

  router.post('/v1/keys', auth, async (ctx) => {
    const { kind } = parse(ApiKeyCreateSchema, ctx.request.body);
    const { id, key } = await createApiKey(db, ctx.state.program.id, kind);
    const row = (await db('api_keys').where({ id }).first()) as ApiKeyRow;
    ctx.status = 201;
    ctx.body = { key: presentKey(row), secret: key };
  });

  router.delete('/v1/keys/:id', auth, async (ctx) => {
    if (!z.uuid().safeParse(ctx.params.id).success) throw notFound('Key');
    const programId = ctx.state.program.id;
    const revoked = await db.transaction(async (trx) => {
      const live = (await trx('api_keys').where({ program_id: programId }).whereNull('revoked_at').forUpdate()) as ApiKeyRow[];
      const target = live.find((row) => row.id === ctx.params.id);
      if (!target) {
        const any = await trx('api_keys').where({ program_id: programId, id: ctx.params.id }).first('id');
        if (any) throw conflict('key_revoked', 'This key is already revoked');
        throw notFound('Key');
      }
      if (target.kind === 'secret' && live.filter((row) => row.kind === 'secret').length === 1) {
        throw conflict('last_secret_key', 'Create another secret key before revoking the last one');
      }
      const [row] = await trx('api_keys').where({ id: target.id }).update({ revoked_at: trx.fn.now() }).returning('*');
      return row as ApiKeyRow;
    });
    invalidateKeyCaches();
    ctx.body = { key: presentKey(revoked) };
  });
  return router;
}
