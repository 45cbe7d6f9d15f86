/**
 * `npm run bench`: ingest throughput of the collector against bare Koa, measured in
 * the same run (A B A B, autocannon, 50 connections), on PostgreSQL and on PGlite;
 * server signups per second; acknowledged-but-lost rows; peak RSS; and two collector
 * processes on one PostgreSQL keeping attribution exactly-once.
 *
 * The last line is one JSON object (clickRatioPg, clickP99MsPg, clickRatioPglite,
 * signupsPerSecPg, lostAcked, peakRssMb, …). Loopback only; every load is bounded in time.
 *
 * BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names a server;
 * the bench creates and drops its own database there. BENCH_SECONDS sets each load's length.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import { freePort } from '../helpers/net.ts';
import { npmStartCommand, spawnProcess, waitForHealth } from '../helpers/processes.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = 50;
const ADMIN_TOKEN = 'bench-admin-token-0123456789';
const BASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROOT = path.resolve(import.meta.dirname, '../..');
/** The collector as `npm start` runs it (its bundle is built at the start of the bench). */
const COLLECTOR = npmStartCommand()[1];

interface Load {
  rps: number;
  p50: number;
  p99: number;
  ok: number;
  non2xx: number;
  errors: number;
}

interface Proc {
  url: string;
  pid: number;
  peakRssMb: () => number;
  stop: () => Promise<number | null>;
}

async function startProcess(args: string[], env: Record<string, string>): Promise<Proc> {
  const port = await freePort();
  // Both sides run as plain Node; the collector exactly as `npm start` runs it.
  const spawned = spawnProcess([process.execPath, args], {
    ...process.env,
    // One load generator on 127.0.0.1 is not abuse: measure throughput, not the rate limiter.
    RATE_LIMIT_PUBLIC_PER_MINUTE: '0',
    RATE_LIMIT_SERVER_PER_MINUTE: '0',
    RATE_LIMIT_UNKNOWN_CODES_PER_MINUTE: '0',
    ...env,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'error',
    DEMO: 'off',
  });
  const url = `http://127.0.0.1:${port}`;
  // The bare server has no health route: any answer below 500 means it serves.
  await waitForHealth(spawned, url, 30_000, (status) => status < 500);
  return {
    url,
    pid: spawned.child.pid as number,
    peakRssMb: () => {
      try {
        const kb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${spawned.child.pid}/status`, 'utf8'))?.[1] ?? 0);
        return Math.round(kb / 1024);
      } catch {
        return 0;
      }
    },
    stop: async () => {
      const exit = spawned.exit() ?? (await spawned.stop('SIGTERM'));
      if (exit.code !== 0) process.stderr.write(spawned.stderr());
      return exit.code;
    },
  };
}

async function load(url: string, requestPath: string, body: () => string, headers: Record<string, string>): Promise<Load> {
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: SECONDS,
    requests: [{ method: 'POST', path: requestPath, headers, setupRequest: (request) => ({ ...request, body: body() }) }],
  });
  return {
    rps: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

async function json(url: string, init: RequestInit & { auth?: string } = {}): Promise<any> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (init.auth) headers.authorization = `Bearer ${init.auth}`;
  const response = await fetch(url, { ...init, headers });
  const text = await response.text();
  if (response.status >= 300) throw new Error(`${init.method ?? 'GET'} ${url} → ${response.status} ${text}`);
  return JSON.parse(text);
}

async function setupProgram(url: string, codes: number) {
  const { keys, program } = await json(`${url}/v1/programs`, {
    method: 'POST',
    auth: ADMIN_TOKEN,
    body: JSON.stringify({
      name: `Bench ${randomBytes(3).toString('hex')}`,
      origins: ['https://bench.example'],
      landingUrl: 'https://bench.example/',
    }),
  });
  const list: string[] = [];
  for (let i = 0; i < codes; i++) {
    const participant = await json(`${url}/v1/participants`, {
      method: 'POST',
      auth: keys.secret,
      body: JSON.stringify({ externalId: `referrer-${i}` }),
    });
    list.push(participant.code);
  }
  return { keys, program, codes: list };
}

// ---- CPU accounting: /proc time of each process over a load, so the figures do not
// depend on who else shares the cores.

const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim() || 100);

/** User + system CPU of a process so far, in µs (all its threads). */
function cpuUs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_US;
  } catch {
    return 0;
  }
}

/** PostgreSQL's backends serving `database`, and their CPU so far. */
async function backendCpu(connectionString: string, database: string): Promise<Map<number, number>> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    const rows = (await client.query(`select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`, [database]))
      .rows as Array<{ pid: number }>;
    return new Map(rows.map((row) => [row.pid, cpuUs(row.pid)]));
  } finally {
    await client.end();
  }
}

/** CPU spent over `run` by each process (µs), PostgreSQL's backends of `database` summed, and this process (the load generator). */
async function measureCpu<T>(pids: Record<string, number>, pgDatabase: { url: string; name: string } | undefined, run: () => Promise<T>) {
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuUs(pid)]));
  const pgBefore = pgDatabase ? await backendCpu(pgDatabase.url, pgDatabase.name) : new Map<number, number>();
  const self = process.cpuUsage();
  const result = await run();
  const generator = process.cpuUsage(self);
  const cpu: Record<string, number> = Object.fromEntries(
    Object.entries(pids).map(([name, pid]) => [name, cpuUs(pid) - (before[name] ?? 0)]),
  );
  if (pgDatabase) {
    const pgAfter = await backendCpu(pgDatabase.url, pgDatabase.name);
    let total = 0;
    for (const [pid, after] of pgAfter) total += after - (pgBefore.get(pid) ?? 0);
    cpu.postgres = total;
  }
  cpu.generator = generator.user + generator.system;
  return { result, cpu };
}

let counter = 0;
const uniqueId = (prefix: string) => `${prefix}${process.pid.toString(36)}x${(counter++).toString(36)}x${randomBytes(3).toString('hex')}`;
const pick = <T>(items: T[]) => items[Math.floor(Math.random() * items.length)] as T;

function clickBody(key: string, codes: string[]) {
  return () => JSON.stringify({ key, code: pick(codes), vid: uniqueId('v'), url: 'https://bench.example/?ref=x' });
}

async function countRows(connectionString: string, sql: string): Promise<number> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return Number((await client.query(sql)).rows[0].n);
  } finally {
    await client.end();
  }
}

const fmt = (label: string, l: Load) =>
  `${label.padEnd(28)} ${String(l.rps).padStart(7)} req/s  p50 ${String(l.p50).padStart(4)} ms  p99 ${String(l.p99).padStart(4)} ms  2xx ${l.ok}  non-2xx ${l.non2xx}  errors ${l.errors}`;

async function main() {
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, stdio: 'ignore' });
  const dbName = `bench_${Date.now()}`;
  const admin = new pg.Client({ connectionString: BASE_URL });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  const dbUrl = new URL(BASE_URL);
  dbUrl.pathname = `/${dbName}`;
  const databaseUrl = dbUrl.toString();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'bench-pglite-'));
  const summary: Record<string, number | boolean> = {};
  const procs: Proc[] = [];
  try {
    const bare = await startProcess(['test/bench/bare.mjs'], {});
    procs.push(bare);
    const collector = await startProcess(COLLECTOR, { DATABASE_URL: databaseUrl, ADMIN_TOKEN, WORKERS: process.env.BENCH_WORKERS ?? '1' });
    procs.push(collector);
    const pgSetup = await setupProgram(collector.url, 100);
    const plain = { 'content-type': 'text/plain' };

    // A B A B: bare Koa, collector on PostgreSQL.
    const bareRuns: Load[] = [];
    const pgRuns: Load[] = [];
    const pgDb = { url: databaseUrl, name: dbName };
    let bareCpu = 0;
    let collectorClickCpu = 0;
    let pgClickCpu = 0;
    const storedBefore = await countRows(databaseUrl, 'select count(*) as n from clicks');
    for (let round = 0; round < 2; round++) {
      const bareLoad = await measureCpu({ bare: bare.pid }, undefined, () => load(bare.url, '/v1/clicks', clickBody('pk_x', ['X']), plain));
      bareRuns.push(bareLoad.result);
      bareCpu += bareLoad.cpu.bare ?? 0;
      console.log(
        fmt(`bare koa #${round + 1}`, bareLoad.result),
        `cpu ${Math.round((bareLoad.cpu.bare ?? 0) / 1000)} ms, generator ${Math.round((bareLoad.cpu.generator ?? 0) / 1000)} ms`,
      );
      const pgLoad = await measureCpu({ collector: collector.pid }, pgDb, () =>
        load(collector.url, '/v1/clicks', clickBody(pgSetup.keys.publishable, pgSetup.codes), plain),
      );
      pgRuns.push(pgLoad.result);
      collectorClickCpu += pgLoad.cpu.collector ?? 0;
      pgClickCpu += pgLoad.cpu.postgres ?? 0;
      console.log(
        fmt(`clicks postgres #${round + 1}`, pgLoad.result),
        `cpu collector ${Math.round((pgLoad.cpu.collector ?? 0) / 1000)} ms, postgres ${Math.round((pgLoad.cpu.postgres ?? 0) / 1000)} ms, generator ${Math.round((pgLoad.cpu.generator ?? 0) / 1000)} ms`,
      );
    }
    const avg = (runs: Load[], key: keyof Load) => runs.reduce((sum, run) => sum + run[key], 0) / runs.length;
    const bareRps = avg(bareRuns, 'rps');
    const ackedPg = pgRuns.reduce((sum, run) => sum + run.ok, 0);
    const storedPg = await countRows(databaseUrl, 'select count(*) as n from clicks');
    const bareRequests = bareRuns.reduce((sum, run) => sum + run.ok + run.non2xx, 0);
    const clicksStored = storedPg - storedBefore;

    // Server signups (attribution + rewards, one transaction each).
    const referralsBefore = await countRows(databaseUrl, `select count(*) as n from referrals`);
    const signupLoad = await measureCpu({ collector: collector.pid }, pgDb, () =>
      load(
        collector.url,
        '/v1/conversions',
        () =>
          JSON.stringify({ type: 'signup', eventId: uniqueId('e'), externalId: uniqueId('u'), referral: { code: pick(pgSetup.codes) } }),
        { 'content-type': 'application/json', authorization: `Bearer ${pgSetup.keys.secret}` },
      ),
    );
    const signups = signupLoad.result;
    console.log(
      fmt('signups postgres', signups),
      `cpu collector ${Math.round((signupLoad.cpu.collector ?? 0) / 1000)} ms, postgres ${Math.round((signupLoad.cpu.postgres ?? 0) / 1000)} ms`,
    );
    const referralsPg = await countRows(databaseUrl, `select count(*) as n from referrals`);
    const signupsStored = referralsPg - referralsBefore;

    // Scale-out: a second process on the same database; one user, many codes, both processes.
    const second = await startProcess(COLLECTOR, { DATABASE_URL: databaseUrl, ADMIN_TOKEN });
    procs.push(second);
    let exactlyOnce = true;
    for (let user = 0; user < 20; user++) {
      const externalId = uniqueId('race');
      const answers = await Promise.all(
        pgSetup.codes.slice(0, 20).map((code, i) =>
          json(`${(i % 2 ? second : collector).url}/v1/conversions`, {
            method: 'POST',
            auth: pgSetup.keys.secret,
            body: JSON.stringify({ type: 'signup', eventId: `${externalId}-${i}`, externalId, referral: { code } }),
          }),
        ),
      );
      const referrers = new Set(answers.map((answer) => answer.attribution.referrer));
      const rows = await countRows(
        databaseUrl,
        `select count(*) as n from referrals r join participants p on p.id = r.referred_id where p.external_id = '${externalId}'`,
      );
      if (rows !== 1 || referrers.size !== 1) exactlyOnce = false;
    }
    console.log(`scale-out: two processes, 20 users × 20 racing signups → exactly one referral each: ${exactlyOnce}`);
    const peakPg = collector.peakRssMb();
    await second.stop();
    const exitPg = await collector.stop();

    // PGlite: the same click load against the embedded database.
    const embedded = await startProcess(COLLECTOR, { DATA_DIR: dataDir, ADMIN_TOKEN });
    procs.push(embedded);
    const liteSetup = await setupProgram(embedded.url, 100);
    const liteRun = await load(embedded.url, '/v1/clicks', clickBody(liteSetup.keys.publishable, liteSetup.codes), plain);
    console.log(fmt('clicks pglite', liteRun));
    const liteSummary = await json(`${embedded.url}/v1/reports/summary`, { auth: liteSetup.keys.secret });
    const peakLite = embedded.peakRssMb();
    const exitLite = await embedded.stop();
    await bare.stop();

    const pgRps = avg(pgRuns, 'rps');
    const perUnit = (us: number, units: number) => (units > 0 ? Math.round(us / units) : 0);
    const bareCpuUs = perUnit(bareCpu, bareRequests);
    const clickCpuUsPg = perUnit(collectorClickCpu, clicksStored);
    Object.assign(summary, {
      bareCpuUs,
      clickCpuUsPg,
      pgCpuUsPerClick: perUnit(pgClickCpu, clicksStored),
      clickCpuRatioPg: clickCpuUsPg > 0 ? Number((bareCpuUs / clickCpuUsPg).toFixed(3)) : 0,
      signupCpuUsPg: perUnit((signupLoad.cpu.collector ?? 0) + (signupLoad.cpu.postgres ?? 0), signupsStored),
      signupCollectorCpuUsPg: perUnit(signupLoad.cpu.collector ?? 0, signupsStored),
      signupPgCpuUsPg: perUnit(signupLoad.cpu.postgres ?? 0, signupsStored),
      bareRps: Math.round(bareRps),
      clickRpsPg: Math.round(pgRps),
      clickRatioPg: Number((pgRps / bareRps).toFixed(3)),
      clickP50MsPg: avg(pgRuns, 'p50'),
      clickP99MsPg: avg(pgRuns, 'p99'),
      clickRpsPglite: liteRun.rps,
      clickRatioPglite: Number((liteRun.rps / bareRps).toFixed(3)),
      clickP99MsPglite: liteRun.p99,
      signupsPerSecPg: signups.rps,
      signupP99MsPg: signups.p99,
      ackedClicksPg: ackedPg,
      storedClicksPg: storedPg,
      ackedClicksPglite: liteRun.ok,
      storedClicksPglite: liteSummary.clicks,
      lostAcked: Math.max(0, ackedPg - storedPg) + Math.max(0, liteRun.ok - liteSummary.clicks) + Math.max(0, signups.ok - referralsPg),
      peakRssMb: Math.max(peakPg, peakLite),
      peakRssMbPg: peakPg,
      peakRssMbPglite: peakLite,
      scaleOutExactlyOnce: exactlyOnce,
      cleanExit: exitPg === 0 && exitLite === 0,
    });
  } finally {
    await Promise.all(procs.map((proc) => proc.stop()));
    await admin.query(`drop database if exists ${dbName} with (force)`).catch(() => undefined);
    await admin.end();
    rmSync(dataDir, { recursive: true, force: true });
  }
  console.log(JSON.stringify(summary));
}

await main();
