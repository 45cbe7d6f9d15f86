/**
 * Builds the Koa app from its dependencies. It does not listen: `server.ts` does,
 * and tests drive `app.callback()` directly.
 */
import Koa from 'koa';
import type { AppInput, Deps } from './deps.ts';
import { parseBody } from './http/body.ts';
import { handleErrors, logRequests, refuseWhileDraining } from './http/middleware.ts';
import { healthRoutes } from './routes/health.ts';
import { openApiRoutes } from './routes/openapi.ts';
import { conversionRoutes } from './routes/conversions.ts';
import { participantRoutes } from './routes/participants.ts';
import { referralRoutes } from './routes/referrals.ts';
import { keyRoutes } from './routes/keys.ts';
import { snippetRoutes } from './routes/snippet.ts';
import { demoRoutes } from './demo.ts';
import { reportRoutes } from './routes/reports.ts';
import { rewardRoutes } from './routes/rewards.ts';
import { payoutRoutes } from './routes/payouts.ts';
import { integrationRoutes } from './routes/integrations.ts';
import { promoCodeRoutes } from './routes/promoCodes.ts';
import { trackingRoutes } from './routes/tracking.ts';
import { createIpHasher } from './domain/privacy.ts';
import { createIngest } from './ingest.ts';
import { createRateLimits } from './http/rateLimit.ts';
import { operatorRoutes, programRoutes } from './routes/programs.ts';
import { adminRoutes } from './routes/admin.ts';
import { emailRoutes } from './routes/emails.ts';
import { portalRoutes } from './routes/portal.ts';
import { portalPageRoutes } from './routes/portalPage.ts';
import { createPortalTokens } from './domain/portalTokens.ts';
import { homeRoutes } from './routes/home.ts';

export function buildApp(input: AppInput): Koa {
  const deps: Deps = {
    ...input,
    ingest: input.ingest ?? createIngest(input.db, input.logger),
    limits: input.limits ?? createRateLimits(input.config, input.logger),
  };
  // Behind a proxy, trust only the address it appended (the last one), never what the client wrote.
  const app = new Koa({ proxy: deps.config.trustProxy, maxIpsCount: 1 });
  app.silent = true; // errors are logged by handleErrors, once
  app.use(logRequests(deps.logger));
  app.use(handleErrors(deps.logger));
  app.use(refuseWhileDraining(deps.lifecycle));
  // Unsubscribe links take form posts (RFC 8058 one-click), not JSON: ahead of the body parser.
  const emails = emailRoutes(deps);
  app.use(emails.routes());
  app.use(emails.allowedMethods({ throw: false }));
  app.use(parseBody);
  const ipHash = createIpHasher(deps.db, deps.config.ipHashSecret);
  const portalTokens = createPortalTokens(deps.db);
  const tracking = trackingRoutes(deps, ipHash);
  app.use(tracking.clicks);
  // Matched in turn: the hottest routes first (every visitor's clicks and events, then
  // every customer's conversions).
  const routers = [
    tracking.router,
    conversionRoutes(deps),
    healthRoutes(deps),
    snippetRoutes(deps),
    demoRoutes(deps),
    openApiRoutes(deps),
    operatorRoutes(deps),
    programRoutes(deps),
    promoCodeRoutes(deps),
    participantRoutes(deps),
    portalRoutes(deps, portalTokens),
    referralRoutes(deps),
    rewardRoutes(deps),
    payoutRoutes(deps),
    reportRoutes(deps),
    keyRoutes(deps),
    integrationRoutes(deps),
    adminRoutes(deps),
    portalPageRoutes(deps, portalTokens),
    homeRoutes(deps),
  ];
  for (const router of routers) {
    app.use(router.routes());
    app.use(router.allowedMethods({ throw: false }));
  }
  return app;
}
