/**
 * Runs the collector: reads config, locks DATA_DIR (embedded database) or waits for
 * PostgreSQL, migrates, listens, and shuts down gracefully on SIGTERM/SIGINT (stop
 * accepting, finish in-flight requests, close the database so PGlite files reopen
 * cleanly, release the lock). What stops a start is said in one paragraph
 * (startupErrors.ts), without a stack.
 */
import cluster from 'node:cluster';
import { createServer, type Server } from 'node:http';
import type Koa from 'koa';
import type { Knex } from 'knex';
import { buildApp } from './app.ts';
import { createIngest } from './ingest.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { createLogger, type Logger } from './logger.ts';
import { connectDatabase, type ConnectOptions } from './storage/connect.ts';
import { acquireDataDirLock, DataDirLocked, type DataDirLock } from './storage/dataDirLock.ts';
import { createDb } from './storage/db.ts';
import {
  connectionReason,
  describeDatabaseUrl,
  explainDataDirError,
  explainDataDirLocked,
  explainListenError,
  StartupError,
} from './startupErrors.ts';
import { migrateLatest } from './storage/migrate.ts';
import { startWorkers } from './workers.ts';
import { longestWindowDays, maintainClicks } from './storage/clickPartitions.ts';
import { seedDemo, wantsDemo } from './demo.ts';
import { createRateLimits } from './http/rateLimit.ts';
import { Lifecycle } from './http/middleware.ts';

const SHUTDOWN_GRACE_MS = 4000;

export async function start(config: Config) {
  const logger = createLogger(config.logLevel);
  const lock = config.databaseUrl ? undefined : await lockDataDir(config, logger);
  const db = createDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    if (config.databaseUrl) await connectDatabase(db, databaseConnectOptions(config.databaseUrl, config.databaseConnectTimeoutS, logger));
    const ran = await migrateLatest(db);
    if (ran.length) logger.info({ migrations: ran }, 'migrated');
    if (wantsDemo(config)) await seedDemo(db, config, logger);
    await prepareClicks(db, config.clickRetentionDays);
  } catch (error) {
    await db.destroy();
    lock?.release();
    throw error;
  }
  const ingest = createIngest(db, logger, { clickConnection: true });
  const lifecycle = new Lifecycle();
  const limits = createRateLimits(config, logger);
  const app = buildApp({ db, config, logger, ingest, limits, lifecycle });
  const server = createHttpServer(app, config);
  try {
    await listen(server, config);
  } catch (error) {
    await limits.close();
    await ingest.close();
    await db.destroy();
    lock?.release();
    throw error;
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  lock?.update({ port, host: config.host, url: localUrl(config.host, port) });
  logger.info({ port, database: config.databaseUrl ? 'postgresql' : `pglite (${config.dataDir})` }, 'collector listening');

  const workers = startWorkers(db, logger, {
    clickRetentionDays: config.clickRetentionDays,
    rankingMinReferrers: config.rankingMinReferrers,
    webhookAllowPrivate: config.webhookAllowPrivate,
    smtpUrl: config.smtpUrl,
    publicUrl: config.publicUrl,
  });

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      logger.info('shutting down');
      lifecycle.draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
      await closed;
      clearTimeout(force);
      await lifecycle.settled(SHUTDOWN_GRACE_MS);
      await ingest.close();
      await workers.stop();
      await limits.close();
      await db.destroy();
      lock?.release();
      logger.info('stopped');
    })());
  return { server, port, db, logger, lock, stop };
}

/**
 * The embedded database has one writer: hold DATA_DIR's lock before PGlite opens the
 * files (storage/dataDirLock.ts), or say who holds it.
 */
async function lockDataDir(config: Config, logger: Logger): Promise<DataDirLock> {
  try {
    return await acquireDataDirLock(config.dataDir, {
      role: 'collector',
      onTakeover: (previous, reason) =>
        logger.warn(
          { dataDir: config.dataDir, previousPid: previous?.pid, reason },
          'took over a stale DATA_DIR lock (its holder is gone)',
        ),
    });
  } catch (error) {
    if (error instanceof DataDirLocked) throw explainDataDirLocked(error);
    throw explainDataDirError(error, config.dataDir);
  }
}

function databaseConnectOptions(databaseUrl: string, timeoutS: number, logger: Logger): ConnectOptions {
  const { host, port, database } = describeDatabaseUrl(databaseUrl);
  return {
    databaseUrl,
    timeoutS,
    onRetry: ({ attempt, error, delayMs }) =>
      logger.warn(
        { database: `${host}:${port}/${database}`, attempt, reason: connectionReason(error, host), retryInMs: delayMs },
        'PostgreSQL not reachable yet; retrying',
      ),
  };
}

/** Listens on HOST:PORT; a port in use (and the like) becomes a StartupError that says what to do. */
async function listen(server: Server, config: Config): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((error: unknown) => {
    throw explainListenError(error, config.host, config.port);
  });
}

/** Where this machine reaches a server listening on `host` (the CLI goes through it). */
function localUrl(host: string, port: number): string {
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

/**
 * The HTTP server, with bounds on slow clients: headers and the whole request must
 * arrive within their timeouts (then 408 and close), so a few stalled sockets cannot
 * hold connections for minutes. Node checks those timeouts every
 * `connectionsCheckingInterval` (30 s by default), so the check runs often enough
 * for the configured values to hold.
 */
function createHttpServer(app: Koa, config: Config): Server {
  const { headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs } = config.http;
  const server = createServer(
    {
      headersTimeout: headersTimeoutMs,
      requestTimeout: requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(headersTimeoutMs / 4))),
    },
    app.callback(),
  );
  server.keepAliveTimeout = keepAliveTimeoutMs;
  return server;
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/').split('/').pop() ?? '');
if (isMain) {
  try {
    const config = loadConfig();
    if (cluster.isPrimary && config.workers > 1) {
      await runPrimary(config);
    } else {
      await runWorker(config);
    }
  } catch (error) {
    // What the operator can fix is said in a paragraph; anything else is a bug, with its stack.
    if (error instanceof ConfigError || error instanceof StartupError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
}

/** One collector process: serve until SIGTERM/SIGINT, then shut down gracefully and exit 0. */
async function runWorker(config: Config) {
  // A signal during start-up ends the process at once (it has accepted nothing yet).
  const running = await start(config);
  running.lock?.onLost(() => {
    // Another process judged this one gone and took DATA_DIR: stop writing at once.
    running.logger.fatal({ dataDir: config.dataDir }, 'the DATA_DIR lock was taken over by another process; exiting');
    process.exit(1);
  });
  // A stray rejection (a dropped connection, say) is logged, never fatal: the request
  // that hit it has already been answered through the error middleware.
  process.on('unhandledRejection', (reason) => running.logger.error({ err: reason }, 'unhandled rejection'));
  const stopAndExit = () =>
    running.stop().then(
      () => process.exit(0),
      (error) => {
        running.logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  // The same signal again while stopping (a process manager, a dev runner relaying it, a
  // second Ctrl-C) leaves the drain to finish: without a listener, Node would die of it.
  let stopping = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      void stopAndExit();
    });
  }
}

/**
 * WORKERS > 1 (PostgreSQL only): the primary migrates once, then forks workers that
 * share the port; SIGTERM is passed on and the primary exits 0 once all have.
 */
async function runPrimary(config: Config) {
  const logger = createLogger(config.logLevel);
  const db = createDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolMax: 1 });
  try {
    if (config.databaseUrl) await connectDatabase(db, databaseConnectOptions(config.databaseUrl, config.databaseConnectTimeoutS, logger));
    await migrateLatest(db);
    if (wantsDemo(config)) await seedDemo(db, config, logger);
  } finally {
    await db.destroy();
  }
  const workers = Array.from({ length: config.workers }, () => cluster.fork({ DEMO: 'off' }));
  let stopping = false;
  let failed = false;
  for (const worker of workers) {
    worker.on('exit', (code, signal) => {
      // Workers exit 0 only after a graceful stop (a terminal's Ctrl-C reaches the whole
      // process group, so they may hear it first). One still starting when we asked it
      // to stop dies of that SIGTERM, having accepted nothing: that is clean too. Any
      // other exit takes the others down.
      const stoppedWhileStarting = stopping && signal === 'SIGTERM';
      if (code !== 0 && !stoppedWhileStarting) {
        failed = true;
        logger.error({ code, signal }, 'worker failed; stopping');
      }
      if (!stopping) {
        stopping = true;
        for (const other of workers) if (!other.isDead()) other.process.kill('SIGTERM');
      }
      if (workers.every((w) => w.isDead())) process.exit(failed ? 1 : 0);
    });
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      for (const worker of workers) worker.process.kill('SIGTERM');
    });
  }
}

/**
 * Click partitions for this month and the next ones, and a retention that covers
 * every program's attribution window (else the collector would drop clicks attribution
 * still needs: refuse to start, saying what to change).
 */
async function prepareClicks(db: Knex, retentionDays: number | undefined): Promise<void> {
  if (retentionDays !== undefined) {
    const window = await longestWindowDays(db);
    if (window > retentionDays) {
      throw new StartupError(
        `CLICK_RETENTION_DAYS=${retentionDays} is shorter than the longest attribution window of a program (${window} days): ` +
          `clicks would be dropped while they can still attribute. Set CLICK_RETENTION_DAYS to ${window} or more, or lower that program's windowDays.`,
      );
    }
  }
  await maintainClicks(db, retentionDays);
}
