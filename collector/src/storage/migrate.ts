/**
 * Migrations are listed in code rather than read from a folder, so they run the
 * same under tsx, vitest and any bundle.
 */
import type { Knex } from 'knex';
import * as init from './migrations/20261126000000_init.ts';
import * as tracking from './migrations/20261126000100_tracking.ts';
import * as rewards from './migrations/20261126000200_rewards.ts';
import * as stripe from './migrations/20261126000300_stripe.ts';
import * as rollups from './migrations/20261126000400_rollups.ts';
import * as rollupsCoarse from './migrations/20261126000500_rollups_coarse.ts';
import * as eventLookup from './migrations/20261126000600_event_lookup.ts';
import * as trust from './migrations/20261204000000_trust.ts';
import * as erasure from './migrations/20261204000100_erasure.ts';
import * as portal from './migrations/20261204000400_portal.ts';
import * as emails from './migrations/20261204000500_emails.ts';
import * as clickedSignups from './migrations/20261204000300_clicked_signups.ts';
import * as refusedOrigins from './migrations/20261204000310_refused_origins.ts';
import * as payouts from './migrations/20261204000600_payouts.ts';
import * as providers from './migrations/20261204000700_providers.ts';
import * as clickPartitions from './migrations/20261204000800_click_partitions.ts';
import * as compactClicks from './migrations/20261205000000_compact_clicks.ts';
import * as clicksByCode from './migrations/20261205000100_clicks_by_code.ts';
import * as visitorHashIndex from './migrations/20261206000000_visitor_hash_index.ts';
import * as sparseRollupIndexes from './migrations/20261206000100_sparse_rollup_indexes.ts';
import * as reportRollups from './migrations/20261207000000_report_rollups.ts';
import * as leaderboardRankings from './migrations/20261207000100_leaderboard_rankings.ts';
import * as timeOrderedIds from './migrations/20261208000000_time_ordered_ids.ts';
import * as refundsByPurchase from './migrations/20261208000100_refunds_by_purchase.ts';
import * as conversionAnswers from './migrations/20261209000000_conversion_answers.ts';

type Migration = { up: (knex: Knex) => Promise<void>; down: (knex: Knex) => Promise<void> };

const MIGRATIONS: Record<string, Migration> = {
  '20261126000000_init': init,
  '20261126000100_tracking': tracking,
  '20261126000200_rewards': rewards,
  '20261126000300_stripe': stripe,
  '20261126000400_rollups': rollups,
  '20261126000500_rollups_coarse': rollupsCoarse,
  '20261126000600_event_lookup': eventLookup,
  '20261204000000_trust': trust,
  '20261204000100_erasure': erasure,
  '20261204000400_portal': portal,
  '20261204000500_emails': emails,
  '20261204000300_clicked_signups': clickedSignups,
  '20261204000310_refused_origins': refusedOrigins,
  '20261204000600_payouts': payouts,
  '20261204000700_providers': providers,
  '20261204000800_click_partitions': clickPartitions,
  '20261205000000_compact_clicks': compactClicks,
  '20261205000100_clicks_by_code': clicksByCode,
  '20261206000000_visitor_hash_index': visitorHashIndex,
  '20261206000100_sparse_rollup_indexes': sparseRollupIndexes,
  '20261207000000_report_rollups': reportRollups,
  '20261207000100_leaderboard_rankings': leaderboardRankings,
  '20261208000000_time_ordered_ids': timeOrderedIds,
  '20261208000100_refunds_by_purchase': refundsByPurchase,
  '20261209000000_conversion_answers': conversionAnswers,
};

const source: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(MIGRATIONS).sort(),
  getMigrationName: (name) => name,
  getMigration: async (name) => MIGRATIONS[name] as Migration,
};

/** Brings the schema up to date; returns the names of the migrations it ran. */
export async function migrateLatest(db: Knex): Promise<string[]> {
  const [, ran] = (await db.migrate.latest({ migrationSource: source })) as [number, string[]];
  return ran;
}

/** Undoes the last batch (for operators and the down-migration test). */
export async function migrateRollback(db: Knex, all = false): Promise<string[]> {
  const [, ran] = (await db.migrate.rollback({ migrationSource: source }, all)) as [number, string[]];
  return ran;
}

/** Undoes the last migration alone (for operators and the migration tests). */
export async function migrateDown(db: Knex): Promise<string[]> {
  const [, ran] = (await db.migrate.down({ migrationSource: source })) as [number, string[]];
  return ran;
}
