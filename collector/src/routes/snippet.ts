/**
 * GET /r.js — the browser snippet — and GET /portal.js — the portal embed. Public
 * and cacheable by anyone (any site may embed them), revalidated with a strong
 * ETag; gzip when the client accepts it.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import type { Deps } from '../deps.ts';
import { limitByIp } from '../http/rateLimit.ts';
import { loadPortalEmbedBundle, loadSnippetBundle, type SnippetBundle } from '../snippet-bundle.ts';

/** An hour: a new release reaches browsers within that, and revalidation is a cheap 304. */
const CACHE_CONTROL = 'public, max-age=3600';

export function snippetRoutes({ limits }: Pick<Deps, 'limits'>) {
  const router = new Router();
  // Per IP like the other public endpoints (browsers mostly answer from cache anyway).
  router.get('/r.js', limitByIp(limits.public), (ctx) => serveScript(ctx, loadSnippetBundle));
  router.get('/portal.js', limitByIp(limits.public), (ctx) => serveScript(ctx, loadPortalEmbedBundle));
  return router;
}

async function serveScript(ctx: Context, load: () => Promise<SnippetBundle>) {
  const bundle = await load();
  const gzip = ctx.acceptsEncodings('gzip', 'identity') === 'gzip';
  ctx.vary('Accept-Encoding');
  ctx.set('Cache-Control', CACHE_CONTROL);
  ctx.set('Access-Control-Allow-Origin', '*');
  ctx.set('Content-Type', 'application/javascript; charset=utf-8');
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.etag = gzip ? bundle.gzipEtag : bundle.etag;
  ctx.status = 200; // ctx.fresh compares validators only for a 2xx answer
  if (ctx.fresh) {
    ctx.status = 304;
    return;
  }
  if (gzip) ctx.set('Content-Encoding', 'gzip');
  ctx.body = gzip ? bundle.gzip : bundle.code;
}
