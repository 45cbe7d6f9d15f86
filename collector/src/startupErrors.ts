/**
 * Why the collector (or the CLI) cannot start, said to the operator: one paragraph
 * with what failed and what to do, printed alone on stderr (no stack trace: nothing
 * in it is a bug to debug).
 */
import { type DataDirLocked, describeHolder, isSeenFromHere, STALE_AFTER_MS } from './storage/dataDirLock.ts';

export class StartupError extends Error {
  override name = 'StartupError';
}

/** The parts of a DATABASE_URL that are safe to print (never the password). */
export function describeDatabaseUrl(databaseUrl: string) {
  const url = new URL(databaseUrl);
  return {
    host: url.hostname || 'localhost',
    port: url.port || '5432',
    database: decodeURIComponent(url.pathname.replace(/^\//, '')) || decodeURIComponent(url.username) || 'postgres',
    /** Unset: the server is told PGUSER or the operating system's user name. */
    user: decodeURIComponent(url.username) || undefined,
  };
}

/** The listen error (EADDRINUSE and its kin) as a StartupError; other errors unchanged. */
export function explainListenError(error: unknown, host: string, port: number): unknown {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'EADDRINUSE') {
    return new StartupError(
      `Port ${port} on ${host} is in use (another collector? \`lsof -i :${port}\` or \`ss -ltnp\` shows which process has it). ` +
        'Set PORT to a free port or stop the other process.',
    );
  }
  if (code === 'EACCES') {
    return new StartupError(
      `Port ${port} on ${host} needs privileges this process does not have. Set PORT to 1024 or above (and put a proxy in front for 80/443).`,
    );
  }
  if (code === 'EADDRNOTAVAIL') {
    return new StartupError(
      `HOST ${host} is not an address of this machine, so the collector cannot listen on it. Set HOST to one of its addresses, or 0.0.0.0 for all.`,
    );
  }
  return error;
}

/** Says that DATA_DIR is held by another process, and what to do about it. */
export function explainDataDirLocked(error: DataDirLocked): StartupError {
  const { holder, dataDir } = error;
  const what =
    holder.role === 'cli'
      ? 'Wait for that command to finish, then start the collector.'
      : 'Stop that collector first, or give this one another DATA_DIR, or use PostgreSQL (DATABASE_URL) to run several collectors on one database.';
  const elsewhere = isSeenFromHere(holder)
    ? ''
    : ` (That process is on another machine or container, so it cannot be checked from here: if it is gone, its lock is taken over once it has gone ${STALE_AFTER_MS / 1000} s unrefreshed.)`;
  return new StartupError(
    `DATA_DIR ${dataDir} is in use by ${describeHolder(holder)}, and the embedded database allows one process on its files. ${what}${elsewhere}`,
  );
}

/** DATA_DIR cannot be created or written (a file system error taking its lock) as a StartupError; other errors unchanged. */
export function explainDataDirError(error: unknown, dataDir: string): unknown {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new StartupError(
      `DATA_DIR ${dataDir} is not writable by this user (${code}). Give it write access, or set DATA_DIR to a directory it can write.`,
    );
  }
  if (code === 'ENOTDIR' || code === 'EEXIST') {
    return new StartupError(`DATA_DIR ${dataDir} is not a directory (${code}). Set DATA_DIR to a directory (it is created when missing).`);
  }
  return error;
}

const AUTH_FAILED = new Set(['28P01', '28000']);

/** A failed first connection to DATABASE_URL as a StartupError (after `waitedS` seconds of retries, if any). */
export function explainDatabaseError(error: unknown, databaseUrl: string, waitedS = 0): StartupError {
  const { host, port, database, user } = describeDatabaseUrl(databaseUrl);
  const err = error as { code?: string; message?: string; name?: string };
  const code = err?.code ?? '';
  if (code === '3D000') {
    return new StartupError(
      `The database "${database}" does not exist on the PostgreSQL server at ${host}:${port}. ` +
        `Create it (\`createdb -h ${host} -p ${port}${user ? ` -U ${user}` : ''} ${database}\`, or CREATE DATABASE "${database}" in psql), ` +
        'or point DATABASE_URL at an existing database. The collector creates its tables itself.',
    );
  }
  if (AUTH_FAILED.has(code)) {
    return new StartupError(
      `The PostgreSQL server at ${host}:${port} refused the login as ${user ?? 'the default user'} to "${database}" (${err.message}). ` +
        'Check the user name and password in DATABASE_URL (special characters in the password must be percent-encoded), and that the server allows this user from this host (pg_hba.conf).',
    );
  }
  const reason = connectionReason(err, host);
  const waited = waitedS > 0 ? ` for ${waitedS} s` : '';
  return new StartupError(
    `Could not connect to PostgreSQL at ${host}:${port}${waited} (${reason}). ` +
      'Check that the server is running and accepts TCP connections on that host and port, and that DATABASE_URL names them; ' +
      'set DATABASE_CONNECT_TIMEOUT_S to wait longer for a server that is still starting.',
  );
}

/** A short, stack-free account of a connection failure. */
export function connectionReason(error: unknown, host: string): string {
  const err = error as { code?: string; message?: string; name?: string };
  switch (err?.code) {
    case 'ECONNREFUSED':
      return 'connection refused: nothing listens there';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host name ${host} does not resolve`;
    case 'ETIMEDOUT':
      return 'the connection timed out';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'the host is unreachable';
    case '57P03':
      return 'the server is starting up or shutting down';
  }
  if (err?.name === 'KnexTimeoutError') return 'no answer in time';
  return err?.code ? `${err.code}: ${err.message ?? ''}`.trim() : (err?.message ?? String(error));
}
