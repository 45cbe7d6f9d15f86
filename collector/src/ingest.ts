/**
 * The ingest batchers: clicks, browser events and server conversions are group-committed (see
 * storage/groupCommit.ts). Created once per app; the server drains them on shutdown
 * so every accepted request is written and answered before the database closes.
 */
import type { Knex } from 'knex';
import type { Logger } from './logger.ts';
import { recordClicks, type ClickInput, type ClickResult } from './domain/clicks.ts';
import { recordConversionBatch, type BatchOutcome, type BatchedConversion, type ConversionResult } from './domain/conversions.ts';
import { openGenericPlanDb } from './storage/db.ts';
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
  // One batch at a time for browser events and server conversions alike: attribution
  // inside a batch runs in order, batches never wait on each other's rows, and what
  // arrives while one is written makes the next one larger. Side by side (four
  // batches, as before), a batch started for every few conversions that arrived, and
  // the batches fought over the same rows (the program's, the referrers' rollups):
  // server signups on PostgreSQL, alternated on the same hour, 2,693–3,178 µs of CPU
  // each (collector + PostgreSQL, ~8 a batch) against 1,339–1,677 (~20 a batch), and
  // more of them a second. Across processes the unique constraints still decide.
  const events = conversionBatches('event', 100, 1);
  const conversions = conversionBatches('conversion', 50, 1);
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
