/**
 * The real processes: `server.ts` under tsx and the `referral` CLI, spawned with
 * their own environment. Startup, migrate on start, graceful shutdown on SIGTERM
 * and SIGINT, data surviving a restart, config errors, and the CLI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from '../helpers/net.ts';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { npmStartCommand } from '../helpers/start.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TSX = path.join(ROOT, 'node_modules/.bin/tsx');
const CLI = path.join(ROOT, 'collector/bin/referral.js');
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

/** The parent's environment without anything that would point the child elsewhere, plus `env`. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base = { ...process.env };
  for (const name of [
    'DATABASE_URL',
    'PORT',
    'HOST',
    'DATA_DIR',
    'ADMIN_TOKEN',
    'REDIS_URL',
    'LOG_LEVEL',
    'PUBLIC_URL',
    'TRUST_PROXY',
    'IP_HASH_SECRET',
    'DEMO',
  ]) {
    delete base[name];
  }
  return { ...base, ...env };
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Spawned {
  child: ChildProcess;
  exited: Promise<Exit>;
  output: () => { stdout: string; stderr: string };
}

/** Every child started here; their process groups are killed after the file, whatever happened. */
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const child of children) killGroup(child);
});

/** SIGKILL for a child and whatever it started (tsx runs the server in a grandchild). */
function killGroup(child: ChildProcess) {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // ESRCH: the whole group has already exited.
  }
}

function run(command: string, args: string[], env: Record<string, string>): Spawned {
  // Its own process group, so a stuck run can be killed with its children.
  const child = spawn(command, args, { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  // Close the pipes only after they are drained.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const drained = exited.then(async (exit) => {
    await closed;
    return exit;
  });
  return { child, exited: drained, output: () => ({ stdout, stderr }) };
}

/** Runs the CLI to completion. */
async function cli(args: string[], env: Record<string, string>) {
  const spawned = run(process.execPath, [CLI, ...args], env);
  const exit = await withTimeout(spawned.exited, CLI_LIMIT_MS, `referral ${args.join(' ')}`, spawned);
  return { ...exit, ...spawned.output() };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string, spawned?: Spawned): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      if (spawned) killGroup(spawned.child);
      const output = spawned?.output();
      reject(new Error(`${what} took over ${ms} ms\n${output?.stdout ?? ''}\n${output?.stderr ?? ''}`));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface RunningServer extends Spawned {
  url: string;
  /** Sends the signal and resolves with how the process ended and how long it took. */
  stop: (signal: NodeJS.Signals) => Promise<Exit & { ms: number }>;
}

/** Starts `tsx collector/src/server.ts` (or another command) and waits until /v1/health answers. */
async function startServer(
  env: Record<string, string>,
  command: [string, string[]] = [TSX, ['collector/src/server.ts']],
): Promise<RunningServer> {
  const port = await freePort();
  const spawned = run(command[0], command[1], { PORT: String(port), HOST: '127.0.0.1', ADMIN_TOKEN, LOG_LEVEL: 'silent', ...env });
  const url = `http://127.0.0.1:${port}`;
  const server: RunningServer = {
    ...spawned,
    url,
    stop: async (signal) => {
      const started = performance.now();
      spawned.child.kill(signal);
      const exit = await withTimeout(spawned.exited, 15_000, `stopping the server with ${signal}`, spawned);
      return { ...exit, ms: performance.now() - started };
    },
  };
  let exit: Exit | undefined;
  void spawned.exited.then((value) => (exit = value));
  const deadline = Date.now() + START_LIMIT_MS;
  for (;;) {
    if (exit) throw new Error(`the server exited (${exit.code ?? exit.signal}) before answering\n${spawned.output().stderr}`);
    if (Date.now() > deadline) {
      killGroup(spawned.child);
      throw new Error(`the server did not answer /v1/health within ${START_LIMIT_MS} ms\n${spawned.output().stderr}`);
    }
    const health = await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
    if (health?.status === 200) {
      expect(await health.json()).toEqual({ status: 'ok' });
      return server;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function call(url: string, method: string, pathname: string, auth?: string, body?: unknown) {
  const response = await fetch(url + pathname, {
    method,
    headers: {
      ...(auth ? { authorization: `Bearer ${auth}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as any };
}

// The three groups below use separate databases, so they run side by side; the CLI
// steps share one DATA_DIR (PGlite allows one process at a time) and run in order.
describe.concurrent('the server process (PGlite under DATA_DIR)', () => {
  it(
    'migrates on start, stops on SIGTERM and SIGINT within 5 s with exit 0, and keeps its data across restarts',
    async () => {
      const DATA_DIR = tempDataDir();
      const first = await startServer({ DATA_DIR });
      expect((await call(first.url, 'GET', '/v1/ready')).status).toBe(200);

      const created = await call(first.url, 'POST', '/v1/programs', ADMIN_TOKEN, {
        name: 'Lifecycle shop',
        origins: ['https://life.example'],
        landingUrl: 'https://life.example/join',
      });
      expect(created.status).toBe(201);
      const { secret, publishable } = created.body.keys as { secret: string; publishable: string };
      const participant = await call(first.url, 'POST', '/v1/participants', secret, { externalId: 'survivor', code: 'Survivor_1' });
      expect(participant.status).toBe(201);

      const sigterm = await first.stop('SIGTERM');
      expect(sigterm, first.output().stderr).toMatchObject({ code: 0, signal: null });
      expect(sigterm.ms).toBeLessThan(SHUTDOWN_LIMIT_MS);
      expect(first.output().stderr).not.toMatch(STACK_TRACE);

      // Same DATA_DIR: the files reopen, the keys still work, nothing was lost.
      const second = await startServer({ DATA_DIR });
      const program = await call(second.url, 'GET', '/v1/program', secret);
      expect(program.status).toBe(200);
      expect(program.body.program).toEqual(created.body.program);
      const again = await call(second.url, 'GET', '/v1/participants/survivor', secret);
      expect(again.status).toBe(200);
      expect(again.body).toMatchObject({ id: participant.body.id, externalId: 'survivor', code: 'Survivor_1' });
      expect((await call(second.url, 'GET', '/v1/program', publishable)).status).toBe(401);
      expect((await call(second.url, 'GET', '/v1/program', `sk_${randomBytes(24).toString('base64url')}`)).status).toBe(401);

      const later = await call(second.url, 'POST', '/v1/participants', secret, { externalId: 'latecomer' });
      expect(later.status).toBe(201);

      const sigint = await second.stop('SIGINT');
      expect(sigint, second.output().stderr).toMatchObject({ code: 0, signal: null });
      expect(sigint.ms).toBeLessThan(SHUTDOWN_LIMIT_MS);

      // And once more: what the second run wrote is there too.
      const third = await startServer({ DATA_DIR });
      for (const [externalId, id] of [
        ['survivor', participant.body.id],
        ['latecomer', later.body.id],
      ]) {
        const reply = await call(third.url, 'GET', `/v1/participants/${externalId}`, secret);
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
    'runs as npm start does: the built bundle under plain Node serves the API, /r.js, /admin and the demo, and stops with exit 0',
    async () => {
      const build = run(process.execPath, ['scripts/build.mjs'], {});
      expect(await withTimeout(build.exited, 60_000, 'npm run build', build), build.output().stderr).toMatchObject({ code: 0 });
      const server = await startServer({ DATA_DIR: tempDataDir(), DEMO: 'auto' }, npmStartCommand());
      expect((await call(server.url, 'GET', '/v1/ready')).status).toBe(200);
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
    const spawned = run(TSX, ['collector/src/server.ts'], { PORT: 'abc', LOG_LEVEL: 'loud', DATA_DIR: tempDataDir(), ADMIN_TOKEN });
    const exit = await withTimeout(spawned.exited, 20_000, 'the server with a bad config', spawned);
    const { stdout, stderr } = spawned.output();
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
        const program = await call(server.url, 'GET', '/v1/program', printed.keys.secret);
        expect(program.status).toBe(200);
        expect(program.body.program).toMatchObject({ id: printed.program.id, name: 'X' });
        expect((await call(server.url, 'POST', '/v1/participants', printed.keys.secret, { externalId: 'cli-user' })).status).toBe(201);
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
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  const url = new URL(TEST_DATABASE_URL as string);
  url.pathname = `/${name}`;
  try {
    await body(url.toString());
  } finally {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}

/** SIGTERM ends the server with exit 0 within the limit. */
async function expectCleanStop(server: RunningServer) {
  const exit = await server.stop('SIGTERM');
  expect(exit).toMatchObject({ code: 0, signal: null });
  expect(exit.ms).toBeLessThan(SHUTDOWN_LIMIT_MS);
}

describe.concurrent('the CLI and the server on PostgreSQL (DATABASE_URL)', () => {
  it.skipIf(!TEST_DATABASE_URL)(
    'creates a program with the CLI, serves it, and stops on SIGTERM',
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
        const reply = await call(server.url, 'GET', '/v1/program', keys.secret);
        expect(reply.status).toBe(200);
        expect(reply.body.program.id).toBe(program.id);
        expect((await call(server.url, 'GET', '/v1/ready')).status).toBe(200);
        await expectCleanStop(server);
      });
    },
    SLOW_TEST_MS,
  );

  it.skipIf(!TEST_DATABASE_URL)(
    'runs several workers on one port (WORKERS=2), each serving, and stops them all on SIGTERM with exit 0',
    async () => {
      await withFreshDatabase('workers', async (DATABASE_URL) => {
        const server = await startServer({ DATABASE_URL, DATA_DIR: tempDataDir(), WORKERS: '2', DEMO: 'off' });
        const created = await call(server.url, 'POST', '/v1/programs', ADMIN_TOKEN, {
          name: 'Workers',
          origins: ['https://w.example'],
          landingUrl: 'https://w.example/',
        });
        expect(created.status).toBe(201);
        // Many requests over fresh connections land on both workers; every one is served.
        const replies = await Promise.all(
          Array.from({ length: 20 }, () => call(server.url, 'GET', '/v1/program', created.body.keys.secret)),
        );
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
      const { stdout, stderr } = server.output();
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
        const { stdout, stderr } = server.output();
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
