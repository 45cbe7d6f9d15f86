/**
 * CORS for the browser endpoints only, and only for the program's own origins.
 * The program is known from the key in the body, so a preflight (no body) is
 * allowed for an origin that some program lists; the request itself is then
 * checked against its own program.
 */
import type { Context } from 'koa';
import type { Knex } from 'knex';
import { AppError } from '../errors.ts';
import type { ProgramRow } from '../domain/programs.ts';

const PREFLIGHT_MAX_AGE = '600';

function allow(ctx: Context, origin: string) {
  ctx.set('Access-Control-Allow-Origin', origin);
  ctx.vary('Origin');
}

export function preflight(db: Knex) {
  return async function corsPreflight(ctx: Context) {
    const origin = ctx.get('origin');
    ctx.status = 204;
    ctx.vary('Origin');
    if (!origin) return;
    const known = await db('programs').whereRaw(`settings->'origins' @> ?::jsonb`, [JSON.stringify([origin])]).first('id');
    if (!known) return;
    allow(ctx, origin);
    ctx.set('Access-Control-Allow-Methods', 'POST, OPTIONS');
    ctx.set('Access-Control-Allow-Headers', 'Content-Type');
    ctx.set('Access-Control-Max-Age', PREFLIGHT_MAX_AGE);
  };
}

/** Requests without an Origin (servers, same-origin navigations) pass; a foreign origin is refused. */
export function checkOrigin(ctx: Context, program: ProgramRow) {
  const origin = ctx.get('origin');
  if (!origin) return;
  if (!program.settings.origins.includes(origin)) {
    throw new AppError(403, 'origin_not_allowed', `The origin ${origin} is not allowed for this program`);
  }
  allow(ctx, origin);
}
