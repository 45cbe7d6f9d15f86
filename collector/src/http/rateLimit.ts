/**
 * Rate limits (rate-limiter-flexible): per IP on the public endpoints, per key on the
 * server API, and a tight per-IP budget for unknown codes against enumeration. Only
 * unknown (or disabled, or taken) codes spend that budget and are refused past it:
 * live links keep working for an address where someone probed (a shared NAT), so
 * past the budget an address can still tell live codes from unknown ones at the
 * public rate. In memory by default; shared through Redis when REDIS_URL is set (an
 * in-memory limiter stands in while Redis is unreachable).
 */
import type { Context, Next } from 'koa';
import { createRequire } from 'node:module';
import type { Redis as RedisClient } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { tooManyRequests, type AppError } from '../errors.ts';

export interface RateLimits {
  /** Browser endpoints and redirects, per client IP. */
  public: RateLimiterAbstract | undefined;
  /** Server API, per key. */
  server: RateLimiterAbstract | undefined;
  /** Lookups of codes that do not exist, per client IP. */
  unknownCode: RateLimiterAbstract | undefined;
  close: () => Promise<void>;
}

export function createRateLimits(config: Config, logger: Logger): RateLimits {
  const redis = config.redisUrl ? createRedisClient(config.redisUrl, logger) : undefined;
  const make = (keyPrefix: string, points: number, duration: number): RateLimiterAbstract | undefined => {
    if (points <= 0) return undefined;
    const memory = new RateLimiterMemory({ keyPrefix, points, duration });
    if (!redis) return memory;
    return new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `referral:rl:${keyPrefix}`,
      points,
      duration,
      insuranceLimiter: memory,
      rejectIfRedisNotReady: true,
    });
  };
  return {
    public: make('public', config.rateLimits.publicPerMinute, 60),
    server: make('server', config.rateLimits.serverPerMinute, 60),
    unknownCode: make('unknown', config.rateLimits.unknownCodesPerMinute, 60),
    close: async () => {
      if (redis) await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/**
 * The Redis client for shared limits. It retries for ever in the background; while
 * Redis is unreachable each limiter's in-memory insurance stands in. That is said
 * once when Redis goes down and once when it is back (each change of state), not at
 * every failed retry.
 */
export function createRedisClient(url: string, logger: Logger): RedisClient {
  // ioredis is loaded only when Redis is configured (about 10 MB of memory otherwise unused).
  const { Redis } = createRequire(import.meta.url)('ioredis') as typeof import('ioredis');
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2000, lazyConnect: false });
  const where = redisAddress(url);
  let down = false;
  // A listener is needed anyway: an 'error' without one would crash the collector.
  redis.on('error', (error: NodeJS.ErrnoException) => {
    if (down) return;
    down = true;
    logger.warn(
      { redis: where, reason: error.code ?? error.message },
      'redis unreachable; rate limits fall back to memory (per process) until it is back',
    );
  });
  redis.on('ready', () => {
    if (!down) return;
    down = false;
    logger.info({ redis: where }, 'redis reachable again; rate limits are shared again');
  });
  return redis;
}

/** host:port of a redis:// URL, without its password. */
function redisAddress(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || '6379'}`;
}

function retryAfter(error: unknown): never {
  if (error instanceof RateLimiterRes) throw tooManyRequests(error.msBeforeNext / 1000);
  throw error;
}

/** Spends one point for `key`, or answers 429 with Retry-After. */
export async function consume(limiter: RateLimiterAbstract | undefined, key: string): Promise<void> {
  if (!limiter) return;
  await limiter.consume(key).catch(retryAfter);
}

/** Middleware: one point per request, keyed by client IP (nothing to do when limits are off). */
export function limitByIp(limiter: RateLimiterAbstract | undefined) {
  if (!limiter) return (_ctx: Context, next: Next) => next();
  return function rateLimitByIp(ctx: Context, next: Next) {
    return limiter.consume(ctx.ip).then(() => next(), retryAfter);
  };
}

/** The 429 (with Retry-After) to answer when this IP has used up its unknown-code budget; else undefined. */
export async function unknownCodeRefusal(limiter: RateLimiterAbstract | undefined, ip: string): Promise<AppError | undefined> {
  if (!limiter) return undefined;
  const state = await limiter.get(ip);
  return state && state.remainingPoints <= 0 && state.consumedPoints > 0 ? tooManyRequests(state.msBeforeNext / 1000) : undefined;
}

/** Refuses at once when this IP has used up its unknown-code budget. */
export async function checkUnknownCodeBudget(limiter: RateLimiterAbstract | undefined, ip: string): Promise<void> {
  const refusal = await unknownCodeRefusal(limiter, ip);
  if (refusal) throw refusal;
}

/** Records one unknown-code lookup for this IP (never fails the request itself). */
export async function spendUnknownCode(limiter: RateLimiterAbstract | undefined, ip: string): Promise<void> {
  if (!limiter) return;
  await limiter.consume(ip).catch(() => undefined);
}
