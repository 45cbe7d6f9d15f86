/**
 * The collector as its users run it: the server as a process (under tsx, or the
 * built bundle as `npm start` runs it) and the `referral` CLI, each spawned with an
 * environment of its own, in its own process group, its output kept for the failure
 * message. Also a database of its own for such a process.
 *
 * Vitest is not imported here, so the bench can use these too: failures throw.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { type HttpClient, httpClient } from './app.ts';
import type { DbKind } from './databases.ts';
import { freePort } from './net.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');

/** An executable and its arguments. */
export type Command = [string, string[]];

/** `server.ts` under Node with tsx's loader (one process). */
export const SERVER_TS: Command = [process.execPath, ['--import', 'tsx', 'collector/src/server.ts']];
/** `tsx collector/src/server.ts`, as in development: tsx runs the server in a child of its own. */
export const TSX_SERVER: Command = [path.join(ROOT, 'node_modules/.bin/tsx'), ['collector/src/server.ts']];
/** The `referral` CLI. */
export const CLI = path.join(ROOT, 'collector/bin/referral.js');

/** What `npm start` runs (after its prestart build), read from package.json: `node` becomes this Node. */
export function npmStartCommand(): Command {
  const script = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  const [command, ...args] = script.trim().split(/\s+/);
  if (command !== 'node') throw new Error(`npm start is expected to run node, not: ${script}`);
  return [process.execPath, args];
}

/** Every variable the collector's config reads: a child gets only the ones a test gives it. */
const COLLECTOR_VARIABLES =
  /^(DATABASE_URL|PORT|HOST|DATA_DIR|ADMIN_TOKEN|REDIS_URL|LOG_LEVEL|PUBLIC_URL|TRUST_PROXY|IP_HASH_SECRET|DEMO|WORKERS|WEBHOOK_ALLOW_PRIVATE|RATE_LIMIT_\w+|HTTP_\w+_TIMEOUT_MS)$/;

/** The parent's environment without anything that would configure the collector, plus `env`. */
export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !COLLECTOR_VARIABLES.test(name)));
  return { ...base, ...env };
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Spawned {
  child: ChildProcess;
  /** Resolves once the process has exited and its output is drained. */
  exited: Promise<Exit>;
  /** How it exited, once it has. */
  exit: () => Exit | undefined;
  stdout: () => string;
  stderr: () => string;
  /** Both streams as they arrived. */
  output: () => string;
  /** Sends the signal; resolves with how the process ended and how long that took (SIGKILL to the group after `limitMs`). */
  stop: (signal: NodeJS.Signals, limitMs?: number) => Promise<Exit & { ms: number }>;
}

/** Text kept whole, or (with a limit) its head and its tail: enough to explain a failure, bounded in memory. */
function outputLog(limit?: number) {
  let head = '';
  let tail = '';
  return {
    append(chunk: string) {
      if (limit === undefined || head.length < limit / 3) head += chunk;
      else tail = (tail + chunk).slice(-(limit * 2) / 3);
    },
    text: () => `${head}${tail ? `\n…\n${tail}` : ''}`,
  };
}

const started = new Set<Spawned>();

/** SIGKILL for a child and whatever it started (tsx, WORKERS). */
export function killGroup(child: ChildProcess) {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // ESRCH: the whole group has already exited.
  }
}

/** Kills every process started here that is still running, and waits for them (for afterAll). */
export async function stopAll(): Promise<void> {
  await Promise.all(
    [...started].map(async (spawned) => {
      if (!spawned.exit()) killGroup(spawned.child);
      await spawned.exited;
    }),
  );
}

/** Rejects after `ms` with `what` and the process's output, killing its group. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string, spawned?: Spawned): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      if (spawned) killGroup(spawned.child);
      reject(new Error(`${what} took over ${ms} ms\n${spawned?.output() ?? ''}`));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Starts `command` in the repository, in its own process group, with exactly `env`. */
export function spawnProcess(command: Command, env: NodeJS.ProcessEnv, options: { outputLimit?: number } = {}): Spawned {
  const child = spawn(command[0], command[1], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const [stdout, stderr, both] = [outputLog(options.outputLimit), outputLog(options.outputLimit), outputLog(options.outputLimit)];
  for (const [stream, log] of [
    [child.stdout, stdout],
    [child.stderr, stderr],
  ] as const) {
    stream?.setEncoding('utf8').on('data', (chunk: string) => {
      log.append(chunk);
      both.append(chunk);
    });
  }
  let exit: Exit | undefined;
  // 'close' comes after 'exit' once the pipes are drained.
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => (exit = { code, signal }));
    child.once('close', (code, signal) => resolve(exit ?? { code, signal }));
  });
  const spawned: Spawned = {
    child,
    exited,
    exit: () => exit,
    stdout: stdout.text,
    stderr: stderr.text,
    output: both.text,
    stop: async (signal, limitMs = 15_000) => {
      const begun = performance.now();
      child.kill(signal);
      const ended = await withTimeout(exited, limitMs, `stopping ${command[1].join(' ')} with ${signal}`, spawned);
      return { ...ended, ms: performance.now() - begun };
    },
  };
  started.add(spawned);
  void exited.then(() => started.delete(spawned));
  return spawned;
}

/** Polls GET /v1/health until `ready(status)`; throws if the process exits first or `limitMs` passes. */
export async function waitForHealth(
  spawned: Spawned,
  url: string,
  limitMs: number,
  ready: (status: number) => boolean = (status) => status === 200,
) {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const exit = spawned.exit();
    if (exit) throw new Error(`the process exited (${exit.code ?? exit.signal}) before answering\n${spawned.output()}`);
    if (Date.now() > deadline) {
      killGroup(spawned.child);
      throw new Error(`the process did not answer /v1/health within ${limitMs} ms\n${spawned.output()}`);
    }
    const health = await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
    if (health && ready(health.status)) return health;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface RunningCollector extends Spawned, HttpClient {}

/**
 * Starts the collector (`server.ts` under tsx unless told) on a free loopback port with
 * the parent's environment minus the collector's variables, plus `env`; resolves once
 * /v1/health answers `{ status: 'ok' }`.
 */
export async function startCollector(
  env: Record<string, string>,
  options: { command?: Command; startLimitMs?: number; outputLimit?: number } = {},
): Promise<RunningCollector> {
  const port = await freePort();
  const spawned = spawnProcess(options.command ?? SERVER_TS, childEnv({ PORT: String(port), HOST: '127.0.0.1', ...env }), options);
  const client = httpClient(`http://127.0.0.1:${port}`);
  // A guard against a hang, far above the usual few seconds: CI runs these beside every other suite.
  const health = await waitForHealth(spawned, client.url, options.startLimitMs ?? 80_000);
  const body = await health.text();
  if (body !== JSON.stringify({ status: 'ok' })) throw new Error(`/v1/health answered ${body}`);
  return { ...spawned, ...client };
}

/** Runs the `referral` CLI to completion (killed after `limitMs`). */
export async function runCli(args: string[], env: Record<string, string>, limitMs = 80_000) {
  const spawned = spawnProcess([process.execPath, [CLI, ...args]], childEnv(env));
  const exit = await withTimeout(spawned.exited, limitMs, `referral ${args.join(' ')}`, spawned);
  return { ...exit, stdout: spawned.stdout(), stderr: spawned.stderr() };
}

/**
 * A database for a process of its own: a fresh DATA_DIR (PGlite), plus on PostgreSQL a
 * fresh database on TEST_DATABASE_URL. `drop` removes both.
 */
export async function processDatabase(kind: DbKind, prefix = 'proc'): Promise<{ env: Record<string, string>; drop: () => Promise<void> }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), `referral-${prefix}-`));
  const removeDir = async () => rmSync(dataDir, { recursive: true, force: true });
  if (kind === 'pglite') return { env: { DATA_DIR: dataDir }, drop: removeDir };
  const serverUrl = process.env.TEST_DATABASE_URL;
  if (!serverUrl) throw new Error('a PostgreSQL database needs TEST_DATABASE_URL');
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    env: { DATA_DIR: dataDir, DATABASE_URL: url.toString() },
    drop: async () => {
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
      await removeDir();
    },
  };
}
