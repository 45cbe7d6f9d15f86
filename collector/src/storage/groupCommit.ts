/**
 * Group commit: requests queue their rows; a batch (up to `maxBatch` rows, or
 * whatever arrived within `maxDelayMs`) is written in one transaction, and each
 * request is answered only after its batch commits. If a batch fails, every request
 * in it fails with `NotWritten` (the HTTP layer answers 503 with Retry-After):
 * nothing acknowledged is ever lost. Past `maxQueue` waiting rows, new rows are
 * refused at once instead of letting memory grow.
 */

/** A row that was not written, and why; the caller may retry it shortly. */
export class NotWritten extends Error {
  constructor(
    readonly reason: 'closed' | 'overloaded' | 'failed',
    /** What failed, for `failed`. */
    cause?: unknown,
  ) {
    super(`not written: ${reason}`, { cause });
    this.name = 'NotWritten';
  }
}

export interface GroupCommitOptions<T, R> {
  /** Writes one batch; returns one result per item, in order. */
  commit: (items: T[]) => Promise<R[]>;
  maxBatch?: number;
  /**
   * How long the first row waits for company. 0 (the default): only for what arrives in the same
   * turn of the event loop; under load, rows gather while the previous batch is
   * being written anyway (natural batching), and a lone row is not delayed.
   */
  maxDelayMs?: number;
  maxQueue?: number;
  /** Batches written at the same time (PGlite has one connection: 1). */
  concurrency?: number;
  onBatchError?: (error: unknown, size: number) => void;
}

interface Pending<T, R> {
  item: T;
  resolve: (result: R) => void;
  reject: (error: unknown) => void;
}

export class GroupCommitter<T, R> {
  private queue: Pending<T, R>[] = [];
  /** Cancels the pending flush, if one is scheduled. */
  private cancelFlush: (() => void) | undefined;
  private inFlight = 0;
  private readonly idle = new Set<() => void>();
  private closed = false;
  private readonly maxBatch: number;
  private readonly maxDelayMs: number;
  private readonly maxQueue: number;
  private readonly concurrency: number;

  constructor(private readonly options: GroupCommitOptions<T, R>) {
    this.maxBatch = options.maxBatch ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 0;
    this.maxQueue = options.maxQueue ?? 20_000;
    this.concurrency = options.concurrency ?? 2;
  }

  /** Rows waiting or being written. */
  get depth(): number {
    return this.queue.length;
  }

  /** Resolves once the item's batch has committed. */
  add(item: T): Promise<R> {
    if (this.closed) return Promise.reject(new NotWritten('closed'));
    if (this.queue.length >= this.maxQueue) return Promise.reject(new NotWritten('overloaded'));
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.flush();
      else this.cancelFlush ??= this.scheduleFlush();
    });
  }

  private scheduleFlush(): () => void {
    if (this.maxDelayMs > 0) {
      const timer = setTimeout(() => this.flush(), this.maxDelayMs);
      return () => clearTimeout(timer);
    }
    const immediate = setImmediate(() => this.flush());
    return () => clearImmediate(immediate);
  }

  private flush(): void {
    this.cancelFlush?.();
    this.cancelFlush = undefined;
    while (this.queue.length && this.inFlight < this.concurrency) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.inFlight++;
      void this.write(batch);
    }
  }

  private async write(batch: Pending<T, R>[]): Promise<void> {
    try {
      const results = await this.options.commit(batch.map((entry) => entry.item));
      for (const [index, entry] of batch.entries()) entry.resolve(results[index] as R);
    } catch (error) {
      this.options.onBatchError?.(error, batch.length);
      const answer = new NotWritten('failed', error);
      for (const entry of batch) entry.reject(answer);
    } finally {
      this.inFlight--;
      if (this.queue.length) this.flush();
      else if (this.inFlight === 0) for (const done of this.idle) done();
    }
  }

  /** Stops taking rows and waits until everything queued has been written. */
  async drain(): Promise<void> {
    this.closed = true;
    this.flush();
    if (this.queue.length === 0 && this.inFlight === 0) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        if (this.queue.length === 0 && this.inFlight === 0) {
          this.idle.delete(done);
          resolve();
        }
      };
      this.idle.add(done);
    });
  }
}
