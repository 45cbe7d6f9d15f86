/**
 * The collector's few server-written pages for people (the home page, an invalid
 * referral link): fixed HTML, no script at all, one inline stylesheet allowed by
 * its hash. The CSP is stricter than the dashboard's: nothing may load but that
 * stylesheet and data: images, and nothing may frame the page.
 */
import { createHash } from 'node:crypto';
import type { Context } from 'koa';

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#fff}
main{max-width:40rem;margin:0 auto;padding:2rem 1.25rem 3rem}
h1{font-size:1.6rem;margin:0 0 .5rem}
h2{font-size:1.1rem;margin:1.75rem 0 .5rem}
ul{padding:0;list-style:none;margin:0}
li{padding:.6rem .75rem;border:1px solid #e3e3e8;border-radius:6px;margin:.5rem 0}
li a{font-weight:600}
code{font:.9em ui-monospace,monospace;background:#f4f4f6;padding:0 .2em;border-radius:3px}
.muted{color:#5f5f66}
a{color:#0b57d0}`;

/** What the page's CSP names: the sha256 of STYLE exactly as it appears in the page. */
const STYLE_SOURCE = `'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`;

export const PAGE_CSP = [
  "default-src 'none'",
  `style-src ${STYLE_SOURCE}`,
  "img-src 'self' data:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

export interface Page {
  title: string;
  /** Trusted markup: written in the source, never built from request input. */
  body: string;
}

/** Answers `page` as HTML with `status`, never cached, with the headers every such page carries. */
export function sendPage(ctx: Context, status: number, page: Page): void {
  ctx.status = status;
  ctx.set('Content-Security-Policy', PAGE_CSP);
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'text/html; charset=utf-8';
  ctx.body = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${page.title}</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<main>
${page.body}
</main>
</body>
</html>
`;
}
