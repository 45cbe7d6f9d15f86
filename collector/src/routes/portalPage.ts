/**
 * The referrer's page at /portal/<token>: one HTML page, its script (bundled in
 * memory by esbuild on first use, like /admin) and its stylesheet. The page runs
 * only its own script and talks only to this origin; it may be framed by the
 * program's own origins and nowhere else (`frame-ancestors`), so a host can show it
 * in an iframe. The token is in the path: the page never sends a Referer, and the
 * request log never writes the token (http/middleware.ts).
 */
import { readFile } from 'node:fs/promises';
import Router from '@koa/router';
import type { Context, Next } from 'koa';
import { build } from 'esbuild';
import type { Deps } from '../deps.ts';
import { notFound } from '../errors.ts';
import { asset, once, sendAsset } from '../http/assets.ts';
import { limitByIp } from '../http/rateLimit.ts';
import { packagePath } from '../paths.ts';
import { sessionFor } from '../domain/portal.ts';
import type { PortalTokens } from '../domain/portalTokens.ts';

const PORTAL_DIR = packagePath('portal/');

/** A CSP source expression for an origin, or nothing if it is not a plain http(s) origin. */
const SOURCE = /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$|^https?:\/\/\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

/** The page's CSP: framed only by `origins` (none: by nobody). */
export function portalCsp(origins: string[]): string {
  const ancestors = origins.filter((origin) => SOURCE.test(origin));
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    `frame-ancestors ${ancestors.length ? ancestors.join(' ') : "'none'"}`,
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
}

async function bundleScript() {
  const result = await build({
    absWorkingDir: PORTAL_DIR,
    entryPoints: ['src/main.ts'],
    bundle: true,
    minify: true,
    format: 'iife',
    target: 'es2020',
    platform: 'browser',
    legalComments: 'none',
    write: false,
    logLevel: 'silent',
  });
  const output = result.outputFiles[0];
  if (!output) throw new Error('esbuild produced no output for the portal');
  return asset(output.text);
}

const loadPage = once(async () => asset(await readFile(`${PORTAL_DIR}index.html`, 'utf8')));
const loadScript = once(bundleScript);
const loadStyles = once(async () => asset(await readFile(`${PORTAL_DIR}app.css`, 'utf8')));

/** What a link that no longer works shows: no script, the portal's stylesheet. */
function refusalPage(expired: boolean): string {
  const [title, text] = expired
    ? ['This link has expired', 'Links to this page work for a limited time. Ask for a new one where you found this link.']
    : ['This link is not valid', 'It may be incomplete, or it no longer works. Ask for a new one where you found this link.'];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>${title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/portal/app.css">
</head>
<body>
<main class="page"><section class="card refusal" data-testid="portal-refused"><h1>${title}</h1><p class="muted">${text}</p></section></main>
</body>
</html>
`;
}

/** Headers of every portal answer; `origins` may frame it. */
function secure(ctx: Context, origins: string[]) {
  ctx.set('Content-Security-Policy', portalCsp(origins));
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('X-Robots-Tag', 'noindex, nofollow');
}

const assetHeaders = async (ctx: Context, next: Next) => {
  secure(ctx, []);
  await next();
};

export function portalPageRoutes({ db, limits }: Deps, tokens: PortalTokens) {
  const router = new Router();
  const perIp = limitByIp(limits.public);

  router.get('/portal/app.js', assetHeaders, (ctx) => sendAsset(ctx, 'text/javascript; charset=utf-8', loadScript, 'no-cache'));
  router.get('/portal/app.css', assetHeaders, (ctx) => sendAsset(ctx, 'text/css; charset=utf-8', loadStyles, 'no-cache'));

  router.get('/portal/:token', perIp, async (ctx) => {
    const read = await tokens.read(ctx.params.token ?? '');
    const found = read ? await sessionFor(db, read.claims.participantId, read.claims.programId) : null;
    // A genuine token (even expired) names its program: its origins may frame the answer,
    // so an embedded expired link says so inside the host's page.
    secure(ctx, found?.program.settings.origins ?? []);
    ctx.set('Cache-Control', 'no-store');
    if (!read || !found || read.expired) {
      ctx.status = 401;
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = refusalPage(Boolean(read?.expired && found));
      return;
    }
    const page = await loadPage();
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = page.body;
  });

  router.all(['/portal', '/portal/{*rest}'], assetHeaders, () => {
    throw notFound('Page');
  });
  return router;
}
