/**
 * CORS for the browser endpoints only, and only for the program's own origins.
 * The program is known from the key in the body, so a preflight (no body) is
 * allowed for an origin that some program lists; the request itself is then
 * checked against its own program.
 */
import type { Context, Next } from 'koa';
import type { Knex } from 'knex';
import { AppError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { ProgramRow } from '../domain/programs.ts';
import { OriginRefusals } from '../domain/refusedOrigins.ts';
import { TtlCache } from './keyCache.ts';

const PREFLIGHT_MAX_AGE = '600';

function allow(ctx: Context, origin: string) {
  ctx.set('Access-Control-Allow-Origin', origin);
  ctx.vary('Origin');
}

const originCache = new TtlCache<boolean>();

/** True when some program lists this origin (cached for a few seconds). */
function knownOrigin(db: Knex, origin: string): Promise<boolean> {
  return originCache.get(origin, async () =>
    Boolean(
      await db('programs')
        .whereRaw(`settings->'origins' @> ?::jsonb`, [JSON.stringify([origin])])
        .first('id'),
    ),
  );
}

/** Answers a preflight; `allowed` names the methods and request headers of the endpoint (the browser endpoints' by default). */
export function preflight(db: Knex, allowed = { methods: 'POST, OPTIONS', headers: 'Content-Type' }) {
  return async function corsPreflight(ctx: Context) {
    const origin = ctx.get('origin');
    ctx.status = 204;
    ctx.vary('Origin');
    if (!origin) return;
    if (!(await knownOrigin(db, origin))) return;
    allow(ctx, origin);
    ctx.set('Access-Control-Allow-Methods', allowed.methods);
    ctx.set('Access-Control-Allow-Headers', allowed.headers);
    ctx.set('Access-Control-Max-Age', PREFLIGHT_MAX_AGE);
  };
}

/** A request from a page whose origin the program does not list; `corsOnErrors` records it. */
export class OriginNotAllowed extends AppError {
  constructor(
    readonly program: ProgramRow,
    readonly origin: string,
  ) {
    super(403, 'origin_not_allowed', `The origin ${origin} is not allowed for this program`);
  }
}

/** Requests without an Origin (servers, same-origin navigations) pass; a foreign origin is refused. */
export function checkOrigin(ctx: Context, program: ProgramRow) {
  const origin = ctx.get('origin');
  if (!origin) return;
  if (!program.settings.origins.includes(origin)) throw new OriginNotAllowed(program, origin);
  allow(ctx, origin);
}

/**
 * Error answers on the browser endpoints carry CORS headers for known origins too,
 * so the snippet can read a 4xx and drop the event instead of retrying it for days.
 * Given the logger, a refused foreign origin is logged and recorded for the dashboard
 * (at most once a minute per program and origin: domain/refusedOrigins.ts).
 */
export function corsOnErrors(db: Knex, logger?: Logger) {
  // Without a logger (routes that only pass the database), refusals are not recorded.
  const refusals = logger ? new OriginRefusals(db, logger) : undefined;
  // A catch on the promise rather than an async frame: the success path (every click) costs nothing here.
  return function browserErrors(ctx: Context, next: Next) {
    return next().catch(async (error: unknown) => {
      const origin = ctx.get('origin');
      if (error instanceof OriginNotAllowed) await refusals?.note(error.program, error.origin);
      const foreign = error instanceof AppError && error.code === 'origin_not_allowed';
      if (origin && !foreign && !ctx.response.get('Access-Control-Allow-Origin') && (await knownOrigin(db, origin).catch(() => false)))
        allow(ctx, origin);
      throw error;
    });
  };
}
