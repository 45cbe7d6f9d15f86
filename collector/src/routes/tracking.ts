/**
 * Browser endpoints (publishable key in the body) and redirect links.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import { ClickCreateSchema, CodeLookupSchema, EventCreateSchema } from '../../../shared/schemas.ts';
import type { Deps } from '../deps.ts';
import { consume, limitByIp, spendUnknownCode, unknownCodeRefusal } from '../http/rateLimit.ts';
import { publishableKeys } from '../http/auth.ts';
import { checkOrigin, corsOnErrors, preflight } from '../http/cors.ts';
import { parse } from '../http/validate.ts';
import { sendPage, type Page } from '../http/page.ts';
import { exactRoute } from '../http/middleware.ts';
import { isUsableCode, resolveLink } from '../domain/links.ts';
import type { IpHasher } from '../domain/privacy.ts';

/** The answer to a link whose code does not exist (the code itself is not echoed). */
const INVALID_LINK_PAGE: Page = {
  title: 'This referral link is not valid',
  body: `<h1>This referral link is not valid</h1>
<p>The code in this link does not exist: it may have been mistyped or cut short.</p>
<p class="muted">Check the link you were given, or ask the person who shared it for a new one.</p>`,
};

/** A click's answer, `{ valid }`, written once rather than serialised per click. */
const JSON_TYPE = 'application/json; charset=utf-8';
const VALID_CLICK = JSON.stringify({ valid: true });
const INVALID_CLICK = JSON.stringify({ valid: false });

export function trackingRoutes({ db, ingest, limits, logger }: Deps, ipHash: IpHasher) {
  const router = new Router();
  const programForPublishableKey = publishableKeys(db);
  const perIp = limitByIp(limits.public);
  const cors = corsOnErrors(db, logger);
  const visitor = async (ctx: Context) => ({ ipHash: await ipHash(ctx.ip), userAgent: ctx.get('user-agent') || undefined });

  // Preflights spend the same per-IP budget as the requests they announce.
  router.options('/v1/clicks', cors, perIp, preflight(db));
  router.options('/v1/events', cors, perIp, preflight(db));

  // The hottest endpoint: a cached key and address need no promise of their own (each
  // `await` of an async helper costs a microtask and garbage), only the batch is awaited.
  const recordClick = async (ctx: Context) => {
    const input = parse(ClickCreateSchema, ctx.request.body);
    const found = programForPublishableKey(input.key);
    const program = found instanceof Promise ? await found : found;
    checkOrigin(ctx, program);
    // Past its unknown-code budget an IP (maybe a shared NAT) may still click live
    // codes; an unknown one is refused before it is recorded.
    const refusal = limits.unknownCode && (await unknownCodeRefusal(limits.unknownCode, ctx.ip));
    if (refusal && !(await isUsableCode(db, program.id, input.code))) throw refusal;
    const hashed = ipHash(ctx.ip);
    const result = await ingest.clicks.add({
      programId: program.id,
      code: input.code,
      vid: input.vid,
      url: input.url,
      referrer: input.referrer,
      ipHash: typeof hashed === 'string' ? hashed : await hashed,
      userAgent: ctx.get('user-agent') || undefined,
    });
    if (!result.valid) await spendUnknownCode(limits.unknownCode, ctx.ip);
    ctx.status = 202;
    ctx.set('Content-Type', JSON_TYPE);
    ctx.body = result.valid ? VALID_CLICK : INVALID_CLICK;
  };
  router.post('/v1/clicks', cors, perIp, recordClick);

  router.post('/v1/events', cors, perIp, async (ctx) => {
    const input = parse(EventCreateSchema, ctx.request.body);
    const program = await programForPublishableKey(input.key);
    checkOrigin(ctx, program);
    const outcome = await ingest.events.add({
      program,
      input: {
        type: input.type,
        // A purchase is known by its order id, so the browser and the server report the same event.
        eventId: input.order && input.type === 'purchase' ? input.order.id : input.eventId,
        externalId: input.user.id,
        email: input.user.email,
        code: input.code,
        vid: input.vid,
        amount: input.order?.amount,
        currency: input.order?.currency,
        verified: false,
        source: 'browser',
        ...(await visitor(ctx)),
      },
    });
    if ('error' in outcome) throw outcome.error;
    ctx.status = 202;
    ctx.body = { accepted: true };
  });

  /**
   * Redirect links: record the click, then 302 to the program's own landing URL, never
   * elsewhere. People follow these links, so a bad one answers a page, not JSON.
   */
  router.get('/r/:code', perIp, async (ctx) => {
    const parsed = CodeLookupSchema.safeParse(ctx.params.code);
    const link = parsed.success ? await resolveLink(db, parsed.data) : ({ refusal: 'unknown_code' } as const);
    ctx.set('Cache-Control', 'no-store');
    // Only unknown and disabled codes spend the budget (429 past it), as clicks on them
    // do: live links keep working for that IP.
    if (link.refusal) await consume(limits.unknownCode, ctx.ip);
    if (link.refusal === 'unknown_code') {
      sendPage(ctx, 404, INVALID_LINK_PAGE);
      return;
    }
    ctx.set('Referrer-Policy', 'no-referrer-when-downgrade');
    ctx.status = 302;
    if (link.refusal === 'code_disabled') {
      // The visitor still reaches the site, without a referral (resolveLink recorded the rejected click).
      ctx.redirect(link.landingUrl);
      return;
    }
    await ingest.clicks.add({
      programId: link.programId,
      code: link.code,
      ...(await visitor(ctx)),
      referrer: ctx.get('referer') || undefined,
    });
    ctx.redirect(link.destination);
  });
  // Clicks are also answered ahead of every router (see exactRoute), by the same middleware.
  return { router, clicks: exactRoute('POST', '/v1/clicks', [cors, perIp, recordClick]) };
}
