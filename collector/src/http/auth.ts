/**
 * Who is calling: the operator (ADMIN_TOKEN), a program's server (secret key in
 * the Authorization header) or a browser (publishable key in the body).
 */
import type { Context, Next } from 'koa';
import type { Knex } from 'knex';
import { forbidden, unauthorized } from '../errors.ts';
import { findKeyWithProgram, kindOfKey, revokedSecretKey, safeEqual } from '../domain/keys.ts';
import type { ProgramRow } from '../domain/programs.ts';
import { TtlCache } from './keyCache.ts';
import { consume, type RateLimits } from './rateLimit.ts';

export interface AppState {
  program: ProgramRow;
  apiKeyId: string;
}

function bearerToken(ctx: Context): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(ctx.get('authorization'));
  return match?.[1];
}

/** Operator endpoints: `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time. */
export function requireAdmin(adminToken: string | undefined) {
  return async function adminAuth(ctx: Context, next: Next) {
    if (!adminToken) throw forbidden('The operator API is disabled: set ADMIN_TOKEN to enable it');
    const token = bearerToken(ctx);
    if (!token || !safeEqual(token, adminToken)) throw unauthorized('A valid admin token is required');
    return next();
  };
}

type FoundKey = { keyId: string; program: ProgramRow };

/**
 * Server API: a live secret key; every read and write below is scoped to its program.
 * `checkedLater`: the lookup may come from a cache of a few seconds, because what the
 * route writes checks the key again in its own transaction and reads its program as it
 * is then (server conversions: domain/conversions.ts, one statement a batch instead of
 * one a request). Every other route looks the key up at each request.
 */
export function requireSecretKey(db: Knex, limits: RateLimits, { checkedLater = false } = {}) {
  const cache = checkedLater ? new TtlCache<FoundKey | null>() : undefined;
  // Not with an Idempotency-Key: its stored answer is replayed before anything is written.
  const lookup = (ctx: Context, token: string): Promise<FoundKey | null | undefined> =>
    cache && !ctx.get('idempotency-key')
      ? cache.get(token, async () => (await findKeyWithProgram<ProgramRow>(db, token, 'secret')) ?? null)
      : findKeyWithProgram<ProgramRow>(db, token, 'secret');
  return async function secretKeyAuth(ctx: Context, next: Next) {
    const token = bearerToken(ctx);
    if (!token) throw unauthorized('Send your secret key as "Authorization: Bearer sk_…"');
    if (kindOfKey(token) === 'publishable') throw unauthorized('A publishable key cannot be used here; use a secret key');
    const found = await lookup(ctx, token);
    if (!found) throw revokedSecretKey();
    await consume(limits.server, found.keyId);
    const state = ctx.state as AppState;
    state.program = found.program;
    state.apiKeyId = found.keyId;
    return next();
  };
}

/**
 * Browser endpoints: the publishable key travels in the body (sendBeacon cannot set
 * headers). Lookups are cached for a few seconds: these endpoints take the load, so a
 * cached program is answered at once, without a promise.
 */
export function publishableKeys(db: Knex) {
  const cache = new TtlCache<ProgramRow | null>();
  const live = (program: ProgramRow | null): ProgramRow => {
    if (!program) throw unauthorized('Unknown or revoked publishable key');
    return program;
  };
  return function programForPublishableKey(key: string): ProgramRow | Promise<ProgramRow> {
    const cached = cache.peek(key);
    if (cached !== undefined) return live(cached);
    return cache.get(key, async () => (await findKeyWithProgram<ProgramRow>(db, key, 'publishable'))?.program ?? null).then(live);
  };
}
