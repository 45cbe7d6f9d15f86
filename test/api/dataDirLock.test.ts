/**
 * One writer on DATA_DIR, with real processes: a second collector on the same
 * DATA_DIR refuses at once and the first keeps serving with its data intact; the CLI
 * while the collector runs goes through it (ADMIN_TOKEN) or refuses, and never
 * writes behind its back (checked after a restart); a stale lock is taken over; a
 * lost secret key is replaced with `keys create`; processes racing for a stale lock
 * end with exactly one holder.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { LOCK_FILE, type LockHolder } from '../../collector/src/storage/dataDirLock.ts';
import { freePort } from '../helpers/net.ts';
import {
  childEnv,
  processDatabase,
  ROOT,
  runCli,
  type RunningCollector,
  SERVER_TS,
  spawnProcess,
  type Spawned,
  startCollector,
  stopAll,
  withTimeout,
} from '../helpers/processes.ts';

const ADMIN_TOKEN = 'datadir-lock-admin-token-0123456789';
/**
 * Guards against a hang, not measures: a first start on a fresh DATA_DIR takes about
 * 10 s alone, and CI runs these beside every other suite on two cores.
 */
const LIMIT_MS = 150_000;
const SLOW_TEST_MS = 600_000;
const STACK_TRACE = /^\s+at .+\(?.+:\d+:\d+\)?$/m;
const SECRET_KEY = /sk_[A-Za-z0-9_-]{32,}/;

afterAll(stopAll);
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
});

async function freshDataDir(prefix: string): Promise<string> {
  const { env, drop } = await processDatabase('pglite', prefix);
  cleanups.push(drop);
  return env.DATA_DIR as string;
}

/** `server.ts` as one process (so its pid is the lock holder's), with the admin token. */
const startServer = (DATA_DIR: string, env: Record<string, string> = {}) =>
  startCollector({ DATA_DIR, ADMIN_TOKEN, LOG_LEVEL: 'silent', DEMO: 'off', ...env }, { command: SERVER_TS, startLimitMs: LIMIT_MS });

const cli = (args: string[], env: Record<string, string>) => runCli(args, env, LIMIT_MS);

const readLock = (dataDir: string) => JSON.parse(readFileSync(path.join(dataDir, LOCK_FILE), 'utf8')) as LockHolder;

async function stopClean(server: RunningCollector) {
  const exit = await server.stop('SIGTERM');
  expect(exit, server.output()).toMatchObject({ code: 0, signal: null });
}

async function createProgram(server: RunningCollector, name: string) {
  const reply = await server.post(
    '/v1/programs',
    { name, origins: ['https://shop.example'], landingUrl: 'https://shop.example/' },
    { auth: ADMIN_TOKEN },
  );
  expect(reply.status, reply.text).toBe(201);
  return reply.body as { program: { id: string; slug: string }; keys: { secret: string; publishable: string } };
}

/** A lock as a collector that died without releasing it leaves it: its pid no longer runs. */
function writeStaleLock(dataDir: string) {
  const holder = {
    role: 'collector',
    pid: 2 ** 22 + 4321, // above Linux's largest pid_max: no process has it
    hostname: os.hostname(),
    machine: {},
    startedAt: new Date(Date.now() - 3_600_000).toISOString(),
    port: 1,
    url: 'http://127.0.0.1:1',
    token: 'died',
  };
  writeFileSync(path.join(dataDir, LOCK_FILE), JSON.stringify(holder));
  return holder;
}

// One test at a time: each starts collectors on fresh DATA_DIRs, which is heavy.
describe('one writer on DATA_DIR (embedded database)', () => {
  it(
    'a second collector on the same DATA_DIR exits 1 at once naming the first; the first keeps serving, its data intact',
    async () => {
      const DATA_DIR = await freshDataDir('lock-two');
      const first = await startServer(DATA_DIR);
      const port = Number(new URL(first.url).port);
      expect(readLock(DATA_DIR)).toMatchObject({ role: 'collector', pid: first.child.pid, port, url: first.url });
      const { keys } = await createProgram(first, 'First shop');
      expect((await first.post('/v1/participants', { externalId: 'before' }, { auth: keys.secret })).status).toBe(201);

      const second = spawnProcess(
        SERVER_TS,
        childEnv({ DATA_DIR, PORT: String(await freePort()), HOST: '127.0.0.1', ADMIN_TOKEN, LOG_LEVEL: 'info', DEMO: 'off' }),
      );
      const exit = await withTimeout(second.exited, LIMIT_MS, 'the second collector', second);
      expect(exit.code, second.output()).toBe(1);
      expect(second.stderr()).toContain(`DATA_DIR ${DATA_DIR} is in use by the collector (pid ${first.child.pid}, port ${port}`);
      expect(second.stderr()).toContain(
        'Stop that collector first, or give this one another DATA_DIR, or use PostgreSQL (DATABASE_URL) to run several collectors on one database.',
      );
      expect(second.output()).not.toMatch(STACK_TRACE);
      expect(second.output()).not.toContain('Aborted');
      // It never opened the files: nothing about migrations or listening.
      expect(second.stdout()).not.toMatch(/migrated|collector listening/);

      expect(readLock(DATA_DIR)).toMatchObject({ pid: first.child.pid, port });
      expect((await first.get('/v1/program', { auth: keys.secret })).status).toBe(200);
      expect((await first.get('/v1/participants/before', { auth: keys.secret })).status).toBe(200);
      expect((await first.post('/v1/participants', { externalId: 'after' }, { auth: keys.secret })).status).toBe(201);
      await stopClean(first);
      expect(existsSync(path.join(DATA_DIR, LOCK_FILE))).toBe(false);

      const again = await startServer(DATA_DIR);
      for (const externalId of ['before', 'after']) {
        expect((await again.get(`/v1/participants/${externalId}`, { auth: keys.secret })).status, externalId).toBe(200);
      }
      await stopClean(again);
    },
    SLOW_TEST_MS,
  );

  it(
    'the CLI while the collector runs: through it with ADMIN_TOKEN (keys work at once), refused without; nothing written behind its back',
    async () => {
      const DATA_DIR = await freshDataDir('lock-cli');
      const server = await startServer(DATA_DIR);
      const pid = server.child.pid;
      const running = `The collector (pid ${pid}, ${server.url}) is running on ${DATA_DIR}`;

      const created = await cli(
        ['program', 'create', '--name', 'Through', '--origin', 'https://t.example', '--landing', 'https://t.example/', '--json'],
        { DATA_DIR, ADMIN_TOKEN },
      );
      expect(created.code, created.stderr).toBe(0);
      expect(created.stderr).toContain(`Done through the collector running on ${DATA_DIR} (pid ${pid}, ${server.url}).`);
      const { program, keys } = JSON.parse(created.stdout) as { program: { id: string; slug: string }; keys: { secret: string } };
      const served = await server.get('/v1/program', { auth: keys.secret });
      expect(served.status, served.text).toBe(200);
      expect(served.body.program.id).toBe(program.id);

      const key = await cli(['keys', 'create', '--program', program.slug, '--json'], { DATA_DIR, ADMIN_TOKEN });
      expect(key.code, key.stderr).toBe(0);
      const replacement = (JSON.parse(key.stdout) as { secret: string }).secret;
      expect(replacement).toMatch(SECRET_KEY);
      expect((await server.get('/v1/program', { auth: replacement })).status).toBe(200);

      // Without ADMIN_TOKEN, with a wrong one, and the commands with no HTTP form: refused, exit 1, saying what to do.
      const refusals: Array<[string[], Record<string, string>, string]> = [
        [
          ['program', 'create', '--name', 'Refused', '--origin', 'https://r.example', '--landing', 'https://r.example/'],
          {},
          'Stop it first and run the command again, or run the command through it: set ADMIN_TOKEN here',
        ],
        [['keys', 'create', '--program', program.slug], {}, 'set ADMIN_TOKEN here to the token the collector runs with'],
        [
          ['program', 'create', '--name', 'Refused', '--origin', 'https://r.example', '--landing', 'https://r.example/'],
          { ADMIN_TOKEN: 'not-the-collectors-token-0123456789' },
          `The collector at ${server.url} refused ADMIN_TOKEN`,
        ],
        [['migrate'], { ADMIN_TOKEN }, 'It migrated the database when it started, so there is nothing to do'],
        [['rewards', 'release'], { ADMIN_TOKEN }, 'It releases due rewards itself every minute, so there is nothing to do'],
      ];
      // Side by side: none of them touches the files.
      const [invalid, unknown, ...refused] = await Promise.all([
        cli(['program', 'create', '--name', 'Bad', '--origin', 'javascript:alert(1)', '--landing', 'https://b.example/'], {
          DATA_DIR,
          ADMIN_TOKEN,
        }),
        cli(['keys', 'create', '--program', 'no-such-program'], { DATA_DIR, ADMIN_TOKEN }),
        ...refusals.map(([args, env]) => cli(args, { DATA_DIR, ...env })),
      ]);
      refusals.forEach(([args, , message], index) => {
        const result = refused[index] as Awaited<ReturnType<typeof cli>>;
        expect(result.code, `${args.join(' ')}: ${result.stdout}${result.stderr}`).toBe(1);
        if (!message.startsWith('The collector at')) expect(result.stderr).toContain(running);
        expect(result.stderr).toContain(message);
        expect(result.stdout).not.toMatch(SECRET_KEY);
        expect(result.stderr).not.toMatch(STACK_TRACE);
      });

      // Errors through the collector are said in flag terms, as on the files.
      expect(invalid?.code).toBe(1);
      expect(invalid?.stderr).toContain(
        'Invalid options for `referral program create`:\n  --origin javascript:alert(1): must be an http(s) URL',
      );
      expect(invalid?.stderr).not.toMatch(/see fields|fields\._|origins\.0/);
      expect(unknown?.code).toBe(1);
      expect(unknown?.stderr.trim()).toBe('Program "no-such-program" not found');

      expect((await server.get('/v1/program', { auth: keys.secret })).status).toBe(200);
      await stopClean(server);

      // After a restart: what went through the collector is there; what was refused is not.
      const again = await startServer(DATA_DIR);
      for (const secret of [keys.secret, replacement]) expect((await again.get('/v1/program', { auth: secret })).status).toBe(200);
      await stopClean(again);
      // One at a time: on a stopped DATA_DIR each takes the lock.
      for (const slug of ['refused', 'bad']) {
        const missing = await cli(['keys', 'create', '--program', slug], { DATA_DIR });
        expect(missing.code, missing.stdout).toBe(1);
        expect(missing.stderr.trim()).toBe(`Program "${slug}" not found`);
      }
    },
    SLOW_TEST_MS,
  );

  it(
    'a stale lock (its collector died) is taken over by the CLI and by the collector; keys create on a stopped DATA_DIR gives a key that works after start',
    async () => {
      const DATA_DIR = await freshDataDir('lock-stale');
      const stale = writeStaleLock(DATA_DIR);
      const created = await cli(
        ['program', 'create', '--name', 'Lost key', '--origin', 'https://l.example', '--landing', 'https://l.example/', '--json'],
        {
          DATA_DIR,
        },
      );
      expect(created.code, created.stderr).toBe(0);
      expect(created.stderr).toContain(
        `Took over a stale lock on ${DATA_DIR} (pid ${stale.pid}: process ${stale.pid} is no longer running).`,
      );
      expect(existsSync(path.join(DATA_DIR, LOCK_FILE))).toBe(false);
      const { program, keys } = JSON.parse(created.stdout) as { program: { slug: string }; keys: { secret: string } };
      expect(program.slug).toBe('lost-key');

      // The secret key is lost: a new one, on the stopped DATA_DIR.
      const key = await cli(['keys', 'create', '--program', 'lost-key'], { DATA_DIR });
      expect(key.code, key.stderr).toBe(0);
      expect(key.stdout).toContain('New secret key for program "lost-key": sk_');
      const replacement = SECRET_KEY.exec(key.stdout)?.[0] as string;

      writeStaleLock(DATA_DIR);
      const server = await startServer(DATA_DIR, { LOG_LEVEL: 'warn' });
      const takeover = server
        .stdout()
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .find((line) => line.msg === 'took over a stale DATA_DIR lock (its holder is gone)');
      expect(takeover).toMatchObject({
        level: 40,
        dataDir: DATA_DIR,
        previousPid: stale.pid,
        reason: `process ${stale.pid} is no longer running`,
      });
      expect(readLock(DATA_DIR)).toMatchObject({ pid: server.child.pid, url: server.url });
      for (const secret of [replacement, keys.secret]) expect((await server.get('/v1/program', { auth: secret })).status).toBe(200);
      await stopClean(server);
    },
    SLOW_TEST_MS,
  );

  it(
    'processes racing to take over one stale lock: exactly one holds it, the others are told which',
    async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'referral-lock-race-'));
      cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
      writeStaleLock(dir);
      const go = path.join(dir, 'go');
      const lockModule = pathToFileURL(path.join(ROOT, 'collector/src/storage/dataDirLock.ts')).href;
      // Each waits for the same start signal, then takes the lock; a holder keeps it (until killed).
      const script = `
        const { acquireDataDirLock, DataDirLocked } = await import(${JSON.stringify(lockModule)});
        const { existsSync } = await import('node:fs');
        console.log('ready');
        while (!existsSync(${JSON.stringify(go)})) await new Promise((resolve) => setTimeout(resolve, 1));
        try {
          await acquireDataDirLock(${JSON.stringify(dir)}, { role: 'cli', command: 'race' });
          console.log('acquired ' + process.pid);
          setInterval(() => {}, 60_000);
        } catch (error) {
          if (!(error instanceof DataDirLocked)) throw error;
          console.log('locked ' + error.holder.pid);
        }`;
      const racers: Spawned[] = Array.from({ length: 4 }, () =>
        spawnProcess([process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]], childEnv({})),
      );
      const said = (racer: Spawned) => racer.stdout().split('\n').filter(Boolean);
      await withTimeout(
        (async () => {
          while (!racers.every((racer) => said(racer).includes('ready'))) await new Promise((resolve) => setTimeout(resolve, 20));
          writeFileSync(go, '');
          while (!racers.every((racer) => said(racer).length === 2)) await new Promise((resolve) => setTimeout(resolve, 20));
        })(),
        LIMIT_MS,
        'the racers',
      ).catch((error: Error) => {
        throw new Error(`${error.message}\n${racers.map((racer) => racer.output()).join('\n---\n')}`);
      });
      const outcomes = racers.map((racer) => said(racer)[1] as string);
      const winners = outcomes.filter((outcome) => outcome.startsWith('acquired '));
      expect(winners, outcomes.join('\n')).toHaveLength(1);
      const winner = Number((winners[0] as string).split(' ')[1]);
      expect(outcomes.filter((outcome) => outcome === `locked ${winner}`)).toHaveLength(3);
      expect(readLock(dir)).toMatchObject({ pid: winner, role: 'cli', command: 'race' });
    },
    SLOW_TEST_MS,
  );
});
