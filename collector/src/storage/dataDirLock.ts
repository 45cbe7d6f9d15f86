/**
 * One writer on DATA_DIR. PGlite cannot share its files: two processes writing them
 * lose data (or the second dies with `RuntimeError: Aborted()`). So whoever opens the
 * embedded database — the collector, or a CLI command while it is stopped — first
 * holds DATA_DIR/collector.lock, created with O_EXCL so that of two starting at once
 * exactly one wins. The file says who holds it and, for a collector, where its HTTP
 * API answers (the CLI goes through it).
 *
 * A lock whose holder is gone is taken over. On this machine that is certain: the
 * pid no longer runs (or is a later process with the same number). From another
 * machine or container the process cannot be seen, so the holder refreshes the
 * file's time every HEARTBEAT_MS and a lock left unrefreshed for STALE_AFTER_MS is
 * stale. Taking over happens under a short second lock (`collector.lock.takeover`),
 * re-reading the file first, so two processes never both remove and recreate it.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isSeenFromHere, isStillRunning, type MachineIdentity, machineIdentity } from './processIdentity.ts';

export { isSeenFromHere };

export const LOCK_FILE = 'collector.lock';
const HEARTBEAT_MS = 10_000;
/** A lock seen from another machine or container is stale once unrefreshed for this long. */
export const STALE_AFTER_MS = 60_000;
/** A takeover holds its second lock for microseconds; one older than this was left by a crash. */
const TAKEOVER_STALE_MS = 10_000;
/** A lock file still empty this long after it was created will not be written any more. */
const UNWRITTEN_STALE_MS = 5_000;

export interface LockHolder {
  role: 'collector' | 'cli';
  pid: number;
  hostname: string;
  /** Linux: which boot and PID namespace `pid` belongs to, and when that process started (so a reused pid is not mistaken for the holder). */
  machine: MachineIdentity;
  startedAt: string;
  /** The CLI command line (role `cli`). */
  command?: string;
  /** The collector's HTTP port and interface, once it listens. */
  port?: number;
  host?: string;
  /** Where the collector's HTTP API answers from this machine (its admin API takes ADMIN_TOKEN). */
  url?: string;
  /** This acquisition: only its holder removes or rewrites the file. */
  token: string;
}

/** DATA_DIR is held by a live process. */
export class DataDirLocked extends Error {
  constructor(
    readonly dataDir: string,
    readonly holder: LockHolder,
  ) {
    super(`${dataDir} is in use by ${describeHolder(holder)}`);
    this.name = 'DataDirLocked';
  }
}

/** "the collector (pid 4242, port 8787, on host web-1, since …)" or "the command `referral migrate` (pid 4242)". */
export function describeHolder(holder: LockHolder): string {
  const where = holder.hostname === os.hostname() ? '' : `, on host ${holder.hostname}`;
  if (holder.role === 'cli') return `the command \`referral ${holder.command ?? ''}\` (pid ${holder.pid}${where})`;
  const port = holder.port === undefined ? ', still starting' : `, port ${holder.port}`;
  return `the collector (pid ${holder.pid}${port}${where}, since ${holder.startedAt})`;
}

/** The lock this process holds; release it once the database is closed. */
export interface DataDirLock {
  readonly file: string;
  readonly holder: LockHolder;
  /** Records more about the holder (the collector's port once it listens). */
  update(fields: Pick<LockHolder, 'port' | 'host' | 'url'>): void;
  /** Called if the lock is found taken by another process (it judged this one gone). */
  onLost(listener: () => void): void;
  release(): void;
}

/** Lock files held by this process (a second open in the same process is refused too). */
const heldHere = new Set<string>();

export interface AcquireOptions {
  role: LockHolder['role'];
  command?: string;
  /** Told when a stale lock is taken over, with the holder it had. */
  onTakeover?: (previous: LockHolder | undefined, reason: string) => void;
  /** How often the holder refreshes the lock (HEARTBEAT_MS; shorter in tests). */
  heartbeatMs?: number;
}

/** Takes the lock on `dataDir` (created if missing), or throws DataDirLocked naming the live holder. */
export async function acquireDataDirLock(dataDir: string, options: AcquireOptions): Promise<DataDirLock> {
  mkdirSync(dataDir, { recursive: true });
  const file = path.resolve(dataDir, LOCK_FILE);
  const holder: LockHolder = {
    role: options.role,
    pid: process.pid,
    hostname: os.hostname(),
    machine: machineIdentity(process.pid),
    startedAt: new Date().toISOString(),
    ...(options.command === undefined ? {} : { command: options.command }),
    token: randomBytes(12).toString('hex'),
  };
  for (let attempt = 0; attempt < 200; attempt++) {
    if (createExclusive(file, JSON.stringify(holder, null, 2))) return holdLock(file, holder, options.heartbeatMs ?? HEARTBEAT_MS);
    const found = readLock(file);
    if (!found) continue; // released meanwhile
    const verdict = judge(file, found);
    if (verdict.state === 'live') throw new DataDirLocked(dataDir, verdict.holder);
    if (verdict.state === 'unwritten') {
      await sleep(50);
      continue;
    }
    if (takeOver(file, found.raw)) options.onTakeover?.(found.holder, verdict.reason);
    else await sleep(20);
  }
  throw new Error(`Could not take the lock ${file}: it keeps changing`);
}

/** The holder recorded in DATA_DIR's lock, if there is a readable one. */
export function readDataDirLock(dataDir: string): LockHolder | undefined {
  return readLock(path.resolve(dataDir, LOCK_FILE))?.holder;
}

function holdLock(file: string, holder: LockHolder, heartbeatMs: number): DataDirLock {
  heldHere.add(file);
  const lost: Array<() => void> = [];
  let current = holder;
  const stillOurs = () => readLock(file)?.holder?.token === holder.token;
  const beat = () => {
    // Deleted by hand (or with its directory): written again, or the collector would lose its guard.
    if (!readLock(file)) createExclusive(file, JSON.stringify(current, null, 2));
    if (!stillOurs()) {
      clearInterval(heartbeat);
      for (const listener of lost) listener();
      return;
    }
    const now = new Date();
    utimesSync(file, now, now);
  };
  const heartbeat = setInterval(() => {
    try {
      beat();
    } catch {
      // The directory is unreachable for now: tried again at the next beat.
    }
  }, heartbeatMs);
  heartbeat.unref();
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    clearInterval(heartbeat);
    heldHere.delete(file);
    process.removeListener('exit', release);
    if (stillOurs()) unlinkSync(file);
  };
  // A process ending without a graceful stop (process.exit on an error) leaves no lock behind.
  process.on('exit', release);
  return {
    file,
    get holder() {
      return current;
    },
    update(fields) {
      if (!stillOurs()) return;
      current = { ...current, ...fields };
      // Written aside, then renamed over: a reader sees the old holder or the new one, never half.
      const next = `${file}.${holder.token}`;
      writeFileDurably(next, 'w', JSON.stringify(current, null, 2));
      renameSync(next, file);
    },
    onLost: (listener) => void lost.push(listener),
    release,
  };
}

type Verdict = { state: 'live'; holder: LockHolder } | { state: 'stale'; reason: string } | { state: 'unwritten' };

function judge(file: string, found: FoundLock): Verdict {
  const age = Date.now() - found.mtimeMs;
  if (!found.holder) {
    // Created a moment ago and being written, or left empty by a crash.
    return age < UNWRITTEN_STALE_MS ? { state: 'unwritten' } : { state: 'stale', reason: 'the lock file was unreadable' };
  }
  const alive = isRunningHere(file, found.holder);
  if (alive === true) return { state: 'live', holder: found.holder };
  if (alive === false) return { state: 'stale', reason: `process ${found.holder.pid} is no longer running` };
  if (age > STALE_AFTER_MS)
    return { state: 'stale', reason: `not refreshed for ${Math.round(age / 1000)} s by host ${found.holder.hostname}` };
  return { state: 'live', holder: found.holder };
}

/** Whether the holder's process still runs; undefined when it cannot be seen from here (another machine or container). */
function isRunningHere(file: string, holder: LockHolder): boolean | undefined {
  if (isSeenFromHere(holder) && holder.pid === process.pid) return heldHere.has(file);
  return isStillRunning(holder);
}

/**
 * Removes a stale lock, under the takeover lock and only if it still holds what was
 * judged stale. True when it removed it (the caller then creates its own with O_EXCL,
 * which another process may still win: that one is then the live holder).
 */
function takeOver(file: string, judgedRaw: string): boolean {
  const mutex = `${file}.takeover`;
  if (!createExclusive(mutex, String(process.pid))) {
    const age = ageMs(mutex);
    if (age !== undefined && age > TAKEOVER_STALE_MS) unlinkQuietly(mutex);
    return false;
  }
  try {
    const now = readLock(file);
    if (!now || now.raw !== judgedRaw) return false;
    unlinkSync(file);
    return true;
  } finally {
    unlinkQuietly(mutex);
  }
}

interface FoundLock {
  raw: string;
  holder: LockHolder | undefined;
  mtimeMs: number;
}

function readLock(file: string): FoundLock | undefined {
  try {
    const mtimeMs = statSync(file).mtimeMs;
    const raw = readFileSync(file, 'utf8');
    return { raw, holder: parseHolder(raw), mtimeMs };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function parseHolder(raw: string): LockHolder | undefined {
  try {
    const value = JSON.parse(raw) as Partial<LockHolder>;
    if (typeof value.pid !== 'number' || typeof value.hostname !== 'string' || typeof value.token !== 'string') return undefined;
    return { ...value, machine: value.machine ?? {} } as LockHolder;
  } catch {
    return undefined;
  }
}

/** Creates `file` with O_EXCL and writes it; false when it exists. */
function createExclusive(file: string, content: string): boolean {
  try {
    writeFileDurably(file, 'wx', content);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

function writeFileDurably(file: string, flags: 'w' | 'wx', content: string): void {
  const fd = openSync(file, flags, 0o644);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function ageMs(file: string): number | undefined {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // Gone already.
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
