/**
 * What the benchmarks share: the collector and bare Koa as processes (the collector
 * exactly as `npm start` runs it), autocannon loads bounded in time, a program set up
 * through the API, and CPU time per process from /proc over a load.
 *
 * BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names a server;
 * BENCH_SECONDS sets each load's length (default 8). Loopback only.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import { freePort } from '../helpers/net.ts';
import { npmStartCommand, spawnProcess, waitForHealth } from '../helpers/processes.ts';

export const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
export const CONNECTIONS = 50;
export const ADMIN_TOKEN = 'bench-admin-token-0123456789';
export const BASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const ROOT = path.resolve(import.meta.dirname, '../..');
/** The collector as `npm start` runs it (its bundle is built at the start of the bench). */
export const COLLECTOR = npmStartCommand()[1];

export interface Load {
  rps: number;
  p50: number;
  p99: number;
  ok: number;
  non2xx: number;
  errors: number;
}

export interface Proc {
  url: string;
  pid: number;
  peakRssMb: () => number;
  stop: () => Promise<number | null>;
}

/** Builds the bundle `npm start` runs (its prestart step). */
export function buildBundle(): void {
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, stdio: 'ignore' });
}

/** The URL of database `name` on the server BASE_URL names. */
export function databaseUrl(name: string): string {
  const url = new URL(BASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function startProcess(args: string[], env: Record<string, string>): Promise<Proc> {
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

/**
 * POSTs `body()` to `requestPath` from CONNECTIONS connections for SECONDS.
 * `headersFor`, when given, adds headers of each request's own (a user agent, an address).
 */
export async function load(
  url: string,
  requestPath: string,
  body: () => string,
  headers: Record<string, string>,
  options: { seconds?: number; headersFor?: () => Record<string, string> } = {},
): Promise<Load> {
  const { headersFor } = options;
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: options.seconds ?? SECONDS,
    requests: [
      {
        method: 'POST',
        path: requestPath,
        headers,
        setupRequest: (request) => ({
          ...request,
          body: body(),
          ...(headersFor ? { headers: { ...request.headers, ...headersFor() } } : {}),
        }),
      },
    ],
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

export async function json(url: string, init: RequestInit & { auth?: string } = {}): Promise<any> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (init.auth) headers.authorization = `Bearer ${init.auth}`;
  const response = await fetch(url, { ...init, headers });
  const text = await response.text();
  if (response.status >= 300) throw new Error(`${init.method ?? 'GET'} ${url} → ${response.status} ${text}`);
  return JSON.parse(text);
}

/** A program made through the API (admin token), with `codes` referrers made through the API too. */
export async function setupProgram(url: string, codes: number) {
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
export async function measureCpu<T>(
  pids: Record<string, number>,
  pgDatabase: { url: string; name: string } | undefined,
  run: () => Promise<T>,
) {
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
export const uniqueId = (prefix: string) =>
  `${prefix}${process.pid.toString(36)}x${(counter++).toString(36)}x${randomBytes(3).toString('hex')}`;
export const pick = <T>(items: T[]) => items[Math.floor(Math.random() * items.length)] as T;

export function clickBody(key: string, codes: string[]) {
  return () => JSON.stringify({ key, code: pick(codes), vid: uniqueId('v'), url: 'https://bench.example/?ref=x' });
}

export async function countRows(connectionString: string, sql: string): Promise<number> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return Number((await client.query(sql)).rows[0].n);
  } finally {
    await client.end();
  }
}

export const fmt = (label: string, l: Load) =>
  `${label.padEnd(28)} ${String(l.rps).padStart(7)} req/s  p50 ${String(l.p50).padStart(4)} ms  p99 ${String(l.p99).padStart(4)} ms  2xx ${l.ok}  non-2xx ${l.non2xx}  errors ${l.errors}`;
