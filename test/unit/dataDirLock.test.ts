/**
 * DATA_DIR's lock in one process: who counts as alive, when a lock is stale, and that
 * a holder only ever removes or rewrites its own lock. (Several processes racing for
 * it: test/api/dataDirLock.test.ts.)
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { acquireDataDirLock, DataDirLocked, LOCK_FILE, type LockHolder, readDataDirLock } from '../../collector/src/storage/dataDirLock.ts';
import { explainDataDirError, explainDataDirLocked, StartupError } from '../../collector/src/startupErrors.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'referral-lock-'));
  dirs.push(dir);
  return dir;
}

/** A lock file as another process would have left it. */
function writeLock(dir: string, holder: Partial<LockHolder>, ageMs = 0): void {
  const file = path.join(dir, LOCK_FILE);
  const full = { role: 'collector', hostname: os.hostname(), machine: {}, startedAt: new Date().toISOString(), token: 'theirs', ...holder };
  writeFileSync(file, JSON.stringify(full));
  if (ageMs) {
    const then = new Date(Date.now() - ageMs);
    utimesSync(file, then, then);
  }
}

/** The error acquiring throws (DataDirLocked expected). */
async function refusal(dir: string): Promise<DataDirLocked> {
  const error = await acquireDataDirLock(dir, { role: 'cli', command: 'migrate' }).then(
    (lock) => {
      lock.release();
      return undefined;
    },
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(DataDirLocked);
  return error as DataDirLocked;
}

/** A pid no process has: above Linux's largest pid_max (2^22), so process.kill(pid, 0) is ESRCH. */
function deadPid(): number {
  return 2 ** 22 + 12_345;
}

const linux = process.platform === 'linux';
const procStart = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
};

describe('the DATA_DIR lock', () => {
  it('is created with this process as holder, refused to a second taker while held (in this process too), and removed on release', async () => {
    const dir = path.join(tempDir(), 'not-yet-there');
    const lock = await acquireDataDirLock(dir, { role: 'collector' });
    expect(readDataDirLock(dir)).toMatchObject({ role: 'collector', pid: process.pid, hostname: os.hostname(), token: lock.holder.token });
    const error = await refusal(dir);
    expect(error.holder.pid).toBe(process.pid);
    expect(error.message).toContain(`the collector (pid ${process.pid}, still starting`);

    lock.update({ port: 8787, host: '0.0.0.0', url: 'http://127.0.0.1:8787' });
    expect(readDataDirLock(dir)).toMatchObject({ pid: process.pid, port: 8787, url: 'http://127.0.0.1:8787', token: lock.holder.token });
    expect((await refusal(dir)).message).toContain(`the collector (pid ${process.pid}, port 8787`);

    lock.release();
    expect(existsSync(path.join(dir, LOCK_FILE))).toBe(false);
    const again = await acquireDataDirLock(dir, { role: 'cli', command: 'migrate' });
    expect(readDataDirLock(dir)).toMatchObject({ role: 'cli', command: 'migrate' });
    again.release();
  });

  it('is taken over when its holder no longer runs on this machine, saying so', async () => {
    const dir = tempDir();
    writeLock(dir, { pid: deadPid() });
    const takeovers: string[] = [];
    const lock = await acquireDataDirLock(dir, {
      role: 'collector',
      onTakeover: (previous, reason) => takeovers.push(`${previous?.pid}: ${reason}`),
    });
    expect(takeovers).toEqual([`${deadPid()}: process ${deadPid()} is no longer running`]);
    expect(readDataDirLock(dir)?.pid).toBe(process.pid);
    lock.release();
  });

  it.skipIf(!linux)('is held while its pid runs as the same process, and taken over when that pid now belongs to a later one', async () => {
    const dir = tempDir();
    const parent = process.ppid;
    writeLock(dir, { pid: parent, machine: { processStart: procStart(parent) as string } });
    expect((await refusal(dir)).holder.pid).toBe(parent);

    writeLock(dir, { pid: parent, machine: { processStart: '1' } });
    const reasons: string[] = [];
    const lock = await acquireDataDirLock(dir, { role: 'cli', onTakeover: (_previous, reason) => reasons.push(reason) });
    expect(reasons).toEqual([`process ${parent} is no longer running`]);
    lock.release();
  });

  it('from another machine is held while refreshed, and taken over once it has gone unrefreshed for a minute', async () => {
    const dir = tempDir();
    writeLock(dir, { pid: 4242, hostname: 'elsewhere.example', port: 8787 });
    const error = await refusal(dir);
    expect(error.holder).toMatchObject({ pid: 4242, hostname: 'elsewhere.example' });
    const message = explainDataDirLocked(error).message;
    expect(message).toContain('the collector (pid 4242, port 8787, on host elsewhere.example');
    expect(message).toContain('Stop that collector first, or give this one another DATA_DIR, or use PostgreSQL (DATABASE_URL)');
    expect(message).toContain('if it is gone, its lock is taken over once it has gone 60 s unrefreshed');

    writeLock(dir, { pid: 4242, hostname: 'elsewhere.example' }, 120_000);
    const reasons: string[] = [];
    const lock = await acquireDataDirLock(dir, { role: 'collector', onTakeover: (_previous, reason) => reasons.push(reason) });
    expect(reasons).toEqual([expect.stringMatching(/^not refreshed for 1\d\d s by host elsewhere\.example$/)]);
    lock.release();
  });

  it('waits for a lock file still being written, and takes over one left empty long ago', async () => {
    const dir = tempDir();
    const file = path.join(dir, LOCK_FILE);
    writeFileSync(file, '');
    const pending = acquireDataDirLock(dir, { role: 'cli' });
    // Its creator finishes writing it: a live holder (this test's parent process).
    setTimeout(() => writeLock(dir, { pid: process.ppid }), 200);
    await expect(pending).rejects.toBeInstanceOf(DataDirLocked);

    writeFileSync(file, '');
    const then = new Date(Date.now() - 60_000);
    utimesSync(file, then, then);
    const reasons: string[] = [];
    const lock = await acquireDataDirLock(dir, { role: 'cli', onTakeover: (_previous, reason) => reasons.push(reason) });
    expect(reasons).toEqual(['the lock file was unreadable']);
    lock.release();
  });

  it('is never removed or rewritten by a holder it no longer belongs to', async () => {
    const dir = tempDir();
    const lock = await acquireDataDirLock(dir, { role: 'collector' });
    // Another process took it (judging this one gone).
    writeLock(dir, { pid: deadPid(), token: 'theirs' });
    lock.update({ port: 1234 });
    expect(readDataDirLock(dir)).toMatchObject({ token: 'theirs' });
    expect(readDataDirLock(dir)?.port).toBeUndefined();
    lock.release();
    expect(readDataDirLock(dir)).toMatchObject({ token: 'theirs' });
  });

  it('is written again if deleted by hand while held, and its holder is told once another process has it', async () => {
    const dir = tempDir();
    const file = path.join(dir, LOCK_FILE);
    const lock = await acquireDataDirLock(dir, { role: 'collector', heartbeatMs: 10 });
    let lost = 0;
    lock.onLost(() => lost++);
    unlinkSync(file);
    await until('the lock to be written again', () => readDataDirLock(dir)?.token === lock.holder.token);
    expect(lost).toBe(0);

    writeLock(dir, { pid: deadPid(), token: 'theirs' });
    await until('the holder to be told', () => lost > 0);
    expect(lost).toBe(1);
    expect(readDataDirLock(dir)).toMatchObject({ token: 'theirs' });
    lock.release();
  });

  it('on a DATA_DIR that is a file: a StartupError saying so', async () => {
    const file = path.join(tempDir(), 'a-file');
    writeFileSync(file, '');
    const error = await acquireDataDirLock(file, { role: 'collector' }).catch((thrown: unknown) => thrown);
    const explained = explainDataDirError(error, file);
    expect(explained).toBeInstanceOf(StartupError);
    expect((explained as StartupError).message).toMatch(new RegExp(`^DATA_DIR ${file} is not a directory \\((EEXIST|ENOTDIR)\\)`));
  });
});

/** Waits for `condition` (a guard against a hang, not a measure). */
async function until(what: string, condition: () => boolean) {
  const deadline = Date.now() + 20_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
