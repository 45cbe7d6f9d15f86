/**
 * Cross-cutting middleware: the one error handler (top of the chain) and request logs.
 */
import type { Context, Next } from 'koa';
import { AppError, unavailable } from '../errors.ts';
import { isConnectionError } from '../storage/db.ts';
import { NotWritten } from '../storage/groupCommit.ts';
import type { Logger } from '../logger.ts';

/** Turns every thrown error into the JSON error shape; 5xx never show internals. */
export function handleErrors(logger: Logger) {
  return async function errorHandler(ctx: Context, next: Next) {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        throw new AppError(404, 'not_found', `No route for ${ctx.method} ${ctx.path}`);
      }
      if (ctx.status === 405 && typeof ctx.body !== 'object') {
        throw new AppError(405, 'method_not_allowed', `${ctx.method} is not allowed here; allowed: ${ctx.response.get('Allow') || 'none'}`);
      }
    } catch (error) {
      const appError = toAppError(error);
      if (appError.status === 503) {
        // Expected during an outage or a restart: one line, no stack.
        logger.warn(
          { method: ctx.method, path: loggablePath(ctx.path), reason: (error as Error)?.message },
          'request refused: unavailable',
        );
      } else if (appError.status >= 500) {
        logger.error({ err: error, method: ctx.method, path: loggablePath(ctx.path) }, 'request failed');
      }
      ctx.status = appError.status;
      ctx.body = appError.toBody();
      for (const [name, value] of Object.entries(appError.headers ?? {})) ctx.set(name, value);
    }
  };
}

/** What a client is told when its row could not be written (group commit). */
const NOT_WRITTEN: Record<NotWritten['reason'], AppError> = {
  closed: unavailable('The collector is shutting down; retry shortly'),
  overloaded: unavailable('The collector is overloaded; retry shortly', 1),
  failed: unavailable('Could not store the request; retry shortly'),
};

function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof NotWritten) return NOT_WRITTEN[error.reason];
  if (isConnectionError(error)) {
    return new AppError(503, 'unavailable', 'The database is unavailable; retry shortly', undefined, { 'Retry-After': '2' });
  }
  const err = error as { status?: number; expose?: boolean; message?: string };
  if (typeof err?.status === 'number' && err.status >= 400 && err.status < 500) {
    return new AppError(err.status, 'bad_request', err.expose && err.message ? err.message : 'Bad request');
  }
  return new AppError(500, 'internal_error', 'Something went wrong on our side');
}

/** A portal link's token is a credential: `/portal/<token>` is logged as `/portal/[redacted]`. */
export const loggablePath = (path: string) => path.replace(/^\/portal\/(?!app\.(?:js|css)$)[^/]+/, '/portal/[redacted]');

/**
 * One log line per request; the query string is left out (it may carry codes or keys), and so are portal tokens.
 * Below level info, requests pass straight through: no timer, no async frame.
 */
export function logRequests(logger: Logger) {
  const logged = async (ctx: Context, next: Next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      logger.info(
        { method: ctx.method, path: loggablePath(ctx.path), status: ctx.status, ms: Math.round(performance.now() - started) },
        'request',
      );
    }
  };
  return function requestLog(ctx: Context, next: Next) {
    return logger.isLevelEnabled('info') ? logged(ctx, next) : next();
  };
}

type Step = (ctx: Context, next: Next) => Promise<unknown>;

/**
 * Runs `stack` for requests with exactly this method and path, ahead of the routers;
 * anything else goes on (another spelling of the path, such as a trailing slash, still
 * reaches the router, which runs the same stack). For the hottest route: a router walks
 * its table and builds the route's middleware chain anew for every request.
 */
export function exactRoute(method: string, path: string, stack: Step[]) {
  const run = stack.reduceRight<Step>(
    (after, step) => (ctx, next) => step(ctx, () => after(ctx, next)),
    (_ctx, next) => next(),
  );
  return function route(ctx: Context, next: Next) {
    return ctx.method === method && ctx.path === path ? run(ctx, next) : next();
  };
}

/** The server's shutdown state, shared with the drain gate. */
export class Lifecycle {
  draining = false;
  private inFlight = 0;
  private readonly idle = new Set<() => void>();

  enter(): void {
    this.inFlight++;
  }

  leave(): void {
    if (--this.inFlight === 0) for (const done of this.idle) done();
  }

  /**
   * Resolves when no request is being handled (or after `timeoutMs`). A client that
   * hung up leaves its handler running; the database must stay open until it ends.
   */
  async settled(timeoutMs: number): Promise<void> {
    if (this.inFlight === 0) return;
    let done!: () => void;
    const timer = setTimeout(() => done(), timeoutMs);
    await new Promise<void>((resolve) => {
      done = resolve;
      this.idle.add(resolve);
    });
    clearTimeout(timer);
    this.idle.delete(done);
  }
}

/** During shutdown: new requests get 503 and the connection is closed; in-flight ones finish. */
export function refuseWhileDraining(lifecycle: Lifecycle | undefined) {
  return async function drainGate(ctx: Context, next: Next) {
    if (lifecycle?.draining) {
      ctx.set('Connection', 'close');
      throw new AppError(503, 'shutting_down', 'The collector is restarting; retry shortly', undefined, { 'Retry-After': '1' });
    }
    lifecycle?.enter();
    try {
      await next();
    } finally {
      lifecycle?.leave();
    }
    // Answered while shutting down: let the client open its next connection elsewhere.
    if (lifecycle?.draining) ctx.set('Connection', 'close');
  };
}
