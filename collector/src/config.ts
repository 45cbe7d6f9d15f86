/**
 * Configuration, read once from the environment into a typed object. Nothing else
 * reads `process.env`. Invalid values stop startup with the whole list of problems.
 */
import { z } from 'zod';

const flag = z
  .enum(['1', '0', 'true', 'false', 'yes', 'no', ''])
  .optional()
  .transform((value) => value === '1' || value === 'true' || value === 'yes');

const ConfigSchema = z
  .object({
    PORT: z.coerce.number().int().min(0).max(65535).default(8787),
    HOST: z.string().min(1).default('0.0.0.0'),
    DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// URL' }).optional(),
    DATA_DIR: z.string().min(1).default('./data'),
    /** Seconds to keep retrying a PostgreSQL server that does not answer at start (0: try once). */
    DATABASE_CONNECT_TIMEOUT_S: z.coerce.number().int().min(0).max(3600).default(30),
    ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
    REDIS_URL: z.url({ protocol: /^rediss?$/, error: 'must be a redis:// URL' }).optional(),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Trust X-Forwarded-For (only behind a proxy you run). */
    TRUST_PROXY: flag,
    /** Days raw clicks are kept (whole monthly partitions are dropped); unset keeps them. Rollups, referrals and reports stay. */
    CLICK_RETENTION_DAYS: z.coerce.number().int().min(1).max(36_500).optional(),
    /** Where the Stripe SDK sends API calls (default Stripe's own); for a proxy or a local stand-in. */
    STRIPE_API_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
    /** Where Lemon Squeezy API calls go (default https://api.lemonsqueezy.com); for a proxy or a local stand-in. */
    LEMONSQUEEZY_API_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).default('https://api.lemonsqueezy.com'),
    /** Secret for hashing IP addresses; one is generated and stored when unset. */
    IP_HASH_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
    /** Base URL used in referral links; defaults to http://localhost:PORT. */
    PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
    /** Requests per minute per client IP on the browser endpoints and redirects (0 = off). */
    RATE_LIMIT_PUBLIC_PER_MINUTE: z.coerce.number().int().min(0).default(600),
    /** Requests per minute per key on the server API (0 = off). */
    RATE_LIMIT_SERVER_PER_MINUTE: z.coerce.number().int().min(0).default(6000),
    /** Unknown-code lookups per minute per client IP, against code enumeration (0 = off). */
    RATE_LIMIT_UNKNOWN_CODES_PER_MINUTE: z.coerce.number().int().min(0).default(30),
    /** Programs with at least this many referrers active over 90 days get their leaderboard's order for the last 7, 30 and 90 days ranked ahead, every minute. */
    LEADERBOARD_RANKING_MIN_REFERRERS: z.coerce.number().int().min(1).default(2000),
    /** Collector processes sharing the port (PostgreSQL only; PGlite is one process). */
    WORKERS: z.coerce.number().int().min(1).max(64).default(1),
    /** Milliseconds a client has to send a request's headers (slow-header attacks). */
    HTTP_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
    /** Milliseconds a client has to send a whole request, headers and body (slow bodies). */
    HTTP_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
    /** Milliseconds an idle keep-alive connection stays open (above a load balancer's idle timeout behind one). */
    HTTP_KEEP_ALIVE_TIMEOUT_MS: z.coerce.number().int().min(0).max(600_000).default(5_000),
    /** Create a demo program on first start with an empty database: `auto` on the embedded one only, `on` on PostgreSQL too. */
    DEMO: z.enum(['auto', 'on', 'off']).default('auto'),
    /** Let outgoing webhooks reach this machine and private networks (local development only). */
    WEBHOOK_ALLOW_PRIVATE: flag,
    /** Where emails to referrers are sent through: smtp:// or smtps://, credentials in the URL. Unset: no emails. */
    SMTP_URL: z.url({ protocol: /^smtps?$/, error: 'must be an smtp:// or smtps:// URL' }).optional(),
  })
  .transform((env) => ({
    port: env.PORT,
    host: env.HOST,
    databaseUrl: env.DATABASE_URL,
    dataDir: env.DATA_DIR,
    databaseConnectTimeoutS: env.DATABASE_CONNECT_TIMEOUT_S,
    adminToken: env.ADMIN_TOKEN,
    redisUrl: env.REDIS_URL,
    logLevel: env.LOG_LEVEL,
    trustProxy: env.TRUST_PROXY,
    clickRetentionDays: env.CLICK_RETENTION_DAYS,
    rankingMinReferrers: env.LEADERBOARD_RANKING_MIN_REFERRERS,
    stripeApiUrl: env.STRIPE_API_URL,
    lemonSqueezyApiUrl: env.LEMONSQUEEZY_API_URL.replace(/\/+$/, ''),
    ipHashSecret: env.IP_HASH_SECRET,
    publicUrl: (env.PUBLIC_URL ?? `http://localhost:${env.PORT}`).replace(/\/+$/, ''),
    demo: env.DEMO,
    workers: env.WORKERS,
    http: {
      headersTimeoutMs: env.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: env.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: env.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    },
    webhookAllowPrivate: env.WEBHOOK_ALLOW_PRIVATE,
    smtpUrl: env.SMTP_URL,
    rateLimits: {
      publicPerMinute: env.RATE_LIMIT_PUBLIC_PER_MINUTE,
      serverPerMinute: env.RATE_LIMIT_SERVER_PER_MINUTE,
      unknownCodesPerMinute: env.RATE_LIMIT_UNKNOWN_CODES_PER_MINUTE,
    },
  }))
  .superRefine((config, ctx) => {
    if (config.workers > 1 && !config.databaseUrl) {
      ctx.addIssue({ code: 'custom', path: ['WORKERS'], message: 'more than one worker needs DATABASE_URL (PGlite serves one process)' });
    }
    if (config.http.headersTimeoutMs > config.http.requestTimeoutMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['HTTP_HEADERS_TIMEOUT_MS'],
        message: 'must not exceed HTTP_REQUEST_TIMEOUT_MS (the headers are part of the request)',
      });
    }
  });

export type Config = z.infer<typeof ConfigSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Parses the environment (empty strings count as unset). Throws ConfigError listing every problem. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const known = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const result = ConfigSchema.safeParse(known);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
  }
  return result.data;
}
