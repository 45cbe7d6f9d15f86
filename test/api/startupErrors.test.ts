/**
 * Starts that cannot succeed, as an operator meets them: a port in use, a database
 * that does not exist, a PostgreSQL server that does not answer, a refused login.
 * Each: one paragraph on stderr saying what failed and what to do, exit 1, no stack
 * trace anywhere, no password. Real processes; loopback addresses only.
 */
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LOCK_FILE } from '../../collector/src/storage/dataDirLock.ts';
import { freePort } from '../helpers/net.ts';
import { childEnv, processDatabase, runCli, SERVER_TS, spawnProcess, stopAll, withTimeout } from '../helpers/processes.ts';

/** Guards against a hang, not measures: CI runs these beside every other suite on two cores. */
const EXIT_LIMIT_MS = 150_000;
const SLOW_TEST_MS = 400_000;
const STACK_TRACE = /^\s+at .+\(?.+:\d+:\d+\)?$/m;
const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL;

afterAll(stopAll);

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
});

/** Runs the collector with `env` until it exits; its exit, stdout and stderr. */
async function startFailing(env: Record<string, string>) {
  const port = env.PORT ?? String(await freePort());
  const spawned = spawnProcess(SERVER_TS, childEnv({ HOST: '127.0.0.1', LOG_LEVEL: 'info', DEMO: 'off', ...env, PORT: port }));
  const exit = await withTimeout(spawned.exited, EXIT_LIMIT_MS, 'the collector that cannot start', spawned);
  return { ...exit, stdout: spawned.stdout(), stderr: spawned.stderr() };
}

/** The exit is 1 with `message` on stderr, and no stack trace (nor `secret`) in anything printed. */
function expectExplained(result: { code: number | null; stdout: string; stderr: string }, message: string | RegExp, secret?: string) {
  const everything = result.stdout + result.stderr;
  expect(result.code, everything).toBe(1);
  if (typeof message === 'string') expect(result.stderr).toContain(message);
  else expect(result.stderr).toMatch(message);
  expect(everything).not.toMatch(STACK_TRACE);
  expect(everything).not.toContain('Aborted()');
  if (secret) expect(everything).not.toContain(secret);
}

/** TEST_DATABASE_URL's server with another database name and user. */
function onTestServer(database: string, user?: string): string {
  const url = new URL(TEST_DATABASE_URL as string);
  url.pathname = `/${database}`;
  if (user) url.username = user;
  return url.toString();
}

describe.concurrent('a collector that cannot start says why', () => {
  it(
    'a port in use: which port, and what to do; the DATA_DIR lock is released',
    async () => {
      const { env, drop } = await processDatabase('pglite', 'inuse');
      cleanups.push(drop);
      const occupier: Server = createServer();
      await new Promise<void>((resolve) => occupier.listen(0, '127.0.0.1', resolve));
      cleanups.push(() => new Promise((resolve) => occupier.close(() => resolve())));
      const port = (occupier.address() as { port: number }).port;

      const result = await startFailing({ ...env, PORT: String(port) });
      expectExplained(result, `Port ${port} on 127.0.0.1 is in use (another collector?`);
      expect(result.stderr).toContain('Set PORT to a free port or stop the other process.');
      expect(existsSync(path.join(env.DATA_DIR as string, LOCK_FILE))).toBe(false);
    },
    SLOW_TEST_MS,
  );

  it.skipIf(!TEST_DATABASE_URL)(
    'a database that does not exist: which one and how to create it, at once (no retries)',
    async () => {
      const DATABASE_URL = onTestServer('does_not_exist_xyz');
      // A long timeout: the hang guard would stop a collector that waited for this database.
      const result = await startFailing({ DATABASE_URL, DATABASE_CONNECT_TIMEOUT_S: '3600' });
      expectExplained(result, /The database "does_not_exist_xyz" does not exist on the PostgreSQL server at 127\.0\.0\.1:\d+\./);
      expect(result.stderr).toMatch(/createdb -h 127\.0\.0\.1 -p \d+ (-U \S+ )?does_not_exist_xyz/);
      expect(result.stdout).not.toContain('retrying');

      // Several workers: the primary says the same.
      const workers = await startFailing({ DATABASE_URL, DATABASE_CONNECT_TIMEOUT_S: '3600', WORKERS: '2' });
      expectExplained(workers, 'The database "does_not_exist_xyz" does not exist');
    },
    SLOW_TEST_MS,
  );

  it.skipIf(!TEST_DATABASE_URL)(
    'a refused login: who, and what to check, at once',
    async () => {
      const result = await startFailing({ DATABASE_URL: onTestServer('test', 'nobody_xyz_role'), DATABASE_CONNECT_TIMEOUT_S: '3600' });
      expectExplained(result, /The PostgreSQL server at 127\.0\.0\.1:\d+ refused the login as nobody_xyz_role to "test" \(/);
      expect(result.stderr).toContain('Check the user name and password in DATABASE_URL');
    },
    SLOW_TEST_MS,
  );

  it(
    'a server that does not answer: retried (each retry logged) up to DATABASE_CONNECT_TIMEOUT_S, then what failed and how to fix it',
    async () => {
      const port = await freePort();
      const DATABASE_URL = `postgres://postgres:hunter2-pg@127.0.0.1:${port}/referrals`;
      const result = await startFailing({ DATABASE_URL, DATABASE_CONNECT_TIMEOUT_S: '2' });
      expectExplained(
        result,
        new RegExp(
          `^Could not connect to PostgreSQL at 127\\.0\\.0\\.1:${port} for \\d+ s \\(connection refused: nothing listens there\\)\\.`,
          'm',
        ),
        'hunter2',
      );
      expect(result.stderr).toContain('set DATABASE_CONNECT_TIMEOUT_S to wait longer');
      const retries = result.stdout
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { msg: string; attempt?: number; reason?: string; database?: string })
        .filter((line) => line.msg === 'PostgreSQL not reachable yet; retrying');
      expect(retries.length).toBeGreaterThanOrEqual(1);
      expect(retries.map((line) => line.attempt)).toEqual(retries.map((_, index) => index + 1));
      expect(retries[0]).toMatchObject({ database: `127.0.0.1:${port}/referrals`, reason: 'connection refused: nothing listens there' });
    },
    SLOW_TEST_MS,
  );
});

describe.concurrent('the CLI says the same', () => {
  it.skipIf(!TEST_DATABASE_URL)(
    'a database that does not exist',
    async () => {
      const result = await runCli(['migrate'], { DATABASE_URL: onTestServer('does_not_exist_xyz') }, EXIT_LIMIT_MS);
      expectExplained(result, 'The database "does_not_exist_xyz" does not exist');
    },
    SLOW_TEST_MS,
  );

  it(
    'a server that does not answer, telling each retry',
    async () => {
      const port = await freePort();
      const result = await runCli(
        ['rewards', 'release'],
        { DATABASE_URL: `postgres://postgres:hunter2-pg@127.0.0.1:${port}/referrals`, DATABASE_CONNECT_TIMEOUT_S: '1' },
        EXIT_LIMIT_MS,
      );
      expectExplained(result, `Could not connect to PostgreSQL at 127.0.0.1:${port}`, 'hunter2');
      expect(result.stderr).toMatch(
        new RegExp(
          `^PostgreSQL at 127\\.0\\.0\\.1:${port} is not reachable yet \\(connection refused: nothing listens there\\); retrying in 1 s…$`,
          'm',
        ),
      );
    },
    SLOW_TEST_MS,
  );
});
