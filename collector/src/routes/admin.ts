/**
 * The operator dashboard at /admin: one HTML page, its script and its stylesheet.
 * The script is bundled in memory by esbuild on the first request and kept, so
 * nothing needs building beforehand. Every answer carries a strict CSP: the page
 * runs only its own script, loads only its own stylesheet, and talks only to
 * this origin (the secret key never leaves it).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import Router from '@koa/router';
import type { Context, Next } from 'koa';
import { build } from 'esbuild';
import type { Deps } from '../deps.ts';
import { notFound } from '../errors.ts';
import { EMAIL_STYLE_SOURCES } from '../domain/emailTemplates.ts';
import { packagePath } from '../paths.ts';

const ADMIN_DIR = packagePath('admin/');
const UPLOT_CSS = createRequire(import.meta.url).resolve('uplot/dist/uPlot.min.css');

export const ADMIN_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  // The Emails panel previews each email in a sandboxed srcdoc iframe, which runs under
  // this policy: the emails' own style attributes are allowed by hash, and no others.
  `style-src 'self' 'unsafe-hashes' ${EMAIL_STYLE_SOURCES.join(' ')}`,
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

interface Asset {
  body: string;
  etag: string;
}

function asset(body: string): Asset {
  return { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

/** Builds a value once; a failed build is forgotten so the next request retries it. */
function once(load: () => Promise<Asset>): () => Promise<Asset> {
  let pending: Promise<Asset> | undefined;
  return () =>
    (pending ??= load().catch((error: unknown) => {
      pending = undefined;
      throw error;
    }));
}

async function bundleScript(): Promise<Asset> {
  const result = await build({
    absWorkingDir: ADMIN_DIR,
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
  if (!output) throw new Error('esbuild produced no output for the dashboard');
  return asset(output.text);
}

async function joinStylesheets(): Promise<Asset> {
  const [own, uplot] = await Promise.all([readFile(`${ADMIN_DIR}app.css`, 'utf8'), readFile(UPLOT_CSS, 'utf8')]);
  return asset(`${uplot}\n${own}`);
}

const loadPage = once(async () => asset(await readFile(`${ADMIN_DIR}index.html`, 'utf8')));
const loadScript = once(bundleScript);
const loadStyles = once(joinStylesheets);

/** Security headers on every /admin answer, errors included. */
async function secureHeaders(ctx: Context, next: Next) {
  ctx.set('Content-Security-Policy', ADMIN_CSP);
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
  await next();
}

/** Serves an asset with an ETag; the script and styles revalidate, the page is never stored. */
function serve(type: string, load: () => Promise<Asset>, cacheControl: string) {
  return async (ctx: Context) => {
    const { body, etag } = await load();
    ctx.set('Cache-Control', cacheControl);
    ctx.type = type;
    ctx.response.etag = etag;
    ctx.status = 200; // freshness is only judged for a 2xx answer
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    ctx.body = body;
  };
}

export function adminRoutes(_deps: Deps) {
  const router = new Router();
  router.get(['/admin', '/admin/'], secureHeaders, serve('text/html; charset=utf-8', loadPage, 'no-store'));
  router.get('/admin/app.js', secureHeaders, serve('text/javascript; charset=utf-8', loadScript, 'no-cache'));
  router.get('/admin/app.css', secureHeaders, serve('text/css; charset=utf-8', loadStyles, 'no-cache'));
  // Anything else under /admin is a 404 that still carries the headers above.
  router.all(['/admin', '/admin/{*rest}'], secureHeaders, () => {
    throw notFound('Page');
  });
  return router;
}
