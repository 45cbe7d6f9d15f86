/**
 * `Idempotency-Key` on server POSTs: the same key and body within 24 h replays the
 * stored answer; the same key with another body is a 409. Runs after the secret-key
 * middleware, so keys are scoped to the program.
 */
import { createHash } from 'node:crypto';
import type { Context, Next } from 'koa';
import type { Knex } from 'knex';
import { badRequest, conflict } from '../errors.ts';
import type { AppState } from './auth.ts';

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

export function idempotency(db: Knex) {
  return async function idempotencyKey(ctx: Context, next: Next) {
    const key = ctx.get('idempotency-key');
    if (!key || ctx.method !== 'POST') return next();
    if (key.length > 255) throw badRequest('invalid_idempotency_key', 'Idempotency-Key must be at most 255 characters');
    const programId = (ctx.state as AppState).program.id;
    const requestHash = createHash('sha256')
      // The raw bytes: what "the same body" means, and no deep re-serialisation of hostile input.
      .update(`${ctx.method} ${ctx.path}\n${ctx.request.rawBody ?? ''}`)
      .digest('hex');
    const where = { program_id: programId, key };
    await db('idempotency_keys')
      .where(where)
      .where('created_at', '<', new Date(Date.now() - IDEMPOTENCY_TTL_MS))
      .del();
    const claimed = await db.raw(
      `insert into idempotency_keys (program_id, key, method, path, request_hash) values (?, ?, ?, ?, ?)
       on conflict do nothing returning key`,
      [programId, key, ctx.method, ctx.path, requestHash],
    );
    if (!claimed.rows.length) {
      const row = (await db('idempotency_keys').where(where).first()) as { request_hash: string; status: number | null; response: unknown };
      if (row.request_hash !== requestHash) {
        throw conflict('idempotency_key_reused', 'This Idempotency-Key was already used with a different request');
      }
      if (row.status === null) throw conflict('idempotency_in_progress', 'A request with this Idempotency-Key is still in progress');
      ctx.status = row.status;
      ctx.body = row.response;
      ctx.set('Idempotent-Replayed', 'true');
      return;
    }
    try {
      await next();
    } catch (error) {
      await db('idempotency_keys').where(where).del();
      throw error;
    }
    if (ctx.status >= 500) {
      await db('idempotency_keys').where(where).del();
    } else {
      await db('idempotency_keys')
        .where(where)
        .update({ status: ctx.status, response: JSON.stringify(ctx.body ?? null) });
    }
  };
}
