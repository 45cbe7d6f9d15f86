import { describe, expect, it } from 'vitest';
import { GroupCommitter, NotWritten } from '../../collector/src/storage/groupCommit.ts';

const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

describe('GroupCommitter', () => {
  it('writes what arrives together as one batch and answers each item with its own result', async () => {
    const batches: number[][] = [];
    const committer = new GroupCommitter<number, string>({
      commit: async (items) => {
        batches.push(items);
        return items.map((item) => `ok ${item}`);
      },
      maxDelayMs: 5,
    });
    const answers = await Promise.all([1, 2, 3].map((n) => committer.add(n)));
    expect(answers).toEqual(['ok 1', 'ok 2', 'ok 3']);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('with maxDelayMs 0, batches what arrives in one turn, and what arrives while a batch is written', async () => {
    const batches: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const committer = new GroupCommitter<number, number>({
      commit: async (items) => {
        batches.push(items);
        if (batches.length === 1) await gate;
        return items;
      },
      maxDelayMs: 0,
      concurrency: 1,
    });
    const first = [1, 2].map((n) => committer.add(n));
    await tick(); // a lone turn is not held back by a timer
    expect(batches).toEqual([[1, 2]]);
    const second = [3, 4, 5].map((n) => committer.add(n));
    await tick();
    expect(batches).toHaveLength(1); // gathering behind the batch in flight
    release();
    expect(await Promise.all([...first, ...second])).toEqual([1, 2, 3, 4, 5]);
    expect(batches).toEqual([
      [1, 2],
      [3, 4, 5],
    ]);
  });

  it('flushes at maxBatch without waiting for the timer', async () => {
    const batches: number[][] = [];
    const committer = new GroupCommitter<number, number>({
      commit: async (items) => {
        batches.push(items);
        return items;
      },
      maxBatch: 2,
      maxDelayMs: 10_000,
      concurrency: 1,
    });
    await Promise.all([1, 2, 3, 4].map((n) => committer.add(n)).slice(0, 2));
    expect(batches[0]).toEqual([1, 2]);
  });

  it('answers only after the commit resolves', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const committer = new GroupCommitter<number, number>({
      commit: async (items) => {
        await gate;
        return items;
      },
      maxDelayMs: 1,
    });
    let answered = false;
    const pending = committer.add(1).then(() => (answered = true));
    await tick(20);
    expect(answered).toBe(false);
    release();
    await pending;
    expect(answered).toBe(true);
  });

  // The HTTP answer to NotWritten (503 with Retry-After) is checked through the app in reliability.test.ts.
  it('fails every item of a failed batch as not written (with the cause), and keeps serving later batches', async () => {
    let fail = true;
    const errors: unknown[] = [];
    const committer = new GroupCommitter<number, number>({
      commit: async (items) => {
        if (fail) throw new Error('connection terminated');
        return items;
      },
      onBatchError: (error) => errors.push(error),
      maxDelayMs: 1,
    });
    const results = await Promise.allSettled([1, 2].map((n) => committer.add(n)));
    for (const result of results) {
      expect(result.status).toBe('rejected');
      const error = (result as PromiseRejectedResult).reason as NotWritten;
      expect(error).toBeInstanceOf(NotWritten);
      expect(error.reason).toBe('failed');
      expect((error.cause as Error).message).toBe('connection terminated');
    }
    expect(errors).toHaveLength(1);
    fail = false;
    await expect(committer.add(3)).resolves.toBe(3);
  });

  it('refuses new items past maxQueue (overloaded) instead of growing', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const committer = new GroupCommitter<number, number>({
      commit: async (items) => {
        await gate;
        return items;
      },
      maxBatch: 1,
      maxQueue: 2,
      concurrency: 1,
      maxDelayMs: 1,
    });
    const first = committer.add(1); // in flight
    await tick(5);
    const queued = [committer.add(2), committer.add(3)];
    await expect(committer.add(4)).rejects.toMatchObject({ name: 'NotWritten', reason: 'overloaded' });
    release();
    await expect(Promise.all([first, ...queued])).resolves.toEqual([1, 2, 3]);
  });

  it('drain writes everything queued, then refuses new items', async () => {
    const written: number[] = [];
    const committer = new GroupCommitter<number, number>({
      commit: async (items) => {
        await tick(5);
        written.push(...items);
        return items;
      },
      maxDelayMs: 50,
    });
    const pending = [1, 2, 3].map((n) => committer.add(n));
    await committer.drain();
    expect(written.sort()).toEqual([1, 2, 3]);
    await expect(Promise.all(pending)).resolves.toEqual([1, 2, 3]);
    await expect(committer.add(4)).rejects.toMatchObject({ name: 'NotWritten', reason: 'closed' });
  });
});
