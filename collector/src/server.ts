/**
 * Runs the collector: reads config, opens the database, migrates, listens, and
 * shuts down gracefully on SIGTERM/SIGINT (stop accepting, finish in-flight
 * requests, close the database so PGlite files reopen cleanly).
 */
import cluster from 'node:cluster';
import { createServer, type Server } from 'node:http';
import type Koa from 'koa';
import { buildApp } from './app.ts';
import { createIngest } from './ingest.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { createLogger } from './logger.ts';
import { createDb } from './storage/db.ts';
import { migrateLatest } from './storage/migrate.ts';
import { startWorkers } from './workers.ts';
import { seedDemo, wantsDemo } from './demo.ts';
import { createRateLimits } from './http/rateLimit.ts';
import { Lifecycle } from './http/middleware.ts';

const SHUTDOWN_GRACE_MS = 4000;

export async function start(config: Config) {
  const logger = createLogger(config.logLevel);
  const db = createDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  const ran = await migrateLatest(db);
  if (ran.length) logger.info({ migrations: ran }, 'migrated');
  if (wantsDemo(config)) await seedDemo(db, config, logger);
  const ingest = createIngest(db, logger);
  const lifecycle = new Lifecycle();
  const limits = createRateLimits(config, logger);
  const app = buildApp({ db, config, logger, ingest, limits, lifecycle });
  const server = createHttpServer(app, config);
  server.listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info({ port, database: config.databaseUrl ? 'postgresql' : `pglite (${config.dataDir})` }, 'collector listening');

  const workers = startWorkers(db, logger, { webhookAllowPrivate: config.webhookAllowPrivate });

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
      await ingest.drain();
      await workers.stop();
      await limits.close();
      await db.destroy();
      logger.info('stopped');
    })());
  return { server, port, db, logger, stop };
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
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  if (cluster.isPrimary && config.workers > 1) {
    await runPrimary(config);
  } else {
    await runWorker(config);
  }
}

/** One collector process: serve until SIGTERM/SIGINT, then shut down gracefully and exit 0. */
async function runWorker(config: Config) {
  // A signal during start-up ends the process at once (it has accepted nothing yet).
  const running = await start(config);
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
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void stopAndExit());
}

/**
 * WORKERS > 1 (PostgreSQL only): the primary migrates once, then forks workers that
 * share the port; SIGTERM is passed on and the primary exits 0 once all have.
 */
async function runPrimary(config: Config) {
  const logger = createLogger(config.logLevel);
  const db = createDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolMax: 1 });
  await migrateLatest(db);
  if (wantsDemo(config)) await seedDemo(db, config, logger);
  await db.destroy();
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
    process.once(signal, () => {
      stopping = true;
      for (const worker of workers) worker.process.kill('SIGTERM');
    });
  }
}
