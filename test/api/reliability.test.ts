/**
 * Reliability under faults, through the real server process:
 * (a) PostgreSQL going away under load (a PRIVATE cluster, so the shared one other
 *     suites use is never stopped): the process stays up, answers 503 with
 *     Retry-After, reconnects by itself, and every acknowledged write is stored once;
 * (b) SIGTERM under load: in-flight requests finish and are acknowledged, new ones
 *     are refused, nothing acknowledged is lost, exit code 0;
 * (c) rate limits in memory (per IP, per key, the unknown-code budget);
 * (d) rate limits shared through a real Redis by two processes.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import type { Knex } from 'knex';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ProgramCreateResponse } from '../../shared/responses.ts';
import type { HttpClient, Reply, TestApp } from '../helpers/app.ts';
import { freePort } from '../helpers/net.ts';
import { startCollector, stopAll, type RunningCollector } from '../helpers/processes.ts';
import { useTestApp, type Suite } from '../helpers/suite.ts';
import { createDb } from '../../collector/src/storage/db.ts';
import { buildParticipant, buildProgram, newVid, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { expectLimited, sendClick } from '../helpers/steps.ts';
import { clicksOf } from '../../collector/src/domain/clicks.ts';
import { ofProgramSql } from '../helpers/rows.ts';

const run = promisify(execFile);
const ADMIN_TOKEN = 'reliability-admin-token-0123456789';
const REDIS_URL = 'redis://127.0.0.1:6379';
const STACK_TRACE = /^\s+at .+\(?.+:\d+:\d+\)?$/m;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------
// A private PostgreSQL cluster (Debian's binaries), owned by this file alone.
// ---------------------------------------------------------------------------------

function postgresBin(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((name) => existsSync(path.join(base, name, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(base, versions[0], 'bin') : undefined;
}

const PG_BIN = postgresBin();
const IS_ROOT = process.getuid?.() === 0;

class PrivateCluster {
  readonly data: string;
  port = 0;
  running = false;

  constructor(readonly dir: string) {
    this.data = path.join(dir, 'data');
  }

  /** initdb refuses root: run the binaries as the postgres user when we are root. */
  private exec(binary: string, args: string[]) {
    const full = path.join(PG_BIN as string, binary);
    return IS_ROOT ? run('runuser', ['-u', 'postgres', '--', full, ...args], { cwd: this.dir }) : run(full, args, { cwd: this.dir });
  }

  static async create(): Promise<PrivateCluster> {
    const dir = mkdtempSync(path.join(tmpdir(), 'referral-pgfault-'));
    if (IS_ROOT) execFileSync('chown', ['postgres:postgres', dir]);
    const cluster = new PrivateCluster(dir);
    await cluster.exec('initdb', ['-D', cluster.data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
    cluster.port = await freePort();
    await cluster.start();
    return cluster;
  }

  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async start(): Promise<void> {
    // fsync=off: a process crash (-m immediate) keeps everything the kernel has; only an OS crash would not.
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100`;
    await this.exec('pg_ctl', ['-D', this.data, '-o', options, '-l', path.join(this.dir, 'server.log'), '-w', '-t', '30', 'start']);
    this.running = true;
  }

  /** After a test that failed mid-outage: the next one gets a running cluster. */
  async ensureRunning(): Promise<void> {
    if (!this.running) await this.start();
  }

  /** Like a crash: no shutdown checkpoint, connections cut at once. */
  async kill(): Promise<void> {
    this.running = false;
    await this.exec('pg_ctl', ['-D', this.data, '-m', 'immediate', '-w', 'stop']);
  }

  async createDatabase(name: string): Promise<string> {
    const client = new pg.Client({ connectionString: this.url() });
    await client.connect();
    try {
      await client.query(`create database ${name}`);
    } finally {
      await client.end();
    }
    return this.url(name);
  }

  async destroy(): Promise<void> {
    await this.exec('pg_ctl', ['-D', this.data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function query<T = Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------
// The real server process.
// ---------------------------------------------------------------------------------

/** This file's collector: limits far above the load unless a test sets them, errors only, its output kept bounded. */
const launch = (env: Record<string, string>) =>
  startCollector(
    {
      ADMIN_TOKEN,
      DEMO: 'off',
      LOG_LEVEL: 'error',
      IP_HASH_SECRET: 'reliability-ip-hash-secret-0123',
      RATE_LIMIT_PUBLIC_PER_MINUTE: '10000000',
      RATE_LIMIT_SERVER_PER_MINUTE: '10000000',
      RATE_LIMIT_UNKNOWN_CODES_PER_MINUTE: '10000000',
      ...env,
    },
    { outputLimit: 60_000 },
  );

afterAll(stopAll);

async function createProgram(collector: HttpClient) {
  const created = await collector.post(
    '/v1/programs',
    { name: `Reliability ${uniq()}`, origins: ['https://shop.example'], landingUrl: 'https://shop.example/welcome' },
    { auth: ADMIN_TOKEN },
  );
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const { program, keys } = created.body as ProgramCreateResponse;
  const referrer = await collector.post('/v1/participants', { externalId: uniq('referrer-') }, { auth: keys.secret });
  expect(referrer.status, JSON.stringify(referrer.body)).toBe(201);
  return { ...keys, id: program.id, code: referrer.body.code as string };
}

/** Waits until `probe` is true, polling; throws after `ms`. */
async function waitFor(what: string, ms: number, probe: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await probe().catch(() => false)) return Date.now() - started;
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

/** Waits until `done` or `ms` passed, whichever first. */
async function waitUntil(ms: number, done: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) await sleep(50);
}

// ---------------------------------------------------------------------------------
// A load generator: bounded concurrency, unique ids, every outcome recorded.
// ---------------------------------------------------------------------------------

interface Outcome {
  kind: 'click' | 'conversion';
  id: string;
  sentAt: number;
  status: number | 'error';
  code?: string | undefined;
  retryAfter?: string | null;
  error?: string;
}

interface Load {
  outcomes: Outcome[];
  acknowledged: () => number;
  stop: () => Promise<void>;
}

function startLoad(
  url: string,
  program: { publishable: string; secret: string; code: string },
  options: { concurrency: number; max: number; conversions: boolean; tag: string; stopOnConnectionError?: boolean },
): Load {
  const outcomes: Outcome[] = [];
  let sent = 0;
  let acked = 0;
  let stopped = false;
  const worker = async (index: number) => {
    while (!stopped && sent < options.max) {
      const n = sent++;
      const conversion = options.conversions && n % 3 === 2;
      const id = `${options.tag}${index}x${n}${randomBytes(3).toString('hex')}`;
      const sentAt = performance.now();
      const request = conversion
        ? fetch(`${url}/v1/conversions`, {
            method: 'POST',
            headers: { authorization: `Bearer ${program.secret}`, 'content-type': 'application/json' },
            body: JSON.stringify({
              type: 'signup',
              eventId: id,
              externalId: `user-${id}`,
              ...(n % 2 ? { referral: { code: program.code } } : {}),
            }),
          })
        : fetch(`${url}/v1/clicks`, {
            method: 'POST',
            headers: { 'content-type': 'text/plain' },
            body: JSON.stringify({ key: program.publishable, code: program.code, vid: id, url: 'https://shop.example/?ref=x' }),
          });
      const outcome: Outcome = { kind: conversion ? 'conversion' : 'click', id, sentAt, status: 'error' };
      try {
        const response = await request;
        const text = await response.text();
        outcome.status = response.status;
        outcome.retryAfter = response.headers.get('retry-after');
        if (response.status >= 400) {
          try {
            outcome.code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
          } catch {
            outcome.code = `not json: ${text.slice(0, 80)}`;
          }
        }
        if (response.status < 300) acked++;
      } catch (error) {
        outcome.error = String((error as { cause?: unknown }).cause ?? error);
      }
      outcomes.push(outcome);
      if (outcome.status === 'error' && options.stopOnConnectionError) return;
      // A well-behaved client backs off a little when told to (bounded: the test has a budget).
      if (outcome.status === 'error' || outcome.status === 503 || outcome.status === 429) await sleep(50);
    }
  };
  const workers = Array.from({ length: options.concurrency }, (_, index) => worker(index));
  return {
    outcomes,
    acknowledged: () => acked,
    stop: async () => {
      stopped = true;
      await Promise.all(workers);
    },
  };
}

/** Every id appears exactly once in `table` for this program. */
async function storedCounts(url: string, table: 'clicks' | 'conversions', programId: string, ids: string[]): Promise<Map<string, number>> {
  const column = table === 'clicks' ? 'vid' : 'event_id';
  const rows = await query<{ id: string; n: number }>(
    url,
    `select ${column} as id, count(*)::int as n from ${ofProgramSql(table)} = $1
       and ${column} = any($2::text[]) group by ${column}`,
    [programId, ids],
  );
  return new Map(rows.map((row) => [row.id, row.n]));
}

/**
 * SIGTERM while 20 clients post clicks: one request is in flight (half its body sent),
 * one has begun (request line only) and reaches the app after the signal.
 */
async function sigtermUnderLoad(
  dbEnv: Record<string, string>,
  countClicks: (programId: string, ids: string[]) => Promise<Map<string, number>>,
): Promise<void> {
  const collector = await launch(dbEnv);
  const program = await createProgram(collector);
  const { hostname, port } = new URL(collector.url);
  const clickBody = (vid: string) => JSON.stringify({ key: program.publishable, code: program.code, vid });
  const post = (body: string) =>
    `POST /v1/clicks HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

  const load = startLoad(collector.url, program, { concurrency: 20, max: 5000, conversions: false, tag: 's', stopOnConnectionError: true });
  const inflightVid = uniq('inflight_');
  const lateVid = uniq('late_');
  const reusedVid = uniq('reused_');
  const inflight = new RawConnection(hostname, Number(port));
  const late = new RawConnection(hostname, Number(port));
  let signalAt = 0;
  let exitMs = 0;
  try {
    await waitFor('acknowledged before SIGTERM', 20_000, async () => load.acknowledged() >= 300);
    // In flight at the signal: headers and part of the body are in.
    const body = clickBody(inflightVid);
    inflight.write(post(body).slice(0, -10));
    // Begun (request line only) before the signal, but reaching the app after it.
    late.write(`POST /v1/clicks HTTP/1.1\r\nHost: ${hostname}\r\n`);
    await sleep(200);
    signalAt = performance.now();
    collector.child.kill('SIGTERM');
    await sleep(300);
    inflight.write(body.slice(-10));
    const lateBody = clickBody(lateVid);
    late.write(`Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(lateBody)}\r\n\r\n${lateBody}`);

    // The in-flight request is finished and acknowledged after its batch commits.
    const answered = await inflight.read();
    expect(answered?.status, answered?.headers).toBe(202);
    expect(JSON.parse(answered?.body ?? '')).toEqual({ valid: true });
    // A new request on that same kept-alive connection is refused (or the connection is closed).
    inflight.write(post(clickBody(reusedVid)));
    const reused = await inflight.read();
    if (reused) {
      expect(reused.status).toBe(503);
      expect(JSON.parse(reused.body)).toEqual({ error: { code: 'shutting_down', message: expect.any(String) } });
    }
    // The request that reached the app after the signal is refused, and told when to retry.
    const refused = await late.read();
    expect(refused?.status, refused?.headers).toBe(503);
    expect(JSON.parse(refused?.body ?? '')).toEqual({ error: { code: 'shutting_down', message: expect.any(String) } });
    expect(refused?.headers).toMatch(/\r\nretry-after: *[1-9]\d*(\r\n|$)/i);
    expect(refused?.headers).toMatch(/\r\nconnection: *close(\r\n|$)/i);

    const exit = await Promise.race([collector.exited, sleep(15_000).then(() => undefined)]);
    exitMs = performance.now() - signalAt;
    expect(exit, collector.output()).toEqual({ code: 0, signal: null });
  } finally {
    await load.stop();
    inflight.socket.destroy();
    late.socket.destroy();
  }
  expect(exitMs).toBeLessThan(5000);
  expect(collector.output()).not.toMatch(STACK_TRACE);

  const { outcomes } = load;
  const bad = outcomes.filter((o) => !(o.status === 202 || o.status === 'error' || (o.status === 503 && o.code === 'shutting_down')));
  expect(bad.slice(0, 5)).toEqual([]);
  for (const o of outcomes.filter((o) => o.status === 503)) expect(o.retryAfter).toMatch(/^[1-9]\d*$/);
  // Requests the server had received were all answered: only those sent around the signal may have been cut.
  expect(outcomes.filter((o) => o.status === 'error' && o.sentAt < signalAt - 1000).slice(0, 5)).toEqual([]);
  // Sent well after the signal: refused or not connected, never accepted.
  const after = outcomes.filter((o) => o.sentAt > signalAt + 250);
  expect(after.filter((o) => o.status !== 503 && o.status !== 'error').slice(0, 5)).toEqual([]);

  // No acknowledged click lost; the refused ones were not stored.
  const acked = [...outcomes.filter((o) => o.status === 202).map((o) => o.id), inflightVid];
  expect(acked.length).toBeGreaterThan(300);
  const stored = await countClicks(program.id, acked);
  expect(acked.filter((id) => stored.get(id) !== 1).slice(0, 5)).toEqual([]);
  const refusedIds = [lateVid, reusedVid, ...outcomes.filter((o) => o.status === 503).map((o) => o.id)];
  expect((await countClicks(program.id, refusedIds)).size).toBe(0);
}

// ---------------------------------------------------------------------------------

describe.runIf(PG_BIN)('the collector process on a private PostgreSQL cluster', () => {
  let cluster: PrivateCluster;

  beforeAll(async () => {
    cluster = await PrivateCluster.create();
  }, 60_000);
  afterEach(async () => {
    await cluster?.ensureRunning();
  });
  afterAll(async () => {
    await stopAll();
    await cluster?.destroy();
  });

  it('survives PostgreSQL dying under load: 503 with Retry-After, reconnects by itself, every acknowledged write stored exactly once', async () => {
    const DATABASE_URL = await cluster.createDatabase('fault');
    const collector = await launch({ DATABASE_URL });
    const program = await createProgram(collector);
    expect((await collector.get('/v1/ready')).status).toBe(200);

    // First with no traffic: the pool's idle connections are cut under it (pg emits 'error' on idle clients).
    await cluster.kill();
    await sleep(500);
    expect(collector.exit(), collector.output()).toBeUndefined();
    expect((await collector.get('/v1/ready')).status).toBe(503);
    await cluster.start();
    await waitFor('/v1/ready back to 200 after an idle outage', 20_000, async () => (await collector.get('/v1/ready')).status === 200);
    expect((await collector.get('/v1/program', { auth: program.secret })).status).toBe(200);

    // Then under load. Time-bounded phases: the machine may be shared, so counts are targets, not requirements.
    const load = startLoad(collector.url, program, { concurrency: 20, max: 4000, conversions: true, tag: 'f' });
    try {
      await waitUntil(6_000, () => load.acknowledged() >= 800);
      expect(load.acknowledged(), 'too few requests acknowledged before the fault').toBeGreaterThanOrEqual(100);

      await cluster.kill();
      const downAt = performance.now();
      // While the database is away the process answers: /v1/health 200, /v1/ready and every database-backed route 503.
      expect((await collector.get('/v1/health')).status).toBe(200);
      const ready = await collector.get('/v1/ready');
      expect(ready.status).toBe(503);
      expect(ready.body).toEqual({ error: { code: 'unavailable', message: expect.any(String) } });
      const whileDown: Array<[string, string, unknown?, string?]> = [
        ['POST', '/v1/conversions', { type: 'signup', eventId: uniq('down-'), externalId: uniq('down-user-') }, program.secret],
        ['POST', '/v1/participants', { externalId: uniq('down-') }, program.secret],
        ['GET', '/v1/program', undefined, program.secret],
        ['GET', '/v1/reports/summary', undefined, program.secret],
        ['GET', '/v1/exports/clicks.csv', undefined, program.secret],
        ['POST', '/v1/clicks', { key: program.publishable, code: program.code, vid: uniq('down_') }],
        [
          'POST',
          '/v1/events',
          { key: program.publishable, type: 'signup', eventId: uniq(), vid: uniq('down_'), user: { id: uniq('down-') } },
        ],
        ['GET', `/r/${program.code}`],
      ];
      for (const [method, pathname, body, auth] of whileDown) {
        const reply = await collector.request(method, pathname, body, auth ? { auth } : {});
        expect(reply.status, `${method} ${pathname} while the database is down`).toBe(503);
        expect(reply.body).toEqual({ error: { code: 'unavailable', message: expect.any(String) } });
        expect(reply.headers.get('retry-after'), `${method} ${pathname}`).toMatch(/^[1-9]\d*$/);
      }
      await sleep(Math.max(0, 2000 - (performance.now() - downAt)));
      expect((await collector.get('/v1/ready')).status).toBe(503);
      expect(collector.exit(), collector.output()).toBeUndefined();

      await cluster.start();
      // No restart: the same process reconnects on its own.
      await waitFor('/v1/ready back to 200', 20_000, async () => (await collector.get('/v1/ready')).status === 200);
      const acknowledgedAtRecovery = load.acknowledged();
      await waitUntil(6_000, () => load.acknowledged() >= acknowledgedAtRecovery + 800);
      expect(load.acknowledged() - acknowledgedAtRecovery, 'too few requests acknowledged after recovery').toBeGreaterThanOrEqual(100);
    } finally {
      await load.stop();
    }

    const { outcomes } = load;
    const out = collector.output();
    expect(collector.exit(), out).toBeUndefined();
    expect((await collector.get('/v1/health')).status).toBe(200);
    expect((await collector.get('/v1/ready')).status).toBe(200);

    // Never a 5xx other than 503, never a dropped connection.
    const unexpected = outcomes.filter(
      (o) => !(o.status === 200 || o.status === 201 || o.status === 202 || o.status === 429 || o.status === 503),
    );
    expect(unexpected.slice(0, 5), out).toEqual([]);
    const refused = outcomes.filter((o) => o.status === 503 || o.status === 429);
    expect(refused.length, 'the fault produced no 503: nothing was tested').toBeGreaterThan(0);
    for (const o of refused) {
      expect(o.retryAfter, JSON.stringify(o)).toMatch(/^[1-9]\d*$/);
      expect(o.code, JSON.stringify(o)).toMatch(/^(unavailable|rate_limited)$/);
    }
    expect(outcomes.length).toBeGreaterThanOrEqual(300);

    // Every acknowledged request is stored exactly once.
    const ackedClicks = outcomes.filter((o) => o.kind === 'click' && typeof o.status === 'number' && o.status < 300).map((o) => o.id);
    const ackedConversions = outcomes
      .filter((o) => o.kind === 'conversion' && typeof o.status === 'number' && o.status < 300)
      .map((o) => o.id);
    expect(ackedClicks.length).toBeGreaterThan(100);
    expect(ackedConversions.length).toBeGreaterThan(30);
    const clicks = await storedCounts(DATABASE_URL, 'clicks', program.id, ackedClicks);
    expect(ackedClicks.filter((id) => clicks.get(id) !== 1).slice(0, 5)).toEqual([]);
    const conversions = await storedCounts(DATABASE_URL, 'conversions', program.id, ackedConversions);
    expect(ackedConversions.filter((id) => conversions.get(id) !== 1).slice(0, 5)).toEqual([]);

    // The refused ones are safe to retry: afterwards every request is stored exactly once.
    const retries = outcomes.filter((o) => o.status !== 200 && o.status !== 202);
    const retried = startRetries(collector.url, program, retries);
    const retryStatuses = await retried;
    expect(retryStatuses.filter((status) => status !== 200 && status !== 202).slice(0, 5)).toEqual([]);
    const allClicks = outcomes.filter((o) => o.kind === 'click').map((o) => o.id);
    const allConversions = outcomes.filter((o) => o.kind === 'conversion').map((o) => o.id);
    const clicksAfter = await storedCounts(DATABASE_URL, 'clicks', program.id, allClicks);
    expect(allClicks.filter((id) => clicksAfter.get(id) !== 1).slice(0, 5)).toEqual([]);
    const conversionsAfter = await storedCounts(DATABASE_URL, 'conversions', program.id, allConversions);
    expect(allConversions.filter((id) => conversionsAfter.get(id) !== 1).slice(0, 5)).toEqual([]);
    expect(collector.exit()).toBeUndefined();
    expect(out).not.toMatch(/uncaught|unhandled rejection/i);
  }, 90_000);

  it('on SIGTERM under load: in-flight requests are acknowledged, new ones refused with 503 shutting_down, no acknowledged click lost, exit 0', async () => {
    const DATABASE_URL = await cluster.createDatabase('drain');
    await sigtermUnderLoad({ DATABASE_URL }, (programId, ids) => storedCounts(DATABASE_URL, 'clicks', programId, ids));
  }, 60_000);

  describe('rate limits shared through Redis by two processes', () => {
    let first: RunningCollector;
    let second: RunningCollector;
    /** Its REDIS_URL points at a port where nothing listens. */
    let noRedis: RunningCollector;
    let program: Awaited<ReturnType<typeof createProgram>>;
    const LIMIT = 10;

    beforeAll(async () => {
      const DATABASE_URL = await cluster.createDatabase('shared');
      const env = {
        DATABASE_URL,
        REDIS_URL,
        TRUST_PROXY: 'true',
        RATE_LIMIT_PUBLIC_PER_MINUTE: String(LIMIT),
        RATE_LIMIT_SERVER_PER_MINUTE: String(LIMIT),
        RATE_LIMIT_UNKNOWN_CODES_PER_MINUTE: '3',
      };
      // One starts first so that migrations do not race.
      first = await launch(env);
      [second, noRedis] = await Promise.all([launch(env), launch({ ...env, REDIS_URL: `redis://127.0.0.1:${await freePort()}` })]);
      program = await createProgram(first);
    }, 60_000);
    afterAll(async () => {
      await stopAll();
    });

    /** A client address no other test (or earlier run, within the minute) has used. */
    const freshIp = () => `10.${randomBytes(1)[0]}.${randomBytes(1)[0]}.${1 + ((randomBytes(1)[0] as number) % 250)}`;

    it('limits clicks per IP across both processes together: total 2xx equals the limit', async () => {
      const ip = freshIp();
      const replies: Reply[] = [];
      for (let i = 0; i < LIMIT * 3; i++) {
        const target = i % 2 ? second : first;
        replies.push(
          await target.post(
            '/v1/clicks',
            { key: program.publishable, code: program.code, vid: uniq('redis_') },
            { headers: { 'x-forwarded-for': ip } },
          ),
        );
      }
      const accepted = replies.filter((r) => r.status === 202);
      expect(accepted.length).toBe(LIMIT);
      const limited = replies.filter((r) => r.status === 429);
      expect(limited.length).toBe(LIMIT * 2);
      for (const reply of limited) {
        expect(reply.body).toEqual({ error: { code: 'rate_limited', message: expect.any(String) } });
        const retryAfter = Number(reply.headers.get('retry-after'));
        expect(retryAfter).toBeGreaterThanOrEqual(1);
        expect(retryAfter).toBeLessThanOrEqual(60);
      }
      // Both processes refused some: the budget really is shared, not split.
      expect(replies.filter((r, i) => i % 2 === 0 && r.status === 429).length).toBeGreaterThan(0);
      expect(replies.filter((r, i) => i % 2 === 1 && r.status === 429).length).toBeGreaterThan(0);
      // Another IP has its own budget.
      const other = await second.post(
        '/v1/clicks',
        { key: program.publishable, code: program.code, vid: uniq('redis_') },
        { headers: { 'x-forwarded-for': freshIp() } },
      );
      expect(other.status).toBe(202);
    });

    it('limits the server API per key across both processes', async () => {
      // A fresh key, so the budget starts at zero whatever ran before.
      const created = await first.post('/v1/keys', { kind: 'secret' }, { auth: program.secret });
      expect(created.status).toBe(201);
      const key = created.body.secret as string;
      const statuses: number[] = [];
      for (let i = 0; i < LIMIT * 2; i++) statuses.push((await (i % 2 ? second : first).get('/v1/program', { auth: key })).status);
      expect(statuses.filter((s) => s === 200).length).toBe(LIMIT);
      expect(statuses.filter((s) => s === 429).length).toBe(LIMIT);
    });

    it('with Redis unreachable, the collector stays up and limits in memory (never a 5xx)', async () => {
      const ip = freshIp();
      const statuses: number[] = [];
      for (let i = 0; i < LIMIT + 3; i++) {
        const reply = await noRedis.post(
          '/v1/clicks',
          { key: program.publishable, code: program.code, vid: uniq('noredis_') },
          { headers: { 'x-forwarded-for': ip } },
        );
        statuses.push(reply.status);
      }
      expect(statuses).toEqual([...Array(LIMIT).fill(202), 429, 429, 429]);
      expect((await noRedis.get('/v1/program', { auth: program.secret })).status).toBe(200);
      expect(noRedis.exit(), noRedis.output()).toBeUndefined();
    });

    it('shares the unknown-code budget too: after it, unknown codes from that IP are refused on either process, live ones still accepted', async () => {
      const ip = freshIp();
      const click = (target: RunningCollector, code: string) =>
        target.post('/v1/clicks', { key: program.publishable, code, vid: uniq('enum_') }, { headers: { 'x-forwarded-for': ip } });
      expect((await click(first, 'NOPE0001')).body).toEqual({ valid: false });
      expect((await click(second, 'NOPE0002')).body).toEqual({ valid: false });
      expect((await click(first, 'NOPE0003')).body).toEqual({ valid: false });
      for (const target of [second, first]) {
        const refused = await click(target, 'NOPE0004');
        expect(refused.status).toBe(429);
        expect(refused.body.error.code).toBe('rate_limited');
        expect((await click(target, program.code)).body).toEqual({ valid: true });
      }
    });
  });
});

describe('the collector process on PGlite (DATA_DIR)', () => {
  it('on SIGTERM under load: in-flight requests are acknowledged, new ones refused, no acknowledged click lost, exit 0', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'referral-drain-'));
    try {
      await sigtermUnderLoad({ DATA_DIR: dataDir }, async (programId, ids) => {
        const db = createDb({ dataDir });
        try {
          const rows = (await clicksOf(db, programId).whereIn('k.vid', ids).groupBy('k.vid').select('k.vid').count({ n: '*' })) as Array<{
            vid: string;
            n: number | string;
          }>;
          return new Map(rows.map((row) => [row.vid, Number(row.n)]));
        } finally {
          await db.destroy();
        }
      });
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});

// ---------------------------------------------------------------------------------
// A raw HTTP/1.1 connection, to hold a request half-sent across the signal.
// ---------------------------------------------------------------------------------

interface RawReply {
  status: number;
  headers: string;
  body: string;
}

class RawConnection {
  readonly socket: Socket;
  private buffer = '';
  private closed = false;
  private waiting: (() => void) | undefined;

  constructor(host: string, port: number) {
    this.socket = createConnection({ host, port });
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.waiting?.();
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.waiting?.();
    });
    this.socket.on('error', () => undefined);
  }

  write(text: string): void {
    this.socket.write(text);
  }

  /** The next whole response (Content-Length bodies), or null when the server closed the connection first. */
  async read(timeoutMs = 10_000): Promise<RawReply | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end >= 0) {
        const headers = this.buffer.slice(0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(headers)?.[1] ?? 0);
        const bodyBytes = Buffer.from(this.buffer.slice(end + 4), 'utf8');
        if (bodyBytes.length >= length) {
          const body = bodyBytes.subarray(0, length).toString('utf8');
          this.buffer = bodyBytes.subarray(length).toString('utf8');
          return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1] ?? 0), headers, body };
        }
      }
      if (this.closed) return null;
      if (Date.now() > deadline) throw new Error(`no response within ${timeoutMs} ms: ${JSON.stringify(this.buffer.slice(0, 300))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiting = undefined;
    }
  }
}

async function startRetries(
  url: string,
  program: { publishable: string; secret: string; code: string },
  outcomes: Outcome[],
): Promise<number[]> {
  const statuses: number[] = [];
  const queue = [...outcomes];
  const worker = async () => {
    for (let o = queue.shift(); o; o = queue.shift()) {
      const response =
        o.kind === 'conversion'
          ? await fetch(`${url}/v1/conversions`, {
              method: 'POST',
              headers: { authorization: `Bearer ${program.secret}`, 'content-type': 'application/json' },
              body: JSON.stringify({ type: 'signup', eventId: o.id, externalId: `user-${o.id}` }),
            })
          : await fetch(`${url}/v1/clicks`, {
              method: 'POST',
              headers: { 'content-type': 'text/plain' },
              body: JSON.stringify({ key: program.publishable, code: program.code, vid: o.id, url: 'https://shop.example/?ref=x' }),
            });
      await response.arrayBuffer();
      statuses.push(response.status);
    }
  };
  await Promise.all(Array.from({ length: 10 }, worker));
  return statuses;
}

// ---------------------------------------------------------------------------------
// Rate limits in memory, through the app (PGlite).
// ---------------------------------------------------------------------------------

describe('rate limits in memory', () => {
  /** Starts an app with its own limits on the suite's database. */
  let app: Suite['startApp'];
  let db: Knex;
  useTestApp('pglite', (suite) => ({ startApp: app, db } = suite));

  describe('per IP on the public endpoints', () => {
    let api: TestApp;
    let program: ProgramFixture;
    let code: string;
    const LIMIT = 5;

    beforeAll(async () => {
      api = await app({ RATE_LIMIT_PUBLIC_PER_MINUTE: String(LIMIT), TRUST_PROXY: 'true' });
      program = await buildProgram(api);
      code = (await buildParticipant(api, program)).code;
    });

    let nextIp = 1;
    const freshIp = () => `198.51.100.${nextIp++}`;

    const requests = {
      'POST /v1/clicks': (api: TestApp, from: string) =>
        api.post('/v1/clicks', { key: program.publishable, code, vid: newVid() }, { headers: { 'x-forwarded-for': from } }),
      'POST /v1/events': (api: TestApp, from: string) =>
        api.post(
          '/v1/events',
          { key: program.publishable, type: 'signup', eventId: uniq(), vid: newVid(), user: { id: uniq('u-') } },
          { headers: { 'x-forwarded-for': from } },
        ),
      'GET /r/:code': (api: TestApp, from: string) => api.get(`/r/${code}`, { headers: { 'x-forwarded-for': from } }),
      'GET /r.js': (api: TestApp, from: string) => api.get('/r.js', { headers: { 'x-forwarded-for': from } }),
    } as const;

    it.each(Object.keys(requests) as Array<keyof typeof requests>)(
      '%s: the N+1th request from one IP is 429 with Retry-After; another IP is unaffected',
      async (name) => {
        const send = requests[name];
        const from = freshIp();
        for (let i = 0; i < LIMIT; i++) {
          const reply = await send(api, from);
          expect(reply.status, reply.text).toBeLessThan(400);
        }
        expectLimited(await send(api, from));
        expectLimited(await send(api, from));
        const other = await send(api, freshIp());
        expect(other.status, other.text).toBeLessThan(400);
      },
    );

    it('one budget per IP across the public endpoints; the server API is not charged to it', async () => {
      const from = freshIp();
      const kinds = Object.values(requests);
      for (let i = 0; i < LIMIT; i++)
        expect((await (kinds[i % kinds.length] as (typeof kinds)[number])(api, from)).status).toBeLessThan(400);
      for (const send of kinds) expectLimited(await send(api, from));
      // The server API has its own (per key) limit: the exhausted IP still gets through.
      const reply = await api.get('/v1/program', { auth: program.secret, headers: { 'x-forwarded-for': from } });
      expect(reply.status).toBe(200);
    });

    it('without TRUST_PROXY, X-Forwarded-For cannot be used to dodge the limit', async () => {
      const strict = await app({ RATE_LIMIT_PUBLIC_PER_MINUTE: String(LIMIT) });
      const statuses: number[] = [];
      for (let i = 0; i < LIMIT + 2; i++) {
        const reply = await strict.post(
          '/v1/clicks',
          { key: program.publishable, code, vid: newVid() },
          { headers: { 'x-forwarded-for': freshIp() } },
        );
        statuses.push(reply.status);
      }
      expect(statuses).toEqual([...Array(LIMIT).fill(202), 429, 429]);
    });

    it('a rate-limited click is not stored', async () => {
      const from = freshIp();
      for (let i = 0; i < LIMIT; i++) await requests['POST /v1/clicks'](api, from);
      const vid = uniq('limited_');
      const reply = await api.post('/v1/clicks', { key: program.publishable, code, vid }, { headers: { 'x-forwarded-for': from } });
      expectLimited(reply);
      expect(await db('clicks').where({ vid }).first()).toBeUndefined();
    });
  });

  describe('per key on the server API', () => {
    const LIMIT = 4;

    it('the N+1th request with one key is 429; another key (same or other program) has its own budget; bad keys are 401, not charged', async () => {
      const api = await app({ RATE_LIMIT_SERVER_PER_MINUTE: String(LIMIT) });
      const program = await buildProgram(api);
      const other = await buildProgram(api);
      // The creation above used no server budget (operator API); now spend it all with `program.secret`.
      const created = await api.post('/v1/keys', { kind: 'secret' }, { auth: program.secret });
      expect(created.status).toBe(201);
      const second = created.body.secret as string;
      for (let i = 0; i < LIMIT - 1; i++) expect((await api.get('/v1/referrals', { auth: program.secret })).status).toBe(200);
      expectLimited(await api.get('/v1/program', { auth: program.secret }));
      expectLimited(await api.post('/v1/participants', { externalId: uniq() }, { auth: program.secret }));
      expect((await api.get('/v1/program', { auth: second })).status).toBe(200);
      expect((await api.get('/v1/program', { auth: other.secret })).status).toBe(200);
      // An unknown key is refused before any budget is looked at.
      expect((await api.get('/v1/program', { auth: `sk_${randomBytes(24).toString('base64url')}` })).status).toBe(401);
      // The browser endpoints are not charged to the server budget.
      const code = (await buildParticipant(api, other)).code;
      expect((await api.post('/v1/clicks', { key: program.publishable, code, vid: newVid() })).status).toBe(202);
    });
  });

  describe('unknown-code budget per IP (RATE_LIMIT_UNKNOWN_CODES_PER_MINUTE)', () => {
    const BUDGET = 3;
    let api: TestApp;
    let program: ProgramFixture;
    let code: string;

    beforeAll(async () => {
      api = await app({ RATE_LIMIT_UNKNOWN_CODES_PER_MINUTE: String(BUDGET), TRUST_PROXY: 'true' });
      program = await buildProgram(api);
      code = (await buildParticipant(api, program)).code;
    });

    const click = (from: string, clickCode: string) =>
      sendClick(api, program, { code: clickCode, vid: newVid() }, { headers: { 'x-forwarded-for': from } });

    it('after the budget, unknown codes from that IP get 429 while valid ones still work; another IP is fine', async () => {
      const from = '203.0.113.7';
      // Valid codes do not spend the budget.
      for (let i = 0; i < BUDGET + 2; i++) expect((await click(from, code)).body).toEqual({ valid: true });
      for (let i = 0; i < BUDGET; i++) {
        const reply = await click(from, `ZZ${uniq()}`);
        expect(reply.status).toBe(202);
        expect(reply.body).toEqual({ valid: false });
      }
      expectLimited(await click(from, `ZZ${uniq()}`));
      expectLimited(await api.get(`/r/ZZ${uniq()}`, { headers: { 'x-forwarded-for': from } }));
      // A shared address (an office NAT) where someone probed still follows real links.
      expect((await click(from, code)).body).toEqual({ valid: true });
      expect((await api.get(`/r/${code}`, { headers: { 'x-forwarded-for': from } })).status).toBe(302);
      const elsewhere = await click('203.0.113.8', `ZZ${uniq()}`);
      expect(elsewhere.status).toBe(202);
      expect(elsewhere.body).toEqual({ valid: false });
    });

    it('unknown codes on the redirect link spend the same budget', async () => {
      const from = '203.0.113.9';
      for (let i = 0; i < BUDGET; i++)
        expect((await api.get(`/r/NOPE${uniq()}`, { headers: { 'x-forwarded-for': from } })).status).toBe(404);
      expectLimited(await api.get(`/r/NOPE${uniq()}`, { headers: { 'x-forwarded-for': from } }));
      expectLimited(await click(from, `ZZ${uniq()}`));
      expect((await api.get(`/r/${code}`, { headers: { 'x-forwarded-for': from } })).status).toBe(302);
    });

    it('another program’s code counts as unknown', async () => {
      const from = '203.0.113.10';
      const other = await buildProgram(api);
      const foreign = (await buildParticipant(api, other)).code;
      for (let i = 0; i < BUDGET; i++) expect((await click(from, foreign)).body).toEqual({ valid: false });
      expectLimited(await click(from, foreign));
      expect((await click(from, code)).body).toEqual({ valid: true });
    });
  });
});
