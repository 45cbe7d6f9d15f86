/**
 * The ingest batchers: clicks and browser events are group-committed (see
 * storage/groupCommit.ts). Created once per app; the server drains them on shutdown
 * so every accepted request is written and answered before the database closes.
 */
import type { Knex } from 'knex';
import type { Logger } from './logger.ts';
import { recordClicks, type ClickInput, type ClickResult } from './domain/clicks.ts';
import { recordConversions, type BatchOutcome, type BatchedConversion, type ConversionResult } from './domain/conversions.ts';
import { GroupCommitter } from './storage/groupCommit.ts';

export interface Ingest {
  clicks: GroupCommitter<ClickInput, ClickResult>;
  events: GroupCommitter<BatchedConversion, BatchOutcome<ConversionResult>>;
  drain: () => Promise<void>;
}

export function createIngest(db: Knex, logger: Logger): Ingest {
  const onBatchError = (kind: string) => (error: unknown, size: number) => logger.error({ err: error, size }, `${kind} batch failed`);
  const clicks = new GroupCommitter<ClickInput, ClickResult>({
    commit: (items) => recordClicks(db, items),
    maxBatch: 500,
    maxDelayMs: 0,
    // One batch at a time: each batch dedupes against what the previous ones committed.
    concurrency: 1,
    onBatchError: onBatchError('click'),
  });
  // One events batch at a time: attribution inside a batch runs in order, and
  // batches never wait on each other's rows.
  const events = new GroupCommitter<BatchedConversion, BatchOutcome<ConversionResult>>({
    commit: (items) => recordConversions(db, items),
    maxBatch: 100,
    maxDelayMs: 2,
    concurrency: 1,
    onBatchError: onBatchError('event'),
  });
  return {
    clicks,
    events,
    drain: async () => {
      await Promise.all([clicks.drain(), events.drain()]);
    },
  };
}
