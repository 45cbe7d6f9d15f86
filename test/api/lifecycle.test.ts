/**
 * The real processes: `server.ts` under Node with tsx's loader and the `referral` CLI, spawned with
 * their own environment. Startup, migrate on start, graceful shutdown on SIGTERM
 * and SIGINT, data surviving a restart, config errors, and the CLI.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { ProgramCreateResponse } from '../../shared/responses.ts';
import {
  npmStartCommand,
  runCli,
  spawnProcess,
  startCollector,
  processDatabase,
  stopAll,
  TSX_SERVER,
  childEnv,
  withTimeout,
  type Command,
  type RunningCollector,
} from '../helpers/processes.ts';

const ADMIN_TOKEN = 'lifecycle-admin-token-0123456789';
const SHUTDOWN_LIMIT_MS = 5000;
/**
 * Guards against a hang, not measures of speed: far above the usual (a CLI run takes
 * 1–3 s, a first one on a fresh DATA_DIR about 10 s, a start about 6 s) because CI
 * runs these beside every other suite on two cores, where a fresh DATA_DIR has taken
 * over 25 s.
 */
const CLI_LIMIT_MS = 80_000;
const START_LIMIT_MS = 80_000;
const SLOW_TEST_MS = 200_000;
const STACK_TRACE = /^\s+at .+\(?.+:\d+:\d+\)?$/m;

const dataDirs: string[] = [];
afterAll(() => {
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

function tempDataDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'referral-lifecycle-'));
  dataDirs.push(dir);
  return dir;
}

/** Every process started here is killed after the file, whatever happened. */
afterAll(stopAll);

/** The CLI to completion, within the hang guard. */
const cli = (args: string[], env: Record<string, string>) => runCli(args, env, CLI_LIMIT_MS);

/**
 * Starts `server.ts` under Node with tsx's loader, one process as `npm start` runs (or
 * another command), with this file's token, silent, and waits until /v1/health answers.
 * Not the `tsx` runner: it relays a signal to its child and kills it (exit 143) when the
 * child has not said it got it within 30 ms, which a loaded CI machine overruns.
 */
const startServer = (env: Record<string, string>, command?: Command) =>
  startCollector({ ADMIN_TOKEN, LOG_LEVEL: 'silent', ...env }, { command, startLimitMs: START_LIMIT_MS });

// The three groups below use separate databases, so they run side by side; the CLI
// steps share one DATA_DIR (PGlite allows one process at a time) and run in order.
describe.concurrent('the server process (PGlite under DATA_DIR)', () => {
  it(
    'migrates on start, stops on SIGTERM and SIGINT within 5 s with exit 0, and keeps its data across restarts',
    async () => {
      const DATA_DIR = tempDataDir();
      const first = await startServer({ DATA_DIR });
      expect((await first.get('/v1/ready')).status).toBe(200);

      const created = await first.post(
        '/v1/programs',
        {
          name: 'Lifecycle shop',
          origins: ['https://life.example'],
          landingUrl: 'https://life.example/join',
        },
        { auth: ADMIN_TOKEN },
      );
      expect(created.status).toBe(201);
      const { secret, publishable } = (created.body as ProgramCreateResponse).keys;
      const participant = await first.post('/v1/participants', { externalId: 'survivor', code: 'Survivor_1' }, { auth: secret });
      expect(participant.status).toBe(201);

      const sigterm = await first.stop('SIGTERM');
      expect(sigterm, first.stderr()).toMatchObject({ code: 0, signal: null });
      expect(sigterm.ms).toBeLessThan(SHUTDOWN_LIMIT_MS);
      expect(first.stderr()).not.toMatch(STACK_TRACE);

      // Same DATA_DIR: the files reopen, the keys still work, nothing was lost.
      const second = await startServer({ DATA_DIR });
      const program = await second.get('/v1/program', { auth: secret });
      expect(program.status).toBe(200);
      expect(program.body.program).toEqual(created.body.program);
      const again = await second.get('/v1/participants/survivor', { auth: secret });
      expect(again.status).toBe(200);
      expect(again.body).toMatchObject({ id: participant.body.id, externalId: 'survivor', code: 'Survivor_1' });
      expect((await second.get('/v1/program', { auth: publishable })).status).toBe(401);
      expect((await second.get('/v1/program', { auth: `sk_${randomBytes(24).toString('base64url')}` })).status).toBe(401);

      const later = await second.post('/v1/participants', { externalId: 'latecomer' }, { auth: secret });
      expect(later.status).toBe(201);

      const sigint = await second.stop('SIGINT');
      expect(sigint, second.stderr()).toMatchObject({ code: 0, signal: null });
      expect(sigint.ms).toBeLessThan(SHUTDOWN_LIMIT_MS);

      // And once more: what the second run wrote is there too.
      const third = await startServer({ DATA_DIR });
      for (const [externalId, id] of [
        ['survivor', participant.body.id],
        ['latecomer', later.body.id],
      ]) {
        const reply = await third.get(`/v1/participants/${externalId}`, { auth: secret });
        expect(reply.status, externalId).toBe(200);
        expect(reply.body.id).toBe(id);
      }
      const last = await third.stop('SIGTERM');
      expect(last).toMatchObject({ code: 0, signal: null });
      expect(last.ms).toBeLessThan(SHUTDOWN_LIMIT_MS);
    },
    SLOW_TEST_MS,
  );

  it(
    'a second SIGTERM while it stops leaves the stop to finish: exit 0',
    async () => {
      const server = await startServer({ DATA_DIR: tempDataDir() });
      expect((await server.get('/v1/ready')).status).toBe(200);
      const exit = server.stop('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(server.exit(), 'still stopping when the second signal is sent').toBeUndefined();
      server.child.kill('SIGTERM');
      expect(await exit).toMatchObject({ code: 0, signal: null });
    },
    SLOW_TEST_MS,
  );

  it(
    'runs as npm start does: the built bundle under plain Node serves the API, /r.js, /admin and the demo, and stops with exit 0',
    async () => {
      const build = spawnProcess([process.execPath, ['scripts/build.mjs']], childEnv({}));
      expect(await withTimeout(build.exited, 60_000, 'npm run build', build), build.stderr()).toMatchObject({ code: 0 });
      const server = await startServer({ DATA_DIR: tempDataDir(), DEMO: 'auto' }, npmStartCommand());
      expect((await server.get('/v1/ready')).status).toBe(200);
      // Files found relative to the package, wherever the code runs from.
      for (const [pathname, type] of [
        ['/r.js', 'javascript'],
        ['/admin', 'text/html'],
        ['/admin/app.js', 'javascript'],
        ['/admin/app.css', 'text/css'],
        ['/demo/', 'text/html'],
      ]) {
        const response = await fetch(server.url + pathname);
        expect(response.status, pathname).toBe(200);
        expect(response.headers.get('content-type'), pathname).toContain(type);
      }
      expect((await server.stop('SIGTERM')).code).toBe(0);
    },
    SLOW_TEST_MS,
  );

  it('refuses to start on invalid config, listing every problem, without a stack trace', async () => {
    const spawned = spawnProcess(TSX_SERVER, childEnv({ PORT: 'abc', LOG_LEVEL: 'loud', DATA_DIR: tempDataDir(), ADMIN_TOKEN }));
    const exit = await withTimeout(spawned.exited, 20_000, 'the server with a bad config', spawned);
    const [stdout, stderr] = [spawned.stdout(), spawned.stderr()];
    expect(exit.code, stdout + stderr).not.toBe(0);
    expect(exit.code).not.toBeNull();
    expect(stderr).toMatch(/PORT: \S/);
    expect(stderr).toMatch(/LOG_LEVEL: \S/);
    expect(stderr).toContain('Invalid configuration');
    expect(stderr).not.toMatch(STACK_TRACE);
  });
});

describe.concurrent('the referral CLI (PGlite under DATA_DIR)', () => {
  const DATA_DIR = tempDataDir();

  it.sequential(
    'program create --json prints the keys once, and the server started afterwards accepts the secret key',
    async () => {
      const result = await cli(
        ['program', 'create', '--name', 'X', '--origin', 'https://a.example', '--landing', 'https://a.example/', '--json'],
        { DATA_DIR },
      );
      expect(result.code, result.stderr).toBe(0);
      const printed = JSON.parse(result.stdout) as {
        program: { id: string; name: string; slug: string; settings: Record<string, unknown> };
        keys: { publishable: string; secret: string };
      };
      expect(printed.program).toMatchObject({
        name: 'X',
        slug: 'x',
        settings: { origins: ['https://a.example'], landingUrl: 'https://a.example/', cookieDays: 60 },
      });
      expect(printed.keys.publishable).toMatch(/^pk_[A-Za-z0-9_-]{32,}$/);
      expect(printed.keys.secret).toMatch(/^sk_[A-Za-z0-9_-]{32,}$/);

      const server = await startServer({ DATA_DIR });
      try {
        const program = await server.get('/v1/program', { auth: printed.keys.secret });
        expect(program.status).toBe(200);
        expect(program.body.program).toMatchObject({ id: printed.program.id, name: 'X' });
        expect((await server.post('/v1/participants', { externalId: 'cli-user' }, { auth: printed.keys.secret })).status).toBe(201);
      } finally {
        const exit = await server.stop('SIGTERM');
        expect(exit.code).toBe(0);
      }
    },
    SLOW_TEST_MS,
  );

  it.sequential('migrate says the database is up to date once it is', async () => {
    const result = await cli(['migrate'], { DATA_DIR });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe('Already up to date');
  });

  it.sequential('program create without --json prints both keys in plain text', async () => {
    const result = await cli(['program', 'create', '--name', 'Plain', '--origin', 'https://p.example', '--landing', 'https://p.example/'], {
      DATA_DIR,
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/pk_[A-Za-z0-9_-]{32,}/);
    expect(result.stdout).toMatch(/sk_[A-Za-z0-9_-]{32,}/);
  });

  it.sequential.each([
    ['a missing --landing', ['program', 'create', '--name', 'X', '--origin', 'https://a.example'], /landing/i],
    [
      'a bad --origin',
      ['program', 'create', '--name', 'X', '--origin', 'javascript:alert(1)', '--landing', 'https://a.example/'],
      /origin/i,
    ],
    ['a missing --name', ['program', 'create', '--origin', 'https://a.example', '--landing', 'https://a.example/'], /name/i],
    ['an unknown option', ['program', 'create', '--name', 'X', '--landing', 'https://a.example/', '--colour', 'red'], /colour/],
    ['an unknown command', ['frobnicate'], /Unknown command/],
  ])('exits 1 on %s with a message, never a stack trace', async (_label, args, message) => {
    const result = await cli(args, { DATA_DIR });
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(STACK_TRACE);
    expect(result.stdout).not.toMatch(/sk_[A-Za-z0-9_-]{32,}/);
  });

  it.sequential('exits 1 on a bad environment, listing the problem', async () => {
    const result = await cli(['migrate'], { DATA_DIR, DATABASE_URL: 'mysql://nope/x' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('DATABASE_URL: must be a postgres:// URL');
    expect(result.stderr).not.toMatch(STACK_TRACE);
  });
});

const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL;

/** Runs `body` with the URL of a fresh PostgreSQL database, dropped afterwards. */
async function withFreshDatabase(prefix: string, body: (databaseUrl: string) => Promise<void>) {
  const database = await processDatabase('postgres', prefix);
  try {
    await body(database.env.DATABASE_URL as string);
  } finally {
    await database.drop();
  }
}

/** SIGTERM ends the server with exit 0 within the limit. */
async function expectCleanStop(server: RunningCollector) {
  const exit = await server.stop('SIGTERM');
  expect(exit).toMatchObject({ code: 0, signal: null });
  expect(exit.ms).toBeLessThan(SHUTDOWN_LIMIT_MS);
}

describe.concurrent('the CLI and the server on PostgreSQL (DATABASE_URL)', () => {
  it.skipIf(!TEST_DATABASE_URL)(
    'creates a program with the CLI, serves it (a click included), and stops on SIGTERM',
    async () => {
      await withFreshDatabase('lifecycle', async (DATABASE_URL) => {
        const created = await cli(
          ['program', 'create', '--name', 'Pg shop', '--origin', 'https://pg.example', '--landing', 'https://pg.example/', '--json'],
          {
            DATABASE_URL,
            DATA_DIR: tempDataDir(),
          },
        );
        expect(created.code, created.stderr).toBe(0);
        const { keys, program } = JSON.parse(created.stdout) as { keys: { secret: string }; program: { id: string } };

        const server = await startServer({ DATABASE_URL, DATA_DIR: tempDataDir() });
        const reply = await server.get('/v1/program', { auth: keys.secret });
        expect(reply.status).toBe(200);
        expect(reply.body.program.id).toBe(program.id);
        expect((await server.get('/v1/ready')).status).toBe(200);
        // A click through the redirect link goes through the click batches' own connection, closed on SIGTERM.
        const joined = await server.post('/v1/participants', { externalId: 'ann' }, { auth: keys.secret });
        expect(joined.status, joined.text).toBe(201);
        const link = await fetch(`${server.url}/r/${joined.body.code}`, { redirect: 'manual' });
        expect(link.status).toBe(302);
        await expectCleanStop(server);
        const client = new pg.Client({ connectionString: DATABASE_URL });
        await client.connect();
        try {
          expect((await client.query('select count(*)::int as n from clicks')).rows).toEqual([{ n: 1 }]);
        } finally {
          await client.end();
        }
      });
    },
    SLOW_TEST_MS,
  );

  it.skipIf(!TEST_DATABASE_URL)(
    'runs several workers on one port (WORKERS=2), each serving, and stops them all on SIGTERM with exit 0',
    async () => {
      await withFreshDatabase('workers', async (DATABASE_URL) => {
        const server = await startServer({ DATABASE_URL, DATA_DIR: tempDataDir(), WORKERS: '2', DEMO: 'off' });
        const created = await server.post(
          '/v1/programs',
          {
            name: 'Workers',
            origins: ['https://w.example'],
            landingUrl: 'https://w.example/',
          },
          { auth: ADMIN_TOKEN },
        );
        expect(created.status).toBe(201);
        // Many requests over fresh connections land on both workers; every one is served.
        const replies = await Promise.all(Array.from({ length: 20 }, () => server.get('/v1/program', { auth: created.body.keys.secret })));
        expect(replies.map((reply) => reply.status)).toEqual(Array(20).fill(200));
        await expectCleanStop(server);
      });
    },
    SLOW_TEST_MS,
  );
});

describe('the demo program at first start (its secret key stays out of logs)', () => {
  const SECRET_KEY = /sk_[A-Za-z0-9_-]{16,}/;

  it(
    'on PGlite with stdout not a terminal: the demo is created, and its secret key is not printed',
    async () => {
      const server = await startServer({ DATA_DIR: tempDataDir() });
      const demo = await fetch(`${server.url}/demo/config.json`);
      expect(demo.status).toBe(200);
      const { key } = (await demo.json()) as { key: string };
      await expectCleanStop(server);
      const [stdout, stderr] = [server.stdout(), server.stderr()];
      expect(stdout).toContain(key);
      expect(stdout).toContain('/r/DEMO');
      expect(stdout + stderr).not.toMatch(SECRET_KEY);
    },
    SLOW_TEST_MS,
  );

  it.skipIf(!TEST_DATABASE_URL)(
    'on DATABASE_URL with DEMO unset: no demo program, and no secret key printed',
    async () => {
      await withFreshDatabase('demo', async (DATABASE_URL) => {
        const server = await startServer({ DATABASE_URL, DATA_DIR: tempDataDir() });
        expect((await fetch(`${server.url}/demo/config.json`)).status).toBe(404);
        await expectCleanStop(server);
        const [stdout, stderr] = [server.stdout(), server.stderr()];
        expect(stdout + stderr).not.toMatch(SECRET_KEY);
        const client = new pg.Client({ connectionString: DATABASE_URL });
        await client.connect();
        try {
          expect((await client.query('select count(*)::int as n from programs')).rows[0]).toEqual({ n: 0 });
        } finally {
          await client.end();
        }
      });
    },
    SLOW_TEST_MS,
  );
});
