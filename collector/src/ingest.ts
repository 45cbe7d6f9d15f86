/**
 * The ingest batchers: clicks, browser events and server conversions are group-committed (see
 * storage/groupCommit.ts). Created once per app; the server drains them on shutdown
 * so every accepted request is written and answered before the database closes.
 */
import type { Knex } from 'knex';
import type { Logger } from './logger.ts';
import { recordClicks, type ClickInput, type ClickResult } from './domain/clicks.ts';
import { recordConversionBatch, type BatchOutcome, type BatchedConversion, type ConversionResult } from './domain/conversions.ts';
import { isEmbedded, openGenericPlanDb } from './storage/db.ts';
import { GroupCommitter } from './storage/groupCommit.ts';

export interface Ingest {
  clicks: GroupCommitter<ClickInput, ClickResult>;
  events: GroupCommitter<BatchedConversion, BatchOutcome<ConversionResult>>;
  conversions: GroupCommitter<BatchedConversion, BatchOutcome<ConversionResult>>;
  drain: () => Promise<void>;
  /** Drains, then closes the click batches' own connection (when it has one). */
  close: () => Promise<void>;
}

/**
 * `clickConnection`: click batches run on a PostgreSQL connection of their own whose
 * session uses generic plans (storage/db.ts openGenericPlanDb; the server's choice).
 */
export function createIngest(db: Knex, logger: Logger, { clickConnection = false }: { clickConnection?: boolean } = {}): Ingest {
  const clickDb = (clickConnection && openGenericPlanDb(db)) || db;
  const onBatchError = (kind: string) => (error: unknown, size: number) => logger.error({ err: error, size }, `${kind} batch failed`);
  const clicks = new GroupCommitter<ClickInput, ClickResult>({
    commit: (items) => recordClicks(clickDb, items),
    maxBatch: 500,
    // One batch at a time: each batch dedupes against what the previous ones committed.
    concurrency: 1,
    onBatchError: onBatchError('click'),
  });
  const conversionBatches = (kind: string, maxBatch: number, concurrency: number) =>
    new GroupCommitter<BatchedConversion, BatchOutcome<ConversionResult>>({
      // A failed batch is recorded again one by one (only the bad conversion fails): say so once.
      commit: (items) =>
        recordConversionBatch(db, items, (error, size) =>
          logger.warn({ err: error, size }, `${kind} batch failed; recording its conversions one by one`),
        ),
      maxBatch,
      concurrency,
      onBatchError: onBatchError(kind),
    });
  // One events batch at a time: attribution inside a batch runs in order, and
  // batches never wait on each other's rows.
  const events = conversionBatches('event', 100, 1);
  // Server conversions: a few batches side by side on PostgreSQL (PGlite has one
  // connection). A customer's conversions in two batches at once wait on each other
  // through the unique constraints, which still decide.
  const conversions = conversionBatches('conversion', 50, isEmbedded(db) ? 1 : 4);
  const drain = async () => {
    await Promise.all([clicks.drain(), events.drain(), conversions.drain()]);
  };
  return {
    clicks,
    events,
    conversions,
    drain,
    close: async () => {
      await drain();
      if (clickDb !== db) await clickDb.destroy();
    },
  };
}
