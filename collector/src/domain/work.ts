/**
 * A unit of work: one transaction, and what its steps leave for its last statement.
 * Rollup rows are shared by every conversion of a day, so their increments are
 * collected and written together just before commit (their row locks are then held
 * as briefly as possible); the answers to store with each conversion go in that same
 * statement. A single conversion and a group-committed batch work alike: the caller
 * makes the Work, passes it down, and finishes it.
 */
import type { Knex } from 'knex';
import { prepared } from '../storage/db.ts';
import { ROLLUP_CTES, rollupParams, type StatsDelta } from './rollups.ts';

export class Work {
  /** Rollup increments, applied by `finishWork`. */
  readonly stats: StatsDelta[] = [];
  /** Answers to store, by conversion id (JSON); a later one for the same conversion wins. */
  private readonly answers = new Map<string, unknown>();
  /**
   * The place of the conversion being recorded in its batch. A transaction has one time
   * (`now()`), so a batch's conversions are stored at that time plus their place in
   * microseconds: what compares times (purchases since a referral, earlier purchases,
   * which of a referrer's referrals) then sees them in order, as one by one.
   */
  turn = 0;
  /**
   * Participants whose email or name a conversion of this work may have given: a row of
   * theirs read before (a referrer read with a conversion opened ahead of its turn) is
   * read again.
   */
  readonly touched = new Set<string>();

  constructor(readonly trx: Knex) {}

  count(...deltas: StatsDelta[]): void {
    this.stats.push(...deltas);
  }

  /** Keeps `response` as the conversion's stored answer (written by `finishWork`). */
  answer(conversionId: string, response: unknown): void {
    this.answers.set(conversionId, response);
  }

  /** The answer stored for a conversion, including one given earlier in this work. */
  async answerOf<T>(conversion: { id: string }): Promise<T> {
    if (this.answers.has(conversion.id)) return this.answers.get(conversion.id) as T;
    return (await storedAnswer(this.trx, conversion.id)) as T;
  }

  get answered(): Array<[string, unknown]> {
    return [...this.answers.entries()];
  }
}

/** The answer kept for a conversion (replayed when its event comes again), if any. */
export async function storedAnswer(trx: Knex, conversionId: string): Promise<unknown> {
  const row = (await trx('conversion_answers').where({ conversion_id: conversionId }).first('response')) as
    | { response: unknown }
    | undefined;
  return row?.response ?? null;
}

/**
 * Every rollup increment and every stored answer, in one statement whose text never
 * changes. A conversion's answer is written once, in conversion_answers (a retry of a
 * browser event the server confirms writes it again), not by updating its row.
 */
const FINISH_SQL = `with ${ROLLUP_CTES},
  answers as (
    insert into conversion_answers (conversion_id, response) select * from unnest(?::uuid[], ?::jsonb[])
    on conflict (conversion_id) do update set response = excluded.response
  ) select 1`;

/** Writes what the work collected; nothing when it collected nothing. */
export async function finishWork(work: Work): Promise<void> {
  const answered = work.answered;
  if (!work.stats.length && !answered.length) return;
  await prepared(work.trx, 'finish_work', FINISH_SQL, [
    ...rollupParams(work.stats),
    answered.map(([id]) => id),
    answered.map(([, response]) => JSON.stringify(response)),
  ]);
}

/** Runs `steps` in a transaction with a fresh Work, finished before commit. */
export async function inWork<T>(db: Knex, steps: (work: Work) => Promise<T>): Promise<T> {
  return db.transaction(async (trx) => {
    const work = new Work(trx);
    const result = await steps(work);
    await finishWork(work);
    return result;
  });
}
