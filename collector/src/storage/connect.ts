/**
 * The first connection to PostgreSQL at start. A server that is still starting (or
 * a container that comes up after this one) is waited for, with backoff, up to
 * DATABASE_CONNECT_TIMEOUT_S; a missing database or refused credentials stop at once,
 * since waiting cannot fix them. Either way the failure reaches the operator as one
 * paragraph (startupErrors.ts).
 */
import type { Knex } from 'knex';
import { explainDatabaseError } from '../startupErrors.ts';
import { isConnectionError } from './db.ts';

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 5_000;

export interface ConnectOptions {
  databaseUrl: string;
  /** How long to keep retrying a server that does not answer (0: try once). */
  timeoutS: number;
  /** Told before each retry: which attempt failed, why, and when the next one runs. */
  onRetry?: (retry: { attempt: number; error: unknown; delayMs: number }) => void;
}

/** Resolves once `select 1` answers; throws a StartupError saying what failed and how to fix it. */
export async function connectDatabase(db: Knex, options: ConnectOptions): Promise<void> {
  const started = Date.now();
  const deadline = started + options.timeoutS * 1000;
  let delayMs = FIRST_DELAY_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      await db.raw('select 1');
      return;
    } catch (error) {
      const left = deadline - Date.now();
      if (!isUnreachable(error) || left <= 0)
        throw explainDatabaseError(error, options.databaseUrl, Math.round((Date.now() - started) / 1000));
      const wait = Math.min(delayMs, left);
      options.onRetry?.({ attempt, error, delayMs: wait });
      await new Promise((resolve) => setTimeout(resolve, wait));
      delayMs = Math.min(delayMs * 2, MAX_DELAY_MS);
    }
  }
}

/** The server is not there (yet): worth waiting for. A missing database or a refused login is not. */
function isUnreachable(error: unknown): boolean {
  const code = (error as { code?: string })?.code ?? '';
  return isConnectionError(error) || ['EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'].includes(code);
}
