/**
 * Emails: what the dashboard shows of them (secret key), and the unsubscribe link
 * every email carries. `GET` on the link only shows a page with a button (mail
 * scanners follow links; they must not unsubscribe anyone); `POST` unsubscribes,
 * from that button or from a mail client's one-click button (RFC 8058, the body
 * `List-Unsubscribe=One-Click`, never read: the token says it all).
 *
 * Mounted before the JSON body parser (app.ts): those POSTs are form-encoded. Not
 * rate-limited per IP: a token cannot be guessed (HMAC), and mail providers send the
 * one-click POSTs of many people from few addresses.
 */
import { createHash } from 'node:crypto';
import Router from '@koa/router';
import type { Context } from 'koa';
import type { EmailPreviewResponse } from '../../../shared/responses.ts';
import { EmailKindSchema, EmailUnsubscribeQuerySchema, type EmailKind } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { notFound } from '../errors.ts';
import { requireSecretKey, type AppState } from '../http/auth.ts';
import { emailsOverview, previewEmail, programNameOf, unsubscribe } from '../domain/emails.ts';
import { escapeHtml } from '../domain/emailTemplates.ts';
import { createUnsubscribeTokens, type UnsubscribeScope } from '../domain/unsubscribeTokens.ts';

const UNSUBSCRIBE_PATH = '/v1/emails/unsubscribe';

/** What each email is called on the unsubscribe page. */
const KIND_LABELS: Record<EmailKind, string> = {
  referral: 'when someone signs up through your link',
  rewardApproved: 'when a reward of yours is approved',
  payoutPaid: 'when you are paid',
};

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#fff}
main{max-width:32rem;margin:0 auto;padding:2.5rem 1.25rem}
h1{font-size:1.5rem;margin:0 0 .75rem}
form{margin:1rem 0}
button{font:inherit;padding:.55rem 1rem;border-radius:6px;border:1px solid #0b57d0;background:#0b57d0;color:#fff;cursor:pointer}
button.quiet{background:#fff;color:#0b57d0}
.muted{color:#5f5f66}`;

/** Only the page's own stylesheet; forms post back to this origin; nothing frames it. */
const PAGE_CSP = [
  "default-src 'none'",
  `style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`,
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

/** Answers a small HTML page; `body` is markup whose every value was escaped by the caller. */
function sendPage(ctx: Context, status: number, title: string, body: string): void {
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
<meta name="robots" content="noindex">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

const invalidLink = (ctx: Context) =>
  sendPage(
    ctx,
    400,
    'Invalid unsubscribe link',
    '<h1>This unsubscribe link is not valid</h1>\n<p class="muted">It may have been cut or changed. Use the link in the email itself.</p>',
  );

const unsubscribeForm = (token: string, label: string, quiet = false) =>
  `<form method="post" action="${UNSUBSCRIBE_PATH}?token=${encodeURIComponent(token)}"><button type="submit"${quiet ? ' class="quiet"' : ''}>${escapeHtml(label)}</button></form>`;

/** "emails from Acme when someone signs up through your link", or "all emails from Acme". */
const describe = (scope: UnsubscribeScope, program: string) =>
  scope === 'all' ? `all emails from ${program}` : `emails from ${program} ${KIND_LABELS[scope]}`;

export function emailRoutes({ db, config, limits }: Deps) {
  const router = new Router<AppState>();
  const auth = requireSecretKey(db, limits);
  const tokens = createUnsubscribeTokens(db);

  router.get('/v1/emails', auth, (ctx) => {
    ctx.body = emailsOverview(ctx.state.program, Boolean(config.smtpUrl));
  });

  router.get('/v1/emails/preview/:template', auth, (ctx) => {
    const template = EmailKindSchema.safeParse(ctx.params.template);
    if (!template.success) throw notFound('Email template');
    ctx.body = previewEmail(ctx.state.program, template.data, config.publicUrl) satisfies EmailPreviewResponse;
  });

  /** The query's token, verified (null claims answer the 400 page). */
  const claimsOf = async (ctx: Context) => {
    const query = EmailUnsubscribeQuerySchema.safeParse(ctx.query);
    const token = query.success ? query.data.token : '';
    return { token, claims: token ? await tokens.verify(token) : null };
  };

  router.get(UNSUBSCRIBE_PATH, async (ctx) => {
    const { token, claims } = await claimsOf(ctx);
    if (!claims) return invalidLink(ctx);
    const program = (await programNameOf(db, claims.participantId)) ?? 'this program';
    const all = claims.scope === 'all' ? null : await tokens.sign({ participantId: claims.participantId, scope: 'all' });
    sendPage(
      ctx,
      200,
      'Unsubscribe',
      [
        `<h1>Unsubscribe from ${escapeHtml(program)}</h1>`,
        `<p>Stop ${escapeHtml(describe(claims.scope, program))}?</p>`,
        unsubscribeForm(token, 'Unsubscribe'),
        all ? unsubscribeForm(all, `Unsubscribe from ${describe('all', program)}`, true) : '',
      ].join('\n'),
    );
  });

  router.post(UNSUBSCRIBE_PATH, async (ctx) => {
    const { claims } = await claimsOf(ctx);
    if (!claims) return invalidLink(ctx);
    await unsubscribe(db, claims);
    const program = (await programNameOf(db, claims.participantId)) ?? 'this program';
    sendPage(
      ctx,
      200,
      'Unsubscribed',
      `<h1>You are unsubscribed</h1>\n<p>You will no longer get ${escapeHtml(describe(claims.scope, program))}.</p>`,
    );
  });

  return router;
}
