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
  // ioredis is loaded only when Redis is configured (about 10 MB of memory otherwise unused).
  const Redis = config.redisUrl ? (createRequire(import.meta.url)('ioredis') as typeof import('ioredis')).Redis : undefined;
  const redis: RedisClient | undefined =
    Redis && config.redisUrl
      ? new Redis(config.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2000, lazyConnect: false })
      : undefined;
  // A Redis outage must never crash the collector: the insurance limiter takes over.
  redis?.on('error', (error) => logger.warn({ err: error }, 'redis unavailable; rate limits fall back to memory'));
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

function retryAfter(error: unknown): never {
  if (error instanceof RateLimiterRes) throw tooManyRequests(error.msBeforeNext / 1000);
  throw error;
}

/** Spends one point for `key`, or answers 429 with Retry-After. */
export async function consume(limiter: RateLimiterAbstract | undefined, key: string): Promise<void> {
  if (!limiter) return;
  await limiter.consume(key).catch(retryAfter);
}

/** Middleware: one point per request, keyed by client IP. */
export function limitByIp(limiter: RateLimiterAbstract | undefined) {
  return async function rateLimitByIp(ctx: Context, next: Next) {
    await consume(limiter, ctx.ip);
    return next();
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
