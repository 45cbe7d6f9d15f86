/**
 * The referrer portal's API: links issued with the secret key, and the referrer's
 * own data read and changed with the link's token (`Authorization: Portal <token>`).
 * Hosts may call `/v1/portal/me` from their own pages: CORS answers the program's
 * origins (and the collector's own, where the portal page runs).
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import { ExternalIdSchema, PortalTokenCreateSchema, PortalUpdateSchema } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { requireSecretKey, type AppState } from '../http/auth.ts';
import { checkOrigin, corsOnErrors, preflight } from '../http/cors.ts';
import { limitByIp } from '../http/rateLimit.ts';
import { parse } from '../http/validate.ts';
import { issuePortalLink, openPortal, portalView, updatePortal, type PortalSession } from '../domain/portal.ts';
import { invalidPortalToken, type PortalTokens } from '../domain/portalTokens.ts';

/** The token of `Authorization: Portal <token>`; a 401 without one. */
function portalToken(ctx: Context): string {
  const match = /^Portal\s+(\S+)\s*$/i.exec(ctx.get('authorization'));
  if (!match?.[1]) throw invalidPortalToken();
  return match[1];
}

export function portalRoutes({ db, config, limits }: Deps, tokens: PortalTokens) {
  const router = new Router<AppState>();
  const perIp = limitByIp(limits.public);
  const cors = corsOnErrors(db);

  /** Opens the token's session; a cross-origin caller must be one of the program's origins. */
  async function session(ctx: Context): Promise<PortalSession> {
    const opened = await openPortal(db, tokens, portalToken(ctx));
    const origin = ctx.get('origin');
    // The portal page itself calls from the collector's origin (browsers send Origin on a PATCH).
    const own = [`${ctx.protocol}://${ctx.host}`, new URL(config.publicUrl).origin];
    if (origin && !own.includes(origin)) checkOrigin(ctx, opened.program);
    // Personal data: never stored by a cache on the way.
    ctx.set('Cache-Control', 'no-store');
    return opened;
  }

  router.post('/v1/participants/:externalId/portal', requireSecretKey(db, limits), async (ctx) => {
    const externalId = parse(ExternalIdSchema, ctx.params.externalId, 'externalId');
    const input = parse(PortalTokenCreateSchema, ctx.request.body);
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 201;
    ctx.body = await issuePortalLink(db, tokens, ctx.state.program, externalId, input, config.publicUrl);
  });

  router.options('/v1/portal/me', cors, perIp, preflight(db, { methods: 'GET, PATCH, OPTIONS', headers: 'Authorization, Content-Type' }));

  router.get('/v1/portal/me', cors, perIp, async (ctx) => {
    ctx.body = await portalView(db, await session(ctx), config.publicUrl);
  });

  router.patch('/v1/portal/me', cors, perIp, async (ctx) => {
    const opened = await session(ctx);
    const input = parse(PortalUpdateSchema, ctx.request.body);
    ctx.body = await updatePortal(db, opened, input, config.publicUrl);
  });
  return router;
}
