/**
 * The OpenAPI 3.1 document, generated from the shared zod schemas (zod 4's JSON
 * Schema output), so it cannot drift from what the routes validate.
 */
import { z } from 'zod';
import * as schemas from '../../shared/schemas.ts';

type Auth = 'admin' | 'secret' | 'publishable' | 'portal' | 'none';
interface Operation {
  method: 'get' | 'post' | 'patch' | 'delete';
  path: string;
  summary: string;
  auth: Auth;
  body?: z.ZodType;
  status?: number;
  /** The query the route parses: each of its fields becomes a query parameter. */
  query?: z.ZodObject;
}

/** Every endpoint; routes added by later work are listed here too. */
export const OPERATIONS: Operation[] = [
  {
    method: 'get',
    path: '/',
    summary: 'Home page (HTML): links to the demo, the dashboard, this document and the health checks',
    auth: 'none',
  },
  { method: 'get', path: '/v1/health', summary: 'Liveness', auth: 'none' },
  { method: 'get', path: '/v1/ready', summary: 'Readiness (database reachable)', auth: 'none' },
  {
    method: 'post',
    path: '/v1/programs',
    summary: 'Create a program and its keys',
    auth: 'admin',
    body: schemas.ProgramCreateSchema,
    status: 201,
  },
  {
    method: 'post',
    path: '/v1/programs/{slug}/keys',
    summary: "A new key for the program with this slug (shown once): the operator's way back in when its secret key is lost",
    auth: 'admin',
    body: schemas.ApiKeyCreateSchema,
    status: 201,
  },
  { method: 'get', path: '/v1/program', summary: "The calling key's program", auth: 'secret' },
  {
    method: 'patch',
    path: '/v1/program',
    summary: 'Update name or settings (validated as a whole)',
    auth: 'secret',
    body: schemas.ProgramUpdateSchema,
  },
  {
    method: 'post',
    path: '/v1/participants',
    summary: 'Create or fetch a participant (idempotent on externalId)',
    auth: 'secret',
    body: schemas.ParticipantCreateSchema,
    status: 201,
  },
  { method: 'get', path: '/v1/participants/{externalId}', summary: 'A participant with stats and reward balances', auth: 'secret' },
  {
    method: 'get',
    path: '/v1/program/refused-origins',
    summary: "Origins whose clicks and events were refused (not in the program's origins), with counts: add them in PATCH /v1/program",
    auth: 'secret',
  },
  {
    method: 'post',
    path: '/v1/program/rules/preview',
    summary: 'What each rule (the saved ones, or those sent) pays for a sample signup and purchase',
    auth: 'secret',
    body: schemas.RulePreviewSchema,
  },
  {
    method: 'post',
    path: '/v1/participants/{externalId}/promo-codes',
    summary: "Map a provider's discount (id and/or the code typed at checkout) to this participant; Stripe can create it",
    auth: 'secret',
    body: schemas.PromoCodeCreateSchema,
    status: 201,
  },
  { method: 'get', path: '/v1/participants/{externalId}/promo-codes', summary: "The participant's promo codes", auth: 'secret' },
  { method: 'delete', path: '/v1/participants/{externalId}/promo-codes/{id}', summary: 'Remove a promo code', auth: 'secret', status: 204 },
  {
    method: 'patch',
    path: '/v1/participants/{externalId}',
    summary: 'Set payout details: { payout: { method, email?, stripeAccount? } }',
    auth: 'secret',
    body: schemas.ParticipantUpdateSchema,
  },
  {
    method: 'delete',
    path: '/v1/participants/{externalId}',
    summary: 'Erase a person (GDPR): email, name, hashed IPs and user agents removed, externalId replaced by a pseudonym; the ledger stays',
    auth: 'secret',
    status: 204,
  },
  {
    method: 'post',
    path: '/v1/participants/{externalId}/portal',
    summary:
      "A link to the referrer's own page: { url, token, expiresAt }; the token (1 h by default, ttlSeconds up to 7 days) also reads /v1/portal/me",
    auth: 'secret',
    body: schemas.PortalTokenCreateSchema,
    status: 201,
  },
  {
    method: 'get',
    path: '/v1/portal/me',
    summary:
      "The referrer's own data: link, QR code (SVG), share links, figures (totals and 30 days), rewards (cash and credit by status and currency, coupons), referrals (emails masked), payout details, email choices",
    auth: 'portal',
  },
  {
    method: 'patch',
    path: '/v1/portal/me',
    summary: "The referrer's payout details and email choices; answers as GET does",
    auth: 'portal',
    body: schemas.PortalUpdateSchema,
  },
  {
    method: 'get',
    path: '/portal/{token}',
    summary: "The referrer's page (HTML; framed only by the program's origins); 401 page for an expired or invalid token",
    auth: 'none',
  },
  { method: 'get', path: '/portal.js', summary: "The portal embed for host pages: referral('portal', { element, token })", auth: 'none' },
  {
    method: 'post',
    path: '/v1/clicks',
    summary: 'Report a click from the browser (JSON or text/plain body)',
    auth: 'publishable',
    body: schemas.ClickCreateSchema,
    status: 202,
  },
  {
    method: 'post',
    path: '/v1/events',
    summary: 'Report a signup or purchase from the browser (unverified)',
    auth: 'publishable',
    body: schemas.EventCreateSchema,
    status: 202,
  },
  {
    method: 'get',
    path: '/r/{code}',
    summary:
      "Redirect link: records the click, 302 to the program's landing URL with ?ref=CODE; a disabled code 302s there without ?ref; an unknown code is a 404 HTML page",
    auth: 'none',
    status: 302,
  },
  {
    method: 'post',
    path: '/v1/conversions',
    summary: 'Report a signup or purchase from your server (verified); attributes and rewards',
    auth: 'secret',
    body: schemas.ConversionCreateSchema,
  },
  {
    method: 'get',
    path: '/v1/referrals',
    summary: 'Referrals, newest first',
    auth: 'secret',
    query: schemas.ReferralQuerySchema,
  },
  {
    method: 'get',
    path: '/v1/decisions',
    summary: 'Why each click, attribution and reward was accepted, rejected or held',
    auth: 'secret',
    query: schemas.DecisionQuerySchema,
  },
  {
    method: 'post',
    path: '/v1/refunds',
    summary: 'Refund a purchase: revoke or claw back its rewards',
    auth: 'secret',
    body: schemas.RefundCreateSchema,
  },
  {
    method: 'get',
    path: '/v1/rewards',
    summary: 'The reward ledger',
    auth: 'secret',
    query: schemas.RewardQuerySchema,
  },
  {
    method: 'get',
    path: '/v1/rewards/totals',
    summary: 'Reward totals per participant (most rewards first) and overall, cash and credit per currency',
    auth: 'secret',
    query: schemas.RewardTotalsQuerySchema,
  },
  { method: 'post', path: '/v1/rewards/{id}/approve', summary: 'pending → approved', auth: 'secret', body: schemas.RewardTransitionSchema },
  { method: 'post', path: '/v1/rewards/{id}/revoke', summary: 'pending|approved → revoked', auth: 'secret' },
  { method: 'post', path: '/v1/rewards/{id}/pay', summary: 'approved → paid', auth: 'secret' },
  {
    method: 'post',
    path: '/v1/payouts',
    summary: 'A payout run: per referrer and currency, approved cash rewards less clawbacks, at or above the minimum (dryRun: preview)',
    auth: 'secret',
    body: schemas.PayoutCreateSchema,
    status: 201,
  },
  { method: 'get', path: '/v1/payouts', summary: 'Payout runs, newest first', auth: 'secret', query: schemas.PageQuerySchema },
  { method: 'get', path: '/v1/payouts/{id}', summary: 'A payout run with its items', auth: 'secret' },
  {
    method: 'get',
    path: '/v1/payouts/{id}/export.csv',
    summary: "The run as a provider's bulk file (PayPal Payouts, Wise batch, or generic CSV), amounts in major units",
    auth: 'secret',
    query: schemas.PayoutExportQuerySchema,
  },
  {
    method: 'post',
    path: '/v1/payouts/{id}/paid',
    summary: 'Items paid (all pending when none are named): their rewards become paid',
    auth: 'secret',
    body: schemas.PayoutItemsUpdateSchema,
  },
  {
    method: 'post',
    path: '/v1/payouts/{id}/failed',
    summary: 'Items failed: their rewards are free for the next run',
    auth: 'secret',
    body: schemas.PayoutItemsUpdateSchema,
  },
  {
    method: 'post',
    path: '/v1/payouts/{id}/transfer',
    summary: 'Send (or retry) the Stripe Connect transfers of pending items',
    auth: 'secret',
  },
  {
    method: 'get',
    path: '/v1/webhooks/deliveries',
    summary: 'Outgoing webhook deliveries',
    auth: 'secret',
    query: schemas.DeliveryQuerySchema,
  },
  {
    method: 'get',
    path: '/v1/emails',
    summary: 'Emails to referrers: whether the server can send (SMTP_URL), the sender, and which emails are on',
    auth: 'secret',
  },
  {
    method: 'get',
    path: '/v1/emails/preview/{template}',
    summary: 'One email (referral, rewardApproved, payoutPaid) with sample data and the program name: { subject, text, html }',
    auth: 'secret',
  },
  {
    method: 'get',
    path: '/v1/emails/unsubscribe',
    summary: 'The unsubscribe link in every email: an HTML page asking to confirm (nothing changes on GET); 400 page for a changed token',
    auth: 'none',
    query: schemas.EmailUnsubscribeQuerySchema,
  },
  {
    method: 'post',
    path: '/v1/emails/unsubscribe',
    summary: "Unsubscribes (the page's button, or a mail client's one-click POST, RFC 8058); 400 page for a changed token",
    auth: 'none',
    query: schemas.EmailUnsubscribeQuerySchema,
  },
  {
    method: 'post',
    path: '/v1/integrations/stripe/{programSlug}',
    summary: 'Stripe webhooks (Stripe-Signature verified): checkout.session.completed, invoice.paid, charge.refunded',
    auth: 'none',
  },
  {
    method: 'post',
    path: '/v1/integrations/paddle/{programSlug}',
    summary:
      'Paddle Billing webhooks (Paddle-Signature verified): transaction.completed, adjustment.created/updated (refunds), customData and discount_id',
    auth: 'none',
  },
  {
    method: 'post',
    path: '/v1/integrations/lemonsqueezy/{programSlug}',
    summary:
      'Lemon Squeezy webhooks (X-Signature verified): order_created, subscription_payment_success, order_refunded, meta.custom_data, discount codes',
    auth: 'none',
  },
  {
    method: 'get',
    path: '/v1/reports/summary',
    summary: 'Clicks, signups, purchases, revenue, conversion rate and rewards over a range',
    auth: 'secret',
    query: schemas.ReportRangeSchema,
  },
  {
    method: 'get',
    path: '/v1/reports/referrers',
    summary: 'Leaderboard of referrers (rankedAt: when its order came from the ranking kept ahead for large programs, else null)',
    auth: 'secret',
    query: schemas.ReportReferrersQuerySchema,
  },
  {
    method: 'get',
    path: '/v1/reports/timeseries',
    summary: 'Zero-filled series per day or week',
    auth: 'secret',
    query: schemas.ReportTimeseriesQuerySchema,
  },
  {
    method: 'get',
    path: '/v1/exports/referrals.csv',
    summary: 'Referrals as CSV (streamed)',
    auth: 'secret',
    query: schemas.ReportRangeSchema,
  },
  {
    method: 'get',
    path: '/v1/exports/rewards.csv',
    summary: 'Reward ledger as CSV (streamed)',
    auth: 'secret',
    query: schemas.ReportRangeSchema,
  },
  {
    method: 'get',
    path: '/v1/exports/clicks.csv',
    summary: 'Clicks as CSV (streamed)',
    auth: 'secret',
    query: schemas.ReportRangeSchema,
  },
  { method: 'get', path: '/v1/keys', summary: "The program's keys (prefixes only)", auth: 'secret' },
  {
    method: 'post',
    path: '/v1/keys',
    summary: 'Create a key (shown once): rotate without downtime. Body: { "kind": "secret" | "publishable" }',
    auth: 'secret',
    body: schemas.ApiKeyCreateSchema,
    status: 201,
  },
  { method: 'delete', path: '/v1/keys/{id}', summary: 'Revoke a key (not the last secret key)', auth: 'secret' },
  { method: 'get', path: '/v1/openapi.json', summary: 'This document', auth: 'none' },
];

const jsonSchema = (schema: z.ZodType) => z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' });

/** One OpenAPI query parameter per field of the query schema, described by its JSON Schema. */
function queryParameters(query: z.ZodObject) {
  const { properties = {}, required = [] } = jsonSchema(query);
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...schema } = property as { description?: string };
    return { name, in: 'query', required: required.includes(name), ...(description ? { description } : {}), schema };
  });
}

const SECURITY: Record<Auth, Array<Record<string, string[]>> | undefined> = {
  admin: [{ adminToken: [] }],
  secret: [{ secretKey: [] }],
  publishable: [],
  portal: [{ portalToken: [] }],
  none: [],
};

export function buildOpenApi(serverUrl: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) {
    const parameters = [
      ...[...op.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } })),
      ...(op.query ? queryParameters(op.query) : []),
    ];
    paths[op.path] ??= {};
    (paths[op.path] as Record<string, unknown>)[op.method] = {
      summary: op.summary,
      security: SECURITY[op.auth],
      ...(parameters.length ? { parameters } : {}),
      ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(op.body) } } } } : {}),
      responses: {
        [String(op.status ?? 200)]: { description: 'Success' },
        default: { description: 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Referral tracking collector', version: '1' },
    servers: [{ url: serverUrl }],
    paths,
    components: {
      securitySchemes: {
        adminToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN' },
        secretKey: { type: 'http', scheme: 'bearer', description: "A program's secret key (sk_…)" },
        portalToken: {
          type: 'apiKey',
          in: 'header',
          name: 'Authorization',
          description: '"Portal <token>", the token of POST /v1/participants/{externalId}/portal',
        },
      },
      schemas: {
        Error: jsonSchema(schemas.ErrorBodySchema),
        ProgramSettings: jsonSchema(schemas.ProgramSettingsSchema),
        RewardRule: jsonSchema(schemas.RewardRuleSchema),
      },
    },
  };
}
