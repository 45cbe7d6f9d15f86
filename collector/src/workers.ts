/**
 * Background loops inside the server: releasing rewards whose hold is over,
 * delivering webhooks and emails, click partitions, reward rollups and the large
 * programs' leaderboard rankings. Each loop runs one pass at a time and stops cleanly.
 */
import type { Knex } from 'knex';
import type { Logger } from './logger.ts';
import { maintainClicks } from './storage/clickPartitions.ts';
import { releaseDueRewards } from './domain/rewards.ts';
import { compactRewardDaily } from './domain/rollups.ts';
import { refreshRankings } from './domain/reports.ts';
import { deliverDueWebhooks } from './domain/webhooks.ts';
import { createMailTransport, deliverDueEmails } from './domain/emailDelivery.ts';
import { createUnsubscribeTokens } from './domain/unsubscribeTokens.ts';

export const RELEASE_INTERVAL_MS = 60_000;
export const WEBHOOK_INTERVAL_MS = 1_000;
export const EMAIL_INTERVAL_MS = 5_000;
export const REWARD_ROLLUP_INTERVAL_MS = 60_000;
export const RANKING_INTERVAL_MS = 60_000;

function every(intervalMs: number, pass: () => Promise<unknown>, onError: (error: unknown) => void) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const tick = () => {
    running = pass()
      .then(() => undefined, onError)
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, intervalMs);
      });
  };
  timer = setTimeout(tick, intervalMs);
  timer.unref();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await running;
  };
}

export const CLICK_UPKEEP_INTERVAL_MS = 60 * 60_000;

export interface WorkerOptions {
  /** CLICK_RETENTION_DAYS: click partitions wholly older than this are dropped. */
  clickRetentionDays?: number | undefined;
  /** LEADERBOARD_RANKING_MIN_REFERRERS: programs this large get their standard leaderboards ranked ahead. */
  rankingMinReferrers: number;
  /** WEBHOOK_ALLOW_PRIVATE: deliver webhooks to this machine and private networks too. */
  webhookAllowPrivate: boolean;
  /** SMTP_URL: emails to referrers go out through it; without it, queued emails are skipped. */
  smtpUrl?: string | undefined;
  /** Base of the links in emails. */
  publicUrl: string;
}

export function startWorkers(db: Knex, logger: Logger, options: WorkerOptions) {
  const mailer = {
    transport: options.smtpUrl ? createMailTransport(options.smtpUrl) : null,
    publicUrl: options.publicUrl,
    tokens: createUnsubscribeTokens(db),
  };
  const stops = [
    every(
      CLICK_UPKEEP_INTERVAL_MS,
      async () => {
        const { made, dropped } = await maintainClicks(db, options.clickRetentionDays);
        if (made.length || dropped.length) logger.info({ made, dropped }, 'click partitions');
      },
      (error) => logger.warn({ err: error }, 'click partition upkeep failed'),
    ),
    every(
      RELEASE_INTERVAL_MS,
      async () => {
        const released = await releaseDueRewards(db);
        if (released) logger.info({ released }, 'rewards released');
      },
      (error) => logger.warn({ err: error }, 'reward release failed'),
    ),
    every(
      REWARD_ROLLUP_INTERVAL_MS,
      () => compactRewardDaily(db),
      (error) => logger.warn({ err: error }, 'reward rollup compaction failed'),
    ),
    every(
      RANKING_INTERVAL_MS,
      () => refreshRankings(db, options.rankingMinReferrers, new Date(), RANKING_INTERVAL_MS / 2),
      (error) => logger.warn({ err: error }, 'leaderboard ranking failed'),
    ),
    every(
      WEBHOOK_INTERVAL_MS,
      () => deliverDueWebhooks(db, { allowPrivate: options.webhookAllowPrivate }),
      (error) => logger.warn({ err: error }, 'webhook delivery failed'),
    ),
    every(
      EMAIL_INTERVAL_MS,
      () => deliverDueEmails(db, mailer),
      (error) => logger.warn({ err: error }, 'email delivery failed'),
    ),
  ];
  return { stop: async () => void (await Promise.all(stops.map((stop) => stop()))) };
}
