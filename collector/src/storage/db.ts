/**
 * The one Knex factory: PGlite (embedded, files under DATA_DIR, or in memory) or
 * PostgreSQL through `pg`. Both hand back the same JavaScript values: int8 and
 * numeric come back as numbers here, so domain code never sees driver differences.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import { PGlite } from '@electric-sql/pglite';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import pg from 'pg';

export type Db = Knex;

export interface DbOptions {
  /** postgres:// URL; when absent the embedded PGlite database is used. */
  databaseUrl?: string | undefined;
  /** Folder for PGlite files; `null` keeps the embedded database in memory (tests). */
  dataDir?: string | null;
  /** Schema to work in (tests isolate suites in their own schema). */
  schema?: string;
  /** Largest number of pooled PostgreSQL connections. */
  poolMax?: number;
}

const INT8 = 20;
const NUMERIC = 1700;
const toNumber = (value: string) => Number(value);

/** pg hands int8/numeric back as strings; make them numbers (amounts stay far below 2^53). */
const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8 || oid === NUMERIC) return toNumber;
    return pg.types.getTypeParser(oid, format);
  },
};

/**
 * Every connection runs without JIT compilation. The collector's statements are short;
 * JIT pays only for long scans, and a prepared statement's generic plan can be
 * estimated past jit_above_cost while running in a millisecond: the click batch's, at
 * 10M clicks (a lookup in every month partition), was compiled anew on every execution
 * (1.8 s each: clicks fell from thousands a second to 19).
 */
function withoutJit(connection: pg.Client, done: (error: Error | null, connection: pg.Client) => void) {
  connection.query('set jit = off').then(
    () => done(null, connection),
    (error: Error) => done(error, connection),
  );
}

export function createDb(options: DbOptions): Db {
  const searchPath = options.schema ? [options.schema, 'public'] : undefined;
  if (options.databaseUrl) {
    return knexFactory({
      client: 'pg',
      connection: { connectionString: options.databaseUrl, types: pgTypes } as Knex.PgConnectionConfig,
      pool: { min: 0, max: options.poolMax ?? 10, afterCreate: withoutJit },
      searchPath,
      acquireConnectionTimeout: 5_000,
      log: { warn: warnUnlessConnectFailure },
    });
  }
  const dir = options.dataDir === null ? undefined : path.resolve(options.dataDir ?? './data', 'pglite');
  if (dir) initPgliteDir(dir);
  useBaselineWasmCompiler();
  // One PGlite instance per Knex: knex calls a connection function on every acquire,
  // and two instances must never open the same data directory.
  const pglite = new PGlite({ dataDir: dir, parsers: { [NUMERIC]: toNumber }, postgresqlconf: PGLITE_CONF });
  return knexFactory({
    client: ClientPgLite,
    dialect: 'postgres',
    connection: () => ({ pglite }) as object,
    searchPath,
  } as Knex.Config);
}

/**
 * Knex prints every failed connection attempt with its stack on stdout; the same
 * error also reaches the caller, which says it better (at start, startupErrors.ts;
 * later, the error middleware's 503). Its other warnings still show.
 */
function warnUnlessConnectFailure(message: string): void {
  if (!message.startsWith('Acquire connection error')) console.warn(message);
}

/**
 * PGlite is for single-server installs: a 16 MB buffer pool (PostgreSQL's default is
 * 128 MB) keeps the collector's memory near 200 MB; the OS page cache still holds
 * the files.
 */
const PGLITE_CONF = ['shared_buffers = 16MB'];

/**
 * PGlite's PostgreSQL is WebAssembly. V8 compiles it quickly (Liftoff), then again
 * with its optimizing compiler; that second copy of the code costs ~50 MB of memory
 * and measured no faster here (the collector's ingest is bound elsewhere). Set before
 * the first PGlite compiles.
 */
function useBaselineWasmCompiler(): void {
  v8.setFlagsFromString('--liftoff-only');
}

/**
 * Creates a PGlite data directory in a short-lived child process. initdb runs a
 * second WebAssembly instance whose memory (~500 MB) the process would otherwise
 * keep for its whole life; the server then opens the finished directory.
 */
function initPgliteDir(dir: string): void {
  if (existsSync(path.join(dir, 'PG_VERSION'))) return;
  mkdirSync(dir, { recursive: true });
  const pgliteUrl = pathToFileURL(createRequire(import.meta.url).resolve('@electric-sql/pglite')).href;
  const script = `const { PGlite } = await import(${JSON.stringify(pgliteUrl)});
    const db = new PGlite({ dataDir: ${JSON.stringify(dir)} });
    await db.waitReady;
    await db.close();`;
  execFileSync(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
}

const genericPlanDbs = new WeakSet<Knex>();

/**
 * How the click batch runs (clicks.ts recordClicks says why): on its generic plan, and
 * reading a visitor's clicks through an index scan, not a bitmap heap scan. The
 * planner combined the visitor index with another into a bitmap; a bitmap heap scan
 * reads its table's size again (a system call) at every rescan, once per click and
 * partition, and builds a bitmap for the one or two rows a visitor has. PostgreSQL CPU
 * per click (test/bench/clickParts.ts, 24 a batch, alternated three times): 47–54 µs
 * with bitmaps, 40–46 without.
 */
const CLICK_SETTINGS = ['plan_cache_mode = force_generic_plan', 'enable_bitmapscan = off'];

/** CLICK_SETTINGS as SET statements, for the session or (`local`) for the current transaction. */
export const clickSettingsSql = (scope: 'session' | 'local') =>
  CLICK_SETTINGS.map((setting) => `set ${scope === 'local' ? 'local ' : ''}${setting}`).join('; ');

/**
 * A pool of one PostgreSQL connection beside `db` (same server, schema and settings)
 * whose session runs the click batch as clicks.ts wants it (CLICK_SETTINGS: its
 * generic plan, no bitmap scans, no JIT), set once when it connects: the click batches
 * run there, one at a time, with no transaction round trips to SET LOCAL (clicks.ts
 * recordClicks). Close it with destroy(). Undefined on the embedded database.
 */
export function openGenericPlanDb(db: Knex): Knex | undefined {
  if (isEmbedded(db)) return undefined;
  const config = db.client.config as Knex.Config;
  const generic = knexFactory({
    ...config,
    pool: {
      min: 0,
      max: 1,
      afterCreate(connection: pg.Client, done: (error: Error | null, connection: pg.Client) => void) {
        connection.query(`set jit = off; ${clickSettingsSql('session')}`).then(
          () => done(null, connection),
          (error: Error) => done(error, connection),
        );
      },
    },
  });
  genericPlanDbs.add(generic);
  return generic;
}

/** True for a pool openGenericPlanDb made. */
export function usesGenericPlans(db: Knex): boolean {
  return genericPlanDbs.has(db);
}

/** True for the embedded PGlite database (one connection, one process). */
export function isEmbedded(db: Db): boolean {
  return typeof db.client.config.client !== 'string';
}

/** True when the database answers a trivial query within `timeoutMs`. */
export async function isReachable(db: Db, timeoutMs = 2000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([db.raw('select 1').then(() => true as const), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** True for errors that mean "the database is not there right now" rather than a bad query. */
export function isConnectionError(error: unknown): boolean {
  const err = error as { code?: string; message?: string; name?: string };
  const code = err?.code ?? '';
  return (
    [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'EPIPE',
      'ENOTFOUND',
      '57P01',
      '57P02',
      '57P03',
      '08000',
      '08003',
      '08006',
      '08001',
      '08004',
    ].includes(code) ||
    err?.name === 'KnexTimeoutError' ||
    /Connection terminated|connection.*closed|Client has encountered a connection error|timeout acquiring a connection/i.test(
      err?.message ?? '',
    )
  );
}

/** Postgres unique_violation. */
export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  const err = error as { code?: string; constraint?: string; message?: string };
  if (err?.code !== '23505') return false;
  return !constraint || err.constraint === constraint || (err.message ?? '').includes(constraint);
}

/**
 * A statement whose text never changes, named so that PostgreSQL parses and plans it
 * once per connection (PGlite ignores the name). `sql` must be a constant.
 */
export function prepared(db: Knex, name: string, sql: string, params: unknown[]): Knex.Raw {
  return db.raw(sql, params as Knex.RawBinding[]).options({ name });
}

/** A row read back through `row_to_json`, with its timestamp columns made Dates again. */
export function rowFromJson<T>(record: Record<string, unknown> | null | undefined, dateColumns: readonly string[]): T | undefined {
  if (!record) return undefined;
  const row: Record<string, unknown> = { ...record };
  for (const column of dateColumns) if (typeof row[column] === 'string') row[column] = new Date(row[column] as string);
  return row as T;
}
